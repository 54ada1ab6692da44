-- The cosocket transport's reader of answers (status line, header fields,
-- chunked and Content-Length bodies, trailers), fed any bytes in pieces of
-- any size: a response within the limits, or a failure with a code; never a raise.
local t = require "streamctl.transport.ngx"
local u = require "targets.util"

local CODES = { InvalidResponse = true, NetworkError = true, Timeout = true }

return function(data)
  local chunk = 1 + (#data % 13)
  local head = data:byte(1) == 72 -- "H": as a HEAD request sometimes
  local res, keep = t._read_response(data, { chunk = chunk, max_body = 4096, method = head and "HEAD" or "GET" })
  if res then
    u.check(res.status >= 200 and res.status <= 999, "status %s", tostring(res.status))
    u.check(#res.body <= 4096, "a body over max_body")
    u.check(type(keep) == "boolean", "keep is not a boolean")
    for k in pairs(res.headers) do u.check(k == k:lower(), "a header name not lower-cased: %q", k) end
  else
    u.check(type(keep) == "table" and CODES[keep.code] and keep.sent == true, "a failure without a code: %s",
      tostring(keep and keep.code))
  end
end
