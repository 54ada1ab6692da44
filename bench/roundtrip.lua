-- Round trips on loopback against the emulator that `make bench` starts
-- (bench/emulator.json: account LTAIbench, ResumeLiveStream not limited),
-- found through $STREAMCTL_EMULATOR_DIR/endpoints.env. Run under Lua 5.4 and
-- under LuaJIT; every figure is the median of BENCH_RUNS runs, with its
-- spread, recorded through bench/lib.lua (group "round trips").
--
-- Every request is an Aliyun ResumeLiveStream signed with signature V1
-- (HMAC-SHA1, as the shell script of row e signs; BENCH_RT_SIGNATURE=v3 signs
-- the streamctl rows with ACS3-HMAC-SHA256, the clients' default), over plain
-- HTTP unless a row says https, and every one must succeed: each call's
-- result is asserted, and the emulator's count of accepted ResumeLiveStream
-- requests must have grown by exactly the number sent. Clients are made with
-- rate_limits = false and retry = false: nothing is paced or retried.
--
--   floor    a bare request, signed beforehand (client:prepare, outside the
--            timing), sent with streamctl.curl's easy handle on one kept-alive
--            connection (its own, beside a)'s): the HTTP round trip alone.
--            Also "floor, new connection": the same with a new easy handle
--            (so a new TCP connection) for each request.
--   a)       client:resume_live_stream, one call after another, on the
--            client's one kept-alive connection (libcurl's multi interface,
--            which every client outside nginx sends with).
--   b)       the same, on a new connection for each call: a fresh client per
--            call (streamctl.aliyun.new, the call, client:close()), which is
--            what a script that makes a client per call pays. (The transport
--            has no option to refuse connection reuse; closing the client is
--            what closes its libcurl handles and so its connection.)
--   c)       client:resume_live_streams, BENCH_RT_BATCH streams at concurrency
--            16 on libcurl's multi interface (max_connections = 16, so 16 are
--            in flight), over http and https, one client kept across runs.
--   d)       the same batch made by a content handler in one nginx worker
--            (streamctl's cosocket transport), over http and https. nginx runs
--            LuaJIT whichever interpreter runs this script, so d) runs only
--            when this script runs under LuaJIT (BENCH_NGINX=1 or 0: always,
--            never).
--   e)       bench/shell/resume.sh (POSIX sh, openssl and curl: what a shell
--            user writes without streamctl), one process per request, each
--            started by os.execute ("sh -c 'exec resume.sh ...'": one exec more
--            than typing it at a prompt). And a) / e): how many calls a) makes
--            in the time e) makes one request (a)'s req/s over e)'s).
--
-- The floors, a), b) and e) are measured together, interleaved, so that they
-- see the same machine (the other jobs of a busy one come and go): a run is
-- BENCH_RT_CALLS rounds, each timing one floor request, one new-connection
-- floor request, one a) call and one b) call, in an order that rotates from
-- round to round; every (BENCH_RT_CALLS / BENCH_RT_SHELL)-th round also times
-- one e) request, followed by an untimed bare request that absorbs what
-- starting processes leaves behind (cold caches), so it is charged to no row.
-- Each request or call is timed by itself (core.monotonic just before and
-- just after); a row's req/s is its requests over the sum of their times.
--
-- Overhead (a, b, e), in milliseconds: what a caller waits for beyond the
-- bare HTTP round trip. In each run, the row's per-call wall times and the
-- kept-alive floor's are sorted, and
--
--   overhead at p50 = the row's p50 - the floor's p50
--   overhead at p99 = the row's p99 - the floor's p99
--
-- where pN is the nearest-rank quantile, the ceil(N/100 * n)-th smallest of n
-- (with fewer than 100 requests, as in e, p99 is the slowest one). The figure
-- is the median of the runs' values. Quantiles are subtracted, not per-call
-- differences: a call and a floor request are never the same request. For
-- a) it is checking the fields, signing, building the request, the runner,
-- the multi interface and its polling, and decoding the answer; b) adds
-- making and closing a client and opening a TCP connection; e) adds starting
-- sh, date, sort, three openssl and a curl, and curl's new connection. The
-- floor's own p50 and p99 are recorded too. A full garbage collection
-- precedes each run's rounds and each batch.
--
-- Counts (environment): BENCH_RUNS (5), BENCH_RT_CALLS (600: rounds per run),
-- BENCH_RT_SHELL (20: e) requests per run), BENCH_RT_BATCH (2000: streams
-- per batch, c and d). Only 127.0.0.1.
--
--   STREAMCTL_EMULATOR_DIR=build/bench-emulator lua5.4 bench/roundtrip.lua
--   (with LUA_PATH, LUA_CPATH and STREAMCTL_ROOT as `make bench` sets them)
local streamctl = require "streamctl"
local curl = require "streamctl.curl"
local core = require "streamctl.core"
local cjson = require "cjson"
local lib = require "bench.lib"

