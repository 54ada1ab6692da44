--- The operator's layer in the simulation: each seed also runs, on a
-- virtual clock, a credentials source that expires, rotates, arrives stale
-- and fails under the library's refresh holder, and 2 to 6 runs of the real
-- command line (streamctl.cli's main): ZEGO reconcile rounds (reconcile.zego,
-- its state in reconcile.file_store), Aliyun reconcile rounds (against the
-- block list) and ZEGO batches, their audit log through streamctl.operator.audit, on
-- a simulated disk (sim.disk) that fills, cuts lines short, fails reads and
-- loses what was not durable in a power loss; each run killed before a
-- drawn effect (an append, a state replace, a request, an answer) or not.
-- Then one clean round of each provider. Invariants (docs/simulation.md):
--
--   7  every request that reached the provider belongs to a run whose
--      intent was durable before it left
--   8  after any crash the next clean round converges: the provider forbids
--      exactly the desired streams, nothing forgotten
--   9  no request is signed with credentials past their expiry
--   10 a credentials source is asked at most once per backoff step
--
--   local failures = require("sim.operator").run(seed)   -- { { invariant, message }, ... }
-- @module sim.operator

local world_mod = require "sim.world"
local refresh = require "streamctl.credentials.refresh"
local audit = require "streamctl.operator.audit"
local cli = require "streamctl.cli"
local zego = require "streamctl.zego"
local aliyun = require "streamctl.aliyun"
local json = require "streamctl.base.json"
local disk_mod = require "sim.disk"

local format = string.format
local ipairs, pairs, pcall, error, sort, concat = ipairs, pairs, pcall, error, table.sort, table.concat
local type, tostring, tonumber = type, tostring, tonumber

local M = {}

--- Totals over every scenario run in this process (make sim prints them).
M.stats = { runs = 0, requests = 0, kills = 0, power_losses = 0, cut = 0, full = 0, refused = 0 }

local T0 = 1800000000

