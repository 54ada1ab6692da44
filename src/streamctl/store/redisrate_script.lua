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

--- What a script can tell of its server (streamctl.store.redismemory's
-- SERVER: run id, replication id, uptime, evictions, whether it lost
-- anything since it started).
M.SERVER = require("streamctl.store.redismemory").SERVER

-- The rules of the account hash's values, as Lua text (Redis' Lua), for
-- both scripts: a value read that breaks its rule is replaced by its safe
-- value, written back, and named in `bad` (a list of "field=value", which
-- the caller says once); it is never carried forward.
-- `checked_num(K, field, v, lo, hi, bad)`: v (a reply: false when
-- missing) as a number in lo..hi, or nil (missing, or broken: named and
-- deleted). `checked_room(K, act, vw, vt, now, bad)`: the room's w and t0
-- (us); a broken one is the least room (ROOM_FLOOR) cut at `now`, which
-- grows back by itself. `checked_tally(K, field, v, now_e, bad)`: a
-- tally's text, or nil (broken: deleted; a tally lost only makes a cut
-- measure less).
M.CHECK = [[
local function shown(v) return string.sub(tostring(v), 1, 40) end
local function checked_num(K, field, v, lo, hi, bad)
  if v == false or v == nil then return nil end
  local n = tonumber(v)
  if n ~= nil and n == n and n >= lo and n <= hi then return n end
  bad[#bad + 1] = field .. '=' .. shown(v)
  redis.call('HDEL', K, field)
  return nil
end
local function checked_room(K, act, vw, vt, now, bad)
  if vw == false and vt == false then return nil, nil end
  local w, t0 = tonumber(vw), tonumber(vt)
  if w ~= nil and w == w and w >= ROOM_FLOOR - 1e-9 and w <= 1 and t0 ~= nil and t0 == t0 and t0 >= 0
    and t0 <= now + 100000 then
    return w, t0
  end
  bad[#bad + 1] = 'rw:' .. act .. '=' .. shown(vw) .. ' rt:' .. act .. '=' .. shown(vt)
  redis.call('HSET', K, 'rw:' .. act, string.format('%.6f', ROOM_FLOOR), 'rt:' .. act, string.format('%.0f', now))
  return ROOM_FLOOR, now
end
local function checked_tally(K, field, v, now_e, bad)
  if v == false or v == nil then return nil end
  local ok = string.find(v, '^[%d: ]*$') ~= nil
  for e, c in string.gmatch(v, '(%d+):(%d+)') do
    e, c = tonumber(e), tonumber(c)
    -- (a bucket of long ago is a tally nobody added to since, a pause or a Redis down a while: kept, and
    -- dropped by the next count; one more than 10 s ahead no clock wrote)
    if not (e <= now_e + 100 and c <= 1000000) then ok = false end
  end
  if ok then return v end
  bad[#bad + 1] = field .. '=' .. shown(v)
  redis.call('HDEL', K, field)
  return nil
end
]]

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

M.reserve = room.SOURCE .. room.TALLY_SOURCE .. M.SERVER .. M.CHECK .. [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local info = redis.call('INFO', 'server')
local run = server_run(info)
local K = KEYS[1]
local interval, tau, maxd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pause = tonumber(ARGV[6])
local act = string.sub(ARGV[1], 5)
local h = redis.call('HMGET', K, 'born', 'run', 'ts', 'why', ARGV[1], 'new', 'mg:' .. act, 'mu:' .. act,
  'rw:' .. act, 'rt:' .. act, 'd:' .. act, 'sl')
-- (every value checked by its rule: see CHECK; a schedule's own that
-- breaks it is a schedule this script cannot prove it remembers)
local bad, BIG = {}, 9007199254740991
local born = checked_num(K, 'born', h[1], 0, BIG, bad)
local ts = checked_num(K, 'ts', h[3], 0, BIG, bad)
local tat = checked_num(K, ARGV[1], h[5], 0, BIG, bad)
local unreadable = #bad > 0
local why, new = h[4], h[6]
if new ~= false and new ~= '1' then
  bad[#bad + 1] = 'new=' .. shown(new)
  redis.call('HDEL', K, 'new')
  new = nil
end
local held = checked_num(K, 'mg:' .. act, h[7], 0, math.ceil(tonumber(ARGV[16]) * 1000000), bad)
local till = checked_num(K, 'mu:' .. act, h[8], 0, now + tonumber(ARGV[15]), bad)
local rw, rt = checked_room(K, act, h[9], h[10], now, bad)
h[11] = checked_tally(K, 'd:' .. act, h[11], tally_epoch(now / 1000000), bad)
-- (the least Sequence (ms) handed out from here on: see the fresh start below)
local sl = checked_num(K, 'sl', h[12], 0, BIG, bad)
-- (the widest interval a schedule is spaced at: the largest margin, the least room)
local widest = math.ceil(interval * (1 + tonumber(ARGV[16])) / ROOM_FLOOR)
-- A missing hash no caller knew is a new budget when the server shows it
-- lost nothing that could have held one in the last pause: up longer than
-- that, never evicted a key, never flushed, swapped or replaced its data,
-- a master that was never anything else.
local function unlost()
  local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  if up == nil or up * 1000000 < pause + 1000000 then return false end
  return server_kept(redis.call('INFO', 'replication'))
end
local fresh = nil
if unreadable then fresh = 'unreadable'
elseif born == nil then fresh = (ARGV[12] == '' and unlost()) and 'new' or 'missing'
elseif h[2] ~= run then fresh = 'restarted'
elseif ts ~= nil and now < ts - 100000 then fresh = 'clock'
elseif born > now + 100000 or (tat ~= nil and tat > now + 2 * pause + tau + 2 * widest) then fresh = 'ahead'
elseif ARGV[11] ~= '' and born < now - pause then fresh = ARGV[11]
end
if fresh then
  -- A schedule that last saw a later TIME than this server's (a failover to a
  -- server whose clock is behind, a clock stepped back): the Sequences handed
  -- out then followed that clock, and may lie above this one's: the ones
  -- taken from now on start above it (`sl`, kept while it is ahead).
  -- (a minute ahead at most: a clock further off is not one a server had)
  if ts ~= nil and ts > now and ts <= now + 60000000 and (sl == nil or math.floor(ts / 1000) + 1 > sl) then
    sl = math.floor(ts / 1000) + 1
  end
  if sl ~= nil and sl <= now / 1000 then sl = nil end
  redis.call('DEL', K)
  if sl ~= nil then redis.call('HSET', K, 'sl', string.format('%.0f', sl)) end
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
  return { delay, 0, tat - now, born, why or '', fresh and 1 or 0, nodes, '', 0, now, interval, fppm,
    table.concat(bad, ' ') }
end
local new_tat = tat + interval
redis.call('HSET', K, ARGV[1], string.format('%.0f', new_tat),
  'd:' .. act, tally_add(h[11], tally_epoch((now + delay) / 1000000), tally_epoch(now / 1000000)))
local seq, sbad = '', {}
if #KEYS > 2 then
  local v = math.floor(now / 1000)
  local fl = tonumber(ARGV[8])
  if fl > v then v = fl end
  if sl ~= nil and sl > v then v = sl end
  for i = 3, #KEYS do
    local raw = redis.call('GET', KEYS[i])
    local cur = tonumber(raw)
    if raw and not (cur ~= nil and cur >= 0 and cur <= 9007199254740991 and cur == math.floor(cur)) then
      sbad[#sbad + 1] = KEYS[i] .. '=' .. shown(raw)
      cur = nil
    end
    if cur ~= nil and cur + 1 > v then v = cur + 1 end
  end
  seq = string.format('%.0f', v)
  for i = 3, #KEYS do redis.call('SET', KEYS[i], seq, 'PX', ARGV[9]) end
end
return { delay, 1, new_tat - now, born, why or '', fresh and 1 or 0, nodes, seq, table.concat(sbad, ' '), now,
  interval, fppm,
  table.concat(bad, ' ') }
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
M.throttled = room.SOURCE .. room.TALLY_SOURCE .. M.CHECK .. [[
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = (tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000000
local K, act = KEYS[1], ARGV[1]
if redis.call('HEXISTS', K, 'born') == 0 then return { 0, 1000000 } end
local h = redis.call('HMGET', K, 'rw:' .. act, 'rt:' .. act, 'tat:' .. act, 'd:' .. act, 'x:' .. act)
local bad = {}
local w, t0 = checked_room(K, act, h[1], h[2], math.floor(now * 1000000), bad)
if t0 ~= nil then t0 = t0 / 1000000 end
-- (a schedule that cannot be right is left for the reservation to start afresh: not moved here)
local tat = tonumber(h[3])
local after = tonumber(ARGV[4])
if tat ~= nil and not (tat == tat and tat >= 0 and tat <= 9007199254740991) then after = 0 end
local now_e = tally_epoch(now)
h[4] = checked_tally(K, 'd:' .. act, h[4], now_e, bad)
local x = tally_add(checked_tally(K, 'x:' .. act, h[5], now_e, bad), now_e, now_e)
redis.call('HSET', K, 'x:' .. act, x)
local share = tonumber(ARGV[3])
local got = tally_share(h[4], x, now_e, tonumber(ARGV[5]), room_at(w, t0, now))
if got ~= nil and got < share then share = got end
if after > 0 and (tat == nil or tat < now * 1000000 + after) then
  redis.call('HSET', K, 'tat:' .. act, string.format('%.0f', now * 1000000 + after))
end
local nw, nt = room_cut(w, t0, now, now - tonumber(ARGV[2]) / 1000000, share)
if nw == nil then return { 0, math.floor(room_at(w, t0, now) * 1000000), table.concat(bad, ' ') } end
redis.call('HSET', K, 'rw:' .. act, string.format('%.6f', nw), 'rt:' .. act, string.format('%.0f', nt * 1000000))
return { 1, math.floor(room_at(nw, nt, now) * 1000000), table.concat(bad, ' ') }
]]

return M
