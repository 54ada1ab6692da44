--- Stores in an nginx shared dict (`lua_shared_dict`), shared by every worker
-- of one nginx: one rate-limit budget and one ZEGO Sequence per stream for the
-- whole server, not one per worker.
--
--   lua_shared_dict streamctl 10m;          # nginx.conf, http block
--
--   local client = streamctl.zego.new { shared_dict = "streamctl", ... }
--
-- A client's `shared_dict` option uses both stores below; they can also be
-- handed to `streamctl.engine.ratelimit.new{ store = }` and
-- `streamctl.engine.sequence.new{ store = }` directly.
--
-- Rate limits (`ratelimit_store`): a store with `reserve`. Each budget is one
-- entry, "born tat" (the monotonic clock, which every worker shares and a
-- reload does not reset), read and written under a per-key lock taken with
-- the dict's atomic `add` (a key that expires after `LOCK_TTL` seconds, so a
-- worker that dies holding it cannot stop the others for longer) and
-- released with `delete`; `ngx.shared` has no compare-and-set and `incr`
-- cannot express `max(tat, now) + T`. A worker that finds the lock taken
-- waits 1 ms (`ngx.sleep` where Lua can yield: streamctl.base.nginx) or spins
-- where it cannot (init_by_lua, init_worker, a log phase...; the work under
-- the lock takes microseconds). lua-resty-lock does the same, but is not
-- packaged for Debian. A missing or implausible entry is lost state: the
-- budget waits `LOSS_PAUSE` (see `ratelimit_store`).
--
-- Sequences (`sequence_store`): one counter per AppId moved with `incr`
-- (atomic, no lock) to max(now_ms, counter + 1), and one `set` per stream
-- (see `sequence_store`).
--
-- Room: about 130 bytes per ZEGO stream used in the last minute (stream IDs
-- up to 32 bytes; 260 beyond) and 260 per budget (provider, account,
-- action), as spec/66 measures: `lua_shared_dict streamctl 10m` holds about
-- 80,000 streams. A full dict evicts by LRU; what it evicts is found missing
-- and treated as lost, and the first eviction is said once per worker.
--
-- Rooms (streamctl.engine.room): "room:" .. the limiter's key holds "w t0"
-- (monotonic seconds) after a throttle cut the budget's room, for as long as
-- the room is not whole again; every worker's reservations are spaced at
-- interval / room, so all of them slow and recover together.
--
-- Keys: "rl:" .. the limiter's key, "room:" .. it, "lock:rl:" .. the limiter's key,
-- "seqg:" .. a prefix (the provider and AppId), and "seq:" .. the prefix ..
-- the stream ID.
-- @module streamctl.store.shdict

-- luacheck: globals ngx
local type, error, tostring, tonumber, pcall, rawget, setmetatable =
  type, error, tostring, tonumber, pcall, rawget, setmetatable
local format, match = string.format, string.match

local ratelimit = require "streamctl.engine.ratelimit"
local sequence = require "streamctl.engine.sequence"
local room = require "streamctl.engine.room"
local nginx = require "streamctl.base.nginx"
local validate = require "streamctl.base.validate"

local M = {}

-- How long a rate-limit lock may be held before it expires by itself, in
-- seconds. The work under it takes microseconds.
local LOCK_TTL = 0.5

--- How long a waiter tries for the lock before it gives up, in seconds.
M.LOCK_WAIT = 2

--- The longest horizon a reservation commits ahead (the limiter's:
-- streamctl.engine.ratelimit.MAX_HORIZON).
M.MAX_HORIZON = ratelimit.MAX_HORIZON

--- How long a stream's Sequence entry and the AppId's counter live after
-- their last use, in seconds: a minute, what streamctl.engine.sequence's store
-- contract asks (its KEEP_MS; spec/66 checks they agree). The store's own
-- setting: the generator's logic is streamctl.engine.sequence's, not this module's.
M.SEQUENCE_TTL = 60

