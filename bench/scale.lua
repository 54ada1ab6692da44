-- Batches of any size (docs/performance.md, "Batches of any size"): what
-- streamctl itself spends per stream at 1,000 to 1,000,000 streams, with a
-- transport that answers at once and pacing lifted (rate_limits = false), so
-- that nothing but the library's own work is measured. Each run is a fresh
-- process of this interpreter (its peak RSS is the run's own): CPU per
-- 1,000 streams (os.clock) and peak RSS (VmHWM), for
--
--   streamed:  the list a function (one name at a time), keep_results = false
--   list:      the list a Lua array, keep_results = false (the array itself,
--              made before the clock starts, is in the RSS)
--
-- for Aliyun forbid_live_streams (a call per stream) and ZEGO
-- forbid_rtc_streams (20 IDs a call). ZEGO's clock moves a second at each
-- reading, as a batch at the cap's pace would see it (20 calls a second),
-- so that its Sequence store holds the last minute's IDs as it would there,
-- not every ID of a run that pacing lifted squeezes into seconds.
--
--   lua5.4 bench/scale.lua            every row (BENCH_SCALE_MAX: the largest size, default 1000000)
--   lua5.4 bench/scale.lua RUN provider form n    one run, its figures as a JSON line (internal)
local lib = require "bench.lib"

local function one(provider, form, n)
  local streamctl = require "streamctl"
  local answer = provider == "zego" and '{"Code":0,"Message":"success","RequestId":"r"}' or '{"RequestId":"r"}'
  local reply = { status = 200, headers = {}, body = answer }
  local function transport() return reply end
  local c
  if provider == "aliyun" then
    c = assert(streamctl.aliyun.new { access_key_id = "LTAIbench", access_key_secret = "bench-secret",
      transport = transport, rate_limits = false })
  else
    local t = os.time()
    c = assert(streamctl.zego.new { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",
      transport = transport, rate_limits = false, clock = function() t = t + 1 return t end })
  end
  local list
  if form == "list" then
    list = {}
    for i = 1, n do list[i] = string.format("bench-%07d", i) end
  else
    local i = 0
    list = function()
      i = i + 1
      if i <= n then return string.format("bench-%07d", i) end
    end
  end
  collectgarbage()
  local t0 = os.clock()
  local report
  if provider == "aliyun" then
    report = assert(c:forbid_live_streams { domain_name = "bench.example", app_name = "live", stream_names = list,
                                            keep_results = false, concurrency = 16 })
  else
    report = assert(c:forbid_rtc_streams { stream_ids = list, keep_results = false, concurrency = 16 })
  end
  local cpu = os.clock() - t0
  assert(report.succeeded == n, "not every stream succeeded")
  local f = assert(io.open("/proc/self/status", "r"))
  local status = f:read("*a")
  f:close()
  io.write(string.format('{"cpu_ms_per_1000":%.3f,"peak_kib":%d,"dedupe_bytes":%d,"calls":%d}\n',
    cpu * 1e6 / n, tonumber(status:match("VmHWM:%s*(%d+)")), report.dedupe_bytes or 0, report.calls))
end

-- Reconcile at scale: a desired state of n streams, of which the provider
-- (Aliyun's block list; ZEGO's state) already holds half, and n/2 more
-- blocked that are not desired: n/2 forbids and, with remove_extra, n/2
-- resumes. The transport answers at once; the block list is read in pages of
-- 3,000 as the emulator serves them.
local function reconcile_run(provider, n)
  local streamctl = require "streamctl"
  local reconcile = require "streamctl.operator.reconcile"
  local json = require "cjson"
  local blocked = {}
  for i = n / 2 + 1, n + n / 2 do blocked[#blocked + 1] = string.format("bench.example/live/s%07d", i) end
  local ok_reply = { status = 200, headers = {}, body = provider == "zego"
    and '{"Code":0,"Message":"success","RequestId":"r"}' or '{"RequestId":"r"}' }
  local function transport(req)
    if req.action == "DescribeLiveUserDomains" then -- (the account's one domain: its places counted)
      return { status = 200, headers = {}, body = json.encode { RequestId = "r", TotalCount = 1,
        Domains = { PageData = { { DomainName = "bench.example" } } } } }
    end
    if req.action == "DescribeLiveStreamsBlockList" then
      local text = req.url .. "&" .. req.body
      local page = tonumber(text:match("PageNum=(%d+)"))
      local size = tonumber(text:match("PageSize=(%d+)"))
      local urls = {}
      for i = (page - 1) * size + 1, math.min(page * size, #blocked) do urls[#urls + 1] = blocked[i] end
      return { status = 200, headers = {}, body = json.encode { RequestId = "r", TotalNum = #blocked,
        PageNum = page, StreamUrls = { StreamUrl = urls } } }
    end
    return ok_reply
  end
  local desired = {}
  local report, err
  collectgarbage()
  local t0
  if provider == "aliyun" then
    local c = assert(streamctl.aliyun.new { access_key_id = "LTAIbench", access_key_secret = "bench-secret",
      transport = transport, rate_limits = false })
    for i = 1, n do
      desired[i] = { domain_name = "bench.example", app_name = "live", stream_name = string.format("s%07d", i) }
    end
    t0 = os.clock()
    -- (an account whose block list holds them all: places_limit, as its quota would be raised)
    report, err = reconcile.aliyun(c, desired, { remove_extra = true, confirm = true, concurrency = 16,
                                                 places_limit = 2 * n })
  else
    local t = os.time()
    local c = assert(streamctl.zego.new { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",
      transport = transport, rate_limits = false, clock = function() t = t + 1 return t end })
    local parts = {}
    for i = n / 2 + 1, n + n / 2 do parts[#parts + 1] = string.format('"rtc:s%07d":0', i) end
    local saved = '{"v":2,"streams":{' .. table.concat(parts, ",") .. '},"pending":{}}'
    parts = nil -- luacheck: ignore 311
    local state = { get = function() return saved end, set = function(_, _, text) saved = text return true end }
    for i = 1, n do desired[i] = { stream_id = string.format("s%07d", i) } end
    t0 = os.clock()
    report, err = reconcile.zego(c, desired, { state = state, remove_extra = true, confirm = true,
                                                concurrency = 16 })
  end
  local cpu = os.clock() - t0
  assert(report, err and tostring(err.message or err))
  assert(report.fixed == n, string.format("fixed %d of %d", report.fixed, n))
  local f = assert(io.open("/proc/self/status", "r"))
  local status = f:read("*a")
  f:close()
  io.write(string.format('{"cpu_ms_per_1000":%.3f,"peak_kib":%d,"dedupe_bytes":0,"calls":%d}\n',
    cpu * 1e6 / n, tonumber(status:match("VmHWM:%s*(%d+)")), report.calls))
end

if arg[1] == "RUN" then
  if arg[3] == "reconcile" then
    reconcile_run(arg[2], tonumber(arg[4]))
  else
    one(arg[2], arg[3], tonumber(arg[4]))
  end
  return
end

local cjson = require "cjson"
local interpreter = arg[-1] or "lua5.4"
local max = tonumber(os.getenv("BENCH_SCALE_MAX") or "") or 1000000
local SIZES = {}
for _, n in ipairs { 1000, 10000, 100000, 1000000 } do
  if n <= max then SIZES[#SIZES + 1] = n end
end

local function thousands(n)
  return (string.format("%d", n):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

for _, provider in ipairs { "aliyun", "zego" } do
  for _, form in ipairs { "streamed", "list", "reconcile" } do
    for _, n in ipairs(SIZES) do
      if form == "reconcile" and n > 100000 then break end
      -- (three runs up to 100,000 streams, their medians; one of a million)
      local cpu, rss, dedupe, calls = {}, {}, {}, nil
      for run = 1, n < 1000000 and 3 or 1 do
        local cmd = string.format("'%s' bench/scale.lua RUN %s %s %d", interpreter, provider, form, n)
        local p = assert(io.popen(cmd))
        local out = p:read("*a")
        assert(p:close(), cmd .. " failed: " .. out)
        local r = cjson.decode(out)
        cpu[run], rss[run], dedupe[run], calls = r.cpu_ms_per_1000, r.peak_kib / 1024, r.dedupe_bytes / n, r.calls
      end
      local label = string.format("%s %s, %s streams", provider == "aliyun" and "Aliyun forbid_live_streams"
        or "ZEGO forbid_rtc_streams", form, thousands(n))
      if form == "reconcile" then
        label = string.format("%s reconcile, %s desired streams", provider == "aliyun" and "Aliyun" or "ZEGO",
          thousands(n))
      end
      lib.record { group = "batches of any size", name = label .. ": CPU per 1,000 streams", unit = "ms",
                   samples = cpu, decimals = 1, streams = n, calls = calls }
      lib.record { group = "batches of any size", name = label .. ": peak RSS", unit = "MiB",
                   samples = rss, decimals = 1, streams = n }
      if form == "streamed" then
        lib.record { group = "batches of any size", name = label .. ": dedupe set, bytes per stream", unit = "B",
                     samples = dedupe, decimals = 1, streams = n }
      end
    end
  end
end
