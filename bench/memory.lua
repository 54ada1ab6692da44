-- Memory and load time (run by `make bench` under Lua 5.4 and under LuaJIT,
-- against the emulator bench/run.sh started with bench/emulator.json:
-- account LTAIbench, ResumeLiveStream not limited). Three parts, each in a
-- fresh process of the same interpreter (this script runs itself with the
-- part's name), so no part inherits another's heap or allocator state:
--
--   calls    one client, pacing off (rate_limits = false), 16 in flight:
--            batches of 1,000 ResumeLiveStream calls up to BENCH_MEMORY_CALLS
--            (100,000); after a full collection, resident memory (VmRSS) and
--            the Lua heap (collectgarbage "count") before the first call,
--            after 1,000 calls and at the end, and the growth from 1,000 and
--            from 10,000 calls to the end (LuaJIT compiles traces, which live
--            in its heap, well past 1,000 calls); under LuaJIT also the
--            C-side growth (malloc, see below). One run, one sample each; the
--            trajectory (every 10,000 calls) is kept in the figure's JSON.
--   clients  BENCH_CLIENTS (10,000) clients made, held, dropped (never
--            closed) and collected, BENCH_CLIENT_ROUNDS (5) rounds of each
--            kind: an Aliyun client after one signed request (its secret
--            then holds a keyed HMAC in C, freed by __gc), a new Aliyun
--            client, a new ZEGO client. For the first kind, RSS before, held
--            and collected in each round (flat: no growth from round 2 on;
--            the allocator keeps what was freed and reuses it), and the Lua
--            heap and C side before and after; for each kind, the Lua heap
--            per client (a sample a round) and, under LuaJIT, its C-side
--            allocations: glibc's mallinfo2 through the FFI (LuaJIT's heap
--            is not malloc'd, so malloc's count is the C side alone; Lua
--            5.4's heap is malloc'd, so there no such split is seen).
--   load     `require "streamctl"` in a fresh process: the interpreter
--            started BENCH_SPAWNS (21) times with `-e 'require "streamctl"'`
--            and as many times with `-e ''`, interleaved; the bare start-up,
--            and the load time as the median of each pair's difference.
--            Also the RSS of such a process, bare and after the require.
--
-- Figures (group "memory") through bench/lib.lua. Exits non-zero only when a
-- call failed.
local core = require "streamctl.core"
local lib = require "bench.lib"

local CALLS = tonumber(os.getenv("BENCH_MEMORY_CALLS") or "100000")
local CLIENTS = tonumber(os.getenv("BENCH_CLIENTS") or "10000")
local ROUNDS = tonumber(os.getenv("BENCH_CLIENT_ROUNDS") or "5")
local SPAWNS = tonumber(os.getenv("BENCH_SPAWNS") or "21")
local ENDPOINT = assert(os.getenv("STREAMCTL_ALIYUN_ENDPOINT"),
  "STREAMCTL_ALIYUN_ENDPOINT: the emulator (bench/run.sh sets it)")
local BATCH = 1000

local GROUP = "memory"
local function record(name, unit, samples, extra)
  local fig = { group = GROUP, name = name, unit = unit, samples = samples,
                decimals = unit == "ms" and 1 or (math.abs(samples[1]) < 100 and 2 or 0) }
  for k, v in pairs(extra or {}) do fig[k] = v end
  return lib.record(fig)
end

local function heap_kib() return collectgarbage("count") end

local function quote(s) return "'" .. (s:gsub("'", "'\\''")) .. "'" end

-- 100000 -> "100,000"
local function thousands(n)
  local s = tostring(math.floor(n))
  repeat
    local k
    s, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until k == 0
  return s
end

-- The interpreter running this script, to start it again.
local INTERPRETER = arg and arg[-1] or (type(jit) == "table" and "luajit" or "lua5.4")

local function succeeded(r) return r == true or r == 0 end

-- Bytes malloc has handed out (in use: small chunks and mmapped ones), or nil
-- where it cannot be read (Lua 5.4: no FFI; a libc without mallinfo2).
local function malloc_reader()
  local ok, ffi = pcall(require, "ffi")
  if not ok then return nil end
  local declared = pcall(ffi.cdef, [[
    struct streamctl_bench_mallinfo2 {
      size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    };
    struct streamctl_bench_mallinfo2 streamctl_bench_mallinfo2(void) __asm__("mallinfo2");
  ]])
  if not declared then return nil end
  local C = ffi.C
  local read = function()
    local m = C.streamctl_bench_mallinfo2()
    return tonumber(m.uordblks) + tonumber(m.hblkhd)
  end
  if not pcall(read) then return nil end
  return read
end

-------------------------------------------------------------------------------
-- calls

