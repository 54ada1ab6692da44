-- Gathers the figures the benchmarks appended to BENCH_OUT (one JSON line
-- each, see bench/lib.lua) into bench/results.json, with the machine and the
-- versions they were measured on, and prints them as one table, then as the
-- table docs/performance.md shows (which spec/70 checks against the file),
-- issue 48's goal table (bench/goals.lua) after it when the file holds
-- bench/strangers.lua's runs. A row whose figures are not in the file yet
-- (bench/tracing.lua's) is left out; a goal recorded with a figure (its
-- `goal`) is named in the row, **missed** when it was.
--
--   lua5.4 bench/report.lua FIGURES.jsonl bench/results.json
--   lua5.4 bench/report.lua --markdown bench/results.json    docs/performance.md's table only
local cjson = require "cjson"
local goals = require "bench.goals"

-------------------------------------------------------------------------------
-- docs/performance.md's table, from a results file: every figure in it is
-- one of the file's medians (or a ratio of two), rounded as written here.

local format = string.format

-- 547028.2 -> "547,000" (to `unit`: 1000 rounds to thousands)
local function grouped(n, unit)
  local s = format("%d", math.floor(n / (unit or 1) + 0.5) * (unit or 1))
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

local function markdown(results)
  local by = {}
  for _, f in ipairs(results.figures) do
    local i = f.interpreter
    local key = i:match("^LuaJIT") and "jit" or i:match("^nginx") and "nginx" or i:match("^C ") and "C" or "5.4"
    by[key .. "|" .. f.name] = f
  end
  local function fig(name, interp)
    local f = by[(interp or "5.4") .. "|" .. name]
    return f and f.median
  end
  local function need(name, interp)
    local v = fig(name, interp)
    return v or error("bench results: no figure '" .. name .. "' (" .. (interp or "5.4") .. ")")
  end
  local rows = {}
  local function row(label, a, b, c) rows[#rows + 1] = format("| %s | %s | %s | %s |", label, a, b, c) end
  local function both(name, unit) return grouped(need(name), unit), grouped(need(name, "jit"), unit) end
  local function x(v) return format("%.1fx", v) end

  local SIGN = {
    { "Aliyun V1 signature, 16-parameter CreateLivePullToPush (`core.aliyun_sign_v1`)",
      "core.aliyun_sign_v1, CreateLivePullToPush, 16 parameters",
      "floor: HMAC-SHA1, keyed context (V1 string-to-sign)", "bare keyed HMAC-SHA1 of its %d-byte string-to-sign" },
    { "Aliyun V3 signature, the same request (`core.aliyun_sign_v3`)", "core.aliyun_sign_v3, CreateLivePullToPush",
      "floor: SHA-256 + HMAC-SHA256, keyed context (V3 canonical request)",
      "SHA-256 + HMAC-SHA256 of its %d-byte canonical request" },
    { "ZEGO signature (`core.zego_sign`)", "core.zego_sign", "floor: MD5 (ZEGO signature input)",
      "MD5 of its %d bytes" },
  }
  for _, s in ipairs(SIGN) do
    local a, b = both(s[2], 1000)
    local floor = need(s[3], "C")
    row(s[1], a .. "/s", b .. "/s", format(s[4], by["C|" .. s[3]] and by["C|" .. s[3]].bytes or 0) .. ": "
      .. grouped(floor, 1000) .. "/s (" .. x(floor / need(s[2])) .. " / " .. x(floor / need(s[2], "jit")) .. ")")
  end
  local V1, V3 = "aliyun:prepare, V1, CreateLivePullToPush (whole request)",
    "aliyun:prepare, V3, CreateLivePullToPush (whole request)"
  row("whole `prepare` (check, encode, nonce, time, sign, URL), V1 / V3",
    grouped(need(V1), 1000) .. " / " .. grouped(need(V3), 1000) .. "/s",
    grouped(need(V1, "jit"), 1000) .. " / " .. grouped(need(V3, "jit"), 1000) .. "/s", "")
  local a, b = both("zego:prepare, ResumeRTCStreams, 20 IDs (whole request)", 1000)
  row("whole `prepare`, ZEGO ResumeRTCStreams with 20 IDs", a .. "/s", b .. "/s", "")

  local function ms(name, interp) return format("%.2f", need(name, interp)) end
  local KEPT, FLOOR = "a) client call, sequential, kept-alive connection",
    "floor: pre-signed request, easy handle, kept-alive connection"
  a, b = both(KEPT)
  row("calls on loopback, one kept-alive connection", a .. "/s", b .. "/s",
    "a bare pre-signed request: " .. grouped(need(FLOOR)) .. " / " .. grouped(need(FLOOR, "jit"))
    .. "/s; streamctl adds " .. ms("a) overhead over the floor, p50") .. " / "
    .. ms("a) overhead over the floor, p50", "jit") .. " ms (p50)")
  a, b = both("b) client call, sequential, a new client (connection) per call")
  row("a new client (connection) per call", a .. "/s", b .. "/s", "adds " .. ms("b) overhead over the floor, p50")
    .. " / " .. ms("b) overhead over the floor, p50", "jit") .. " ms (p50)")
  local C = "c) resume_live_streams, libcurl multi, concurrency 16, "
  local D = "d) resume_live_streams, nginx (1 worker), concurrency 16, "
  row("a batch, 16 in flight (libcurl multi), http / https",
    grouped(need(C .. "http")) .. " / " .. grouped(need(C .. "https")) .. "/s",
    grouped(need(C .. "http", "jit")) .. " / " .. grouped(need(C .. "https", "jit")) .. "/s",
    "one nginx worker (cosockets): " .. grouped(need(D .. "http", "nginx")) .. " / "
    .. grouped(need(D .. "https", "nginx")) .. "/s")
  a, b = both("e) shell: sh + openssl + curl, a process per request")
  row("the shell way: `sh` + `openssl` + `curl`, a process per request (`bench/shell/resume.sh`)", a .. "/s",
    b .. "/s", "streamctl makes " .. grouped(need("a) / e): client calls per shell request")) .. " / "
    .. grouped(need("a) / e): client calls per shell request", "jit")) .. " calls in the time it makes one")

  -- tracing's cost (bench/tracing.lua), once the file holds its figures; its goal is recorded with the ratio
  local TRACE = "tracing %s: CPU per call"
  if fig(format(TRACE, "off")) then
    local function us(interp)
      local v = {}
      for i, w in ipairs { "off", "on, collector accepting", "on, sampled out", "on, collector down" } do
        v[i] = format("%.0f", need(format(TRACE, w), interp))
      end
      return table.concat(v, " / ") .. " µs"
    end
    local over, missed, goal = {}, {}, nil
    for _, interp in ipairs { "5.4", "jit" } do
      local f = by[interp .. "|tracing on / off: CPU per call"] or error("bench results: no tracing on / off figure")
      goal = f.goal
      over[#over + 1] = format("%+.0f%%", 100 * (f.median - 1))
      if goal and f.median > goal then missed[#missed + 1] = over[#over] end
    end
    local LINK = "[tracing](tracing.md#what-it-costs)"
    row("a call's CPU with tracing off / on / sampled out / the collector down (" .. LINK .. ")", us(), us("jit"),
      format("on costs %s over off", table.concat(over, " / "))
      .. (goal and format(" (goal: at most %+.0f%%)", 100 * (goal - 1)) or "")
      .. (#missed > 0 and " (**missed**: " .. table.concat(missed, ", ") .. ")" or ""))
  end

  -- what one call costs beside the official SDK (bench/percall.lua), once the file holds its figures
  local SDK = "the official Node SDK (@alicloud/pop-core 1.8.0): CPU per call"
  if fig(SDK) then
    local function steps(interp)
      return format("%.0f µs: prepare %.0f, libcurl's exchange %.0f, the rest %.0f", need("a call: CPU", interp),
        need("of it, prepare (check, encode, nonce, time, sign, URL)", interp),
        need("of it, the exchange in libcurl (a bare request)", interp),
        need("of it, the rest (engine, decoding, result)", interp))
    end
    local parts, missed, goal = {}, {}, nil
    for _, interp in ipairs { "5.4", "jit" } do
      local f = by[interp .. "|streamctl / the SDK"] or error("bench results: no streamctl / the SDK figure")
      goal = f.goal
      parts[#parts + 1] = format("%.0f µs, streamctl %.2f of it", need(SDK, interp), f.median)
      if goal and f.median > goal then missed[#missed + 1] = format("%.2f", f.median) end
    end
    local CURL_FLOOR = "the floor / the SDK"
    local floor = fig(CURL_FLOOR) and format("; libcurl alone, from C: %.2f / %.2f of it", need(CURL_FLOOR),
      need(CURL_FLOOR, "jit"))
    row("a call's CPU and its steps, beside the official Node SDK (`bench/percall.lua`)", steps(), steps("jit"),
      "the SDK: " .. table.concat(parts, " / ") .. (goal and format(" (goal: at most %.2f)", goal) or "")
      .. (#missed > 0 and " (**missed**: " .. table.concat(missed, ", ") .. ")" or "") .. (floor or ""))
    if fig("inside nginx (cosockets): a call: CPU", "nginx") then
      row("the same inside nginx, one worker (cosockets)", "(nginx runs LuaJIT)",
        format("%.0f µs: prepare %.0f, the exchange on cosockets %.0f, the rest %.0f",
          need("inside nginx (cosockets): a call: CPU", "nginx"), need("inside nginx, of it, prepare", "nginx"),
          need("inside nginx, of it, the exchange on cosockets (a bare request)", "nginx"),
          need("inside nginx, of it, the rest (engine, decoding, result)", "nginx")),
        "[where the time goes](#where-a-calls-time-goes)")
    end
  end

  -- the door's cost (bench/admission.lua), once the file holds its figures
  local FLOOR404 = "nginx's own 404 (a path the example does not route): req/s"
  if fig(FLOOR404, "nginx") then
    local parts, missed = {}, {}
    for _, d in ipairs { { "aliyun", "/admission/aliyun" }, { "rtmp", "/admission (nginx-rtmp)" } } do
      local f = by["nginx|the door / nginx's 404, " .. d[1]] or error("bench results: no door ratio " .. d[1])
      parts[#parts + 1] = format("%s %.2f", d[2], f.median)
      if f.goal and f.median < f.goal then missed[#missed + 1] = format("%.2f", f.median) end
    end
    local goal = by["nginx|the door / nginx's 404, aliyun"].goal
    row("the door, one nginx worker, wrk (`bench/admission.lua`): /admission/aliyun, /admission (nginx-rtmp)",
      "(nginx runs LuaJIT)", format("%s/s, %s/s", grouped(need("the door, /admission/aliyun (remote authentication): "
        .. "req/s", "nginx"), 100), grouped(need("the door, /admission (nginx-rtmp's on_publish form): req/s", "nginx"),
        100)),
      format("of nginx's own 404 (%s/s), by the worker's CPU a request (%.1f µs): %s", grouped(need(FLOOR404,
        "nginx"), 100), need(FLOOR404:gsub(": req/s$", ": worker CPU per request"), "nginx"), table.concat(parts, ", "))
        .. (goal and format(" (goal: at least %.2f)", goal) or "")
        .. (#missed > 0 and " (**missed**: " .. table.concat(missed, ", ") .. ")" or ""))
  end

  -- batches at the caps, idle and with every core busy
  local ratios, throttled, most, busy = {}, 0, {}, nil
  for _, f in ipairs(results.figures) do
    if f.group == "batch" then
      local who = f.provider
      if f.name:match(": wall time / minimum$") then ratios[format("%.2f", f.median)] = true end
      if f.name:match(": throttled %(emulator%)$") then throttled = throttled + f.median end
      if f.name:match(": most requests in any 1 s$") then most[who] = math.max(most[who] or 0, f.median) end
      if f.load == "busy" then busy = f.busy_processes end
    end
  end
  local list = {}
  for r in pairs(ratios) do list[#list + 1] = r .. "x" end
  table.sort(list)
  local cores = results.machine and results.machine.cores
  row("1,000 ZEGO IDs, 300 Aliyun streams against the sliding window",
    format("%.2f s, %.2f s", need("ZEGO 1,000 IDs (cap 20/s), idle: wall time"),
      need("Aliyun 300 streams (cap 30/s), idle: wall time")), "",
    -- (the least and the most of the four runs' ratios, or the one when they round alike)
    (#list > 1 and list[1] .. " to " .. list[#list] or list[1] or "?") .. " the minimum at the caps, idle or "
    .. (busy == cores and "every core busy" or format("%d cores busy", busy or 0)) .. "; "
    .. format("%d throttled; at most %d and %d in any second", throttled, most.zego or 0, most.aliyun or 0))

  local function redis_row(label, what, runs, unit, per)
    local cells = {}
    for _, r in ipairs(runs) do
      local pre = what .. ", " .. r[1] .. ": "
      if fig(pre .. "wall time") or fig(pre .. unit .. " done") then
        local cell = format("%s: %d done, %d throttled", r[2], need(pre .. unit .. " done"),
          need(pre .. (unit == "IDs" and "calls" or "requests") .. " throttled"))
        if r[3] then
          local share = math.floor(100 * need(pre .. "accepted per second / cap") + 0.5)
          cell = cell .. format(", %d%% of the cap, %.2f Redis round trips per %s", share,
            need(pre .. "Redis round trips per " .. per), per)
        end
        if r[4] then -- (through Sentinel: its questions too)
          cell = cell .. format(", %.2f Sentinel round trips per %s", need(pre .. "Sentinel round trips per " .. per),
            per)
        end
        cells[#cells + 1] = cell
      end
    end
    if #cells > 0 then row(label, "", "", table.concat(cells, "; ")) end
  end
  redis_row("3 processes x 100 streams on one account", "3 processes x 100 streams",
    { { "each on its own budget", "each on its own" }, { "one budget in Redis", "one budget in Redis", true },
      { "one budget through Sentinel (no failover)", "through Sentinel, no failover", true, true } },
    "streams", "request")
  redis_row("ZEGO, 3 processes x 500 IDs x 2 (20 per call) through Redis", "ZEGO, 3 processes x 500 IDs x 2",
    { { "Redis on loopback", "Redis on loopback", true }, { "Redis 5 ms away", "Redis 5 ms away", true },
      { "through Sentinel (no failover)", "through Sentinel, no failover", true, true } },
    "IDs", "call")

  -- one budget shared three more ways (bench/shared.lua), a row once the file holds its figures: by
  -- run (the name before ": "), its counts, each steady rate (and its window) and the whole run's
  local STEADY = "steady rate / cap (stalls left out)"
  local shared, order = {}, {}
  for _, f in ipairs(results.figures) do
    local label, what = f.name:match("^(.-): (.*)$")
    if f.group == "shared" and label then
      if not shared[label] then shared[label], order[#order + 1] = { by = {}, list = {} }, label end
      shared[label].by[what] = f.median
      table.insert(shared[label].list, { what = what, median = f.median })
    end
  end
  local cells = {}
  for _, label in ipairs(order) do
    local s = shared[label]
    local function pct(v) return math.floor(100 * (v or 0) + 0.5) end
    local parts = { format("%d done, %d throttled", s.by["streams done"] or 0, s.by["requests throttled"] or 0) }
    for _, w in ipairs(s.list) do
      local at = w.what:find(STEADY, 1, true)
      if at and at + #STEADY - 1 == #w.what then
        local window = w.what:sub(1, at - 1):gsub(": $", "")
        parts[#parts + 1] = format("%s %d%% of the cap", window == "" and "steady" or window, pct(w.median))
      end
    end
    parts[#parts + 1] = format("%d%% over the whole run", pct(s.by["accepted over the whole run / cap"]))
    cells[#cells + 1] = label .. ": " .. table.concat(parts, ", ")
  end
  if #cells > 0 then
    row("one budget shared: nginx workers on one shared dict, two AccessKeys of one account, Redis killed and back",
      "", "", table.concat(cells, "; "))
  end

  -- batches of any size: CPU per 1,000 streams and peak RSS at each size, streamed, as a list, reconciled
  for _, batch in ipairs { { "Aliyun forbid_live_streams", "Aliyun" }, { "ZEGO forbid_rtc_streams", "ZEGO" } } do
    for _, form in ipairs { "streamed", "list", "reconcile" } do
      local sizes = form == "reconcile" and { "1,000", "10,000", "100,000" }
        or { "1,000", "10,000", "100,000", "1,000,000" }
      local function at(interp)
        local cpu, rss = {}, {}
        for i, n in ipairs(sizes) do
          local pre = form == "reconcile" and format("%s reconcile, %s desired streams: ", batch[2], n)
            or format("%s %s, %s streams: ", batch[1], form, n)
          cpu[i] = format("%.1f", need(pre .. "CPU per 1,000 streams", interp))
          rss[i] = format("%.0f", need(pre .. "peak RSS", interp))
        end
        return table.concat(cpu, " / ") .. " ms; " .. table.concat(rss, " / ") .. " MiB"
      end
      local what = {
        streamed = format("the list a function, keep_results = false; dedupe set %.1f bytes a stream at a million",
          need(batch[1] .. " streamed, 1,000,000 streams: dedupe set, bytes per stream")),
        list = "the list a Lua array (in the RSS), keep_results = false",
        reconcile = "half of the desired streams already blocked, as many blocked not desired: n/2 forbids, "
          .. "n/2 resumes (remove_extra)",
      }
      row(format("%s %s: CPU per 1,000 streams; peak RSS, at %s streams", batch[2],
          form == "reconcile" and "reconcile" or form == "streamed" and "batch, streamed" or "batch, a list",
          table.concat(sizes, " / ")),
        at(), at("jit"), what[form] .. "; a transport that answers at once, pacing lifted")
    end
  end

  local FIRST = "the command, a 1,000,000-line --from file: until it sends"
  row("the command, a 1,000,000-line `--from` file: from the process's start to its first request",
    format("%.0f ms", need(FIRST)), format("%.0f ms", need(FIRST, "jit")),
    "the file counted (each name checked, the distinct ones counted) and the audit intent synced, the time "
      .. "until that intent is on the disk")

  local function mib(name, interp) return format("%.1f", need(name, interp) / 1024) end
  row("resident memory after 1,000 / 100,000 calls",
    mib("RSS after 1,000 calls") .. " / " .. mib("RSS after 100,000 calls") .. " MiB",
    mib("RSS after 1,000 calls", "jit") .. " / " .. mib("RSS after 100,000 calls", "jit") .. " MiB",
    format("Lua heap %+d KiB from 1,000 to 100,000 calls (LuaJIT: %+d KiB from 10,000)",
      math.floor(need("Lua heap growth from 1,000 to 100,000 calls") + 0.5),
      math.floor(need("Lua heap growth from 10,000 to 100,000 calls", "jit") + 0.5)))
  local HELD = "10,000 clients: RSS held, growth from round 2 to 5"
  row("10,000 clients made, used, collected, five times", format("RSS %+d KiB from round 2 to 5", need(HELD)),
    format("%+d KiB", need(HELD, "jit")),
    format("a client: %.1f KiB of Lua heap (LuaJIT: %.1f), plus %.1f KiB in C once it has signed (its keyed HMAC)",
      need("one Aliyun client, one request signed: Lua heap"),
      need("one Aliyun client, one request signed: Lua heap", "jit"),
      need("one Aliyun client, one request signed: C-side (malloc)", "jit")))
  local REQ = "require \"streamctl\" in a fresh process (minus the bare start-up)"
  local RSS = "RSS added by require \"streamctl\""
  row("`require \"streamctl\"` in a fresh process", format("%.1f ms, %s MiB", need(REQ), mib(RSS)),
    format("%.1f ms, %s MiB", need(REQ, "jit"), mib(RSS, "jit")), "libcurl is loaded at a client's first call")

  local v, m = results.versions or {}, results.machine or {}
  local function ver(s, pat) return s and s:match(pat) or "?" end
  -- (issue 48's goals, when the file holds bench/strangers.lua's runs)
  local goal_table = goals.table(results.figures)
  return table.concat({
    format("bench/results.json of %s (streamctl %s; %s cores of an %s; OpenSSL %s, Lua %s, LuaJIT %s, libcurl %s, "
      .. "nginx %s):", (results.date or "?"):sub(1, 10), v.streamctl or "?",
      m.cores and format("%d", m.cores) or "?", m.cpu or "?",
      ver(v.openssl, "OpenSSL (%S+)"), ver(v.lua, "Lua (%S+)"), ver(v.luajit, "LuaJIT (%S+)"),
      ver(v.libcurl, "libcurl (%S+)"), ver(v.nginx, "nginx/(%S+)")),
    "",
    "| | Lua 5.4 | LuaJIT | beside it |",
    "|---|---|---|---|",
    table.concat(rows, "\n"),
  }, "\n") .. "\n" .. (goal_table and "\n" .. goal_table or "")
end

if arg[1] == "--markdown" then
  local f = assert(io.open(arg[2] or "bench/results.json", "rb"))
  local results = cjson.decode(f:read("*a"))
  f:close()
  io.write(markdown(results))
  return
end

-------------------------------------------------------------------------------
local lib = require "bench.lib"

local input, output = arg[1], arg[2]
local function capture(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("*a")
  p:close()
  out = out and out:gsub("%s+$", "")
  return out ~= "" and out or nil
end

local figures = {}
for line in io.lines(input) do figures[#figures + 1] = cjson.decode(line) end

local results = {
  date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  machine = {
    kernel = capture("uname -srm"),
    cpu = capture("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1"),
    cores = tonumber(capture("nproc") or ""),
  },
  versions = {
    lua = capture("lua5.4 -v"), luajit = capture("luajit -v"), openssl = capture("openssl version"),
    libcurl = capture("curl-config --version") or capture("curl --version | head -1"),
    nginx = capture("nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1"),
    -- (the commit measured; "-dirty" when the tree had changes not committed: spec/70's freshness
    -- rule counts from the commit either way)
    streamctl = capture("git describe --always --dirty --abbrev=7"),
  },
  figures = figures,
}
local f = assert(io.open(output, "wb"))
f:write(cjson.encode(results), "\n")
f:close()

print("")
print(string.format("== %d figures (median of runs; spread = (fastest - slowest) / median), written to %s",
  #figures, output))
local group
for _, fig in ipairs(figures) do
  if fig.group ~= group then
    group = fig.group
    print("-- " .. group)
  end
  print(lib.line(fig))
end

print("")
print("== docs/performance.md's table (paste it between its markers; spec/70 checks it against " .. output .. ")")
local made, md = pcall(markdown, results)
io.write(made and md or ("(not made: " .. tostring(md) .. ")\n"))
-- (issue 48's goal table is the markdown's last part; a file without the
-- rest, bench/strangers.lua's figures alone, still shows it)
local goal_table = not made and goals.table(figures)
if goal_table then
  print("")
  print("== issue 48's goals (bench/goals.lua)")
  io.write(goal_table)
end
