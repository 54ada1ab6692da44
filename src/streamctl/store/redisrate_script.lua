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
-- Sequences' floor and keep (ms), the heartbeat lifetime (us), a reason
-- to start afresh the caller found ('jumped': TIME ran ahead of its own
-- clock), honoured unless the schedule is younger than the pause already,
-- whether the caller knew the budget, the margin (ppm), the cap's interval
-- and the margin's hold (us), and the largest margin (a fraction).
--
-- The hash has no expiry (one per account: volatile-* eviction never
-- takes it, and an idle budget is not mistaken for a lost one). When the
-- script cannot prove it remembers the last second (the hash is missing,
-- it was written by another Redis run, TIME went back, or a schedule lies
-- further ahead than any process can reserve), it starts the schedule
-- afresh `pause` from now and says why.
-- @module streamctl.store.redisrate_script

local room = require "streamctl.engine.room"

local M = {}

-- The room (streamctl.engine.room) lives in the account's hash too: per
-- action "rw:<action>" (w, the room a throttle cut) and "rt:<action>" (t0,
-- Redis' TIME of the cut, us). The reservation spaces the schedule at
-- interval / room, and answers the room (ppm) as its twelfth value; the
-- `throttled` script cuts it. Both run the rule's own text (room.SOURCE),
-- so Redis and every other store learn by the same lines. A schedule
-- started afresh has lost its room with it.
--
-- The share a cut takes is the budget's, not one process's (room's
-- TALLY_SOURCE): per action "d:<action>" (the slots handed out, by when
-- they are due) and "x:<action>" (the throttles reported).

M.reserve = room.SOURCE .. room.TALLY_SOURCE .. [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local info = redis.call('INFO', 'server')
local run = string.match(info, 'run_id:(%w+)') or ''
local K = KEYS[1]
local interval, tau, maxd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pause = tonumber(ARGV[6])
local act = string.sub(ARGV[1], 5)
local h = redis.call('HMGET', K, 'born', 'run', 'ts', 'why', ARGV[1], 'new', 'mg:' .. act, 'mu:' .. act,
  'rw:' .. act, 'rt:' .. act, 'd:' .. act)
local born, ts, why, tat = tonumber(h[1]), tonumber(h[3]), h[4], tonumber(h[5])
local new, held, till = h[6], tonumber(h[7]), tonumber(h[8])
local rw, rt = tonumber(h[9]), tonumber(h[10])
-- (the widest interval a schedule is spaced at: the largest margin, the least room)
local widest = math.ceil(interval * (1 + tonumber(ARGV[16])) / ROOM_FLOOR)
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
elseif born > now + 100000 or (tat ~= nil and tat > now + 2 * pause + tau + 2 * widest) then fresh = 'ahead'
elseif ARGV[11] ~= '' and born < now - pause then fresh = ARGV[11]
end
if fresh then
  redis.call('DEL', K)
  born, tat, why, new, held, rw, rt, h[11] = now, nil, fresh, nil, nil, nil, nil, nil
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
-- The room: the schedule spaced at interval / room.
local f = room_at(rw, rt and rt / 1000000, now / 1000000)
if f < 1 then interval = math.ceil(interval / f) end
local fppm = math.floor(f * 1000000)
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
  return { delay, 0, tat - now, born, why or '', fresh and 1 or 0, nodes, '', 0, now, interval, fppm }
end
local new_tat = tat + interval
redis.call('HSET', K, ARGV[1], string.format('%.0f', new_tat),
  'd:' .. act, tally_add(h[11], tally_epoch((now + delay) / 1000000), tally_epoch(now / 1000000)))
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
return { delay, 1, new_tat - now, born, why or '', fresh and 1 or 0, nodes, seq, bad, now, interval, fppm }
]]

-- A throttle of an attempt on one action, sent ARGV[2] us before this
-- script runs, when ARGV[3] (a fraction) of the last second's answers its
-- process had were not throttles: KEYS[1] the account's hash, ARGV[1] the
-- action; ARGV[4]: the provider's retry-after (us, 0: none), before which
-- no slot of the action is handed out; ARGV[5]: the action's cap (requests
-- per second), which what got through is measured against (see TALLY). Cuts the
-- room (once per overshoot: streamctl.engine.room) when the budget's
-- schedule exists (a throttle never makes one: a hash without `born` would
-- be taken for a lost schedule). Answers { cut (1 or 0), the room (ppm) }.
M.throttled = room.SOURCE .. room.TALLY_SOURCE .. [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = (tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000000
local K, act = KEYS[1], ARGV[1]
if redis.call('HEXISTS', K, 'born') == 0 then return { 0, 1000000 } end
local h = redis.call('HMGET', K, 'rw:' .. act, 'rt:' .. act, 'tat:' .. act, 'd:' .. act, 'x:' .. act)
local w, t0, tat = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
if t0 ~= nil then t0 = t0 / 1000000 end
local after = tonumber(ARGV[4])
local now_e = tally_epoch(now)
local x = tally_add(h[5], now_e, now_e)
redis.call('HSET', K, 'x:' .. act, x)
local share = tonumber(ARGV[3])
local got = tally_share(h[4], x, now_e, tonumber(ARGV[5]), room_at(w, t0, now))
if got ~= nil and got < share then share = got end
if after > 0 and (tat == nil or tat < now * 1000000 + after) then
  redis.call('HSET', K, 'tat:' .. act, string.format('%.0f', now * 1000000 + after))
end
local nw, nt = room_cut(w, t0, now, now - tonumber(ARGV[2]) / 1000000, share)
if nw == nil then return { 0, math.floor(room_at(w, t0, now) * 1000000) } end
redis.call('HSET', K, 'rw:' .. act, string.format('%.6f', nw), 'rt:' .. act, string.format('%.0f', nt * 1000000))
return { 1, math.floor(room_at(nw, nt, now) * 1000000) }
]]

return M
