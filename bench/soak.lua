-- The soak: 100,000 calls (BENCH_SOAK_CALLS) against the emulator that
-- `make bench` started (bench/emulator.json: LTAIbench, ResumeLiveStream not
-- limited), in batches of 1,000 with 16 in flight and pacing off, with faults
-- injected at random before every batch (HTTP 500/503, throttling, malformed
-- and truncated bodies, dropped connections, short delays; before or after
-- the change applied). Prints resident memory and open file descriptors as
-- it goes (they must stay flat) and checks that every call is accounted for
-- (succeeded + failed + unknown = calls). Figures; exits non-zero only when a
-- call is unaccounted for or descriptors leak.
local streamctl = require "streamctl"
local core = require "streamctl.core"
local curl = require "streamctl.curl"
local cjson = require "cjson"

local CALLS = tonumber(os.getenv("BENCH_SOAK_CALLS") or "100000")
local BATCH = 1000
local ENDPOINT = assert(os.getenv("STREAMCTL_ALIYUN_ENDPOINT"),
  "STREAMCTL_ALIYUN_ENDPOINT: the emulator (bench/run.sh sets it)")

local function rss_kib()
  local f = io.open("/proc/self/status", "r")
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function fds()
  local p = io.popen("ls /proc/" .. (io.open("/proc/self/stat"):read("*l"):match("^(%d+)")) .. "/fd | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n - 1 -- the pipe's own descriptor
end

local control = curl.easy {}
local function control_request(method, path, body)
  local res = assert(control:request { method = method, url = ENDPOINT .. path, headers = {}, body = body or "" })
  assert(res.status == 200, path .. " answered " .. res.status .. ": " .. res.body)
end
local function post(path, body) return control_request("POST", path, body) end

-- Jitter-free randomness from OpenSSL, so every run differs.
local function random(n) return tonumber(core.random_hex(4), 16) % n + 1 end
local KINDS = { "http500", "http503", "throttle", "malformed", "truncated", "drop", "delay" }

local ali = assert(streamctl.aliyun.new {
  endpoint = ENDPOINT, access_key_id = "LTAIbench", access_key_secret = "bench-secret",
  rate_limits = false, timeout_ms = 2000, settle_ms = 0,
  retry = { attempts = 3, base_ms = 1, throttle_base_ms = 1, cap_ms = 20, budget = false },
})

post("/_emulator/reset")
local totals = { succeeded = 0, failed = 0, unknown = 0, calls = 0 }
local t0 = core.monotonic()
local fd0, rss0
print(string.format("%8s %10s %10s %8s %8s %8s %6s", "calls", "seconds", "rss KiB", "ok", "failed", "unknown", "fds"))
for b = 1, math.ceil(CALLS / BATCH) do
  local faults = {}
  for i = 1, random(3) do
    faults[i] = { kind = KINDS[random(#KINDS)], action = "ResumeLiveStream", count = random(5),
                  after_apply = random(2) == 1, delay_ms = 50, retry_after_ms = 5 }
  end
  post("/_emulator/faults", cjson.encode(faults))
  local names = {}
  for i = 1, BATCH do names[i] = "soak-" .. b .. "-" .. i end
  local report = assert(ali:resume_live_streams { domain_name = "soak.example", app_name = "live",
                                                   stream_names = names, concurrency = 16 })
  totals.calls = totals.calls + report.total
  for _, k in ipairs { "succeeded", "failed", "unknown" } do totals[k] = totals[k] + report[k] end
  control_request("DELETE", "/_emulator/faults") -- none left over for the next batch
  if b == 1 then
    collectgarbage()
    fd0, rss0 = fds(), rss_kib()
  end
  if b == 1 or b % 10 == 0 or b * BATCH >= CALLS then
    collectgarbage()
    print(string.format("%8d %10.1f %10d %8d %8d %8d %6d", totals.calls, core.monotonic() - t0, rss_kib(),
      totals.succeeded, totals.failed, totals.unknown, fds()))
    io.stdout:flush()
  end
  if b % 50 == 0 then post("/_emulator/reset") end -- the emulator's own state and log stay bounded
end
ali:close()
collectgarbage()
local accounted = totals.succeeded + totals.failed + totals.unknown == totals.calls
local rss1, fd1 = rss_kib(), fds()
print(string.format("soak: %d calls in %.1f s; every call accounted for: %s; rss %d -> %d KiB (%+.1f%%); fds %d -> %d",
  totals.calls, core.monotonic() - t0, tostring(accounted), rss0, rss1, 100 * (rss1 - rss0) / rss0, fd0, fd1))
if not accounted or fd1 > fd0 then os.exit(1) end
