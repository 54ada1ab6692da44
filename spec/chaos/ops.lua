-- The chaos run's operations (docs/development/chaos.md): what a client does and how it
-- reports it, the same in a plain Lua process (spec/chaos/worker.lua) and in
-- an nginx worker (spec/chaos/nginx_handler.lua). No globals; no I/O but the
-- clients' own.
--
--   local ops = require "ops"                       -- (spec/chaos on the path)
--   local clients = ops.clients(cfg, extra)          -- { aliyun =, zego = } on one account, one Redis
--   local record = ops.execute(clients, spec)        -- runs one op; its report (check.lua's op fields)
--   local spec = ops.choose(rng, me)                 -- the next op of a client (its own streams)
--
-- An op spec: { provider, action, input = { item, ... }, concurrency, resume_time,
--               task_name, dst_url (a stop: the task's) }.

local streamctl = require "streamctl"

local M = {}

M.DOMAIN, M.APP = "push.example.com", "live"
M.ALIYUN_KEY, M.ALIYUN_SECRET = "LTAIemulatorKey", "emulator-secret"
M.APP_ID, M.ZEGO_SECRET = 1234567890, "0123456789abcdef0123456789abcdef"
M.REGION = "cn-shanghai"

--- Client options every chaos client uses: a short timeout (a delay fault
-- of 1.4 s outlives it: the outcome is unknown), a settle time longer than
-- any delay injected, the emulator's account, the run's Redis.
function M.clients(cfg, extra)
  local common = {
    redis = cfg.redis, timeout_ms = cfg.timeout_ms or 1000, settle_ms = cfg.settle_ms or 3000,
  }
  for k, v in pairs(extra or {}) do common[k] = v end
  local a, z = {}, {}
  for k, v in pairs(common) do a[k], z[k] = v, v end
  a.endpoint, a.access_key_id, a.access_key_secret = cfg.aliyun_url, M.ALIYUN_KEY, M.ALIYUN_SECRET
  z.endpoint, z.app_id, z.server_secret = cfg.zego_url, M.APP_ID, M.ZEGO_SECRET
  local ali = assert(streamctl.aliyun.new(a))
  local zego = assert(streamctl.zego.new(z))
  return { aliyun = ali, zego = zego }
end

local function result_of(item, res, err)
  local r = { stream = item, ok = res ~= nil }
  if res == nil then
    r.unknown = err and err.outcome_unknown or false
    r.sent = err and err.sent
    if err and err.sent == nil then r.sent = nil end
    r.code = err and tostring(err.code)
    r.message = err and tostring(err.message):sub(1, 200)
    r.attempts = err and err.attempts
  else
    r.recovered = type(res) == "table" and res.Recovered or nil
    r.task_id = type(res) == "table" and res.TaskId or nil
  end
  return r
end

local function from_report(report)
  local results = {}
  for i, e in ipairs(report.results) do
    local r = result_of(e.stream, e.ok and (e.result or {}) or nil, e.error)
    r.attempts = e.attempts
    results[i] = r
  end
  return { total = report.total, succeeded = report.succeeded, failed = report.failed, unknown = report.unknown,
           duplicates = report.duplicates, results = results }
end

local function from_results(results)
  local out = { total = #results, succeeded = 0, failed = 0, unknown = 0, duplicates = 0, results = results }
  for _, r in ipairs(results) do
    if r.ok then out.succeeded = out.succeeded + 1
    elseif r.unknown then out.unknown = out.unknown + 1
    else out.failed = out.failed + 1 end
  end
  return out
end

local function utc(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

--- Runs one op spec with `clients`; returns the report fields of check.lua's op.
function M.execute(clients, spec)
  local a, z = clients.aliyun, clients.zego
  local action = spec.action
  if action == "ForbidLiveStream" or action == "ResumeLiveStream" then
    local fields = { domain_name = M.DOMAIN, app_name = M.APP, stream_names = spec.input,
                     concurrency = spec.concurrency }
    local report, err
    if action == "ForbidLiveStream" then
      fields.resume_time = spec.resume_time
      report, err = a:forbid_live_streams(fields)
    else
      report, err = a:resume_live_streams(fields)
    end
    if not report then error("batch refused: " .. tostring(err)) end
    return from_report(report)
  elseif action == "ForbidRTCStreams" or action == "ResumeRTCStreams" then
    local fields = { stream_ids = spec.input, concurrency = spec.concurrency }
    local report, err
    if action == "ForbidRTCStreams" then
      report, err = z:forbid_rtc_streams(fields)
    else
      report, err = z:resume_rtc_streams(fields)
    end
    if not report then error("batch refused: " .. tostring(err)) end
    return from_report(report)
  elseif action == "ForbidCDNLiveStream" or action == "ResumeCDNLiveStream" then
    local results, seen = {}, {}
    for _, id in ipairs(spec.input) do
      if not seen[id] then
        seen[id] = true
        local res, err
        if action == "ForbidCDNLiveStream" then
          res, err = z:forbid_cdn_live_stream { stream_id = id, resume_time = spec.resume_time and utc(spec.resume_time) }
        else
          res, err = z:resume_cdn_live_stream { stream_id = id }
        end
        results[#results + 1] = result_of(id, res, err)
      end
    end
    local out = from_results(results)
    out.duplicates = #spec.input - #results
    return out
  elseif action == "CreateLivePullToPush" then
    local dst = spec.input[1]
    local now = os.time()
    local res, err = a:create_live_pull_to_push {
      region = M.REGION, task_name = spec.task_name, source_type = "url",
      source_urls = { "https://cdn.example.com/chaos/" .. spec.task_name .. ".mp4" },
      dst_url = dst, start_time = now - 5, end_time = now + 7200,
    }
    return from_results { result_of(dst, res, err) }
  elseif action == "StopLivePullToPush" then
    local id = spec.input[1]
    local res, err = a:stop_live_pull_to_push { region = M.REGION, task_id = id }
    return from_results { result_of(id, res, err) }
  end
  error("unknown action " .. tostring(action))
end

-------------------------------------------------------------------------------
-- Choosing ops. `me` is a client's own memory: { name, n (ops so far),
-- aliyun = { names }, zego = { ids }, tasks = { { id, dst, stopped } } }.

--- A client's own streams: `na` Aliyun stream names and `nz` ZEGO StreamIds.
function M.new_client(name, na, nz)
  local me = { name = name, n = 0, creates = 0, aliyun = {}, zego = {}, tasks = {} }
  for i = 1, na do me.aliyun[i] = name .. "-a" .. i end
  for i = 1, nz do me.zego[i] = name .. "-z" .. i end
  return me
end

-- `k` distinct items of `list` at random, and a repeat of one now and then.
local function some(rng, list, k)
  local pool = {}
  for i, v in ipairs(list) do pool[i] = v end
  local out = {}
  for i = 1, math.min(k, #pool) do
    local j = rng(i, #pool)
    pool[i], pool[j] = pool[j], pool[i]
    out[i] = pool[i]
  end
  if #out > 1 and rng(1, 100) <= 15 then out[#out + 1] = out[rng(1, #out)] end
  return out
end

--- The next op of client `me`; `rng(a, b)` an integer in a..b.
function M.choose(rng, me)
  me.n = me.n + 1
  local roll = rng(1, 100)
  local spec = { concurrency = rng(1, 8) }
  local running = {}
  for _, t in ipairs(me.tasks) do
    if not t.stopped then running[#running + 1] = t end
  end
  if roll <= 30 then
    spec.provider = "aliyun"
    spec.action = rng(1, 2) == 1 and "ForbidLiveStream" or "ResumeLiveStream"
    spec.input = some(rng, me.aliyun, rng(1, 8))
    if spec.action == "ForbidLiveStream" and rng(1, 2) == 1 then spec.resume_time = os.time() + 3600 end
  elseif roll <= 60 then
    spec.provider = "zego"
    spec.action = rng(1, 2) == 1 and "ForbidRTCStreams" or "ResumeRTCStreams"
    spec.input = some(rng, me.zego, rng(1, 45))
  elseif roll <= 75 then
    spec.provider = "zego"
    spec.action = rng(1, 2) == 1 and "ForbidCDNLiveStream" or "ResumeCDNLiveStream"
    spec.input = some(rng, me.zego, rng(1, 3))
    if spec.action == "ForbidCDNLiveStream" and rng(1, 2) == 1 then spec.resume_time = os.time() + 3600 end
  elseif roll <= 88 or #running == 0 then
    me.creates = me.creates + 1
    spec.provider, spec.action = "aliyun", "CreateLivePullToPush"
    spec.task_name = me.name .. "-t" .. me.creates
    spec.input = { "rtmp://" .. M.DOMAIN .. "/chaos/" .. spec.task_name }
  else
    local t = running[rng(1, #running)]
    spec.provider, spec.action = "aliyun", "StopLivePullToPush"
    spec.input, spec.dst_url = { t.id }, t.dst
  end
  return spec
end

--- What a client remembers of an op's outcome (its tasks).
function M.remember(me, spec, record)
  for _, r in ipairs(record.results or {}) do
    if spec.action == "CreateLivePullToPush" and r.ok and r.task_id then
      me.tasks[#me.tasks + 1] = { id = r.task_id, dst = r.stream }
    elseif spec.action == "StopLivePullToPush" and (r.ok or r.code == "CodeTaskHasStopped") then
      for _, t in ipairs(me.tasks) do
        if t.id == r.stream then t.stopped = true end
      end
    end
  end
end

return M