--- The backend's rule for the client option `shared_dict`
-- (streamctl.pipeline.stores' contract): the dict, or nil and why.
function M.open(name)
  if type(name) ~= "string" or name == "" then return nil, "must be the name of a lua_shared_dict" end
  local shared = rawget(_G, "ngx") and ngx.shared
  if not shared then
    return nil, "needs nginx with lua-nginx-module (a lua_shared_dict); outside nginx, leave it out"
  end
  local dict = shared[name]
  if not dict then
    return nil, "names no shared dict: nginx.conf needs 'lua_shared_dict " .. name .. " 10m;' in its http block"
  end
  return dict
end

local function check_dict(dict, fname)
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("bad argument #1 to '" .. fname .. "' (an ngx.shared dict expected, got " .. type(dict) .. ")", 3)
  end
end

-- The stores' options (the sequence store keeps no time: it takes the contract's `monotonic` and uses none).
local RATELIMIT_OPTIONS = {
  { name = "log", type = "function" },
  { name = "name", type = "string" },
  { name = "clock", type = "function" },
  { name = "monotonic", type = "function" }, -- (the store contract's name for `clock`)
}
-- (`monotonic`: the contract hands every store its clock; this one keeps no time)
local SEQUENCE_OPTIONS = { RATELIMIT_OPTIONS[1], RATELIMIT_OPTIONS[2], RATELIMIT_OPTIONS[4] }

-- A store's options checked (streamctl.base.errors' convention): the values, or
-- nil and an InvalidParameter error object; options that are not a table
-- raise, blamed on the store's caller (argument `argn`).
local function options(schema, opts, fname, argn)
  -- (not a tail call: the raise is blamed two frames up, on the store's caller)
  local values, err = validate.construct(schema, opts, "streamctl.store.shdict." .. fname, fname, argn, 4)
  return values, err
end

-- Releases `lock`, then returns what pcall(fn) gave, or raises its error.
local function release(dict, lock, ok, ...)
  dict:delete(lock)
  if not ok then error((...), 0) end
  return ...
end

-- A line for nginx's error log (standard error outside nginx).
local default_log = require("streamctl.base.log").warn

-- Tells, once per dict and process, that the dict is full: a write evicted
-- live entries (`forcible`) or found no room at all.
local full_told = setmetatable({}, { __mode = "k" })
local function tell_full(dict, name, log, what)
  if full_told[dict] then return end
  full_told[dict] = true
  log(format("streamctl: the shared dict%s is full: %s; what it forgot is treated as lost (the budget "
    .. "waits %g s, as after a restart); give it more room (lua_shared_dict ... 10m holds about 80,000 "
    .. "streams; see docs/openresty.md in streamctl)", name and (" '" .. name .. "'") or "", what, M.LOSS_PAUSE))
end

--- How long (seconds) nothing is sent on a budget whose state the dict
-- cannot vouch for (first use since nginx started, an entry evicted or
-- implausible): the limiter's streamctl.engine.ratelimit.LOSS_PAUSE.
M.LOSS_PAUSE = ratelimit.LOSS_PAUSE

-- A number read from the dict by its rule: finite, within lo..hi; or nil.
local function within(v, lo, hi)
  v = tonumber(v)
  if v and v == v and v >= lo and v <= hi then return v end
  return nil
end

-- A budget's entry, "born tat", read: born and tat (monotonic seconds), or
-- why the budget must start afresh (the entry is missing, unreadable, or
-- further ahead than any worker reserves) and, when the entry broke its
-- rule, true (said even by a worker that did not know the budget).
local function read_budget(dict, k, now, interval, tau)
  local v = dict:get(k)
  local born, tat
  if type(v) == "string" then born, tat = match(v, "^(%S+) (%S+)$") end
  born, tat = within(born, -1e15, 1e15), within(tat, -1e15, 1e15)
  if not born or not tat then
    if v == nil then return nil, nil, "its entry is gone (nginx started, or the dict evicted it)" end
    return nil, nil, format("its entry %s holds a value that cannot be right ('%s')", k, tostring(v):sub(1, 60)), true
  elseif born > now + 0.1 or tat > now + 2 * M.LOSS_PAUSE + tau + 2 * interval then
    return nil, nil, "its entry lies further ahead than any worker reserves"
  end
  return born, tat
end

-- Writes a budget's entry; false (said once) when the dict has no room.
local function write_budget(dict, k, born, tat, name, log)
  local ok, err, forcible = dict:set(k, format("%.6f %.6f", born, tat))
  if forcible then tell_full(dict, name, log, "writing a budget evicted other entries") end
  if not ok then
    tell_full(dict, name, log, "no room for a budget (" .. tostring(err) .. ")")
    return nil, "shared dict set: " .. tostring(err)
  end
  return true
end

-- Takes the per-key lock ("lock:rl:" .. key, expiring after LOCK_TTL),
-- runs fn under it and releases it; nil, err when it cannot be had within
-- LOCK_WAIT. A waiter sleeps 1 ms where nginx can yield, else spins.
local function atomically(dict, key, fn, monotonic, name, log)
  local lock = "lock:rl:" .. key
  local deadline
  while true do
    local ok, err, forcible = dict:add(lock, true, LOCK_TTL)
    if forcible then tell_full(dict, name, log, "taking a lock evicted other entries") end
    if ok then return release(dict, lock, pcall(fn)) end
    if err ~= "exists" then return nil, "shared dict lock: " .. tostring(err) end
    local now = monotonic()
    deadline = deadline or now + M.LOCK_WAIT
    if now > deadline then
      return nil, "shared dict lock for '" .. key .. "' still held after " .. M.LOCK_WAIT .. " s"
    end
    if nginx.can_yield() then ngx.sleep(0.001) end
  end
end

-- The room's state of `key` (w, t0; nil, nil: none), each by its rule: w
-- a fraction from room.FLOOR to 1, t0 a time (monotonic seconds) not after
-- `now`. One that breaks it is the least room cut at `now` (it grows back
-- by itself), written back and said (`log`; once: it is repaired).
local function room_state(dict, key, now, name, log)
  local v = dict:get("room:" .. key)
  if v == nil then return nil, nil end
  local w, t0
  if type(v) == "string" then w, t0 = match(v, "^(%S+) (%S+)$") end
  w, t0 = within(w, room.FLOOR - 1e-9, 1), within(t0, 0, now + 0.1)
  if w and t0 then return w, t0 end
  dict:set("room:" .. key, format("%.6f %.6f", room.FLOOR, now), room.whole_after(room.FLOOR) + 1)
  log(format("streamctl: the shared dict%s held a room that cannot be right in %s ('%s'); it was replaced by the "
    .. "least room (%g of the cap), which grows back by itself", name and (" '" .. name .. "'") or "", "room:" .. key,
    tostring(v):sub(1, 60), room.FLOOR))
  return room.FLOOR, now
end

-- Counts one in the tally `k` (streamctl.engine.room's TALLY_SOURCE), at
-- `at`; its entry lives as long as it can count (the last 2 s, and the
-- horizon). A tally the dict cannot keep only makes a cut measure less.
local function tally(dict, k, at, now)
  dict:set(k, room.tally_add(dict:get(k), room.tally_epoch(at), room.tally_epoch(now)), 3)
end

-- A throttle at `now` of an attempt on `key` sent `age` seconds ago, under
-- the budget's lock: the provider's retry-after (`after`) holds the
-- schedule (its born kept), and the room is cut once per overshoot
-- (streamctl.engine.room), by no more than what got through the budget
-- in the last second (every worker's slots and throttles, against `cap`).
-- True when it was cut.
local function cut_room(dict, key, now, age, share, after, cap, name, log)
  local v = after and after > 0 and dict:get("rl:" .. key)
  local born, tat = match(type(v) == "string" and v or "", "^(%S+) (%S+)$")
  born, tat = tonumber(born), tonumber(tat)
  if born and tat and tat < now + after then write_budget(dict, "rl:" .. key, born, now + after, name, log) end
  local w, t0 = room_state(dict, key, now, name, log)
  tally(dict, "tally:x:" .. key, now, now)
  local got = cap and room.tally_share(dict:get("tally:d:" .. key), dict:get("tally:x:" .. key),
    room.tally_epoch(now), cap, room.at(w, t0, now))
  if got and got < (share or 1) then share = got end
  local nw, nt = room.cut(w, t0, now, now - age, share)
  if not nw then return false end
  local ok, err, forcible = dict:set("room:" .. key, format("%.6f %.6f", nw, nt), room.whole_after(nw) + 1)
  if forcible then tell_full(dict, name, log, "writing a room evicted other entries") end
  if not ok then return nil, "shared dict set: " .. tostring(err) end
  return true
end

-- Born of a budget: as read, or now after a loss (said once, by a worker
-- that knew the budget: `known`, a worker's budgets as it last saw them).
local function born_of(known, log, key, born, why, now, pause, broken)
  if why then
    if known[key] ~= nil or broken then
      log(format("streamctl: the shared dict lost the rate-limit schedule of %s: %s; nothing is sent on it "
        .. "for %g s (the last second may have held a full cap), then it starts afresh", key, why, pause))
    end
    -- (born as the entry holds it, to the microsecond: read back later, it
    -- must equal what this worker remembers, or it would say a loss that
    -- never happened)
    born = tonumber(format("%.6f", now))
  elseif known[key] ~= nil and known[key] ~= born then
    log(format("streamctl: the shared dict lost the rate-limit schedule of %s (another worker found it); "
      .. "nothing is sent on it until %g s after that", key, pause))
  end
  known[key] = born
  return born
end

--- A store for streamctl.engine.ratelimit in `dict`: `reserve(key, rate, burst,
-- max_delay)` (see streamctl.engine.ratelimit), under the per-key lock of
-- `atomically`. Each budget is one entry, "rl:" .. key, holding
-- "born tat" (monotonic seconds) and no expiry, so only LRU eviction of a
-- full dict can take it. When it is missing (nginx started, or evicted) or
-- implausible (a tat further ahead than any worker reserves), the budget
-- starts afresh `LOSS_PAUSE` from now; a worker that knew it says so once.
-- `nginx -s reload` keeps the dict, and CLOCK_MONOTONIC runs on: nothing is
-- lost then. A write that evicted other entries (`forcible`) or found no
-- room is said once: what it evicted is found missing in its turn.
-- @param dict an `ngx.shared` dict
-- @tparam[opt] table opts `log` (function(message)), `name` (the dict's
--   name, for messages), `clock` or `monotonic` (monotonic seconds; default streamctl.core's)
-- @return a store; or nil and an InvalidParameter error object for a bad option
function M.ratelimit_store(dict, opts)
  check_dict(dict, "ratelimit_store")
  local bad
  opts, bad = options(RATELIMIT_OPTIONS, opts, "ratelimit_store", 2)
  if not opts then return nil, bad end
  local log = opts.log or default_log
  local monotonic = opts.monotonic or opts.clock or require("streamctl.core").monotonic
  local known = {} -- key -> born, as this worker last saw it
  local store = {}

  function store:atomically(key, fn) -- luacheck: ignore 212/self
    return atomically(dict, key, fn, monotonic, opts.name, log)
  end

  -- The room (streamctl.engine.ratelimit's store contract): every worker's,
  -- cut once per overshoot under the budget's lock.
  function store:room(key) -- luacheck: ignore 212/self
    local now = monotonic()
    local w, t0 = room_state(dict, key, now, opts.name, log)
    return room.at(w, t0, now)
  end
  function store:throttled(key, age, share, after, cap) -- luacheck: ignore 212/self
    return store:atomically(key, function() return cut_room(dict, key, monotonic(), age, share, after, cap,
      opts.name, log) end)
  end

  function store:reserve(key, rate, burst, max_delay) -- luacheck: ignore 212/self
    -- (the earliest free slot within MAX_HORIZON handed back, whatever the caller's own horizon, as the
    -- Redis store does: a refusal is an ask spent for nothing while workers compete; 0: only now)
    if max_delay == nil or max_delay > 0 then max_delay = M.MAX_HORIZON end
    local interval = 1 / (rate * store:room(key))
    local widest = 1 / (rate * room.FLOOR)
    local tau = (burst - 1) * interval
    local k = "rl:" .. key
    return store:atomically(key, function()
      local now = monotonic()
      -- (a tat is implausible only past what the least room spaces a schedule at)
      local born, tat, why, broken = read_budget(dict, k, now, widest, tau)
      local pause = ratelimit.loss_pause(interval)
      born = born_of(known, log, key, born, why, now, pause, broken)
      -- (nothing is sent before the loss pause after born: the GCRA of
      -- streamctl.engine.ratelimit from there, with no burst credit)
      local start = born + pause + tau
      if tat == nil or tat < start then tat = start end
      local delay, committed, _, new_tat = ratelimit.gcra(tat, now, interval, tau, max_delay)
      if not committed and not why then return delay, false end
      -- (a fresh entry is written either way)
      local ok, err = write_budget(dict, k, born, new_tat or (tat > now and tat or now), opts.name, log)
      if not ok then
        -- A fresh entry that could not be written was never known: its absence
        -- next time is no loss to tell (nor, in a dict with no room for it, at
        -- every reservation).
        if why then known[key] = nil end
        return nil, err
      end
      if committed then tally(dict, "tally:d:" .. key, now + delay, now) end
      return delay, committed
    end)
  end

  return store
end

-- A Sequence counter that cannot be right (not a number, or not an integer
-- in 0..2^53-1: streamctl.engine.sequence's MAX) set to `floor_value` and
-- said, naming it and what it held.
local function reset_counter(dict, counter, ttl, name, log, floor_value, held)
  log(format("streamctl: the shared dict%s held a Sequence counter that cannot be right in %s (%s); it was "
    .. "reset to %.0f", name and (" '" .. name .. "'") or "", counter, held, floor_value))
  local ok, err = dict:set(counter, floor_value, ttl)
  if not ok then return nil, "shared dict set: " .. tostring(err) end
  return floor_value
end

-- The Sequence counter raised by `by` and to at least `floor_value` (see
-- `sequence_store`); returns its value, or nil and why.
local function raise_counter(dict, counter, ttl, name, log, floor_value, by)
  local v, err, forcible = dict:incr(counter, by, floor_value - by, ttl)
  if forcible then tell_full(dict, name, log, "the Sequence counter evicted other entries") end
  if not v and err == "not a number" then
    return reset_counter(dict, counter, ttl, name, log, floor_value, "'" .. tostring(dict:get(counter)):sub(1, 40)
      .. "'")
  end
  if not v then return nil, "shared dict incr: " .. tostring(err) end
  if not (v == v and v - by >= 0 and v <= 2 ^ 53 - 1 and v == math.floor(v)) then
    return reset_counter(dict, counter, ttl, name, log, floor_value, tostring(v - by))
  end
  if v < floor_value then
    -- (with an init too: a full dict may have evicted the counter since the
    -- first incr; it then starts again from floor_value, as a new one would)
    v, err, forcible = dict:incr(counter, floor_value - v, v, ttl)
    if forcible then tell_full(dict, name, log, "the Sequence counter evicted other entries") end
    if not v then return nil, "shared dict incr: " .. tostring(err) end
  end
  dict:expire(counter, ttl)
  return v
end

--- A store for streamctl.engine.sequence in `dict`, its keys under `prefix` (e.g.
-- "zego:1234567890:"): `advance_all`, `advance`, `record_all`, `renew`, `get`.
--
-- One counter per prefix (the AppId), "seqg:" .. prefix, hands out
-- v = max(candidate, counter + 1) with `incr` (a second `incr` raises it to
-- the candidate when the clock has moved past it), so every value is above
-- every earlier one of the AppId, for any stream; then one `set` per stream
-- records v as its last value ("seq:" .. prefix .. stream ID), which only a
-- caller's own Sequence is checked against. Entries live `SEQUENCE_TTL`
-- (streamctl.engine.sequence.KEEP_MS) after their last use. A full dict that
-- evicts the counter costs nothing: it starts again from the clock, above
-- every value handed out (unless a caller's own Sequence ran ahead of the
-- clock). Evicted stream entries only weaken the check of a caller's own
-- Sequence.
-- @param dict an `ngx.shared` dict
-- @tparam string prefix
-- @tparam[opt] table opts `log`, `name` (as for `ratelimit_store`)
-- @return a store; or nil and an InvalidParameter error object for a bad option
function M.sequence_store(dict, prefix, opts)
  check_dict(dict, "sequence_store")
  if type(prefix) ~= "string" then
    error("bad argument #2 to 'sequence_store' (prefix must be a string, got " .. type(prefix) .. ")", 2)
  end
  local why
  opts, why = options(SEQUENCE_OPTIONS, opts, "sequence_store", 3)
  if not opts then return nil, why end
  local log = opts.log or default_log
  local ttl = M.SEQUENCE_TTL
  local counter = "seqg:" .. prefix
  local store = {}

  local function set_all(ids, v)
    for i = 1, #ids do
      local ok, err, forcible = dict:set("seq:" .. prefix .. ids[i], v, ttl)
      if forcible then tell_full(dict, opts.name, log, "a Sequence evicted other entries") end
      if not ok then tell_full(dict, opts.name, log, "no room for a Sequence (" .. tostring(err) .. ")") end
    end
  end

  -- The counter raised to at least `floor`; returns its value.
  local function raise(floor_value, by)
    return raise_counter(dict, counter, ttl, opts.name, log, floor_value, by)
  end

  function store:advance_all(ids, candidate) -- luacheck: ignore 212/self
    local v, err = raise(candidate, 1)
    if not v then return nil, err end
    set_all(ids, v)
    return v
  end

  function store:advance(key, candidate) -- luacheck: ignore 212/self
    return store:advance_all({ key }, candidate)
  end

  function store:record_all(ids, value) -- luacheck: ignore 212/self
    for i = 1, #ids do
      local last = dict:get("seq:" .. prefix .. ids[i])
      if type(last) == "number" and last >= value then return false, ids[i], last end
    end
    local v, err = raise(value, 0)
    if not v then return nil, err end
    set_all(ids, value)
    return true
  end

  -- (as record_all: the streams read, then the counter raised; a worker that takes a value for
  -- one of them in between is not seen, as there)
  function store:renew(ids, old, candidate, n) -- luacheck: ignore 212/self
    local later = sequence.later_than(ids, old, function(id) return dict:get("seq:" .. prefix .. id) end, n)
    if later then return false, later end
    local v, err = raise(candidate > old and candidate or old + 1, 1)
    if not v then return nil, err end
    set_all(ids, v)
    return v
  end

  function store:get(key) -- luacheck: ignore 212/self
    return (dict:get("seq:" .. prefix .. key))
  end

  return store
end

--- How long a worker may hold a credential renewal's lock, in seconds
-- (streamctl.store.shdictcreds.LOCK_TTL).
M.CREDENTIALS_LOCK_TTL = require("streamctl.store.shdictcreds").LOCK_TTL

--- The current temporary credentials of one source and a lock, shared by
-- every worker (streamctl.credentials.refresh's `shared`): see
-- streamctl.store.shdictcreds, whose expiry rule drops an entry that breaks
-- it, said through `opts.log`.
-- @param dict an ngx.shared dict
-- @tparam string key the source's name (keys: "cred:" .. key, "lock:cred:" .. key)
-- @tparam[opt] table opts `log` (function(message))
-- @return `{ get(), set(creds), lock(), unlock() }`
function M.credentials_store(dict, key, opts)
  check_dict(dict, "credentials_store")
  if type(key) ~= "string" or key == "" then
    error("bad argument #2 to 'credentials_store' (a non-empty string expected)", 2)
  end
  return require("streamctl.store.shdictcreds").store(dict, key, opts and opts.log or default_log)
end

--- A backend of streamctl.pipeline.stores' contract: the option's rule
-- (`open`: the dict), and its handle, the dict itself (nothing to close).
M.check = M.open
function M.handle(dict) return dict, false end

return M