local count = lib.count
local RUNS = count("BENCH_RUNS", "5")
local CALLS = count("BENCH_RT_CALLS", "600")
local SHELL = math.min(count("BENCH_RT_SHELL", "20"), CALLS)
local BATCH = count("BENCH_RT_BATCH", "2000")
local SIGNATURE = os.getenv("BENCH_RT_SIGNATURE") or "v1"
local CONCURRENCY = 16
local NGINX = lib.nginx_wanted()

local ID, SECRET = "LTAIbench", "bench-secret"
local DOMAIN, APP = "bench.example", "live"
local GROUP = "round trips"
local now = core.monotonic

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The emulator's endpoints, and how many ResumeLiveStream requests it accepted so far.
local env = lib.emulator_endpoints()
local HTTP = env.STREAMCTL_EMULATOR_ALIYUN_URL
local HTTPS = assert(env.STREAMCTL_EMULATOR_ALIYUN_TLS_URL, "no Aliyun TLS URL in endpoints.env")
local CA = assert(env.STREAMCTL_EMULATOR_CA_FILE, "no CA file in endpoints.env")
local accepted, close_control = lib.accepted_counter(HTTP)

-- Runs fn(), which sends `n` requests, and checks the emulator accepted n more.
local function counted(n, what, fn)
  local before = accepted()
  local a, b = fn()
  local got = accepted() - before
  assert(got == n, string.format("%s: the emulator accepted %d requests, not %d", what, got, n))
  return a, b
end

local function client(opts)
  local o = { endpoint = HTTP, access_key_id = ID, access_key_secret = SECRET, rate_limits = false,
              retry = false, signature_version = SIGNATURE }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(streamctl.aliyun.new(o))
end

local STREAM = { domain_name = DOMAIN, app_name = APP, stream_name = "rt-sequential" }
local RAW = { DomainName = DOMAIN, AppName = APP, StreamName = "rt-sequential", LiveStreamType = "publisher" }
local names = {}
for i = 1, BATCH do names[i] = "rt-" .. i end

