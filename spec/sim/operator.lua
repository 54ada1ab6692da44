--- The operator's layer in the simulation: each seed also runs, on a
-- virtual clock, a credentials source that expires, rotates, arrives stale
-- and fails under the library's refresh holder, and 2 to 6 runs of the real
-- command line (streamctl.cli's main): ZEGO reconcile rounds (reconcile.zego,
-- its state in reconcile.file_store), Aliyun reconcile rounds (against the
-- block list) and ZEGO batches, their audit log through streamctl.operator.audit, on
-- a simulated disk (sim.disk) that fills, cuts lines short, fails reads and
-- loses what was not durable in a power loss; each run killed before a
-- drawn effect (an append, a state replace, a request, an answer) or not.
-- Their input is drawn dirty as hand-edited lists are (below: "Dirty
-- input"). Then one clean round of each provider. Invariants
-- (docs/development/simulation.md):
--
--   7  every request that reached the provider belongs to a run whose
--      intent was durable before it left
--   8  after any crash the next clean round converges: the provider forbids
--      exactly the desired streams, nothing forgotten
--   9  no request is signed with credentials past their expiry
--   10 a credentials source is asked at most once per backoff step
--   11 no stream changes in a direction a valid reading of the run's input
--      did not ask for (a line that breaks a rule: nothing changes), nor
--      more of them than the guard allows without --yes
--   12 a closed output stops sending: no stream of a batch reaches the
--      provider after a write to standard output failed
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
local input = require "streamctl.cli.input"

local format = string.format
local ipairs, pairs, pcall, error, sort, concat = ipairs, pairs, pcall, error, table.sort, table.concat
local type, tostring, tonumber = type, tostring, tonumber

local M = {}

--- Totals over every scenario run in this process (make sim prints them).
M.stats = { runs = 0, requests = 0, kills = 0, power_losses = 0, cut = 0, full = 0, refused = 0,
            dirty = 0, empty = 0, changed = 0, streamed = 0, closed = 0, checks = 0, over_resume = 0,
            over_resume_yes = 0 }

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

local LOG = "/sim-disk/audit.log"        -- (made, appended to and read only through the disk)
local STATE = "/sim-disk/zego-state.json" -- (only ever read and replaced through the disk)
local APP_ID, SECRET = "1234567890", "0123456789abcdef0123456789abcdef"
-- (every name holds a '-', which a look-alike can stand in for)
local POOL = { "rtc:s-a", "rtc:s-b", "rtc:s-c", "rtc:s-d", "rtc:s-e", "rtc:s-f", "cdn:s-g", "cdn:s-h" }
local LOOSE = { "x-1", "x-2", "x-3", "x-4", "x-5" } -- the batches' streams (ForbidRTCStreams from the command line)
local DOMAIN, APP = "sim.example.com", "live"
local BLOCKS = {}                                -- Aliyun's reconcile streams (its block list is the state)
for i = 1, 6 do BLOCKS[i] = DOMAIN .. "/" .. APP .. "/s-" .. i end

local DEBUG = os.getenv("SIM_DEBUG") -- (set: what the command says goes to standard error)
local SINK = { write = function(self, ...) if DEBUG then io.stderr:write(...) end return self end,
               flush = function() return true end,
               setvbuf = function() return true end }
local NO_SIGNAL = { catch = function() end, caught = function() return nil end }
-- (the machine's decision file, on the simulated disk: streamctl.store.decisionfile)
local DECISIONS = "/sim-disk/decisions"
local ENV = { HOME = "/nonexistent-sim-home", USER = "sim", STREAMCTL_DECISION_FILE = DECISIONS }
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
               send_fault = 0, kills = 0, applied = {}, block = input.BLOCK }
  sc.disk = disk_mod.new(rng, { effect = function(what) Scene.effect(sc, what) end })
  sc.disk:register(LOG)
  sc.disk:register(STATE)
  sc.disk:register(DECISIONS)
  sc.disk:register(DECISIONS .. ".lock") -- (made before it is locked: core.private_file)
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
  sc.applied[#sc.applied + 1] = { key = key, forbid = forbid } -- (11: what this run changed)
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

-- A real client of each provider, made once: its `check` (every field by
-- its rule, before the command's intent) is the fake clients' own.
local CHECKERS = {}
local function checker(provider)
  if not CHECKERS[provider] then
    CHECKERS[provider] = provider == "zego" and zego.new { app_id = tonumber(APP_ID), server_secret = SECRET }
      or aliyun.new { access_key_id = "LTAIsimulated", access_key_secret = "simulated-secret" }
  end
  local real = CHECKERS[provider]
  return function(_, name, fields) return real:check(name, fields) end
end

-- A fake client's methods, each refusing what the real one refuses before
-- sending (a field that breaks its rule: InvalidParameter, nothing sent).
local function checked(provider, methods)
  local check = checker(provider)
  for name, fn in pairs(methods) do
    methods[name] = function(self, f)
      if type(f.stream_ids or f.stream_names) ~= "function" then
        local ok, err = check(self, name, f)
        if not ok then return nil, err end
      end
      return fn(self, f)
    end
  end
  return methods
end

local function client_of(sc)
  -- (as the library's batch: a list or a function read as it goes, each
  -- stream once, `cancel` looked at before each request: the rest then
  -- Interrupted, not sent)
  local function batch(forbid)
    return function(_, f)
      local results, counts, seen, dups, total, i = {}, { ok = 0, failed = 0, unknown = 0 }, {}, 0, 0, 0
      local list, n = f.stream_ids, nil
      local next_id = type(list) == "function" and list or function()
        i = i + 1
        return list[i]
      end
      if type(list) == "table" then n = #list end
      while true do
        local id = next_id()
        if id == nil then break end
        if seen[id] then
          dups = dups + 1
          if f.on_duplicate then f.on_duplicate(id) end
        else
          seen[id] = true
          total = total + 1
          local r
          if sc.cancel and sc.cancel() then
            r = { ok = false, attempts = 0, error = { code = "Interrupted", message = "cancelled", sent = false } }
          else
            r = Scene.change(sc, "rtc:" .. id, sc.mode == "batch" and id or ("rtc:" .. id), forbid)
          end
          r.stream = id
          if f.keep_results ~= false then results[#results + 1] = r end
          local k = r.ok and "ok" or r.outcome_unknown and "unknown" or "failed"
          counts[k] = counts[k] + 1
          if f.on_result then f.on_result(r) end
          if f.on_progress then f.on_progress(total, n or total, r) end
        end
      end
      return { results = results, total = total, succeeded = counts.ok, failed = counts.failed + counts.unknown,
               unknown = counts.unknown, calls = total, elapsed = 0, duplicates = dups }
    end
  end
  local function single(forbid)
    return function(_, f)
      local r = Scene.change(sc, "cdn:" .. f.stream_id, "cdn:" .. f.stream_id, forbid)
      if r.ok then return { RequestId = "r" } end
      return nil, r.error
    end
  end
  local c = checked("zego", { forbid_rtc_streams = batch(true), resume_rtc_streams = batch(false),
                              forbid_cdn_live_stream = single(true), resume_cdn_live_stream = single(false) })
  c.app_id, c.now, c.close, c.check = tonumber(APP_ID), function() return sc.now end, function() end, checker("zego")
  return c
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
  local c = checked("aliyun", { forbid_live_streams = batch(true), resume_live_streams = batch(false) })
  c.now, c.close, c.check = function() return sc.now end, function() end, checker("aliyun")
  c.describe_live_streams_block_list = block_list
  -- (the account's domains, for the block list's places: those the scene's forbids are on)
  c.describe_live_user_domains = function()
    Scene.effect(sc, "a read of the account's domains")
    local seen, list = {}, {}
    for key in pairs(sc.forbidden) do
      local d = key:match("^([^/]+)/")
      if d and not seen[d] then seen[d] = true; list[#list + 1] = { DomainName = d } end
    end
    sort(list, function(a, b) return a.DomainName < b.DomainName end)
    return { TotalCount = #list, Domains = { PageData = list }, RequestId = "r" }
  end
  return c
end

-- Standard input: a pipe read once, or (`file`) a regular file, which the
-- command may read twice; its text becomes `changed` (when given) at its
-- second rewind, between the count and the sending.
local function stdin_of(text, file, changed)
  local pos, rewinds = 1, 0
  local f = { close = function() return true end }
  function f.read(_, what)
    if what == "*a" or what == "a" then
      local rest = text:sub(pos)
      pos = #text + 1
      return rest
    end
    if pos > #text then return nil end
    local block = text:sub(pos, pos + what - 1)
    pos = pos + #block
    return block
  end
  if file then
    function f.seek(_, whence, off)
      if whence == "set" then
        rewinds = rewinds + 1
        if rewinds == 2 and changed then text = changed end
        pos = (off or 0) + 1
      end
      return pos - 1
    end
    function f.setvbuf() return true end
  end
  return f
end

-- Standard output: written to nowhere, or, after `close_after` writes, a
-- pipe whose reader is gone (each write then fails: SIGPIPE is ignored);
-- the first failed write marks how many streams had reached the provider.
local function stdout_of(sc, close_after)
  local writes, o = 0, { setvbuf = function() return true end }
  local function closed()
    if close_after and writes > close_after then
      sc.closed_at = sc.closed_at or #sc.applied
      return true
    end
  end
  function o.write(self, ...)
    writes = writes + 1
    if closed() then return nil, "Broken pipe", 32 end
    return SINK.write(self, ...)
  end
  function o.flush()
    if closed() then return nil, "Broken pipe", 32 end
    return true
  end
  return o
end

-- Runs the command `argv` (standard input: `stdin`), killed before effect
-- `kill_at` (nil: not), then a power loss when `power` is set.
function Scene.run(sc, what, argv, stdin, kill_at, power)
  sc.what, sc.effects, sc.kill_at, sc.run, sc.applied, sc.closed_at = what, 0, kill_at, nil, {}, nil
  sc.disk:release() -- (a process killed before this one held no lock after it)
  input.BLOCK = sc.block
  local said = {}
  sc.said = said
  local stderr = { write = function(self, ...)
    for _, x in ipairs { ... } do said[#said + 1] = x end
    return SINK.write(self, ...)
  end, flush = SINK.flush, setvbuf = SINK.setvbuf }
  local ok, r = pcall(cli.main, argv, { stdout = stdout_of(sc, sc.close_after), stderr = stderr,
                                        stdin = stdin or stdin_of(""), getenv = getenv, signal = NO_SIGNAL })
  sc.close_after = nil
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

-- ---- Dirty input, and what a valid reading of it asks for (11)
--
-- The operator's lists are drawn as hand-edited files are: blank lines,
-- comment lines, surrounding blanks and CRLF endings (all valid), and, in
-- a dirty round, names that break their field's rule: a comment after a
-- name, a look-alike of '-', an invisible character, a trailing no-break
-- space. A reconcile's list may be empty or comments only, with or without
-- --allow-empty; its flags (--remove-extra, --yes, --max-forbid,
-- --max-resume) are drawn. A batch names its streams on the command line
-- or reads them from standard input: a pipe, or a file (input.LOOKAHEAD
-- and input.BLOCK lowered here, so that a list of 4 names is read as it
-- goes, and a file is read twice in blocks of a few bytes) that may change
-- between the count and the sending. 11 then holds each run's changes, as
-- the provider model recorded them, to what the input asked for, computed
-- here by the command's line rules (not the library's parser).

local BOM = "\239\187\191"
local LOOKALIKE = { "\226\128\144", "\226\128\145", "\226\136\146" } -- U+2010, U+2011 (hyphens), U+2212 (minus)
local INVISIBLE = { "\226\128\139", "\226\128\141", BOM }             -- U+200B, U+200D, U+FEFF
local NBSP = "\194\160"                                                 -- U+00A0
local COMMENTS = { " # keep this one forbidden", " #keep", "\t# moderation, ticket 4711", "#x", " # " }
local LOOKAHEAD, BLOCKS_OF = 3, { 5, 8, 13, 64 } -- (input.LOOKAHEAD, input.BLOCK for this scenario)

-- A name broken the way a hand edit breaks it.
local function dirty_name(rng, name)
  local k = rng:int(1, 4)
  if k == 1 then return name .. rng:pick(COMMENTS) end
  if k == 2 then
    local a = name:find("-", 1, true)
    return name:sub(1, a - 1) .. rng:pick(LOOKALIKE) .. name:sub(a + 1)
  end
  if k == 3 then
    local at = rng:int(0, #name)
    return name:sub(1, at) .. rng:pick(INVISIBLE) .. name:sub(at + 1)
  end
  return name .. NBSP .. (rng:chance(0.5) and " " or "")
end

-- A list of `names` as a file holds it; each name broken with chance `p`. The text, and how many were broken.
local function list_text(rng, names, p)
  local lines, broken = {}, 0
  if rng:chance(0.2) then lines[1] = "# the streams to keep forbidden" end
  for _, n in ipairs(names) do
    if rng:chance(0.1) then lines[#lines + 1] = rng:pick { "", "   ", "# a comment", "  # an indented comment" } end
    if rng:chance(p) then
      lines[#lines + 1] = dirty_name(rng, n)
      broken = broken + 1
    else
      local r = rng:float()
      lines[#lines + 1] = r < 0.15 and "  " .. n or r < 0.3 and n .. " \t" or r < 0.4 and n .. "\r" or n
    end
  end
  return concat(lines, "\n") .. "\n", broken
end

local EMPTY = { "", "\n", "# nothing to forbid today\n", "\n  \n# a comment\n", "[]", "[ ]\n" }

local function good_name(s)
  return #s > 0 and #s <= 256 and s:find("^[%w_%-]+$") ~= nil
end

-- The keys of a line of each kind of list (nil: the line breaks a rule).
local KEY = {
  zego = function(line)
    local kind, id = line:match("^(%a%a%a):(.*)$")
    if kind ~= "rtc" and kind ~= "cdn" then kind, id = "rtc", line end
    return good_name(id) and kind .. ":" .. id or nil
  end,
  aliyun = function(line)
    local d, a, s = line:match("^([^/]*)/([^/]*)/(.*)$")
    return d and d:find("^[%l%d][%l%d%.%-]*[%l%d]$") and good_name(a) and good_name(s) and line or nil
  end,
  batch = function(line) return good_name(line) and "rtc:" .. line or nil end,
}

-- The valid reading of `text` by the command's line rules: a byte order
-- mark at the top skipped, blanks around a line trimmed, blank lines and
-- lines starting with '#' skipped, every other line a name by its field's
-- rule (a reconcile's list may also be the JSON array `[]`). Returns the
-- keys in order and the byte each one's line ends at; or nil, the number of
-- the first name that breaks a rule, and the keys before it.
local function reading(kind, text)
  local keys, ends, skip = {}, {}, 0
  if text:sub(1, 3) == BOM then text, skip = text:sub(4), 3 end
  if kind ~= "batch" and text:find("^%s*%[") then
    if text:find("^%s*%[%s*%]%s*$") then return keys, ends end
    return nil, 1, keys
  end
  local pos = 1
  while pos <= #text do
    local e = text:find("\n", pos, true) or #text + 1
    local line = text:sub(pos, e - 1):match("^%s*(.-)%s*$")
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local key = KEY[kind](line)
      if not key then return nil, #keys + 1, keys end
      keys[#keys + 1], ends[#keys + 1] = key, e + skip
    end
    pos = e + 1
  end
  return keys, ends
end

local function set_of(list)
  local set, n = {}, 0
  for _, k in ipairs(list) do
    if not set[k] then set[k], n = true, n + 1 end
  end
  return set, n
end

-- 11: every stream the run changed (the provider's record of it), in the
-- direction the valid reading of its input asked for, and no more of them
-- than its guard allows. `allow`: { forbid = set, resume = set,
-- max_forbid, max_resume (nil: --yes), said = what the input was }.
local function check_asked(sc, allow)
  M.stats.checks = M.stats.checks + 1
  if DEBUG then io.stderr:write(format("== %s: %s; %d changes\n", sc.what, allow.said, #sc.applied)) end
  local changed = { [true] = {}, [false] = {} }
  local n = { [true] = 0, [false] = 0 }
  for _, a in ipairs(sc.applied) do
    local dir = a.forbid and "forbid" or "resume"
    if not allow[dir][a.key] then
      return fail(sc.out, 11, "%s: a %s of %s reached the provider, which a valid reading of its input (%s) does not "
        .. "ask for", sc.what, dir, a.key, allow.said)
    end
    if not changed[a.forbid][a.key] then changed[a.forbid][a.key], n[a.forbid] = true, n[a.forbid] + 1 end
  end
  for _, d in ipairs { { true, "forbid", allow.max_forbid }, { false, "resume", allow.max_resume } } do
    if d[3] and n[d[1]] > d[3] then
      return fail(sc.out, 11, "%s: %d streams %sd without --yes, more than --max-%s (%d) allows (%s)", sc.what,
        n[d[1]], d[2], d[2], d[3], allow.said)
    end
  end
  -- 12: a closed output stops sending
  if sc.closed_at and #sc.applied > sc.closed_at then
    fail(sc.out, 12, "%s: %d streams reached the provider after a write to standard output failed (its reader gone)",
      sc.what, #sc.applied - sc.closed_at)
  end
end

local NOTHING = {}

-- A reconcile round's flags, drawn (the clean rounds: --remove-extra --yes --allow-empty).
local function round_flags(rng, clean)
  if clean then return { remove_extra = true, yes = true, allow_empty = true } end
  return { remove_extra = rng:chance(0.85), yes = rng:chance(0.5), allow_empty = rng:chance(0.5),
           max_forbid = rng:chance(0.25) and rng:int(0, 5) or nil,
           max_resume = rng:chance(0.7) and rng:int(0, 2) or nil }
end

local function flag_args(argv, f)
  if f.remove_extra then argv[#argv + 1] = "--remove-extra" end
  if f.yes then argv[#argv + 1] = "--yes" end
  if f.allow_empty then argv[#argv + 1] = "--allow-empty" end
  if f.max_forbid then argv[#argv + 1] = "--max-forbid=" .. f.max_forbid end
  if f.max_resume then argv[#argv + 1] = "--max-resume=" .. f.max_resume end
  return argv
end

-- What a reconcile round over `scope` (the streams it may find forbidden)
-- may change, given its text and flags: nothing when a line breaks a rule;
-- the desired streams forbidden; with --remove-extra and a list that is
-- not empty (or --allow-empty), the others resumed; no more than the guard
-- allows without --yes (`before`: the provider's forbidden streams, which
-- the round reads whole: the guard's exact count; nil for ZEGO, whose
-- round counts what its state holds).
local function reconcile_allows(kind, text, f, scope, before)
  local keys, bad = reading(kind, text)
  if not keys then
    return { forbid = NOTHING, resume = NOTHING, said = format("its name %d breaks a rule: nothing may change", bad) }
  end
  local want, n = set_of(keys)
  local allow = { forbid = want, resume = {}, said = format("%d streams desired%s%s", n,
    f.remove_extra and ", --remove-extra" or "", f.allow_empty and ", --allow-empty" or "") }
  if not f.yes then allow.max_forbid, allow.max_resume = f.max_forbid or audit.MAX_FORBID, f.max_resume
    or audit.MAX_RESUME end
  if n == 0 and f.remove_extra and not f.allow_empty then
    allow.resume, allow.said = NOTHING, "empty, --remove-extra without --allow-empty: nothing may change"
  elseif f.remove_extra then
    for _, k in ipairs(scope) do if not want[k] then allow.resume[k] = true end end
  end
  if before and not f.yes then
    local missing, extra = 0, 0
    for k in pairs(want) do if not before[k] then missing = missing + 1 end end
    for _, k in ipairs(scope) do if before[k] and not want[k] then extra = extra + 1 end end
    if missing > allow.max_forbid or (f.remove_extra and extra > allow.max_resume) then
      allow.forbid, allow.resume = NOTHING, NOTHING
      allow.said = allow.said .. format(": %d to forbid and %d to resume, over the guard: nothing may change",
        missing, f.remove_extra and extra or 0)
    end
  end
  return allow
end

-- A reconcile round of `who` ("zego", "aliyun") to `names` (their keys:
-- the list's lines), dirty with chance `p` a name; runs it and checks 11.
local function reconcile_round(sc, who, what, names, p, kill_at, power)
  local rng, st = sc.rng, M.stats
  local clean = p == nil
  local f = round_flags(rng, clean)
  local text, broken
  if not clean and rng:chance(0.1) then
    text, broken = rng:pick(EMPTY), 0
    st.empty = st.empty + 1
  else
    local lines = {}
    for i, k in ipairs(names) do
      -- (a ZEGO RTC stream is its ID alone, or rtc:ID)
      lines[i] = who == "zego" and k:sub(1, 4) == "rtc:" and rng:chance(0.5) and k:sub(5) or k
    end
    text, broken = list_text(rng, lines, p or 0)
  end
  if broken > 0 then st.dirty = st.dirty + 1 end
  local argv = who == "zego" and argv_of { "zego", "reconcile", "--from", "-", "--state", STATE }
    or argv_of { "aliyun", "reconcile", "--from", "-", "--domain-name", DOMAIN }
  flag_args(argv, f)
  local before
  if who == "aliyun" then
    before = {}
    for k in pairs(sc.forbidden) do before[k] = true end
  end
  local allow = reconcile_allows(who, text, f, who == "zego" and POOL or BLOCKS, before)
  sc.mode = "reconcile"
  Scene.run(sc, what, argv, stdin_of(text), kill_at, power)
  check_asked(sc, allow)
  -- (how often the resumes were over a drawn --max-resume: refused, or sent with --yes)
  if concat(sc.said):find("more than --max-resume", 1, true) then st.over_resume = st.over_resume + 1 end
  local resumed = 0
  for _, a in ipairs(sc.applied) do if not a.forbid then resumed = resumed + 1 end end
  if f.yes and f.max_resume and resumed > f.max_resume then st.over_resume_yes = st.over_resume_yes + 1 end
end

-- A batch from the command line, on streams the reconcilers never touch:
-- its names on the command line, or from standard input (a pipe, or a file
-- that may change between its reads), dirty with chance `p` a name.
local function batch_round(sc, what, p, kill_at, power)
  local rng, st = sc.rng, M.stats
  local forbid = rng:chance(0.6)
  local names = {}
  for _ = 1, rng:int(1, 8) do names[#names + 1] = rng:pick(LOOSE) end
  local argv = argv_of { "zego", forbid and "forbid-rtc-streams" or "resume-rtc-streams" }
  local yes, limit = rng:chance(0.5), rng:chance(0.4) and rng:int(0, 4) or nil
  if yes then argv[#argv + 1] = "--yes" end
  if limit then argv[#argv + 1] = format("--max-%s=%d", forbid and "forbid" or "resume", limit) end
  if rng:chance(0.3) then argv[#argv + 1] = "--output=json" end
  local dir = forbid and "forbid" or "resume"
  local allow = { forbid = NOTHING, resume = NOTHING, said = "" }
  local max = not yes and (limit or (forbid and audit.MAX_FORBID or audit.MAX_RESUME)) or nil
  allow["max_" .. dir] = max
  local stdin, keys, bad, ends, text, broken
  local how = rng:float()
  local counted -- (what the guard counts: every name of a list read whole or counted first)
  if how < 0.4 then
    -- on the command line (no trimming, no comments: each argument is a name)
    broken, keys = 0, {}
    for _, n in ipairs(names) do
      local given = n
      if rng:chance(p) then given, broken = dirty_name(rng, n), broken + 1 end
      argv[#argv + 1] = given
      if not good_name(given) then bad = true end
      keys[#keys + 1] = "rtc:" .. given
    end
    allow.said = format("%d names on the command line%s", #keys, bad and ", one breaking its rule" or "")
    if bad then keys = {} end
    counted = keys
  else
    argv[#argv + 1] = "--from=-"
    text, broken = list_text(rng, names, p)
    local file = how >= 0.65
    local changed
    if file and rng:chance(0.6) then
      -- changed between the count and the sending: a name replaced by one the list does not hold, or cut, or grown
      local r = rng:float()
      if r < 0.6 then
        local lines = {}
        for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
        lines[rng:int(1, #lines)] = rng:pick { "x-6", "x-7", "x-8", "x-9" }
        changed = concat(lines, "\n") .. "\n"
      elseif r < 0.8 then
        -- (cut short: as often at a block's end, where a writer that flushes in blocks leaves it)
        changed = text:sub(1, rng:chance(0.5) and sc.block * rng:int(0, math.floor((#text - 1) / sc.block))
          or rng:int(0, #text - 1))
      else
        changed = text .. "x-6\nx-7\n"
      end
      if changed == text then changed = nil end
    end
    stdin = stdin_of(text, file, changed)
    local all, x, y = reading("batch", text)
    local first_bad
    if all then keys, ends = all, x else keys, first_bad = y, x end
    local streamed = #keys + (all and 0 or 1) > LOOKAHEAD
    counted = keys
    allow.said = format("%d names from %s%s", #keys, file and "a file" or "a pipe",
      all and "" or format(", name %d breaking its rule", first_bad))
    if not all and (first_bad <= LOOKAHEAD + 1 or file) then
      keys = {} -- (refused before anything is sent: in the look-ahead, or counted first)
    elseif streamed and not file and not yes then
      keys, allow.said = {}, allow.said .. ", read as it goes without --yes"
    elseif streamed and changed then
      -- only what was counted, up to the first block that differs
      st.changed = st.changed + 1
      local i = 1
      while i <= #text and text:byte(i) == changed:byte(i) do i = i + 1 end
      local block = math.floor((i - 1) / sc.block)
      local kept = {}
      for k, key in ipairs(keys) do
        if i > #text or ends[k] <= block * sc.block then kept[#kept + 1] = key end
      end
      keys, allow.said = kept, allow.said .. format(", changed at byte %d after it was counted (blocks of %d)", i,
        sc.block)
    end
    if streamed then st.streamed = st.streamed + 1 end
    if streamed and not file then counted = nil end -- (not known before sending: --yes, or refused above)
  end
  if broken > 0 then st.dirty = st.dirty + 1 end
  allow[dir] = set_of(keys)
  if max and counted and select(2, set_of(counted)) > max then
    allow[dir], allow.said = NOTHING, allow.said .. ", over the guard: nothing may change"
  end
  sc.mode = "batch"
  if rng:chance(0.25) then sc.close_after = rng:int(0, 3) st.closed = st.closed + 1 end
  Scene.run(sc, what, argv, stdin, kill_at, power)
  check_asked(sc, allow)
end

local function pick_some(rng, list, p)
  local some = {}
  for _, k in ipairs(list) do if rng:chance(p) then some[#some + 1] = k end end
  return some
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
  local real_lookahead, real_block = input.LOOKAHEAD, input.BLOCK
  zego.new = function(opts) sc.cancel = opts and opts.cancel return client end
  aliyun.new = function(opts) sc.cancel = opts and opts.cancel return aclient end
  input.LOOKAHEAD = LOOKAHEAD
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
      sc.block = rng:pick(BLOCKS_OF)
      local kill_at = rng:chance(0.5) and rng:int(1, 12) or nil
      local power = rng:chance(0.3)
      -- (a dirty round: each name broken with this chance)
      local p = rng:chance(0.35) and rng:pick { 0.2, 0.5, 1 } or 0
      local r = rng:float()
      if r < 0.3 then
        batch_round(sc, format("run %d (a batch)", i), p, kill_at, power)
      elseif r < 0.5 then
        blocked = pick_some(rng, BLOCKS, 0.4)
        reconcile_round(sc, "aliyun", format("run %d (Aliyun reconcile)", i), blocked, p, kill_at, power)
      else
        desired = pick_some(rng, POOL, 0.4)
        reconcile_round(sc, "zego", format("run %d (ZEGO reconcile)", i), desired, p, kill_at, power)
        check_remembered(sc)
      end
    end
    -- the clean rounds: no kill, no fault, --remove-extra --yes
    sc.now, sc.disk.space, sc.disk.read_fault, sc.send_fault = sc.now + 1, math.huge, 0, 0
    reconcile_round(sc, "zego", "the clean ZEGO round", desired)
    check_remembered(sc)
    check_converged(sc, "ZEGO", POOL, desired)
    reconcile_round(sc, "aliyun", "the clean Aliyun round", blocked)
    check_converged(sc, "Aliyun", BLOCKS, blocked)
  end)
  restore_disk()
  M.stats.cut, M.stats.full = M.stats.cut + sc.disk.cut, M.stats.full + sc.disk.full
  zego.new, aliyun.new, audit.run_id, cli.parser = real_new, real_anew, real_run_id, real_parser
  input.LOOKAHEAD, input.BLOCK = real_lookahead, real_block
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
