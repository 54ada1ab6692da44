-- Batches at the caps against the emulator's sliding-window limiter (run by
-- `make bench`: bench/run.sh starts the emulator on free ports with
-- bench/emulator.json and names them in STREAMCTL_ALIYUN_ENDPOINT and
-- STREAMCTL_ZEGO_ENDPOINT):
--
--   1,000 ZEGO stream IDs resumed: 50 calls at 20 calls/s per AppId
--   300 Aliyun streams resumed:     300 calls at 30 calls/s per account
--
-- BENCH_BATCH_RUNS times (3) on an idle machine, then as many times with
-- every core kept busy by another process. Records through bench/lib.lua
-- (group "batch"), for each batch and load: the wall time, the cap's minimum
-- ((calls - 1) / cap: the time the first and last of `calls` evenly spaced
-- requests are apart), their ratio, the requests the emulator throttled (its
-- counters), and the most requests that reached the emulator within any 1 s
-- (from its request log, over the window its limiter uses, (t - 1 s, t]: at
-- most the cap when none was throttled).
-- Goals: zero throttled and at most 1.06x the minimum.
--
-- From the first idle run of each batch it draws bench/pacing.svg (gnuplot,
-- data and script in build/bench/): the time each request reached the
-- emulator, from the emulator's own request log (`real_time`: when nginx
-- handed it to the emulator, read with millisecond resolution), as requests
-- per 100 ms beside cap / 10 and as the requests in the preceding 1 s (what
-- the sliding window counts) beside the cap, one panel per provider. Without
-- gnuplot the figures are still recorded and the SVG is left as it is.
--
-- Figures, not a test: it exits non-zero only when a stream failed or a
-- request was throttled.
local streamctl = require "streamctl"
local curl = require "streamctl.curl"
local cjson = require "cjson"
local lib = require "bench.lib"

local RUNS = tonumber(os.getenv("BENCH_BATCH_RUNS") or "3")
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local DATA_DIR = os.getenv("BENCH_DATA_DIR") or (ROOT .. "/build/bench")
local SVG = os.getenv("BENCH_PACING_SVG") or (ROOT .. "/bench/pacing.svg")
local ALIYUN = assert(os.getenv("STREAMCTL_ALIYUN_ENDPOINT"),
  "STREAMCTL_ALIYUN_ENDPOINT: the emulator (bench/run.sh sets it)")
local ZEGO = assert(os.getenv("STREAMCTL_ZEGO_ENDPOINT"),
  "STREAMCTL_ZEGO_ENDPOINT: the emulator (bench/run.sh sets it)")
local control = curl.easy { max_body = 64 * 1024 * 1024 } -- a request log can be large

local function control_request(method, url)
  local res = assert(control:request { method = method, url = url, headers = {}, body = "" })
  assert(res.status == 200, url .. " answered " .. res.status)
  return cjson.decode(res.body)
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

local BATCHES = {
  { key = "zego", label = "ZEGO 1,000 IDs (cap 20/s)", endpoint = ZEGO, provider = "zego",
    action = "ResumeRTCStreams", cap = 20,
    title = "ZEGO ResumeRTCStreams: 1,000 stream IDs in 50 calls, cap 20/s per AppId",
    run = function() return z:resume_rtc_streams { stream_ids = ids } end },
  { key = "aliyun", label = "Aliyun 300 streams (cap 30/s)", endpoint = ALIYUN, provider = "aliyun",
    action = "ResumeLiveStream", cap = 30,
    title = "Aliyun ResumeLiveStream: 300 streams in 300 calls, cap 30/s per AccessKeyId",
    run = function()
      return ali:resume_live_streams { domain_name = "push.example.com", app_name = "live", stream_names = names }
    end },
}

