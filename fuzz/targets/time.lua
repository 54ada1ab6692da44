-- Times: a UTC timestamp parses to seconds that write back as the same text
-- (or is refused with a reason); an HTTP date parses or gives nil; neither raises.
local core = require "streamctl.core"
local decode = require "streamctl.pipeline.decode"
local u = require "targets.util"

return function(data)
  local t, why = core.parse_utc_timestamp(data)
  if t then
    u.check(core.utc_timestamp(t) == data, "%q parses to %s, which writes as %q", data, tostring(t),
      core.utc_timestamp(t))
  else
    u.check(type(why) == "string", "refused without a reason")
  end
  local d = decode.parse_http_date(data)
  u.check(d == nil or math.type == nil or math.type(d) == "integer", "an HTTP date that is not whole seconds")
end
