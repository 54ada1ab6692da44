-- The chaos run's nginx clients (docs/development/chaos.md): POST /op with a JSON body
-- { cfg = {...}, spec = {...}, deadline = unix } runs one op (spec/chaos/ops.lua)
-- in this worker, on this worker's clients (made on first use, as
-- examples/openresty does: cosockets, the run's Redis), and answers its
-- report as JSON, with `unsettled_until`: when the last attempt that may have
-- taken effect can no longer land (its send + settle). The process driving
-- this nginx waits until then before it touches those streams again, as one
-- client's engine does for its own streams: the next op may reach another
-- worker, whose engine knows nothing of this one's attempts.
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local ops = require "spec.chaos.ops"

local M = {}

local clients, clients_for = nil, nil

local function now()
  ngx.update_time()
  return ngx.now()
end

-- The attempts of the request running now (on_attempt runs in its light thread).
local function on_attempt(info)
  local t = ngx.ctx.chaos
  if not t then return end
  t.attempts = t.attempts + 1
  local err = info.error
  if not info.ok and err and (err.outcome_unknown or err.kind == "server") then
    local at = now() - (info.seconds or 0) + t.settle
    if at > t.unsettled_until then t.unsettled_until = at end
  end
end

function M.op()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  local req = body and cjson.decode(body)
  if type(req) ~= "table" or type(req.spec) ~= "table" then
    ngx.status = 400
    ngx.say(cjson.encode { error = "bad body" })
    return
  end
  local key = cjson.encode(req.cfg)
  if clients_for ~= key then
    clients = ops.clients(req.cfg, { on_attempt = on_attempt, cancel = function()
      local d = ngx.ctx.chaos and ngx.ctx.chaos.deadline
      return d ~= nil and now() > d
    end })
    clients_for = key
  end
  ngx.ctx.chaos = { attempts = 0, unsettled_until = 0, settle = (req.cfg.settle_ms or 3000) / 1000,
                    deadline = req.deadline }
  local ok, record = pcall(ops.execute, clients, req.spec)
  if not ok then
    ngx.status = 500
    ngx.say(cjson.encode { error = tostring(record) })
    return
  end
  record.unsettled_until = ngx.ctx.chaos.unsettled_until
  record.worker_pid = ngx.worker.pid()
  record.attempts = ngx.ctx.chaos.attempts
  ngx.header.content_type = "application/json"
  ngx.say(cjson.encode(record))
end

return M