local function fail(out, n, fmt, ...)
  out[#out + 1] = { invariant = n, message = format(fmt, ...) }
end

-- ---- Credentials (9, 10)

-- A source whose every answer is drawn: fresh (a life of 30 s to an hour),
-- stale (expired), near (within the clock's uncertainty) or a failure.
local function credentials(rng, out)
  local now = T0 + rng:int(0, 1000)
  local fetches, streak, last_bad = 0, 0, nil
  local weights = { fresh = rng:between(0.2, 0.9), stale = rng:between(0, 0.3), near = rng:between(0, 0.2),
                    fails = rng:between(0, 0.4) }
  local function fetch()
    fetches = fetches + 1
    -- 10: after a fetch that gave nothing usable, none again within half its backoff step
    -- (the holder's jitter is drawn here in [0.5, 1): each wait is at least half its bound)
    if last_bad and now < last_bad.at + 0.5 * math.min(refresh.RETRY_MAX_S, 2 ^ (last_bad.streak - 1)) then
      fail(out, 10, "credentials: the source was asked again %.2f s after answer %d gave nothing usable (failure %d "
        .. "in a row: at least %.1f s)", now - last_bad.at, fetches - 1, last_bad.streak,
        0.5 * math.min(refresh.RETRY_MAX_S, 2 ^ (last_bad.streak - 1)))
    end
    local total = weights.fresh + weights.stale + weights.near + weights.fails
    local r = rng:float() * total
    local expiration
    if r < weights.fresh then
      streak, last_bad = 0, nil
      expiration = now + rng:int(30, 3600)
    else
      streak = streak + 1
      last_bad = { at = now, streak = streak }
      if r < weights.fresh + weights.stale then
        expiration = now - rng:int(0, 600)
      elseif r < weights.fresh + weights.stale + weights.near then
        expiration = now + rng:between(0, refresh.UNCERTAINTY_S - 0.01)
      else
        return nil, "the metadata service answered 500"
      end
    end
    return { access_key_id = "STS.K" .. fetches, access_key_secret = "s", security_token = "t",
             expiration = expiration }
  end
  local holder = refresh.new { source = "the simulated source", fetch = fetch, clock = function() return now end,
                               random = function() return 0.5 + rng:float() / 2 end }
  for _ = 1, rng:int(20, 120) do
    now = now + (rng:chance(0.3) and rng:between(0, 0.2) or rng:between(0, 90))
    for _ = 1, rng:int(1, 5) do
      local c = holder:get()
      -- 9: what a request would be signed with, now
      if c and now >= c.expiration then
        fail(out, 9, "credentials: %s handed out at %.1f, %.1f s past their expiry", c.access_key_id, now - T0,
          now - c.expiration)
      end
    end
  end
end

-- ---- The command line's runs on a simulated disk (7, 8)
--
-- Each run is the real command (streamctl.cli's main: its audit log through
-- streamctl.operator.audit, reconcile.zego with reconcile.file_store) on the disk of
-- spec/sim/disk.lua, against a provider that records what reached it. A
-- run is killed, or the machine loses its power, before a drawn effect:
-- an append to the audit log (the intent, the outcome), a replace of the
-- state (the pending record, the confirmation), a request leaving, an
-- answer coming back.

local LOG = "/dev/null"                  -- (io.open'd by audit.writer; every write goes to the disk below)
local STATE = "/sim-disk/zego-state.json" -- (only ever read and replaced through the disk)
local APP_ID, SECRET = "1234567890", "0123456789abcdef0123456789abcdef"
local POOL = { "rtc:a", "rtc:b", "rtc:c", "rtc:d", "rtc:e", "rtc:f", "cdn:g", "cdn:h" }
local LOOSE = { "x1", "x2", "x3", "x4", "x5" }  -- the batches' streams (ForbidRTCStreams from the command line)
local DOMAIN, APP = "sim.example.com", "live"
local BLOCKS = {}                                -- Aliyun's reconcile streams (its block list is the state)
for i = 1, 6 do BLOCKS[i] = DOMAIN .. "/" .. APP .. "/s" .. i end

local SINK = { write = function(self) return self end, flush = function() return true end,
               setvbuf = function() return true end }
local NO_SIGNAL = { catch = function() end, caught = function() return nil end }
local ENV = { HOME = "/nonexistent-sim-home", USER = "sim" }
local function getenv(k) return ENV[k] end
local PARSER

-- The line of `log` (its durable part) that is run `run`'s whole intent, decoded; nil when there is none.
local function intent_of(durable, run)
  if not (durable and run) then return nil end
  local tag = '"record":"intent","run":"' .. run .. '"'
  for line in durable:gmatch("([^\n]*)\n") do
    if line:find(tag, 1, true) then
      local rec = json.decode(line)
      if type(rec) == "table" then return rec end
    end
  end
  return nil
end

local function names_stream(rec, name)
  for _, s in ipairs(rec.streams or {}) do if s.stream == name then return true end end
  return rec.streams == nil -- (more than the intent lists one by one: its count and digest only)
end

local Scene = {}

local function new_scene(rng, out)
  local sc = { rng = rng, out = out, now = T0, forbidden = {}, effects = 0, kill_at = nil, run = nil,
               send_fault = 0, kills = 0 }
  sc.disk = disk_mod.new(rng, { effect = function(what) Scene.effect(sc, what) end })
  sc.disk:register(LOG)
  sc.disk:register(STATE)
  return sc
end

function Scene.effect(sc, what)
  sc.effects = sc.effects + 1
  if sc.kill_at and sc.effects == sc.kill_at then error({ killed = what }, 0) end
end

-- A request reaching the provider; 7 checked as it arrives.
function Scene.arrive(sc, key, name, forbid)
  local _, durable = sc.disk:text(LOG)
  local rec = intent_of(durable, sc.run)
  if not rec then
    fail(sc.out, 7, "%s: a %s of %s reached the provider, and run %s's intent is not whole on the disk",
      sc.what, forbid and "forbid" or "resume", key, tostring(sc.run))
  elseif not names_stream(rec, name) then
    fail(sc.out, 7, "%s: a %s of %s reached the provider; run %s's intent does not name it", sc.what,
      forbid and "forbid" or "resume", key, sc.run)
  end
  sc.forbidden[key] = forbid or nil
  M.stats.requests = M.stats.requests + 1
end

-- One stream's request: failed before applying, applied with its answer lost, or applied.
function Scene.change(sc, key, name, forbid)
  Scene.effect(sc, "a request")
  local r = sc.rng:float()
  local res
  if r < sc.send_fault then
    res = { stream = name, ok = false, attempts = 1, error = { code = "InternalError", message = "500" } }
  elseif r < 2 * sc.send_fault then
    Scene.arrive(sc, key, name, forbid)
    res = { stream = name, ok = false, attempts = 1, outcome_unknown = true,
            error = { code = "Timeout", message = "no answer", outcome_unknown = true, sent = true } }
  else
    Scene.arrive(sc, key, name, forbid)
    res = { stream = name, ok = true, attempts = 1, result = { RequestId = "r" } }
  end
  Scene.effect(sc, "an answer")
  return res
end

local function client_of(sc)
  local function batch(forbid)
    return function(_, f)
      local results, counts = {}, { ok = 0, failed = 0, unknown = 0 }
      for i, id in ipairs(f.stream_ids) do
        local r = Scene.change(sc, "rtc:" .. id, sc.mode == "batch" and id or ("rtc:" .. id), forbid)
        r.stream = id
        results[i] = r
        local k = r.ok and "ok" or r.outcome_unknown and "unknown" or "failed"
        counts[k] = counts[k] + 1
        if f.on_progress then f.on_progress(i, #f.stream_ids, r) end
      end
      return { results = results, total = #results, succeeded = counts.ok, failed = counts.failed + counts.unknown,
               unknown = counts.unknown, calls = #results, elapsed = 0, duplicates = 0 }
    end
  end
  local function single(forbid)
    return function(_, f)
      local r = Scene.change(sc, "cdn:" .. f.stream_id, "cdn:" .. f.stream_id, forbid)
      if r.ok then return { RequestId = "r" } end
      return nil, r.error
    end
  end
  return { app_id = tonumber(APP_ID), now = function() return sc.now end, close = function() end,
           forbid_rtc_streams = batch(true), resume_rtc_streams = batch(false),
           forbid_cdn_live_stream = single(true), resume_cdn_live_stream = single(false) }
end

-- An Aliyun client: the block list is what the provider forbids on the domain, a page at a time.
local function aliyun_client_of(sc)
  local function batch(forbid)
    return function(_, f)
      local results, counts = {}, { ok = 0, failed = 0, unknown = 0 }
      for i, name in ipairs(f.stream_names) do
        local key = f.domain_name .. "/" .. f.app_name .. "/" .. name
        local r = Scene.change(sc, key, key, forbid)
        r.stream = name
        results[i] = r
        local k = r.ok and "ok" or r.outcome_unknown and "unknown" or "failed"
        counts[k] = counts[k] + 1
      end
      return { results = results, total = #results, succeeded = counts.ok, failed = counts.failed + counts.unknown,
               unknown = counts.unknown, calls = #results, elapsed = 0, duplicates = 0 }
    end
  end
  local function block_list(_, f)
    Scene.effect(sc, "a read of the block list")
    local urls = {}
    for key in pairs(sc.forbidden) do
      if key:sub(1, #f.domain_name + 1) == f.domain_name .. "/" then urls[#urls + 1] = key end
    end
    sort(urls)
    local page, first = {}, (f.page_number - 1) * f.page_size
    for i = first + 1, math.min(#urls, first + f.page_size) do page[#page + 1] = urls[i] end
    return { StreamUrls = { StreamUrl = page }, TotalNum = #urls, RequestId = "r" }
  end
  return { now = function() return sc.now end, close = function() end, describe_live_streams_block_list = block_list,
           forbid_live_streams = batch(true), resume_live_streams = batch(false) }
end

-- Runs the command `argv` (stdin: `input`), killed before effect `kill_at`
-- (nil: not), then a power loss when `power` is set.
function Scene.run(sc, what, argv, input, kill_at, power)
  sc.what, sc.effects, sc.kill_at, sc.run = what, 0, kill_at, nil
  local stdin = { read = function() return input end, close = function() return true end }
  local ok, r = pcall(cli.main, argv, { stdout = SINK, stderr = SINK, stdin = stdin, getenv = getenv,
                                        signal = NO_SIGNAL })
  local st = M.stats
  st.runs = st.runs + 1
  if not ok then
    if not (type(r) == "table" and r.killed) then error(r, 0) end
    st.kills = st.kills + 1
    if power then sc.disk:power_loss() st.power_losses = st.power_losses + 1 end
  elseif r == 2 then
    st.refused = st.refused + 1 -- (nothing sent: the intent or the state could not be written or read)
  end
  sc.kill_at = nil
end

local COMMON = {
  zego = { "--app-id", APP_ID, "--server-secret", SECRET, "--audit-log", LOG, "--no-progress" },
  aliyun = { "--access-key-id", "LTAIsimulated", "--access-key-secret", "simulated-secret", "--audit-log", LOG,
             "--no-progress" },
}

local function argv_of(head)
  local a = {}
  for _, x in ipairs(head) do a[#a + 1] = x end
  for _, x in ipairs(COMMON[head[1]]) do a[#a + 1] = x end
  return a
end

local function zego_round(sc, what, desired)
  sc.mode = "reconcile"
  return argv_of { "zego", "reconcile", "--from", "-", "--state", STATE, "--remove-extra", "--yes" },
    concat(desired, "\n") .. "\n", what
end

local function aliyun_round(sc, what, desired)
  sc.mode = "reconcile"
  -- (--domain-name: the block list read even when the desired list names none of its streams)
  return argv_of { "aliyun", "reconcile", "--from", "-", "--remove-extra", "--yes", "--domain-name", DOMAIN },
    concat(desired, "\n") .. "\n", what
end

-- 8, convergence: after the clean round, the provider forbids exactly the desired streams of `pool`.
local function check_converged(sc, who, pool, desired)
  local want, got, in_pool = {}, {}, {}
  for _, k in ipairs(pool) do in_pool[k] = true end
  for _, k in ipairs(desired) do want[#want + 1] = k end
  for k in pairs(sc.forbidden) do if in_pool[k] then got[#got + 1] = k end end
  sort(want)
  sort(got)
  if concat(want, " ") ~= concat(got, " ") then
    fail(sc.out, 8, "%s reconcile: after a clean round the provider forbids {%s}, the desired state is {%s}", who,
      concat(got, " "), concat(want, " "))
  end
end

-- 8, "nothing forgotten": every stream of the pool the provider forbids is in the durable state.
local function check_remembered(sc)
  local _, state = sc.disk:text(STATE)
  for _, key in ipairs(POOL) do
    if sc.forbidden[key] and not (state and state:find('\\"' .. key .. '\\"', 1, true)) then
      fail(sc.out, 8, "%s: %s is forbidden at the provider and no state or pending record remembers it",
        sc.what, key)
    end
  end
end

local function rounds(rng, out)
  local sc = new_scene(rng, out)
  local client, aclient = client_of(sc), aliyun_client_of(sc)
  local real_new, real_anew, real_run_id, real_parser = zego.new, aliyun.new, audit.run_id, cli.parser
  zego.new = function() return client end
  aliyun.new = function() return aclient end
  -- (argparse's parser, 3 ms to build, is built once: main sets its error handler each run, and a parse keeps
  -- nothing in it)
  PARSER = PARSER or real_parser()
  cli.parser = function() return PARSER end
  audit.run_id = function()
    local id = real_run_id()
    sc.run = id
    return id
  end
  local restore_disk = sc.disk:install()
  local ok, err = pcall(function()
    local desired, blocked = {}, {}
    for i = 1, rng:int(2, 6) do
      sc.now = sc.now + rng:int(1, 600)
      sc.disk.space = rng:chance(0.25) and rng:int(0, 900) or math.huge
      sc.disk.read_fault = rng:chance(0.15) and 0.5 or 0
      sc.send_fault = rng:chance(0.4) and 0.15 or 0
      local kill_at = rng:chance(0.5) and rng:int(1, 12) or nil
      local power = rng:chance(0.3)
      local r = rng:float()
      if r < 0.3 then
        -- a batch from the command line, on streams the reconcilers never touch
        local list = {}
        for _, id in ipairs(LOOSE) do if rng:chance(0.5) then list[#list + 1] = id end end
        if #list > 0 then
          sc.mode = "batch"
          local argv = argv_of { "zego", rng:chance(0.6) and "forbid-rtc-streams" or "resume-rtc-streams" }
          for _, id in ipairs(list) do argv[#argv + 1] = id end
          Scene.run(sc, format("run %d (a batch)", i), argv, nil, kill_at, power)
        end
      elseif r < 0.5 then
        blocked = {}
        for _, k in ipairs(BLOCKS) do if rng:chance(0.4) then blocked[#blocked + 1] = k end end
        local argv, input, what = aliyun_round(sc, format("run %d (Aliyun reconcile)", i), blocked)
        Scene.run(sc, what, argv, input, kill_at, power)
      else
        desired = {}
        for _, k in ipairs(POOL) do if rng:chance(0.4) then desired[#desired + 1] = k end end
        local argv, input, what = zego_round(sc, format("run %d (ZEGO reconcile)", i), desired)
        Scene.run(sc, what, argv, input, kill_at, power)
        check_remembered(sc)
      end
    end
    -- the clean rounds: no kill, no fault
    sc.now, sc.disk.space, sc.disk.read_fault, sc.send_fault = sc.now + 1, math.huge, 0, 0
    local argv, input, what = zego_round(sc, "the clean ZEGO round", desired)
    Scene.run(sc, what, argv, input)
    check_remembered(sc)
    check_converged(sc, "ZEGO", POOL, desired)
    argv, input, what = aliyun_round(sc, "the clean Aliyun round", blocked)
    Scene.run(sc, what, argv, input)
    check_converged(sc, "Aliyun", BLOCKS, blocked)
  end)
  restore_disk()
  M.stats.cut, M.stats.full = M.stats.cut + sc.disk.cut, M.stats.full + sc.disk.full
  zego.new, aliyun.new, audit.run_id, cli.parser = real_new, real_anew, real_run_id, real_parser
  if not ok then error(err, 0) end
end

--- Runs seed's operator scenario; returns the failures (empty when every
-- invariant held).
function M.run(seed)
  local out = {}
  credentials(world_mod.rng(seed + 3000017), out)
  rounds(world_mod.rng(seed + 4000037), out)
  return out
end

return M
