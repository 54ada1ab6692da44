-- Shared by the benchmarks: repeated measurement, medians and spread, and
-- one JSON line per figure appended to $BENCH_OUT (bench/report.lua turns
-- them into bench/results.json and the table `make bench` prints).
local core = require "streamctl.core"
local cjson = require "cjson"

local M = {}

M.interpreter = (type(jit) == "table" and jit.version) or _VERSION

--- A positive whole number from the environment variable `name` (or
-- `default`): a bench's counts, refused when they break that rule.
function M.count(name, default)
  local v = tonumber(os.getenv(name) or default)
  assert(v and v >= 1 and v == math.floor(v), name .. " must be a positive integer")
  return v
end

--- Whether the rows made in an nginx worker run: BENCH_NGINX=1 or 0 says
-- always or never; unset, when this script runs under LuaJIT, which nginx
-- runs too.
function M.nginx_wanted()
  local v = os.getenv("BENCH_NGINX")
  if v == nil or v == "" then return type(jit) == "table" end
  return v ~= "0"
end

--- The CPU per call of three rows measured side by side (bench/percall.lua,
-- in its own process and in an nginx worker alike): `calls` of each, in
-- chunks of `chunk`, the rows' order turning with the chunk and `turn`.
-- Each chunk's requests are signed beforehand by `client:prepare` (action
-- ResumeLiveStream, parameters `raw`), for `rows.bare(req)` to send one;
-- `rows.call()` and `rows.prepare()` make one of theirs. os.clock: the CPU
-- of this process.
-- @return { call = , prepare = , bare = } microseconds per call
local ROW_ORDER = { "call", "prepare", "bare" }
function M.per_call_cpu(client, raw, rows, calls, chunk, turn)
  local cpu = { call = 0, prepare = 0, bare = 0 }
  for c = 1, calls / chunk do
    local reqs = {}
    for i = 1, chunk do reqs[i] = assert(client:prepare("ResumeLiveStream", raw)) end
    for k = 0, 2 do
      local row = ROW_ORDER[(turn + c + k) % 3 + 1]
      local fn = rows[row]
      local t0 = os.clock()
      for i = 1, chunk do fn(reqs[i]) end
      cpu[row] = cpu[row] + os.clock() - t0
    end
  end
  for k, v in pairs(cpu) do cpu[k] = v / calls * 1e6 end
  return cpu
end

--- The emulator `make bench` started: the variables of the endpoints.env
-- its start wrote in $STREAMCTL_EMULATOR_DIR (name -> value); its Aliyun
-- URLs checked to be on 127.0.0.1.
function M.emulator_endpoints()
  local dir = assert(os.getenv("STREAMCTL_EMULATOR_DIR"), "STREAMCTL_EMULATOR_DIR is not set")
  local env = {}
  for line in io.lines(dir .. "/endpoints.env") do
    local k, v = line:match("^([%w_]+)='(.*)'$")
    if k then env[k] = v end
  end
  assert(env.STREAMCTL_EMULATOR_ALIYUN_URL, "no Aliyun URL in endpoints.env")
  for k, scheme in pairs { STREAMCTL_EMULATOR_ALIYUN_URL = "http", STREAMCTL_EMULATOR_ALIYUN_TLS_URL = "https" } do
    local url = env[k]
    assert(url == nil or url:match("^" .. scheme .. "://127%.0%.0%.1:%d+$"),
      "not a 127.0.0.1 endpoint: " .. tostring(url))
  end
  return env
end

--- A function that says how many ResumeLiveStream requests the emulator at
-- `http` (its plain Aliyun URL) has accepted so far (each bench checks
-- that every request it sent was taken), and one that closes its handle.
function M.accepted_counter(http)
  local control = require("streamctl.curl").easy {}
  return function()
    local res = assert(control:request { method = "GET", url = http .. "/_emulator/state", headers = {}, body = "" })
    assert(res.status == 200, "/_emulator/state answered " .. res.status)
    local c = cjson.decode(res.body).aliyun.counters.ResumeLiveStream
    return c and c.accepted or 0
  end, function() control:close() end
end

--- Median, lowest and highest of a list of numbers, and the spread: (highest
-- - lowest) / median.
function M.summary(samples)
  local s = {}
  for i, v in ipairs(samples) do s[i] = v end
  table.sort(s)
  local n = #s
  local median = n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
  return { median = median, min = s[1], max = s[n], spread = median ~= 0 and (s[n] - s[1]) / math.abs(median) or 0 }
end

--- Runs `fn` for `seconds`, `runs` times (after a warm-up); returns the rate
-- of each run, in calls per second.
function M.rates(fn, runs, seconds)
  for _ = 1, 2000 do fn() end
  local out = {}
  for r = 1, runs do
    local n, t0 = 0, core.monotonic()
    local t
    repeat
      for _ = 1, 200 do fn() end
      n = n + 200
      t = core.monotonic()
    until t - t0 >= seconds
    out[r] = n / (t - t0)
  end
  return out
end

--- This process's resident memory (VmRSS), in KiB.
function M.rss_kib()
  local f = assert(io.open("/proc/self/status", "r"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- A full collection (twice: a finalized userdata is freed by the next cycle).
function M.full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

--- One figure as a table row (`fig.decimals` places after the point; by
-- default 2 for a ratio, "x", and none otherwise).
function M.line(fig)
  -- (%d: a count read back from JSON is a float in Lua 5.4, and "%12.3.0f" is no format)
  local value = string.format(string.format("%%12.%df", fig.decimals or (fig.unit == "x" and 2 or 0)), fig.median)
  return string.format("  %-20s %-66s %s %-3s (spread %4.1f%%)", fig.interpreter, fig.name, value, fig.unit,
    100 * fig.spread)
end

--- Records one figure: prints it and appends its JSON line to $BENCH_OUT.
-- fig: { group, name, unit, samples = {...} } and anything else to keep.
function M.record(fig)
  local s = M.summary(fig.samples)
  for k, v in pairs(s) do fig[k] = v end
  fig.interpreter = fig.interpreter or M.interpreter
  print(M.line(fig))
  local path = os.getenv("BENCH_OUT")
  if path and path ~= "" then
    local f = assert(io.open(path, "a"))
    f:write(cjson.encode(fig), "\n")
    f:close()
  end
  return fig
end

return M
