--- ZEGO `Sequence` values: strictly increasing per stream.
--
-- ZEGO executes a stream-control request only if its Sequence is greater than
-- that of every earlier request for the same StreamId (within 10 seconds).
-- Milliseconds since the epoch work until two requests land in the same
-- millisecond or the clock steps back; this generator hands out
-- `max(now_ms, last + 1)` per stream instead, so values stay close to the
-- clock and never repeat or go down.
--
-- Store contract (what `store` passed to `new` must provide):
--
--   store:advance(key, candidate) -> value | nil, err
--
-- Atomically raise the value under `key` to at least `candidate` if the key
-- is absent, else to at least `max(candidate, current + 1)`, and return the
-- new value. Keys are stream IDs (strings); values are integers below 2^53.
-- What must hold, for any number of callers in any number of processes
-- sharing the store: every value returned for a key is greater than every
-- value returned for that key before it (so no two callers ever get the same
-- value for one key). `memory_store` returns exactly that max; a shared store
-- may return more when callers race.
--
-- Optionally, for a call that names several streams (each one round trip
-- or one step less):
--
--   store:advance_all(keys, candidate) -> value | nil, err
--
-- atomically v = max(candidate, every key's value + 1), recorded for every
-- key; and for a caller's own Sequence:
--
--   store:record_all(keys, value) -> true | false, key, last | nil, err
--
-- which records `value` for every key only when it is above each key's last
-- value (else false, the first key that is not, and its last value); and for
-- a call whose Sequence has aged near the end of ZEGO's window:
--
--   store:renew(keys, old, candidate, n, age_ms) -> value | false, { [key] = last, ... } | false, nil, why
--                                                   | nil, err
--
-- which, atomically, when none of the first `n` keys holds a value above
-- `old` (a later decision on that stream), records and returns v =
-- max(candidate, old + 1, every key's value + 1) for every key, and
-- otherwise writes nothing and returns false and the first `n` keys that
-- do (at least one), with their values. A store that may have forgotten
-- since the call was decided (`age_ms` ago, when given; Redis restarted
-- without its data) writes nothing and returns false, nil and why: a later
-- decision may be among what it forgot. A store without `renew` is
-- asked with `get`, then `advance_all` (not atomic across processes: a shared
-- store should have `renew`); one with neither cannot renew.
-- A store with `own_clock = true` (Redis: its server's clock) may return
-- less than `candidate` (this machine's clock), never less than a value it
-- returned before for a key. A shared store that answers from this
-- process's own record while it is away (Redis down or slow) says so with a
-- third value, `unsure` (`advance`, `advance_all`, `renew`: `v, nil, true`):
-- the others were not asked, and what it holds later may be this process's
-- own unanswered request (a value above the one returned); the generator
-- passes it on (streamctl.pipeline.decision trusts such a decision to
-- neither vouch nor supersede).
--
-- An `ngx.shared.DICT` store needs no lock, because `incr` is atomic:
--
--   local v = dict:incr(key, 1, candidate - 1, ttl)   -- absent: candidate; else current + 1
--   if v and v < candidate then v = dict:incr(key, candidate - v) end
--   return v          -- (or nil, err from incr)
--
-- The second `incr` adds to whatever is there by then, so the result is at
-- least `candidate` and, like every `incr` result, above all earlier ones.
-- Its entries must not be evicted while they matter (ZEGO compares sequences
-- within 10 seconds): give them a ttl of a minute or more and the dict room
-- enough that LRU eviction never reaches live entries.
--
-- @module streamctl.engine.sequence

local type, error, tostring, pairs, setmetatable, require =
  type, error, tostring, pairs, setmetatable, require
local floor = math.floor
local format = string.format

local validate = require "streamctl.base.validate"
local to_decimal = validate.decimal

local M = {}

--- Largest value handed out; beyond it doubles lose integer precision.
M.MAX = 2 ^ 53 - 1

-- Room left above a caller's own Sequence for the values that follow it
-- on the same stream (each later call takes at least last + 1).
local HEADROOM = 1e9

--- The largest Sequence a caller may give: `MAX` less room (10^9) for the
-- values that follow it on the same stream (each later call takes at least
-- last + 1).
M.MAX_GIVEN = M.MAX - HEADROOM

-- How many passes over its ids next_for makes before giving up.
local MAX_PASSES = 100

--- How long a stream's last value is kept after it was handed out, in
-- milliseconds of the generator's clock. ZEGO compares Sequences within 10
-- seconds; an entry whose value is more than a minute behind the clock can
-- no longer matter: the next value for that stream is at least `now_ms`,
-- which is larger than the value forgotten, whatever the clock did meanwhile.
M.KEEP_MS = 60000

-- Forget entries older than KEEP_MS once every this many values handed out,
-- where the store can (`prune`), so the table of streams stays bounded.
local PRUNE_EVERY = 1024

--- Removes the entries of `values` (key -> number) below `below`; returns
-- how many (a store's `prune`). Raises, at `level`, when below is no number.
function M.prune_below(values, below, level)
  if type(below) ~= "number" then
    error("bad argument #1 to 'prune' (below must be a number, got " .. type(below) .. ")", level or 2)
  end
  local n = 0
  for k, v in pairs(values) do
    if v < below then
      values[k] = nil
      n = n + 1
    end
  end
  return n
end

--- The keys (of the first `n`, default all) whose value (`value_of(key)`)
-- is above `old`, with their values (`{ [key] = value }`), or nil when none
-- is: a later decision on those streams (a store's `renew`).
function M.later_than(keys, old, value_of, n)
  local later
  for i = 1, n or #keys do
    local v = value_of(keys[i])
    if type(v) == "number" and v > old then
      later = later or {}
      later[keys[i]] = v
    end
  end
  return later
end

--- An in-memory store for one Lua state.
-- @return a store with `advance(key, candidate)`, `get(key)` and `prune(below)`
function M.memory_store()
  local last = {}
  local store = {}

  --- value = max(candidate, current + 1), recorded and returned.
  function store:advance(key, candidate) -- luacheck: ignore 212/self
    local cur = last[key]
    local v = candidate
    if cur ~= nil and cur + 1 > v then v = cur + 1 end
    last[key] = v
    return v
  end

  --- value = max(candidate, every key's current + 1), recorded for all.
  function store:advance_all(keys, candidate) -- luacheck: ignore 212/self
    local v = candidate
    for i = 1, #keys do
      local cur = last[keys[i]]
      if cur ~= nil and cur + 1 > v then v = cur + 1 end
    end
    for i = 1, #keys do last[keys[i]] = v end
    return v
  end

  --- Records value for every key when it is above each one's last value.
  function store:record_all(keys, value) -- luacheck: ignore 212/self
    for i = 1, #keys do
      local cur = last[keys[i]]
      if cur ~= nil and cur >= value then return false, keys[i], cur end
    end
    for i = 1, #keys do last[keys[i]] = value end
    return true
  end

  --- v = max(candidate, old + 1, every key's current + 1), recorded for all,
  -- unless a key holds a value above `old`: then false and those keys.
  function store:renew(keys, old, candidate, n) -- luacheck: ignore 212/self
    local later = M.later_than(keys, old, function(k) return last[k] end, n)
    if later then return false, later end
    return store:advance_all(keys, candidate > old and candidate or old + 1)
  end

  --- The last value handed out for key, or nil.
  function store:get(key) -- luacheck: ignore 212/self
    return last[key]
  end

  --- Forgets every key whose last value is below `below` (e.g. now_ms minus a
  -- minute: ZEGO compares sequences only within 10 seconds). Returns how many.
  function store:prune(below) -- luacheck: ignore 212/self
    local n = M.prune_below(last, below, 3) -- (not a tail call: the error names prune's caller)
    return n
  end

  return store
end

-- Epoch milliseconds from streamctl.core's wall clock.
local function get_default_clock_ms()
  local now = require("streamctl.core").now
  return function() return now() * 1000 end
end

local Generator = {}
Generator.__index = Generator

local OPTIONS = {
  { name = "clock_ms", type = "function" },
  { name = "store", type = "object", methods = { "advance" },
    optional = { "get", "prune", "advance_all", "record_all", "renew" } },
}

--- Makes a generator.
-- @tparam[opt] table opts
--   `clock_ms`: function returning milliseconds since the epoch (fractions
--   are dropped); default streamctl.core's wall clock in milliseconds.
--   `store`: see the store contract above; default `memory_store()`.
-- @return generator; or nil, err (an InvalidParameter error object naming
--   the option) for a bad or unknown option. Options that are not a table raise.
function M.new(opts)
  local why
  opts, why = validate.construct(OPTIONS, opts, "streamctl.engine.sequence.new", "new")
  if not opts then return nil, why end
  return setmetatable({ clock_ms = opts.clock_ms or get_default_clock_ms(), store = opts.store or M.memory_store(),
                        handed = 0 }, Generator)
end

local function now_ms(self)
  local t = self.clock_ms()
  if type(t) ~= "number" or not (t >= 0 and t <= M.MAX) then
    error("streamctl.engine.sequence: clock_ms returned " .. tostring(t) .. ", not a number in [0, 2^53)", 3)
  end
  return floor(t)
end

local function check_stream_id(fname, argn, id)
  if type(id) ~= "string" or id == "" then
    error(format("bad argument #%d to '%s' (stream id must be a non-empty string, got %s)",
      argn, fname, type(id) == "string" and '""' or type(id)), 3)
  end
end

-- Every PRUNE_EVERY values, forgets what can no longer matter (see KEEP_MS).
local function maybe_prune(self, now)
  self.handed = self.handed + 1
  if self.handed >= PRUNE_EVERY then
    self.handed = 0
    local store = self.store
    if store.prune then store:prune(now - M.KEEP_MS) end
  end
end

-- A store's answer checked: an integer in [0, 2^53), and at least the
-- candidate unless the store keeps its own clock.
local function checked(store, fname, v, err, candidate, level)
  if v == nil then return nil, err or ("store " .. fname .. " failed") end
  if type(v) ~= "number" or not (v >= 0 and v <= M.MAX) or floor(v) ~= v
    or (v < candidate and not store.own_clock) then
    error("streamctl.engine.sequence: store:" .. fname .. " returned " .. tostring(v) .. " for candidate "
      .. to_decimal(candidate), level)
  end
  return v
end

-- store:advance with its result checked.
local function advance(store, key, candidate)
  local v, err, unsure = store:advance(key, candidate)
  local r, e = checked(store, "advance", v, err, candidate, 4) -- (not a tail call: the level counts this frame)
  return r, e, unsure
end

--- The Sequence for a call on one stream or several (ForbidRTCStreams):
-- `max(now_ms, max over the ids of last + 1)`, recorded for every id.
--
-- Repeated ids count once. With a store shared by concurrent callers it still
-- ends with every id holding exactly the value returned (which no other caller
-- got for any of these ids), retrying the ids that others moved past it.
-- @tparam {string,...} stream_ids a non-empty array of stream ids
-- @treturn string decimal digits (and nil, true when the store answered
--   from this process's record alone: `unsure`); or nil, err if the store
--   failed or never settled (a store that always returns more than asked)
function Generator:next_for(stream_ids)
  if type(stream_ids) ~= "table" or stream_ids[1] == nil then
    error("bad argument #1 to 'next_for' (stream_ids must be a non-empty array of strings)", 2)
  end
  local ids, seen = {}, {}
  for i = 1, #stream_ids do
    local id = stream_ids[i]
    if type(id) ~= "string" or id == "" then
      error(format("bad argument #1 to 'next_for' (stream_ids[%d] must be a non-empty string, got %s)",
        i, type(id) == "string" and '""' or type(id)), 2)
    end
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end

  local store = self.store
  local target = now_ms(self)
  maybe_prune(self, target)
  if store.advance_all then -- one step for the whole call
    local v, err, unsure = store:advance_all(ids, target)
    v, err = checked(store, "advance_all", v, err, target, 3)
    if not v then return nil, err end
    return to_decimal(v), nil, unsure
  end
  local held, unsure = {}, nil -- the value each id last advanced to for this call
  -- Each pass advances the ids that hold less than the target; an advance
  -- returns more than the target only when the id's last value was already at
  -- or past it, and then the target rises and the other ids follow. Without
  -- concurrent callers this ends after the second pass; a store that keeps
  -- handing out more than asked (which only heavy contention explains) gets
  -- MAX_PASSES passes and then an error.
  for _ = 1, MAX_PASSES do
    local raised = false
    for i = 1, #ids do
      local id = ids[i]
      local h = held[id]
      if h == nil or h < target then
        local v, err, u = advance(store, id, target)
        if not v then return nil, err end
        unsure = unsure or u
        held[id] = v
        if v > target then
          target = v
          raised = true
        end
      end
    end
    if not raised then
      local done = true
      for i = 1, #ids do
        if held[ids[i]] ~= target then
          done = false
          break
        end
      end
      if done then return to_decimal(target), nil, unsure end
    end
  end
  return nil, "sequence did not settle after " .. MAX_PASSES .. " passes over the store"
end

--- Records a Sequence chosen elsewhere (a caller's own) for every id, so
-- that every later value for those streams is larger. It must be above the
-- last value of every id (ZEGO ignores a request whose Sequence is not):
-- when it is not, nothing is recorded.
-- @tparam {string,...} stream_ids a non-empty array of stream ids
-- @tparam number value an integer in [0, MAX_GIVEN]
-- @treturn true; or nil, err if the store failed; or false, id, last when
--   `value` is not above `last`, the last value of stream `id`
function Generator:record(stream_ids, value)
  if type(stream_ids) ~= "table" or stream_ids[1] == nil then
    error("bad argument #1 to 'record' (stream_ids must be a non-empty array of strings)", 2)
  end
  if type(value) ~= "number" or not (value >= 0 and value <= M.MAX_GIVEN) or floor(value) ~= value then
    error("bad argument #2 to 'record' (value must be an integer in [0, 2^53 - 1 - 10^9], got "
      .. tostring(value) .. ")", 2)
  end
  for i = 1, #stream_ids do check_stream_id("record", 1, stream_ids[i]) end
  maybe_prune(self, now_ms(self))
  local store = self.store
  if store.record_all then
    local ok, id, last = store:record_all(stream_ids, value)
    if ok == nil then return nil, id or "store record_all failed" end
    if not ok then return false, id, last end
    return true
  end
  if store.get then
    for i = 1, #stream_ids do
      local last = store:get(stream_ids[i])
      if type(last) == "number" and last >= value then return false, stream_ids[i], last end
    end
  end
  for i = 1, #stream_ids do
    local v, err = advance(store, stream_ids[i], value)
    if not v then return nil, err end
  end
  return true
end

--- Decides a call again whose Sequence `old` has aged: when no stream of
-- it holds a value above `old` (nobody decided on them since), a new
-- Sequence for all of them, `max(now_ms, old + 1, every id's last + 1)`,
-- recorded as `next_for` does; otherwise nothing recorded, and the streams
-- a later decision holds.
-- @tparam {string,...} stream_ids a non-empty array of stream ids
-- @tparam number old the call's Sequence, an integer in [0, MAX)
-- @tparam[opt] integer n only the first `n` ids say whether a later call decided (the others,
--   reads' keys, count for the new value alone); default all
-- @tparam[opt] number age_ms how long ago (ms) the call was decided: a store that may have
--   forgotten since then cannot vouch
-- @treturn string decimal digits (and nil, true: `unsure`, as `next_for`); or false and
--   `{ [id] = later value, ... }`; or false, nil and why when the store may have forgotten a
--   later decision; or nil, err when the store failed or cannot tell
function Generator:renew(stream_ids, old, n, age_ms)
  if type(stream_ids) ~= "table" or stream_ids[1] == nil then
    error("bad argument #1 to 'renew' (stream_ids must be a non-empty array of strings)", 2)
  end
  if type(old) ~= "number" or not (old >= 0 and old < M.MAX) or floor(old) ~= old then
    error("bad argument #2 to 'renew' (old must be an integer in [0, 2^53 - 1), got " .. tostring(old) .. ")", 2)
  end
  for i = 1, #stream_ids do check_stream_id("renew", 1, stream_ids[i]) end
  if n ~= nil and (type(n) ~= "number" or n < 1 or n > #stream_ids or floor(n) ~= n) then
    error("bad argument #3 to 'renew' (n must be an integer in [1, #stream_ids], got " .. tostring(n) .. ")", 2)
  end
  if age_ms ~= nil and (type(age_ms) ~= "number" or not (age_ms >= 0 and age_ms < M.MAX)) then
    error("bad argument #4 to 'renew' (age_ms must be a number of milliseconds, 0 or more, got "
      .. tostring(age_ms) .. ")", 2)
  end
  n = n or #stream_ids
  local store = self.store
  local target = now_ms(self)
  maybe_prune(self, target)
  if store.renew then
    local v, later, unsure = store:renew(stream_ids, old, target, n, age_ms)
    if v == false and later == nil then
      if type(unsure) ~= "string" then
        error("streamctl.engine.sequence: store:renew returned false without the later streams or why", 2)
      end
      return false, nil, unsure
    end
    if v == false then return false, later end
    v, later = checked(store, "renew", v, later, store.own_clock and 0 or (target > old and target or old + 1), 3)
    if not v then return nil, later end
    if v <= old then
      error("streamctl.engine.sequence: store:renew returned " .. to_decimal(v) .. ", not above " .. to_decimal(old), 2)
    end
    return to_decimal(v), nil, unsure
  end
  if not store.get then
    return nil, "the Sequence store has neither renew nor get: whether a later call decided on these streams "
      .. "cannot be told"
  end
  local later = self:later(stream_ids, old, n)
  if later then return false, later end
  return self:next_for(stream_ids)
end

--- The streams of `stream_ids` (of the first `n`, default all) whose last
-- value is above `value` (a later call decided on them), with those values;
-- nil when none is, or when the store has no `get` (it cannot tell).
-- @tparam {string,...} stream_ids a non-empty array of stream ids
-- @tparam number value a Sequence
-- @tparam[opt] integer n
-- @treturn table|nil `{ [id] = later value, ... }`
function Generator:later(stream_ids, value, n)
  local store = self.store
  if not store.get then return nil end
  return M.later_than(stream_ids, value, function(id) return store:get(id) end, n)
end

--- What `next_for(stream_ids)` would hand out now, without recording it
-- (for a dry run): `max(now_ms, last + 1)` over the ids, from the store's
-- `get` where it has one (a store without `get` gives now_ms).
-- @tparam {string,...} stream_ids a non-empty array of stream ids
-- @treturn string decimal digits
function Generator:peek_for(stream_ids)
  if type(stream_ids) ~= "table" or stream_ids[1] == nil then
    error("bad argument #1 to 'peek_for' (stream_ids must be a non-empty array of strings)", 2)
  end
  local v = now_ms(self)
  local store = self.store
  if store.get then
    for i = 1, #stream_ids do
      local last = store:get(stream_ids[i])
      if type(last) == "number" and last + 1 > v then v = last + 1 end
    end
  end
  return to_decimal(v)
end

return M
