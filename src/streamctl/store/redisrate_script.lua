--- The rate-limit script Redis runs for streamctl.store.redisrate, as
-- text: one schedule per account, a slot taken in one round trip, and the
-- proof that the schedule was not lost (`reserve`, the module's one field).
--
-- KEYS[1]: the account's hash (born, run, ts, why,
-- and "tat:<action>" per action); KEYS[2]: the account's processes (a
-- sorted set of heartbeats); KEYS[3..]: the Sequence keys of a ZEGO call
-- (optional: their Sequence is taken only when the slot is committed).
-- ARGV: the action's field, interval and tau (us), max_delay (us, -1 for
-- none), earliest (us from now: the local slot after an outage), the loss
-- pause (us), this process's id ('' when no heartbeat is due), the
-- Sequences' floor and keep (ms), the heartbeat lifetime (us), and a reason
-- to start afresh the caller found ('jumped': TIME ran ahead of its own
-- clock), honoured unless the schedule is younger than the pause already.
--
-- The hash has no expiry (one per account: volatile-* eviction never
-- takes it, and an idle budget is not mistaken for a lost one). When the
-- script cannot prove it remembers the last second (the hash is missing,
-- it was written by another Redis run, TIME went back, or a schedule lies
-- further ahead than any process can reserve), it starts the schedule
-- afresh `pause` from now and says why.
-- @module streamctl.store.redisrate_script

local M = {}

M.reserve = [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local info = redis.call('INFO', 'server')
local run = string.match(info, 'run_id:(%w+)') or ''
local K = KEYS[1]
local interval, tau, maxd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pause = tonumber(ARGV[6])
local act = string.sub(ARGV[1], 5)
local h = redis.call('HMGET', K, 'born', 'run', 'ts', 'why', ARGV[1], 'new', 'mg:' .. act, 'mu:' .. act)
local born, ts, why, tat = tonumber(h[1]), tonumber(h[3]), h[4], tonumber(h[5])
local new, held, till = h[6], tonumber(h[7]), tonumber(h[8])
-- A missing hash no caller knew is a new budget when the server shows it
-- lost nothing that could have held one in the last pause: up longer than
-- that, never evicted a key, never flushed, swapped or replaced its data,
-- a master that was never anything else.
local function unlost()
  local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  if up == nil or up * 1000000 < pause + 1000000 then return false end
  if string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') ~= '0' then return false end
  local rep = redis.call('INFO', 'replication')
  if string.match(rep, 'role:(%a+)') ~= 'master' or string.match(rep, 'second_repl_offset:(%-?%d+)') ~= '-1' then
    return false
  end
  local cs = redis.call('INFO', 'commandstats')
  for _, c in ipairs({ 'flushall', 'flushdb', 'swapdb', 'debug', 'replicaof', 'slaveof', 'failover' }) do
    if string.find(cs, 'cmdstat_' .. c .. ':', 1, true) then return false end
  end
  return true
end
local fresh = nil
if born == nil then fresh = (ARGV[12] == '' and unlost()) and 'new' or 'missing'
elseif h[2] ~= run then fresh = 'restarted'
elseif ts ~= nil and now < ts - 100000 then fresh = 'clock'
elseif born > now + 100000 or (tat ~= nil and tat > now + 2 * pause + tau + 2 * interval) then fresh = 'ahead'
elseif ARGV[11] ~= '' and born < now - pause then fresh = ARGV[11]
end
if fresh then
  redis.call('DEL', K)
  born, tat, why, new, held = now, nil, fresh, nil, nil
  redis.call('HSET', K, 'born', now, 'run', run, 'why', fresh, 'ts', now)
  if fresh == 'new' then new = '1' redis.call('HSET', K, 'new', '1') end
else
  redis.call('HSET', K, 'ts', now)
end
-- The schedule's spacing: at the largest margin a caller asked with in the
-- last HOLD (ARGV[13], ppm of the cap whose interval is ARGV[14]), this
-- caller's refreshing it when it is the largest; a caller that carries
-- none ('') is spaced at the held one over its own interval.
local m, base = tonumber(ARGV[13]), tonumber(ARGV[14])
local live = held ~= nil and till ~= nil and till >= now
if m ~= nil then
  if live and held > m then m = held
  else redis.call('HSET', K, 'mg:' .. act, m, 'mu:' .. act, now + tonumber(ARGV[15])) end
elseif live then m, base = held, interval end
if m ~= nil then
  local wide = math.ceil(base * (1000000 + m) / 1000000)
  if wide > interval then interval = wide end
end
if tat == nil or tat < now then tat = now end
local start = born + (new == '1' and 0 or pause) + tau
if tat < start then tat = start end
local earliest = now + tonumber(ARGV[5])
if tat < earliest then tat = earliest end
local delay = tat - tau - now
if delay < 0 then delay = 0 end
local nodes = 0
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[10]))
  nodes = redis.call('ZCARD', KEYS[2])
end
if maxd >= 0 and delay > maxd then
  return { delay, 0, tat - now, born, why or '', fresh and 1 or 0, nodes, '', 0, now, interval }
end
local new_tat = tat + interval
redis.call('HSET', K, ARGV[1], string.format('%.0f', new_tat))
local seq, bad = '', 0
if #KEYS > 2 then
  local v = math.floor(now / 1000)
  local fl = tonumber(ARGV[8])
  if fl > v then v = fl end
  for i = 3, #KEYS do
    local cur = tonumber(redis.call('GET', KEYS[i]))
    if cur ~= nil and not (cur >= 0 and cur <= 9007199254740991) then cur, bad = nil, bad + 1 end
    if cur ~= nil and cur + 1 > v then v = cur + 1 end
  end
  seq = string.format('%.0f', v)
  for i = 3, #KEYS do redis.call('SET', KEYS[i], seq, 'PX', ARGV[9]) end
end
return { delay, 1, new_tat - now, born, why or '', fresh and 1 or 0, nodes, seq, bad, now, interval }
]]

return M
