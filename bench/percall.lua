-- What one call costs (issue 72): the CPU of the calling process per
-- ResumeLiveStream (os.clock: user and system time, not the wait for the
-- answer), against the emulator that `make bench` starts, on one kept-alive
-- connection, signature V1 (HMAC-SHA1, as the official SDK signs), nothing
-- paced or retried. In the same run, interleaved chunk by chunk so that each
-- sees the same machine:
--
--   call      client:resume_live_stream, the whole call
--   prepare   client:prepare alone: check, encode, nonce, time, sign, URL
--   bare      a request signed beforehand, sent with streamctl.curl's easy
--             handle (the HTTP exchange in libcurl alone)
--   floor     libcurl alone, from C (bench/percall_floor.c, built by
--             bench/run.sh; BENCH_CURL_FLOOR its path): requests signed
--             beforehand, one easy handle, the fewest options, its own
--             process's CPU. What no client on libcurl can go under
--   sdk       @alicloud/pop-core 1.8.0, the official Node SDK, the same
--             calls (bench/sdk: its own package.json, installed by npm into
--             bench/sdk/node_modules at the first run; never a dependency
--             of streamctl), its own process's CPU after a warm-up of 5,000
--             calls (V8's compiling done: bench/sdk/percall.js)
--
--   nginx     (under LuaJIT, which nginx runs; BENCH_NGINX=1 or 0: always,
--             never) the same three rows made by a content handler in one
--             nginx worker, on cosockets: the call, prepare, and a request
--             signed beforehand sent by streamctl.transport.ngx; the
--             worker's CPU (os.clock in the worker, which does nothing else)
--
-- The call's steps: prepare, the exchange (bare), and the rest (the
-- engine's bookkeeping, the answer's decoding, the result): call - prepare
-- - bare. The goal: a call at most a quarter of the SDK's CPU; the floor's
-- share of the SDK says how much of that quarter libcurl leaves. Every figure
-- the median of BENCH_RUNS runs, recorded through bench/lib.lua (group
-- "per call"); every request must be accepted by the emulator.
--
--   STREAMCTL_EMULATOR_DIR=build/bench-emulator lua5.4 bench/percall.lua
local streamctl = require "streamctl"
local curl = require "streamctl.curl"
local lib = require "bench.lib"

local RUNS = lib.count("BENCH_RUNS", "5")
local CALLS = lib.count("BENCH_PERCALL_CALLS", "1000")
local CHUNK = lib.count("BENCH_PERCALL_CHUNK", "100")
assert(CALLS % CHUNK == 0, "BENCH_PERCALL_CALLS must be a multiple of BENCH_PERCALL_CHUNK")
local GOAL = 0.25
local KEY, SECRET = "LTAIbench", "bench-secret"
local FIELDS = { domain_name = "push.example.com", app_name = "live", stream_name = "bench" }
local RAW = { DomainName = "push.example.com", AppName = "live", StreamName = "bench", LiveStreamType = "publisher" }

local HTTP = lib.emulator_endpoints().STREAMCTL_EMULATOR_ALIYUN_URL
local accepted = lib.accepted_counter(HTTP)

local client = assert(streamctl.aliyun.new { endpoint = HTTP, access_key_id = KEY, access_key_secret = SECRET,
  signature_version = "v1", rate_limits = false, retry = false })
local easy = curl.easy {}

-- The official SDK: its folder's packages installed once; nil and why when Node or npm is missing.
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local SDK = ROOT .. "/bench/sdk"
local function sdk_ready()
  if not os.execute("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") then
    return nil, "node and npm are not installed (make bench installs them: BENCH_PACKAGES)"
  end
  local f = io.open(SDK .. "/node_modules/@alicloud/pop-core/package.json")
  if f then f:close() return true end
  if not os.execute("cd '" .. SDK .. "' && npm ci --no-audit --no-fund >/dev/null 2>&1") then
    return nil, "npm ci in bench/sdk failed (the npm registry unreachable?)"
  end
  return true
end