-- Times (whole milliseconds, ascending) at which the batch's requests reached
-- the emulator, and which of them it throttled, from its request log.
local function arrivals(b)
  local log = control_request("GET", string.format("%s/_emulator/log?provider=%s&action=%s", b.endpoint,
    b.provider, b.action))
  assert(log.dropped == 0, "the emulator's request log dropped entries (log_limit)")
  local list = {}
  for _, e in ipairs(log.entries) do
    list[#list + 1] = { ms = math.floor(e.real_time * 1000 + 0.5), throttled = e.verdict == "throttled" }
  end
  table.sort(list, function(x, y) return x.ms < y.ms end)
  return list
end

-- The most arrivals within any window (t - 1 s, t], the one the emulator's
-- limiter counts (an arrival exactly 1 s old has left it).
local function peak_per_second(list)
  local peak, j = 0, 1
  for i = 1, #list do
    while list[j].ms <= list[i].ms - 1000 do j = j + 1 end
    if i - j + 1 > peak then peak = i - j + 1 end
  end
  return peak
end

-- The rate each client paces at (the cap less rate_margin).
for _, b in ipairs(BATCHES) do b.rate = (b.provider == "zego" and z or ali):rate_for(b.action) end

local all_ok = true

local function run(b, load)
  control_request("POST", b.endpoint .. "/_emulator/reset")
  local report = b.run()
  local c = control_request("GET", b.endpoint .. "/_emulator/state")[b.provider].counters[b.action] or {}
  local accepted, throttled = c.accepted or 0, c.throttled or 0
  local list = arrivals(b)
  local minimum = (report.calls - 1) / b.cap
  local r = { elapsed = report.elapsed, minimum = minimum, ratio = report.elapsed / minimum,
              throttled = throttled, peak = peak_per_second(list), arrivals = list }
  print(string.format("  %-5s %-30s %4d streams %3d calls  %7.3f s  minimum %6.3f s  ratio %.4f  "
    .. "ok %d failed %d unknown %d  emulator: accepted %d, throttled %d, most in any 1 s %d",
    load, b.label, report.total, report.calls, report.elapsed, minimum, r.ratio,
    report.succeeded, report.failed, report.unknown, accepted, throttled, r.peak))
  io.stdout:flush()
  all_ok = all_ok and report.succeeded == report.total and throttled == 0
  return r
end

-- runs[load][key] = { run, ... }
local runs = { idle = {}, busy = {} }
local function all_runs(load)
  for _, b in ipairs(BATCHES) do runs[load][b.key] = {} end
  for _ = 1, RUNS do
    for _, b in ipairs(BATCHES) do
      local list = runs[load][b.key]
      list[#list + 1] = run(b, load)
    end
  end
end

all_runs("idle")
local n = cores()
local pids = start_load(n)
local ok, err = pcall(all_runs, "busy")
stop_load(pids)
if not ok then error(err, 0) end

z:close()
ali:close()
control:close()

-------------------------------------------------------------------------------
-- Figures

local function column(list, field)
  local out = {}
  for i, r in ipairs(list) do out[i] = r[field] end
  return out
end

print(string.format("  (%d runs each; busy: %d processes spinning, one a core)", RUNS, n))
for _, load in ipairs { "idle", "busy" } do
  for _, b in ipairs(BATCHES) do
    local list = runs[load][b.key]
    local function record(what, unit, field, decimals)
      lib.record { group = "batch", name = b.label .. ", " .. load .. ": " .. what, unit = unit,
                   samples = column(list, field), decimals = decimals, provider = b.provider, action = b.action,
                   cap = b.cap, client_rate = b.rate, load = load, busy_processes = load == "busy" and n or 0 }
    end
    record("wall time", "s", "elapsed", 3)
    record("minimum, (calls - 1) / cap", "s", "minimum", 3)
    record("wall time / minimum", "x", "ratio", 3)
    record("throttled (emulator)", "req", "throttled", 0)
    record("most requests in any 1 s", "req", "peak", 0)
  end
end

-------------------------------------------------------------------------------
-- bench/pacing.svg

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- One panel's data, in seconds since the first arrival: requests per 100 ms
-- (a point where the count changes, and one closing the last bin), the
-- requests in the preceding 1 s as each arrives (the window the limiter
-- checks it against, the arrival included), and throttled arrivals, if any.
local function series(list)
  local t0 = list[1].ms
  local nbins = math.floor((list[#list].ms - t0) / 100)
  local bins = {}
  for i = 0, nbins do bins[i] = 0 end
  local out = { bins = {}, window = {}, throttled = {}, seconds = (nbins + 1) / 10 }
  local j = 1
  for i, a in ipairs(list) do
    local t = a.ms - t0
    local k = math.floor(t / 100)
    bins[k] = bins[k] + 1
    while list[j].ms <= a.ms - 1000 do j = j + 1 end
    if i == #list or list[i + 1].ms ~= a.ms then -- the last of those arriving in this millisecond
      out.window[#out.window + 1] = string.format("%.3f %d", t / 1000, i - j + 1)
    end
    if a.throttled then out.throttled[#out.throttled + 1] = string.format("%.3f 0", t / 1000) end
  end
  for i = 0, nbins do
    if i == 0 or bins[i] ~= bins[i - 1] then out.bins[#out.bins + 1] = string.format("%.1f %d", i / 10, bins[i]) end
  end
  out.bins[#out.bins + 1] = string.format("%.1f %d", out.seconds, bins[nbins])
  return out
end

local function gnuplot_found()
  local r = os.execute("command -v gnuplot >/dev/null 2>&1")
  return r == true or r == 0
end

local function pacing_svg()
  local data_path, script_path = DATA_DIR .. "/pacing.dat", DATA_DIR .. "/pacing.gp"
  local blocks, index = {}, 0
  local gp = {
    string.format("set terminal svg size 820,720 dynamic font 'Helvetica,11' background '#ffffff'"),
    string.format("set output '%s'", SVG),
    "set multiplot layout 2,1 title \"streamctl pacing against the emulator's sliding-window limiter"
      .. " (idle machine)\" font 'Helvetica,13'",
    "set style fill solid 1.0 noborder",
    "set xlabel \"seconds since the batch's first request reached the emulator (times from its request log)\"",
    "set ylabel 'requests per 100 ms'",
    "set y2label 'requests in the preceding 1 s'",
    "set xtics nomirror",
    "set ytics 1 nomirror",
    "set y2tics 10",
    "set grid ytics lc rgb '#dddddd'",
    "set key top right opaque box lc rgb '#cccccc' samplen 2 font 'Helvetica,10'",
    "set border 11",
  }
  for _, b in ipairs(BATCHES) do
    local r = runs.idle[b.key][1]
    local s = series(r.arrivals)
    local first = index
    blocks[#blocks + 1] = table.concat(s.bins, "\n")
    blocks[#blocks + 1] = table.concat(s.window, "\n")
    index = index + 2
    local plots = {
      string.format("'%s' index %d using 1:2 with fillsteps lc rgb '#9ecae1' "
        .. "title 'requests per 100 ms (left)'",
        data_path, first),
      string.format("'' index %d using 1:2 axes x1y2 with steps lw 2 lc rgb '#08519c' "
        .. "title 'requests in the preceding 1 s, at each arrival (right)'", first + 1),
      string.format("%g with lines dt 2 lw 2 lc rgb '#cb181d' title 'cap: %d/s (right) = %g per 100 ms (left)'",
        b.cap / 10, b.cap, b.cap / 10),
    }
    if #s.throttled > 0 then
      blocks[#blocks + 1] = table.concat(s.throttled, "\n")
      plots[#plots + 1] = string.format("'' index %d using 1:2 with points pt 7 ps 0.8 lc rgb '#cb181d' "
        .. "title 'throttled'", index)
      index = index + 1
    end
    gp[#gp + 1] = string.format("set title \"%s\\nrun 1 of %d: paced at %.2f/s; %.3f s, %.3fx the minimum; "
      .. "at most %d in any 1 s; %d throttled\"", b.title, RUNS, b.rate, r.elapsed, r.ratio, r.peak, r.throttled)
    gp[#gp + 1] = string.format("set xrange [0:%.1f]", s.seconds)
    gp[#gp + 1] = string.format("set yrange [0:%g]", b.cap / 10 * 1.6)
    gp[#gp + 1] = "set link y2 via y*10 inverse y/10"
    gp[#gp + 1] = "plot " .. table.concat(plots, ", \\\n  ")
  end
  gp[#gp + 1] = "unset multiplot"
  write(data_path, table.concat(blocks, "\n\n\n") .. "\n")
  write(script_path, table.concat(gp, "\n") .. "\n")
  local r = os.execute("gnuplot '" .. script_path .. "'")
  if r == true or r == 0 then
    print("  pacing: " .. SVG .. " (data " .. data_path .. ", script " .. script_path .. ")")
  else
    print("  pacing: gnuplot failed on " .. script_path .. "; " .. SVG .. " not made")
  end
end

if gnuplot_found() then
  os.execute("mkdir -p '" .. DATA_DIR .. "'")
  pacing_svg()
else
  print("  pacing: gnuplot not found (Debian: gnuplot-nox); " .. SVG .. " not made")
end

if not all_ok then
  print("a batch had failures or throttles")
  os.exit(1)
end
