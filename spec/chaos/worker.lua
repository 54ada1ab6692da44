-- One client process of the chaos run (docs/development/chaos.md), started by
-- spec/chaos/run.lua with one argument, its settings as JSON:
--   { name, mode = "lua" | "ngx", seed, deadline (Unix s), out (file), aliyun_url, zego_url,
--     redis, nginx_url (mode ngx), streams = { aliyun = n, zego = n }, timeout_ms, settle_ms }
-- mode "lua": the client runs here (libcurl, one client per provider for the
-- whole run); mode "ngx": each op is POSTed to the client nginx, whose
-- workers run it (spec/chaos/nginx_handler.lua), and this process only
-- chooses and records. Either way it acts on its own streams only, one op at
-- a time, until the deadline (its clients' `cancel`: what is not sent by then
-- ends Interrupted), writing each op's report as one JSON line to `out` as
-- soon as it ends ({"type":"start"} before, so a process cut off shows), and
-- {"type":"done"} last. Every wait is bounded.
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
package.path = ROOT .. "/?.lua;" .. package.path

local cjson = require "cjson"
local core = require "streamctl.core"
local signal = require "streamctl.signal"
local curl = require "streamctl.curl"
local sleep = require("streamctl.transport.curl").sleep
local ops = require "spec.chaos.ops"

local cfg = cjson.decode((assert(arg[1], "usage: worker.lua SETTINGS_JSON")))
signal.catch()

math.randomseed(cfg.seed)
local function rng(a, b) return math.random(a, b) end

local out = assert(io.open(cfg.out, "w"))
local function write(t)
  out:write(cjson.encode(t), "\n")
  out:flush()
end

local deadline = cfg.deadline
local function over() return core.now() > deadline or signal.caught() ~= nil end

local me = ops.new_client(cfg.name, cfg.streams.aliyun, cfg.streams.zego)
local client_cfg = { aliyun_url = cfg.aliyun_url, zego_url = cfg.zego_url, redis = cfg.redis,
                     timeout_ms = cfg.timeout_ms, settle_ms = cfg.settle_ms }

local run_op
if cfg.mode == "lua" then
  local clients = ops.clients(client_cfg, { cancel = over })
  run_op = function(spec) return ops.execute(clients, spec) end
else
  run_op = function(spec)
    local easy = curl.easy { timeout_ms = 120000 }
    local res, err = easy:request { method = "POST", url = cfg.nginx_url .. "/op",
      headers = { ["content-type"] = "application/json" },
      body = cjson.encode { cfg = client_cfg, spec = spec, deadline = deadline } }
    easy:close()
    if not res then return { lost = "no answer from nginx: " .. tostring(err and err.message or err) } end
    local ok, record = pcall(cjson.decode, res.body)
    if res.status ~= 200 or not ok or type(record) ~= "table" then
      return { lost = "nginx answered " .. tostring(res.status) .. ": " .. tostring(res.body):sub(1, 300) }
    end
    return record
  end
end

-- mode ngx: when each stream may next be touched (see nginx_handler.lua)
local unsettled = {}

local ops_done = 0
for _ = 1, 100000 do
  if over() then break end
  local spec = ops.choose(rng, me)
  if cfg.mode == "ngx" then
    local wait = 0
    for _, item in ipairs(spec.input) do
      wait = math.max(wait, (unsettled[item] or 0) - core.now())
    end
    if wait > 0 then sleep(math.min(wait, math.max(deadline - core.now(), 0))) end
    if over() then break end
  end
  local rec = { type = "op", client = cfg.name, op = me.n, provider = spec.provider, action = spec.action,
                input = spec.input, dst_url = spec.dst_url, mode = cfg.mode }
  write { type = "start", client = cfg.name, op = me.n, action = spec.action, t_start = core.now() }
  rec.t_start = core.now()
  local ok, record = pcall(run_op, spec)
  rec.t_end = core.now()
  if not ok then
    rec.lost = "the op raised: " .. tostring(record)
  else
    for k, v in pairs(record) do rec[k] = v end
  end
  if rec.unsettled_until and rec.unsettled_until > 0 then
    for _, item in ipairs(spec.input) do unsettled[item] = rec.unsettled_until end
  end
  write(rec)
  ops.remember(me, spec, rec)
  ops_done = ops_done + 1
  if not over() then sleep(rng(0, 150) / 1000) end
end
write { type = "done", client = cfg.name, ops = ops_done, t = core.now() }
out:close()
