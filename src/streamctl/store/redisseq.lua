--- The ZEGO Sequence store in Redis (`sequence_store`), which also keeps the
-- decisions of calls without a Sequence (streamctl.pipeline.decision):
-- values that follow the Redis server's clock, one script per call, and the
-- fallback while Redis is away (its answers then `unsure`). streamctl.store.redis, which users require, says what it
-- does and re-exports it.
-- @module streamctl.store.redisseq

local type, error, tostring, tonumber, require, setmetatable = type, error, tostring, tonumber, require, setmetatable
local floor, ceil, format, match, find = math.floor, math.ceil, string.format, string.match, string.find

local sequence = require "streamctl.engine.sequence"
local redisconn = require "streamctl.store.redisconn"
local memory = require "streamctl.store.redismemory"
local utc = memory.utc
local shared = require "streamctl.store.redisstore"
local default_log, new_health, store_setup = shared.default_log, shared.new_health, shared.store_setup
local tagged = shared.tagged

local M = {}

-- KEYS: one stream's or a call's Sequence keys, and for "renew" the
-- store's memory last (streamctl.store.redismemory's hash). ARGV[1]: the
-- floor (the caller's candidate or this process's last + 1), ARGV[2]: keep
-- (ms), ARGV[3]: "record" for a caller's own Sequence (refused, and nothing
-- written, unless it is above every key's value), "renew" for a call's
-- aged Sequence ARGV[4] (refused, and nothing written, when one of the first
-- ARGV[5] keys holds a value above it: { 2, the first such key's index, its
-- value }; or when Redis' memory began after the call was decided, ARGV[6]
-- ms ago, else at ARGV[4] of its clock: { 3, since, why, 0, '', 1 when
-- this call found the loss }; ARGV[7] '1' when the asking process had seen
-- the memory before), else "next".
-- v = max(server ms, floor, every key's value + 1), set on every key.
local ADVANCE_TEXT = memory.SERVER .. memory.SINCE .. [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000)
local v = now
local fl = tonumber(ARGV[1])
local bad, named = 0, {}
local n = #KEYS
if ARGV[3] == 'renew' then n = n - 1 end
if ARGV[3] == 'record' then v = fl elseif fl > v then v = fl end
for i = 1, n do
  local raw = redis.call('GET', KEYS[i])
  local cur = tonumber(raw)
  if raw and not (cur ~= nil and cur >= 0 and cur <= 9007199254740991 and cur == math.floor(cur)) then
    cur, bad, named[#named + 1] = nil, bad + 1, KEYS[i] .. '=' .. string.sub(raw, 1, 40)
  end
  if ARGV[3] == 'renew' and i <= tonumber(ARGV[5]) and cur ~= nil and cur > tonumber(ARGV[4]) then
    return { 2, i, string.format('%.0f', cur), bad }
  end
  if cur ~= nil and cur + 1 > v then
    if ARGV[3] == 'record' then return { 0, i, string.format('%.0f', cur), bad, table.concat(named, ' ') } end
    v = cur + 1
  end
end
-- (a later value found answers first: it was written after any loss)
if ARGV[3] == 'renew' then
  local since, why, found = server_since(KEYS[#KEYS], ARGV[7] ~= '', now)
  local decided = ARGV[6] ~= '' and now - tonumber(ARGV[6]) or tonumber(ARGV[4])
  if decided < since then return { 3, string.format('%.0f', since), why, 0, '', found and 1 or 0 } end
end
local s = string.format('%.0f', v)
for i = 1, n do redis.call('SET', KEYS[i], s, 'PX', ARGV[2]) end
return { 1, s, '', bad, table.concat(named, ' ') }
]]

local GET_TEXT = "return redis.call('GET', KEYS[1])"

local advance_script, get_script

local function is_sequence(v)
  return v ~= nil and v >= 0 and v <= sequence.MAX and v == floor(v)
end

-- The sequence store's methods; its state: the connection, its health,
-- its keys' prefix, and `last`, the last value handed out per stream (from
-- Redis or locally).
local SeqStore = {}
SeqStore.__index = SeqStore

--- A store for streamctl.engine.sequence (`advance`, `advance_all`, `record_all`,
-- `renew`, `get`, `prune`; see the module comment), its keys `config.prefix ..
-- "{" .. tag .. "}:seq:" .. stream ID`, where the tag is `prefix` without its
-- trailing ':' (the provider and AppId, the hash tag the rate-limit store
-- uses for the same account). Its values follow the Redis server's clock
-- (milliseconds), never this machine's: `own_clock` is true.
-- @param config_or_conn a connection object, or a config (table or URL) for a new one
-- @tparam string prefix e.g. "zego:1234567890:"
-- @tparam[opt] table opts as for `ratelimit_store`
-- @return a store (`store.conn` is its connection object); or nil and an
--   InvalidParameter error object for a bad config or option
function M.sequence_store(config_or_conn, prefix, opts)
  if type(prefix) ~= "string" then
    error("bad argument #2 to 'sequence_store' (prefix must be a string, got " .. type(prefix) .. ")", 2)
  end
  local conn
  opts, conn = store_setup(config_or_conn, opts, "sequence_store")
  if not opts then return nil, conn end
  advance_script = advance_script or redisconn.script(ADVANCE_TEXT)
  get_script = get_script or redisconn.script(GET_TEXT)
  -- (what its notices name: a ZEGO app's Sequences, else the decisions of calls that carry none,
  -- streamctl.pipeline.decision's, whose fallback leaves a late call unsent)
  local holds = find(prefix, "^zego:") and "ZEGO Sequences" or "decisions"
  local tag = tagged(conn.config.prefix, (match(prefix, "^(.-):?$")))
  return setmetatable({
    conn = conn, own_clock = true,
    log = opts.log or default_log,
    health = new_health(conn, holds .. " are shared through it again", holds .. " fall back to this process's own "
      .. (holds == "decisions" and "(a forbid or resume that waits past its window meanwhile is not sent)"
      or "(still increasing)"), opts),
    key_prefix = tag .. "seq:",
    -- (streamctl.store.redismemory's hash: in the keys' slot, a name no stream's key can take)
    memory = tag .. "seq@",
    holds = holds == "decisions" and "decisions" or "Sequences",
    known = false, -- (whether this process saw the memory's hash: a hash missing then is a loss)
    clock = opts.monotonic or require("streamctl.core").monotonic,
    last = {}, -- the last value handed out per stream, from Redis or locally
  }, SeqStore)
end

local function keys_for(s, ids)
  local keys = {}
  for i = 1, #ids do keys[i] = s.key_prefix .. ids[i] end
  return keys
end

-- max(candidate, last + 1) over ids: what this process may hand out now.
local function at_least(s, ids, candidate)
  for i = 1, #ids do
    local l = s.last[ids[i]]
    if l and l + 1 > candidate then candidate = l + 1 end
  end
  return candidate
end

--- Says the Sequences a script found that cannot be right, which it reset
-- to the server's time ("key=value ...": `text`), once, as they are
-- repaired; with no text, how many (`n`). `s`: a store (`log`, `conn`).
function M.say_bad(s, text, n)
  if type(text) == "string" and text ~= "" then
    s.log(format("streamctl: Redis at %s held Sequence(s) that cannot be right (not an integer in 0..2^53-1), "
      .. "reset to the server's time: %s", s.conn:address(), text))
  elseif n and n > 0 then
    s.log(format("streamctl: Redis at %s held %d Sequence(s) under %s that cannot be right (not an integer in "
      .. "0..2^53-1); they were reset to the server's time", s.conn:address(), n, s.key_prefix))
  end
end

-- One script call; returns the reply or nil (Redis unusable: told).
local function run(s, ids, floor_value, mode, old, n, age_ms)
  if not s.health.usable() then return nil end
  local keys, args = keys_for(s, ids), { floor_value, sequence.KEEP_MS, mode }
  if mode == "renew" then
    keys[#keys + 1] = s.memory
    -- (the decision's age, and a second's margin for the round trips that took and renew it)
    args[4], args[5], args[6], args[7] = old, n, age_ms and ceil(age_ms) + 1000 or "", s.known and "1" or ""
  end
  local res, err = s.conn:eval(advance_script, keys, args)
  if type(res) == "table" and (res[1] == 1 or res[1] == 0 or res[1] == 2 or (res[1] == 3 and mode == "renew")) then
    s.health.succeeded()
    M.say_bad(s, res[5], tonumber(res[4]))
    return res
  end
  if not (err and err.reason == "phase") then s.health.failed(err and err.message or ("unexpected answer "
    .. tostring(res))) end
  return nil
end

--- This process's floor for a call on ids: its last value + 1 (0: none).
function SeqStore:floor(ids)
  return at_least(self, ids, 0)
end

--- Records that `value` was taken for ids (by the rate-limit store's
-- reserve_sequenced: `from_redis` true).
function SeqStore:took(ids, value, from_redis)
  local last = self.last
  for i = 1, #ids do
    local l = last[ids[i]]
    if l == nil or value > l then last[ids[i]] = value end
  end
  -- (Redis gave this call's Sequence: it answers again, which this store,
  -- no longer asked while the rate-limit store takes the Sequences, would
  -- otherwise never say)
  if from_redis then self.health.succeeded() end
end

--- v = max(server ms, candidate floor, every id's value + 1) for all ids
-- at once, recorded in Redis (or, while it is down, locally from
-- `candidate`, this machine's clock).
function SeqStore:advance_all(ids, candidate)
  local t0 = self.clock()
  local res = run(self, ids, at_least(self, ids, 0), "next")
  local v = res and tonumber(res[2])
  if not is_sequence(v) then
    -- (the candidate is this machine's clock when the call began, and a
    -- failed eval can take timeout_ms, in which another process may send
    -- a later value for these streams: the clock as it is now. And
    -- at_least again: the eval may have yielded.)
    local spent = floor((self.clock() - t0) * 1000)
    if spent > 0 and candidate + spent <= sequence.MAX then candidate = candidate + spent end
    v = at_least(self, ids, candidate)
    self:took(ids, v)
    return v, nil, true -- (this process's alone: streamctl.engine.sequence's `unsure`)
  end
  self:took(ids, v)
  return v
end

--- max(candidate, current + 1) for one stream (see advance_all).
function SeqStore:advance(key, candidate)
  return self:advance_all({ key }, candidate)
end

--- A caller's own Sequence for ids: recorded when it is above every id's
-- last value; else false, the id and its last value, nothing written.
function SeqStore:record_all(ids, value)
  for i = 1, #ids do
    local l = self.last[ids[i]]
    if l and l >= value then return false, ids[i], l end
  end
  local res = run(self, ids, value, "record")
  if res and res[1] == 0 then
    local i = tonumber(res[2])
    return false, ids[i], tonumber(res[3])
  end
  self:took(ids, value)
  return true
end

--- A call's aged Sequence `old` decided again for ids (streamctl.engine.sequence's
-- `renew`): in one script, false and the streams holding a later value
-- (one at a time: the first Redis finds, and those this process knows), or a
-- new value as `advance_all` takes it. When Redis may have forgotten since
-- the call was decided (`age_ms` ago; else at `old`, a value of its clock:
-- streamctl.store.redismemory's rule), false, nil and why, nothing
-- written: a later decision may be among what it forgot. While Redis is
-- away, from this process's own record, as `advance_all` falls back.
function SeqStore:renew(ids, old, candidate, n, age_ms)
  local later = sequence.later_than(ids, old, function(id) return self.last[id] end, n)
  if later then return false, later end
  local t0 = self.clock()
  local res = run(self, ids, at_least(self, ids, old + 1), "renew", old, n, age_ms)
  if res then self.known = true end
  if res and res[1] == 2 then
    return false, { [ids[tonumber(res[2])]] = tonumber(res[3]) }
  end
  if res and res[1] == 3 then
    local since, why = tonumber(res[2]) or 0, memory.FORGOT[res[3]] or "its memory began again"
    if res[6] == 1 and res[3] ~= "new" then
      self.log(format("streamctl: Redis at %s may have forgotten the %s decided before %s: %s; a call decided "
        .. "before then and sent late is not sent (Expired)", self.conn:address(), self.holds, utc(since), why))
    end
    return false, nil, format("Redis at %s may have forgotten the %s decided before %s (%s), and this call "
      .. "was decided before then", self.conn:address(), self.holds, utc(since), why)
  end
  local v = res and tonumber(res[2])
  if not is_sequence(v) then
    local spent = floor((self.clock() - t0) * 1000)
    if spent > 0 and candidate + spent <= sequence.MAX then candidate = candidate + spent end
    v = at_least(self, ids, candidate > old and candidate or old + 1)
    self:took(ids, v)
    return v, nil, true -- (this process's alone: nobody else was asked)
  end
  self:took(ids, v)
  return v
end

--- The last value handed out for key (Redis', or this store's when larger), or nil.
function SeqStore:get(key)
  local l = self.last[key]
  if self.health.usable() then
    local res, err = self.conn:eval(get_script, { self.key_prefix .. key }, {})
    if res ~= nil then
      self.health.succeeded()
      local v = tonumber(res)
      if is_sequence(v) and (l == nil or v > l) then return v end
      return l
    end
    if err.reason ~= "phase" then self.health.failed(err.message) end
  end
  return l
end

--- Forgets this store's own record of streams whose last value is below
-- `below` (Redis expires its keys by itself). Returns how many.
function SeqStore:prune(below)
  local n = sequence.prune_below(self.last, below, 3) -- (not a tail call: the error names prune's caller)
  return n
end

return M