-- The nearest-rank quantile of a sorted list.
local function quantile(sorted, p)
  return sorted[math.max(1, math.ceil(p * #sorted))]
end
local function sorted_copy(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  return s
end

-- floor: pre-signed requests (fresh nonces: the emulator refuses a replay)
local signer = client()
local function presigned(n)
  local list = {}
  for i = 1, n do list[i] = assert(signer:prepare("ResumeLiveStream", RAW)) end
  return list
end
local floor_easy = curl.easy {}
local function bare(req, easy)
  local res, err = easy:request(req)
  if not res then return nil, err and err.message end
  if res.status ~= 200 then return nil, "HTTP " .. res.status .. ": " .. res.body end
  return true
end
local function bare_new(req)
  local e = curl.easy {}
  local ok, err = bare(req, e)
  e:close()
  return ok, err
end

-- a) one client, one kept-alive connection
local kept = client()
local function call_kept()
  return kept:resume_live_stream(STREAM)
end

-- b) a fresh client per call
local function call_fresh()
  local c = client()
  local res, err = c:resume_live_stream(STREAM)
  c:close()
  return res, err
end

-- e) one shell process per request
local SCRIPT = (os.getenv("STREAMCTL_ROOT") or ".") .. "/bench/shell/resume.sh"
local SHELL_CMD = "ALIBABA_CLOUD_ACCESS_KEY_ID=" .. ID .. " ALIBABA_CLOUD_ACCESS_KEY_SECRET=" .. SECRET
  .. " && export ALIBABA_CLOUD_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET && exec "
  .. table.concat({ shell_quote(SCRIPT), shell_quote(HTTP), DOMAIN, APP, "rt-shell" }, " ") .. " >/dev/null"
local function call_shell()
  local a, b, c = os.execute(SHELL_CMD)
  if a == true or a == 0 then return true end -- 5.4: true, "exit", 0; LuaJIT: the wait status
  return nil, "bench/shell/resume.sh: " .. tostring(b) .. " " .. tostring(c or a)
end

-- One run of the interleaved rounds: per-call seconds of each row.
local ROWS = { "floor", "new", "a", "b" }
local function rounds(n, shell)
  local every = math.floor(n / shell)
  local kept_reqs, new_reqs, spare = presigned(n), presigned(n), presigned(shell)
  local t = { floor = {}, new = {}, a = {}, b = {}, e = {} }
  for _, k in ipairs(ROWS) do
    for i = 1, n do t[k][i] = 0 end -- (no table grows while timing)
  end
  for i = 1, shell do t.e[i] = 0 end
  local fns = {
    floor = function(i) return bare(kept_reqs[i], floor_easy) end,
    new = function(i) return bare_new(new_reqs[i]) end,
    a = call_kept,
    b = call_fresh,
  }
  local function timed(key, fn, i, slot)
    local t0 = now()
    local ok, err = fn(i)
    t[key][slot] = now() - t0
    if not ok then error(string.format("%s, round %d: %s", key, i, tostring(err)), 0) end
  end
  local e = 0
  collectgarbage("collect")
  for i = 1, n do
    for j = 0, #ROWS - 1 do
      local key = ROWS[(i + j) % #ROWS + 1]
      timed(key, fns[key], i, i)
    end
    if i % every == 0 and e < shell then
      e = e + 1
      timed("e", call_shell, i, e)
      assert(bare(spare[e], floor_easy)) -- untimed
    end
  end
  assert(e == shell)
  return t
end
local function requests(n, shell) return 4 * n + 2 * shell end

-- c) one client per scheme, kept across runs
local batch_clients = {
  http = client { max_connections = CONCURRENCY },
  https = client { endpoint = HTTPS, ca_file = CA, max_connections = CONCURRENCY },
}
local function batch(scheme, list)
  collectgarbage("collect")
  local t0 = now()
  local report = assert(batch_clients[scheme]:resume_live_streams { domain_name = DOMAIN, app_name = APP,
    stream_names = list, concurrency = CONCURRENCY })
  local seconds = now() - t0
  assert(report.succeeded == #list, string.format("c) %s: %d of %d succeeded", scheme, report.succeeded, #list))
  return seconds
end

local function record(name, unit, samples, extra)
  local fig = { group = GROUP, name = name, unit = unit, samples = samples, decimals = unit == "ms" and 3 or nil }
  for k, v in pairs(extra or {}) do fig[k] = v end
  return lib.record(fig)
end

-- Warm-up: connections made, code compiled, the emulator's caches filled.
local few = {}
for i = 1, math.min(BATCH, 200) do few[i] = names[i] end
local WARM = math.min(CALLS, 100)
local WARM_SHELL = math.min(2, WARM)
counted(requests(WARM, WARM_SHELL) + 2 * #few, "the warm-up", function()
  rounds(WARM, WARM_SHELL)
  batch("http", few)
  batch("https", few)
end)

print(string.format("  (%d runs; each: %d rounds of floor, floor on a new connection, a and b, interleaved, with"
  .. " %d requests of e among them; batches of %d for c and d; signature %s)", RUNS, CALLS, SHELL, BATCH,
  SIGNATURE))

local function ms(x) return x * 1000 end
local function sum(list)
  local total = 0
  for _, v in ipairs(list) do total = total + v end
  return total
end
local s = {} -- name -> samples, one per run
local function add(name, v)
  s[name] = s[name] or {}
  s[name][#s[name] + 1] = v
end
for _ = 1, RUNS do
  local t = counted(requests(CALLS, SHELL), "the rounds", function() return rounds(CALLS, SHELL) end)
  local fs = sorted_copy(t.floor)
  local rate = {}
  for _, key in ipairs { "floor", "new", "a", "b", "e" } do
    rate[key] = #t[key] / sum(t[key])
    add(key, rate[key])
  end
  add("floor p50", ms(quantile(fs, 0.5)))
  add("floor p99", ms(quantile(fs, 0.99)))
  for _, key in ipairs { "a", "b", "e" } do
    local sorted = sorted_copy(t[key])
    add(key .. " p50", ms(quantile(sorted, 0.5) - quantile(fs, 0.5)))
    add(key .. " p99", ms(quantile(sorted, 0.99) - quantile(fs, 0.99)))
  end
  add("a/e", rate.a / rate.e)
  for _, scheme in ipairs { "http", "https" } do
    local seconds = counted(BATCH, "c) " .. scheme, function() return batch(scheme, names) end)
    add("c " .. scheme, BATCH / seconds)
  end
end

local function with(t)
  local out = { signature = SIGNATURE }
  for k, v in pairs(t) do out[k] = v end
  return out
end
local seq = with { calls = CALLS, scheme = "http" }
record("floor: pre-signed request, easy handle, kept-alive connection", "req/s", s.floor, seq)
record("floor: per-request wall time, p50", "ms", s["floor p50"], seq)
record("floor: per-request wall time, p99", "ms", s["floor p99"], seq)
record("floor: pre-signed request, a new connection (easy handle) each", "req/s", s.new, seq)
record("a) client call, sequential, kept-alive connection", "req/s", s.a, seq)
record("a) overhead over the floor, p50", "ms", s["a p50"], seq)
record("a) overhead over the floor, p99", "ms", s["a p99"], seq)
record("b) client call, sequential, a new client (connection) per call", "req/s", s.b, seq)
record("b) overhead over the floor, p50", "ms", s["b p50"], seq)
record("b) overhead over the floor, p99", "ms", s["b p99"], seq)
local sh = with { calls = SHELL, scheme = "http", signature = "v1" }
record("e) shell: sh + openssl + curl, a process per request", "req/s", s.e, sh)
record("e) overhead over the floor, p50", "ms", s["e p50"], sh)
record("e) overhead over the floor, p99", "ms", s["e p99"], sh)
record("a) / e): client calls per shell request", "x", s["a/e"], with { calls = CALLS, shell_calls = SHELL })
for _, scheme in ipairs { "http", "https" } do
  record("c) resume_live_streams, libcurl multi, concurrency 16, " .. scheme, "req/s", s["c " .. scheme],
    with { calls = BATCH, concurrency = CONCURRENCY, scheme = scheme })
end
batch_clients.http:close()
batch_clients.https:close()
kept:close()
floor_easy:close()

if not NGINX then
  close_control()
  return
end

-- d) the same batch in one nginx worker, on cosockets.
local nginx = require "spec.helpers.nginx"

local BATCH_MODULE = [==[
local streamctl = require "streamctl"
local M = {}
function M.run(endpoint, ca_file, stream_names, concurrency, signature)
  local ali = assert(streamctl.aliyun.new { endpoint = endpoint, ca_file = ca_file, access_key_id = "LTAIbench",
    access_key_secret = "bench-secret", rate_limits = false, retry = false, signature_version = signature })
  local report = assert(ali:resume_live_streams { domain_name = "bench.example", app_name = "live",
                                                   stream_names = stream_names, concurrency = concurrency })
  ali:close()
  return report
end
return M
]==]

local HANDLER = [==[
local cjson = require "cjson"
local monotonic = require("streamctl.core").monotonic -- (ngx.now() counts milliseconds)
local batch = require "bench_batch"
return function()
  local args = ngx.req.get_uri_args()
  local list = {}
  for i = 1, tonumber(args.n) do list[i] = "rt-" .. i end
  collectgarbage("collect")
  local t0 = monotonic()
  local report = batch.run(args.endpoint, args.ca, list, tonumber(args.c), args.signature)
  local seconds = monotonic() - t0
  ngx.say(cjson.encode { seconds = seconds, succeeded = report.succeeded, interpreter = jit.version })
end
]==]

local server = nginx.start {
  prepare = function(d)
    nginx.write_file(d .. "/bench_batch.lua", BATCH_MODULE)
    nginx.write_file(d .. "/bench_handler.lua", HANDLER)
  end,
  lua_path = function(d) return d .. "/?.lua" end,
  lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
  http = function(ports)
    return "lua_ssl_trusted_certificate " .. nginx.conf_quoted(CA) .. ";\n"
      .. "    server { listen 127.0.0.1:" .. ports[1] .. ";\n"
      .. "      location = /run { content_by_lua_block { require('bench_handler')() } } }"
  end,
}

local ok, err = pcall(function()
  local enc = core.percent_encode
  local function run(scheme, n)
    local endpoint = scheme == "https" and HTTPS or HTTP
    local status, body = server:get(string.format("/run?n=%d&c=%d&endpoint=%s&ca=%s&signature=%s", n, CONCURRENCY,
      enc(endpoint), enc(CA), enc(SIGNATURE)))
    assert(status == 200, "d) nginx answered " .. tostring(status) .. ": " .. tostring(body))
    local r = cjson.decode(body)
    assert(r.succeeded == n, string.format("d) %s: %d of %d succeeded", scheme, r.succeeded, n))
    return r
  end
  for _, scheme in ipairs { "http", "https" } do
    counted(#few, "d) warm-up", function() run(scheme, #few) end)
  end
  local samples, interpreter = { http = {}, https = {} }, nil
  for _ = 1, RUNS do
    for _, scheme in ipairs { "http", "https" } do
      local r = counted(BATCH, "d) " .. scheme, function() return run(scheme, BATCH) end)
      samples[scheme][#samples[scheme] + 1] = BATCH / r.seconds
      interpreter = "nginx (" .. (r.interpreter:match("LuaJIT [%d.]+") or r.interpreter) .. ")"
    end
  end
  for _, scheme in ipairs { "http", "https" } do
    record("d) resume_live_streams, nginx (1 worker), concurrency 16, " .. scheme, "req/s", samples[scheme],
      with { calls = BATCH, concurrency = CONCURRENCY, scheme = scheme, interpreter = interpreter })
  end
end)
server:stop()
close_control()
assert(ok, err)