-- libcurl's floor: the CPU per request of `calls` requests signed now, sent by bench/percall_floor.c after
-- a warm-up of its own (nil when the bench did not build it).
local FLOOR = os.getenv("BENCH_CURL_FLOOR")
local FLOOR_WARM = 200
local function floor_cpu(calls)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  for _ = 1, FLOOR_WARM + calls do f:write(assert(client:prepare("ResumeLiveStream", RAW)).url, "\n") end
  f:close()
  local p = assert(io.popen(string.format("'%s' '%s' %d", FLOOR, name, FLOOR_WARM)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(name)
  assert(ok and tonumber(out), "bench/percall_floor.c failed")
  return tonumber(out)
end

-- The SDK's CPU per call in each of `rounds` rounds of `calls` (its own process).
local function sdk_rounds(calls, rounds)
  local p = assert(io.popen(string.format("node '%s/percall.js' '%s' '%s' '%s' %d %d", SDK, HTTP, KEY, SECRET,
    calls, rounds)))
  local out = {}
  for line in p:lines() do out[#out + 1] = tonumber(line) end
  assert(p:close(), "the SDK's run failed")
  assert(#out == rounds, "the SDK printed " .. #out .. " rounds, not " .. rounds)
  return out
end

local ROWS = {
  call = function() assert(client:resume_live_stream(FIELDS)) end,
  prepare = function() assert(client:prepare("ResumeLiveStream", RAW)) end,
  bare = function(req)
    local res = assert(easy:request(req))
    assert(res.status == 200, "a bare request answered " .. res.status .. ": " .. tostring(res.body))
  end,
}
local ready, why = sdk_ready()
print(string.format("  (%d runs; each: %d calls of each row in chunks of %d, interleaved; signature V1; the SDK %s)",
  RUNS, CALLS, CHUNK, ready and "in its own process, beside" or ("skipped: " .. tostring(why))))

local samples = { call = {}, prepare = {}, bare = {}, sdk = {}, rest = {}, ratio = {}, floor = {}, floor_ratio = {} }
for _ = 1, 200 do ROWS.call() end -- (warm-up: the connection, the keyed HMAC)
for run = 1, RUNS do
  local before = accepted()
  local t = lib.per_call_cpu(client, RAW, ROWS, CALLS, CHUNK, run)
  local got = accepted() - before
  assert(got == 2 * CALLS, string.format("the emulator accepted %d requests, not %d", got, 2 * CALLS))
  for k, v in pairs(t) do samples[k][run] = v end
  samples.rest[run] = samples.call[run] - samples.prepare[run] - samples.bare[run]
  if FLOOR then
    local before_floor = accepted()
    samples.floor[run] = floor_cpu(CALLS)
    got = accepted() - before_floor
    assert(got == FLOOR_WARM + CALLS, string.format("the emulator accepted %d of the floor's requests, not %d", got,
      FLOOR_WARM + CALLS))
  end
  if ready then
    local rounds = sdk_rounds(CALLS, 1)
    samples.sdk[run] = rounds[1]
    samples.ratio[run] = samples.call[run] / rounds[1]
    if FLOOR then samples.floor_ratio[run] = samples.floor[run] / rounds[1] end
  end
end

-- The cosocket rows: per-call CPU of each row in one nginx worker, `CALLS` of each, interleaved by chunk.
local NGINX = lib.nginx_wanted()
local HANDLER = [==[
local streamctl = require "streamctl"
local tngx = require "streamctl.transport.ngx"
local cjson = require "cjson"
local lib = require "bench.lib"
local F = { domain_name = "push.example.com", app_name = "live", stream_name = "bench" }
local RAW = { DomainName = "push.example.com", AppName = "live", StreamName = "bench", LiveStreamType = "publisher" }
local client
return function()
  local a = ngx.req.get_uri_args()
  local calls, chunk, round = tonumber(a.calls), tonumber(a.chunk), tonumber(a.round)
  client = client or assert(streamctl.aliyun.new { endpoint = a.endpoint, access_key_id = a.key,
    access_key_secret = a.secret, signature_version = "v1", rate_limits = false, retry = false })
  local t = assert(tngx.new {})
  local cpu = lib.per_call_cpu(client, RAW, {
    call = function() assert(client:resume_live_stream(F)) end,
    prepare = function() assert(client:prepare("ResumeLiveStream", RAW)) end,
    bare = function(req)
      assert(t.start(1, req))
      local done
      repeat done = t.poll(10) until #done > 0
      assert(done[1].res and done[1].res.status == 200, "a bare request failed")
    end,
  }, calls, chunk, round)
  t.close()
  ngx.say(cjson.encode(cpu))
end
]==]

local function nginx_rows()
  local nginx = require "spec.helpers.nginx"
  local cjson = require "cjson"
  local core = require "streamctl.core"
  local server = nginx.start {
    prepare = function(d) nginx.write_file(d .. "/bench_percall.lua", HANDLER) end,
    lua_path = function(d) return d .. "/?.lua;" .. nginx.root .. "/?.lua" end, -- (the tree's: bench.lib)
    lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
    http = function(ports)
      return "server { listen 127.0.0.1:" .. ports[1] .. ";\n"
        .. "      location = /run { content_by_lua_block { require('bench_percall')() } } }"
    end,
  }
  local rows = { call = {}, prepare = {}, bare = {}, rest = {} }
  local ok, err = pcall(function()
    local enc = core.percent_encode
    local function run(round, calls)
      local before = accepted()
      local status, body = server:get(string.format("/run?calls=%d&chunk=%d&round=%d&endpoint=%s&key=%s&secret=%s",
        calls, CHUNK, round, enc(HTTP), KEY, SECRET))
      assert(status == 200, "nginx answered " .. tostring(status) .. ": " .. tostring(body))
      local got = accepted() - before
      assert(got == 2 * calls, string.format("the emulator accepted %d requests from nginx, not %d", got, 2 * calls))
      return cjson.decode(body)
    end
    run(0, CHUNK * 2) -- (warm-up: the pool's connection, the traces)
    for round = 1, RUNS do
      local r = run(round, CALLS)
      for k, v in pairs(r) do rows[k][round] = v end
      rows.rest[round] = r.call - r.prepare - r.bare
    end
  end)
  server:stop()
  assert(ok, err)
  return rows
end

local function record(name, unit, list, more)
  if #list == 0 then return end
  local fig = { group = "per call", name = name, unit = unit, samples = list, decimals = unit == "us" and 1 or 2,
                calls = CALLS, signature = "v1", scheme = "http" }
  for k, v in pairs(more or {}) do fig[k] = v end
  return lib.record(fig)
end
record("a call: CPU", "us", samples.call)
record("of it, prepare (check, encode, nonce, time, sign, URL)", "us", samples.prepare)
record("of it, the exchange in libcurl (a bare request)", "us", samples.bare)
record("of it, the rest (engine, decoding, result)", "us", samples.rest)
record("the floor: libcurl alone, from C (a bare request)", "us", samples.floor)
record("the official Node SDK (@alicloud/pop-core 1.8.0): CPU per call", "us", samples.sdk)
record("streamctl / the SDK", "x", samples.ratio, { goal = GOAL })
record("the floor / the SDK", "x", samples.floor_ratio)
if #samples.ratio > 0 then
  local ratio = lib.summary(samples.ratio).median
  print(ratio <= GOAL and string.format("  goal met: a call costs %.2f of the SDK's CPU (the goal: at most %.2f)",
      ratio, GOAL)
    or string.format("  GOAL MISSED: a call costs %.2f of the SDK's CPU (the goal: at most %.2f)", ratio, GOAL))
end

if NGINX then
  local rows = nginx_rows()
  local more = { transport = "cosockets", interpreter = "nginx (" .. lib.interpreter .. ")" }
  record("inside nginx (cosockets): a call: CPU", "us", rows.call, more)
  record("inside nginx, of it, prepare", "us", rows.prepare, more)
  record("inside nginx, of it, the exchange on cosockets (a bare request)", "us", rows.bare, more)
  record("inside nginx, of it, the rest (engine, decoding, result)", "us", rows.rest, more)
end