local function part_calls()
  local streamctl = require "streamctl"
  local curl = require "streamctl.curl"
  local malloc = malloc_reader()
  local control = curl.easy {}
  local function reset()
    local res = assert(control:request { method = "POST", url = ENDPOINT .. "/_emulator/reset", headers = {},
                                         body = "" })
    assert(res.status == 200, "/_emulator/reset answered " .. res.status)
  end
  local ali = assert(streamctl.aliyun.new {
    endpoint = ENDPOINT, access_key_id = "LTAIbench", access_key_secret = "bench-secret",
    rate_limits = false, concurrency = 16,
  })
  local names = {}
  for i = 1, BATCH do names[i] = string.format("memory-%04d", i) end
  local fields = { domain_name = "memory.example", app_name = "live", stream_names = names }

  local failed, done, t0 = 0, 0, core.monotonic()
  -- after a full collection: calls so far, RSS, Lua heap, malloc'd bytes (LuaJIT)
  local function snapshot()
    lib.full_gc()
    return { calls = done, rss = lib.rss_kib(), heap = heap_kib(), malloc = malloc and malloc(),
             seconds = core.monotonic() - t0 }
  end
  local trace = { snapshot() }
  local at = {}
  local batches = math.ceil(CALLS / BATCH)
  for b = 1, batches do
    -- the emulator's nonces, log and counters stay bounded (its speed too)
    if b % 10 == 1 then reset() end
    local report = assert(ali:resume_live_streams(fields))
    done = done + report.calls
    failed = failed + report.total - report.succeeded
    if b == 1 or b % 10 == 0 or b == batches then
      trace[#trace + 1] = snapshot()
      at[done] = trace[#trace]
    end
  end
  local seconds = core.monotonic() - t0
  ali:close()
  control:close()

  local first, last = trace[1], trace[#trace]
  local one, ten = at[1000] or trace[2], at[10000]
  local n = thousands(done)
  record("RSS before the first call (one client)", "KiB", { first.rss })
  record("RSS after 1,000 calls", "KiB", { one.rss })
  record("RSS after " .. n .. " calls", "KiB", { last.rss }, { calls = done, seconds = seconds, trace = trace })
  record("RSS growth from 1,000 to " .. n .. " calls", "KiB", { last.rss - one.rss })
  if ten and ten ~= last then record("RSS growth from 10,000 to " .. n .. " calls", "KiB", { last.rss - ten.rss }) end
  record("Lua heap before the first call", "KiB", { first.heap })
  record("Lua heap after 1,000 calls", "KiB", { one.heap })
  record("Lua heap after " .. n .. " calls", "KiB", { last.heap })
  record("Lua heap growth from 1,000 to " .. n .. " calls", "KiB", { last.heap - one.heap })
  if ten and ten ~= last then
    record("Lua heap growth from 10,000 to " .. n .. " calls", "KiB", { last.heap - ten.heap })
  end
  if malloc then
    record("C-side (malloc) growth from 1,000 to " .. n .. " calls", "KiB", { (last.malloc - one.malloc) / 1024 })
    if ten and ten ~= last then
      record("C-side (malloc) growth from 10,000 to " .. n .. " calls", "KiB",
        { (last.malloc - ten.malloc) / 1024 })
    end
  end
  print(string.format("  (%d calls in %.1f s, %.0f calls/s, 16 in flight, pacing off; %d failed; one run, "
    .. "so one sample each)", done, seconds, done / seconds, failed))
  if failed > 0 then
    print("memory: calls failed; the figures above are not of a clean run")
    os.exit(1)
  end
end

-------------------------------------------------------------------------------
-- clients

local function part_clients()
  local streamctl = require "streamctl"
  local malloc = malloc_reader()
  local ALI = { endpoint = ENDPOINT, access_key_id = "LTAIbench", access_key_secret = "bench-secret" }
  local ZEGO = { endpoint = os.getenv("STREAMCTL_ZEGO_ENDPOINT"), app_id = 1234567890,
                 server_secret = "0123456789abcdef0123456789abcdef" }
  local RESUME = { DomainName = "memory.example", AppName = "live", StreamName = "memory-1",
                   LiveStreamType = "publisher" }
  -- The first kind also shows that memory is flat: it holds C-side state (the
  -- secret's keyed HMAC, made by the first signature, freed by its __gc).
  local kinds = {
    { name = "Aliyun client, one request signed", make = function()
        local c = assert(streamctl.aliyun.new(ALI))
        assert(c:prepare("ResumeLiveStream", RESUME))
        return c
      end },
    { name = "Aliyun client, new", make = function() return assert(streamctl.aliyun.new(ALI)) end },
    { name = "ZEGO client, new", make = function() return assert(streamctl.zego.new(ZEGO)) end },
  }
  -- the code paths run once before the baseline (first-use allocations,
  -- interned strings, LuaJIT's traces are not a client's)
  for _, kind in ipairs(kinds) do for _ = 1, 100 do kind.make() end end

  local held = {}
  for i = 1, CLIENTS do held[i] = false end -- the array itself is not counted
  lib.full_gc()
  local n = thousands(CLIENTS)
  local before = { rss = lib.rss_kib(), heap = heap_kib(), malloc = malloc and malloc() }
  local rss_held, rss_after = {}, {}
  for k, kind in ipairs(kinds) do
    local per_heap, per_c = {}, {}
    for r = 1, ROUNDS do
      lib.full_gc()
      local h0, m0 = heap_kib(), malloc and malloc()
      for i = 1, CLIENTS do held[i] = kind.make() end
      assert(held[CLIENTS], "a client was not made")
      lib.full_gc()
      per_heap[r] = (heap_kib() - h0) / CLIENTS
      if malloc then per_c[r] = (malloc() - m0) / CLIENTS / 1024 end
      if k == 1 then rss_held[r] = lib.rss_kib() end
      for i = 1, CLIENTS do held[i] = false end
      lib.full_gc()
      if k == 1 then rss_after[r] = lib.rss_kib() end
    end
    if k == 1 then
      local last = { heap = heap_kib(), malloc = malloc and malloc() }
      print(string.format("  (%s %s, %d rounds: made, held, dropped (never closed), collected)", n,
        (kind.name:gsub("^Aliyun client", "Aliyun clients")), ROUNDS))
      local of = n .. " clients: "
      record(of .. "RSS before", "KiB", { before.rss })
      record(of .. "RSS with them held (each round)", "KiB", rss_held)
      record(of .. "RSS after they were collected (each round)", "KiB", rss_after)
      if ROUNDS >= 3 then
        record(string.format("%sRSS held, growth from round 2 to %d", of, ROUNDS), "KiB",
          { rss_held[ROUNDS] - rss_held[2] })
      end
      record(of .. "Lua heap before", "KiB", { before.heap })
      record(of .. "Lua heap growth, before to after round " .. ROUNDS, "KiB", { last.heap - before.heap })
      if malloc then
        record(of .. "C-side (malloc) growth, before to after round " .. ROUNDS, "KiB",
          { (last.malloc - before.malloc) / 1024 })
      end
    end
    record("one " .. kind.name .. ": Lua heap", "KiB", per_heap, { clients = CLIENTS, decimals = 2 })
    if malloc then
      record("one " .. kind.name .. ": C-side (malloc)", "KiB", per_c, { clients = CLIENTS, decimals = 2 })
    end
  end
  print(string.format("  (RSS keeps much of what the allocator freed, to reuse it, and round 1 lets it "
    .. "settle: flat is no growth from round 2 on; the per-client figures are one sample a round, %s clients "
    .. "each; C-side: %s)", n,
    malloc and "glibc mallinfo2 through the FFI, which LuaJIT's own heap does not touch"
      or "not separable here (Lua 5.4's heap is malloc'd too); see LuaJIT's figures, same C"))
end

-------------------------------------------------------------------------------
-- load

local function part_load()
  local function spawn(code)
    local cmd = "exec " .. INTERPRETER .. " -e " .. quote(code) .. " </dev/null"
    local t0 = core.monotonic()
    local r = os.execute(cmd)
    local ms = (core.monotonic() - t0) * 1000
    assert(succeeded(r), cmd .. " failed")
    return ms
  end
  local REQUIRE = 'require "streamctl"'
  for _ = 1, 3 do spawn(""); spawn(REQUIRE) end -- warm the page cache
  local bare, with, diff = {}, {}, {}
  for i = 1, SPAWNS do
    bare[i] = spawn("")
    with[i] = spawn(REQUIRE)
    diff[i] = with[i] - bare[i]
  end
  record("interpreter start-up, bare (-e '')", "ms", bare)
  record("interpreter start-up with require \"streamctl\"", "ms", with)
  record("require \"streamctl\" in a fresh process (minus the bare start-up)", "ms", diff)

  local RSS = 'local f = io.open("/proc/self/status") io.write(f:read("*a"):match("VmRSS:%s*(%d+)")) f:close()'
  local function rss_of(code)
    local p = assert(io.popen("exec " .. INTERPRETER .. " -e " .. quote(code) .. " </dev/null"))
    local v = tonumber(p:read("*a"))
    p:close()
    return assert(v, "no VmRSS read")
  end
  local rb, rw, rd = {}, {}, {}
  for i = 1, 5 do
    rb[i] = rss_of(RSS)
    rw[i] = rss_of(REQUIRE .. " " .. RSS)
    rd[i] = rw[i] - rb[i]
  end
  record("RSS of a fresh process, bare", "KiB", rb)
  record("RSS of a fresh process after require \"streamctl\"", "KiB", rw)
  record("RSS added by require \"streamctl\"", "KiB", rd)
  print(string.format("  (%d spawns each, interleaved, through /bin/sh exec; the load time is the median of "
    .. "each pair's difference)", SPAWNS))
end

-------------------------------------------------------------------------------

local PARTS = { calls = part_calls, clients = part_clients, load = part_load }
local part = arg and arg[1]
if part then
  local fn = assert(PARTS[part], "unknown part " .. tostring(part) .. " (calls, clients, load)")
  fn()
  os.exit(0)
end

io.stdout:setvbuf("line")
local status = 0
for _, name in ipairs { "calls", "clients", "load" } do
  io.stdout:flush()
  local r = os.execute("exec " .. INTERPRETER .. " " .. quote(arg[0]) .. " " .. name)
  if not succeeded(r) then
    print("memory: part '" .. name .. "' failed")
    status = 1
  end
end
os.exit(status)
