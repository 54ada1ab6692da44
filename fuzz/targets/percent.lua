-- The providers' percent-encoding and the canonical query built from it:
-- only unreserved characters stay literal, every other byte is %XY upper
-- case, decoding gives the input back, and the query is sorted by name.
local core = require "streamctl.core"
local u = require "targets.util"

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

return function(data)
  local e = core.percent_encode(data)
  u.check(not e:find("[^A-Za-z0-9%-_.~%%]"), "a reserved character left literal in %q", e)
  u.check(not e:find("%%%x?[^%x]") and not e:find("%%[a-f]") and not e:find("%%%x[a-f]"),
    "a malformed or lower-case escape in %q", e)
  u.check(unescape(e) == data, "decoding does not give the input back")
  local flaws = core.text_flaws(data)
  u.check(flaws >= 0 and flaws <= 7 and flaws % 1 == 0, "text_flaws gave %s", tostring(flaws))
  u.check((flaws % 2 == 1) == (data:find("[%z\r\n]") ~= nil), "text_flaws and CR/LF/NUL disagree")
  local params = u.params(data)
  local q = core.canonical_query(params)
  local last
  for item in (q .. "&"):gmatch("([^&]*)&") do
    if item ~= "" then
      local k = unescape(item:match("^([^=]*)"))
      u.check(params[k] ~= nil, "the query names %q, which was not given", k)
      u.check(not last or last <= k, "the query is not sorted: %q after %q", k, tostring(last))
      last = k
    end
  end
end
