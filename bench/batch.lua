-- Batches at the caps against the emulator's sliding-window limiter (run by
-- `make bench`, which starts the emulator on ports 38080/38081 with
-- bench/emulator.json):
--
--   1,000 ZEGO stream IDs resumed: 50 calls at 20 calls/s per AppId
--   300 Aliyun streams resumed:     300 calls at 30 calls/s per account
--
-- once on an idle machine and once with every core kept busy by another
-- process. Prints the wall time against the cap's minimum ((calls - 1) / cap,
-- the time the first and last of `calls` evenly spaced requests are apart)
-- and the emulator's count of throttled requests. Goals: zero throttled and
-- at most 1.06x the minimum. Figures, not a test: it exits non-zero only when
-- a stream failed or a request was throttled.
local streamctl = require "streamctl"
local curl = require "streamctl.curl"
local cjson = require "cjson"

local ALIYUN = os.getenv("STREAMCTL_ALIYUN_ENDPOINT") or "http://127.0.0.1:38080"
local ZEGO = os.getenv("STREAMCTL_ZEGO_ENDPOINT") or "http://127.0.0.1:38081"
local control = curl.easy {}

local function control_request(method, url)
  local res = assert(control:request { method = method, url = url, headers = {}, body = "" })
  assert(res.status == 200, url .. " answered " .. res.status)
  return cjson.decode(res.body)
end

local function counters(endpoint, provider, action)
  local c = control_request("GET", endpoint .. "/_emulator/state")[provider].counters[action] or {}
  return c.accepted or 0, c.throttled or 0
end

local all_ok = true

local function run(load, label, endpoint, provider, action, cap, fn)
  control_request("POST", endpoint .. "/_emulator/reset")
  local report = fn()
  local accepted, throttled = counters(endpoint, provider, action)
  local minimum = (report.calls - 1) / cap
  print(string.format("%-6s %-28s %4d streams %3d calls  %7.3f s  minimum %6.3f s at %d/s  ratio %.4f  "
    .. "ok %d failed %d unknown %d  emulator: accepted %d, throttled %d",
    load, label, report.total, report.calls, report.elapsed, minimum, cap, report.elapsed / minimum,
    report.succeeded, report.failed, report.unknown, accepted, throttled))
  all_ok = all_ok and report.succeeded == report.total and throttled == 0
end

-- Processes that keep every core busy until stopped.
local function start_load(n)
  local pids = {}
  for i = 1, n do
    local p = assert(io.popen("sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!"))
    pids[i] = p:read("*l")
    p:close()
  end
  return pids
end

local function stop_load(pids)
  for _, pid in ipairs(pids) do os.execute("kill " .. pid .. " 2>/dev/null") end
end

local function cores()
  local p = io.popen("nproc 2>/dev/null")
  local n = p and tonumber(p:read("*l"))
  if p then p:close() end
  return n or 2
end

local ids = {}
for i = 1, 1000 do ids[i] = string.format("bench-%04d", i) end
local names = {}
for i = 1, 300 do names[i] = string.format("bench-%03d", i) end

local z = assert(streamctl.zego.new { endpoint = ZEGO, app_id = 1234567890,
  server_secret = "0123456789abcdef0123456789abcdef" })
local ali = assert(streamctl.aliyun.new { endpoint = ALIYUN, access_key_id = "LTAIemulatorKey",
  access_key_secret = "emulator-secret" })

local function both(load)
  run(load, "zego:resume_rtc_streams", ZEGO, "zego", "ResumeRTCStreams", 20, function()
    return z:resume_rtc_streams { stream_ids = ids }
  end)
  run(load, "aliyun:resume_live_streams", ALIYUN, "aliyun", "ResumeLiveStream", 30, function()
    return ali:resume_live_streams { domain_name = "push.example.com", app_name = "live", stream_names = names }
  end)
end

both("idle")
local n = cores()
local pids = start_load(n)
local ok, err = pcall(both, "busy" .. n)
stop_load(pids)
if not ok then error(err, 0) end

z:close()
ali:close()
control:close()
if not all_ok then
  print("a batch had failures or throttles")
  os.exit(1)
end
