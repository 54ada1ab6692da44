-- Batch throughput against the emulator at its caps (run by `make bench`,
-- which starts the emulator on ports 38080/38081).
--
--   1,000 ZEGO stream IDs resumed: 50 calls at 20 calls/s per AppId
--   300 Aliyun streams resumed:     300 calls at 30 calls/s per account
--
-- Prints wall time against the theoretical minimum (calls / cap) and the
-- emulator's count of throttled requests. Target: within 5% of the minimum,
-- zero throttles.
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

local function throttled(endpoint, provider, action)
  local c = control_request("GET", endpoint .. "/_emulator/state")[provider].counters[action] or {}
  return c.accepted or 0, c.throttled or 0
end

local function run(label, endpoint, provider, action, cap, calls, fn)
  control_request("POST", endpoint .. "/_emulator/reset")
  local report = fn()
  local accepted, n_throttled = throttled(endpoint, provider, action)
  local minimum = calls / cap
  print(string.format("%-32s %4d streams %3d calls  %6.3f s  (minimum %5.2f s at %d/s: %+5.1f%%)  "
    .. "ok %d failed %d  emulator: accepted %d, throttled %d",
    label, report.total, report.calls, report.elapsed, minimum, cap, (report.elapsed / minimum - 1) * 100,
    report.succeeded, report.failed, accepted, n_throttled))
  return report.failed == 0 and n_throttled == 0
end

local ids = {}
for i = 1, 1000 do ids[i] = string.format("bench-%04d", i) end
local names = {}
for i = 1, 300 do names[i] = string.format("bench-%03d", i) end

local z = assert(streamctl.zego.new { endpoint = ZEGO, app_id = 1234567890,
  server_secret = "0123456789abcdef0123456789abcdef" })
local ali = assert(streamctl.aliyun.new { endpoint = ALIYUN, access_key_id = "LTAIemulatorKey",
  access_key_secret = "emulator-secret" })

local ok1 = run("zego:resume_rtc_streams", ZEGO, "zego", "ResumeRTCStreams", 20, 50, function()
  return z:resume_rtc_streams { stream_ids = ids }
end)
local ok2 = run("aliyun:resume_live_streams", ALIYUN, "aliyun", "ResumeLiveStream", 30, 300, function()
  return ali:resume_live_streams { domain_name = "push.example.com", app_name = "live", stream_names = names }
end)
z:close()
ali:close()
control:close()
if not (ok1 and ok2) then
  print("a batch had failures or throttles")
  os.exit(1)
end
