--- What a Redis server may have forgotten, and since when, as Lua text
-- for the scripts Redis runs (Redis' Lua): the one rule every store that
-- must not mistake a loss for "nothing there" follows (the rate-limit
-- budget, the callback replay store, the decisions' store, the forbid
-- list's mark of being whole).
--
-- A restart (a new run id), a failover (a new replication id: a replica
-- promoted may lack the last writes its master took), an eviction, a
-- FLUSHALL, or data swapped or replaced are each a loss. What a store
-- keeps to tell one is a hash of its own, with no expiry: the run id,
-- replication id and evictions it last saw (`run`, `rid`, `ev`) and, for
-- the stores that say since when they remember (`since`, ms of the
-- server's clock), why that moment (`why`).
-- @module streamctl.store.redismemory

local floor, date = math.floor, os.date

local M = {}

--- What a script can tell of its server: `server_run(info)` the run id in
-- `INFO server` (a new one at every restart), `server_replid(rep)` the
-- replication id in `INFO replication` (a new one at a failover),
-- `server_up_us(info)` its uptime (whole seconds: never later than its
-- start), `server_evicted()` the keys it evicted, and `server_kept(rep)`,
-- true when since it started the server lost nothing it was given: it
-- never evicted a key, never flushed, swapped or replaced its data, and is
-- a master that was never anything else (no failover, no replica promoted
-- onto older data). `server_changed(run, rid, ev)`: why a hash that saw
-- `run`, `rid` and `ev` may have been forgotten since ('restarted',
-- 'evicted'), or nil.
M.SERVER = [[
local function server_run(info) return string.match(info, 'run_id:(%w+)') or '' end
local function server_replid(rep) return string.match(rep, 'master_replid:(%w+)') or '' end
local function server_up_us(info)
  local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  return up and up * 1000000
end
local function server_evicted() return tonumber(string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)')) end
local function server_kept(rep)
  if server_evicted() ~= 0 then return false end
  if string.match(rep, 'role:(%a+)') ~= 'master' or string.match(rep, 'second_repl_offset:(%-?%d+)') ~= '-1' then
    return false
  end
  local cs = redis.call('INFO', 'commandstats')
  for _, c in ipairs({ 'flushall', 'flushdb', 'swapdb', 'debug', 'replicaof', 'slaveof', 'failover' }) do
    if string.find(cs, 'cmdstat_' .. c .. ':', 1, true) then return false end
  end
  return true
end
local function server_changed(run, rid, ev)
  if run ~= server_run(redis.call('INFO', 'server')) or rid ~= server_replid(redis.call('INFO', 'replication')) then
    return 'restarted'
  end
  if tonumber(ev) ~= (server_evicted() or 0) then return 'evicted' end
  return nil
end
]]

--- `server_since(key, known, now)`: since when (ms of the server's clock,
-- `now` its TIME in ms) the server remembers every key a store gave it,
-- kept in the hash `key`; returns since, why ('' when nothing was ever
-- lost), and true when this call found the loss. The hash missing on a
-- server that lost nothing, asked by a process that had not seen it
-- (`known` false), is a first use ('new'); otherwise a hash missing, one
-- that cannot be right, or one of another run, replication id or eviction
-- count is a loss. At a loss, `since` moves to the moment the server's
-- memory provably began: its start when since then it lost nothing (a
-- first use too: a restart without its data looks the same to a process
-- that never asked), else the moment it was found. Needs SERVER before it.
M.SINCE = [[
local function server_since(key, known, now)
  local info = redis.call('INFO', 'server')
  local rep = redis.call('INFO', 'replication')
  local m = redis.call('HMGET', key, 'run', 'rid', 'since', 'ev', 'why')
  local since, found = tonumber(m[3]), nil
  if m[1] == false and m[2] == false and m[3] == false and m[4] == false then
    found = (not known and server_kept(rep)) and 'new' or 'missing'
  elseif not (since ~= nil and since == since and since >= 0 and since <= now) or tonumber(m[4]) == nil then
    found = 'unreadable'
  else
    found = server_changed(m[1], m[2], m[4])
  end
  if not found then return since, m[5] or '', false end
  if found == 'new' or server_kept(rep) then since = now - math.floor(server_up_us(info) / 1000)
  else since = now end
  redis.call('HSET', key, 'run', server_run(info), 'rid', server_replid(rep), 'since', string.format('%.0f', since),
    'ev', server_evicted() or 0, 'why', found)
  return since, found, true
end
]]

--- Why a store's memory began again, by `server_since`'s word (the
-- subject is the Redis server).
M.FORGOT = {
  missing = "its memory is gone (a restart without its data, a FLUSHALL, or an eviction)",
  restarted = "it restarted or failed over (a new run id or replication id: a replica promoted may lack the "
    .. "last writes its master took)",
  evicted = "it evicted keys (maxmemory-policy is not noeviction)",
  unreadable = "its memory's record held a value that cannot be right",
  new = "it started then, and cannot have seen what came before",
}

--- A time of the server's clock (`ms`) as UTC text, for what a store says.
function M.utc(ms)
  return date("!%Y-%m-%dT%H:%M:%SZ", floor(ms / 1000))
end

return M
