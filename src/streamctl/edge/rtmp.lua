--- A ban that also stops what is live, where the ingest server offers it:
-- nginx-rtmp's control module drops a stream's publisher now
-- (`GET <control>/drop/publisher?app=APP&name=NAME`, answered with the
-- number of connections it dropped, in decimal). Its `rtmp_control`
-- location must be reachable from the edge; with several nginx-rtmp
-- workers, a drop reaches only the worker that answers it (run nginx-rtmp
-- with one worker, as its own docs advise for control).
--
--   local rtmp = require "streamctl.edge.rtmp"
--   local drops = rtmp.drop_publishers(transport, "http://127.0.0.1:8081/control", "live", { "cam-1" })
--   --> { ["cam-1"] = { dropped = 1 } }   (or { error = "..." } for a stream whose drop failed)
--
-- The requests go through a streamctl transport (streamctl.transport.ngx in
-- nginx: never blocking a worker), all at once, each bounded by the
-- transport's timeout.
-- @module streamctl.edge.rtmp

local core = require "streamctl.core"

local ipairs, tostring, tonumber, type = ipairs, tostring, tonumber, type
local format = string.format

local M = {}

--- Drops the publishers of `names` in application `app` of the nginx-rtmp whose control
-- location is `base` (an http(s) URL, no trailing slash needed): name -> `{ dropped = n }`, or
-- `{ error = why }` for each.
function M.drop_publishers(transport, base, app, names)
  base = base:gsub("/+$", "")
  local out, waiting = {}, 0
  for i, name in ipairs(names) do
    local request = { method = "GET", headers = {},
      url = format("%s/drop/publisher?app=%s&name=%s", base, core.percent_encode(app), core.percent_encode(name)) }
    local ok, failure = transport.start(i, request)
    if ok then waiting = waiting + 1 else out[name] = { error = tostring(failure and failure.message) } end
  end
  -- (bounded: each request ends by the transport's own timeout, and each poll returns at least one)
  for _ = 1, #names + 1 do
    if waiting == 0 then break end
    for _, done in ipairs(transport.poll(60)) do
      waiting = waiting - 1
      local name, res = names[done.key], done.res
      local body = res and res.status == 200 and type(res.body) == "string" and res.body
      local n = body and body:find("^%d+$") and tonumber(body)
      if n then
        out[name] = { dropped = n }
      elseif res then
        out[name] = { error = format("nginx-rtmp's control answered HTTP %s", tostring(res.status)) }
      else
        out[name] = { error = tostring(done.err and done.err.message) }
      end
    end
  end
  for _, name in ipairs(names) do out[name] = out[name] or { error = "no answer" } end
  return out
end

return M
