--- Stores in Redis: one rate-limit budget and one ZEGO Sequence per stream
-- for every process on every machine that uses the same Redis, which say
-- when Redis forgot them.
--
--   local redis_store = require "streamctl.store.redis"
--   local conn = redis_store.connect "redis://:secret@10.0.0.5:6379/0"   -- or a table, see `config`
--   local limiter = ratelimit.new { store = redis_store.ratelimit_store(conn) }
--   local seq = sequence.new { store = redis_store.sequence_store(conn, "zego:1234567890:") }
--   local replay = redis_store.replay_store(conn)   -- callbacks seen, for streamctl.edge.callbacks
--
-- Connections (configuration, URLs, scripts, where Redis is reached from and
-- with how many round trips) are streamctl.store.redisconn's; this module
-- re-exports its `config`, `connect`, `is_connection`, `script` and `null`.
--
-- Keys. All of one account's keys share one hash tag, `{provider:account}`
-- (the limiter key up to its last ':', or a sequence store's prefix), so a
-- script touches one node of a cluster: `prefix .. "{aliyun:123}:rl"` (a
-- hash: `born`, `run`, `ts`, `why`, `new`, and per action `tat:<Action>` and
-- the largest margin asked with lately, `mg:<Action>` until `mu:<Action>`;
-- no expiry),
-- `...}:procs` (a sorted set of heartbeats) and `...}:seq:<stream>`.
--
-- Rate limits (`ratelimit_store`): a store for streamctl.engine.ratelimit with
-- `reserve(key, rate, burst, max_delay)`, so the limiter's reservation
-- happens in one script, atomically: the GCRA of streamctl.engine.ratelimit (tat,
-- T = 1/rate, tau = (burst - 1) * T) in integer microseconds of the Redis
-- server's clock (`TIME`), so machines whose clocks differ share one
-- schedule. T is 1/rate rounded up to a whole microsecond (never faster than
-- the rate). A slot is committed only within `max_delay`, and never more
-- than MAX_HORIZON (0.75 s) ahead, so the slots handed out are few whatever
-- happens. The answer also says when to ask again (`next`).
--
-- Lost state. The script starts an account's schedule afresh, LOSS_PAUSE
-- (1.05 s; streamctl.engine.ratelimit.loss_pause) from now, when it cannot prove it remembers the last second: the
-- hash is missing (a first use, FLUSHALL, eviction, a restart without its
-- data), its `run` is not the server's run id (a restart or failover onto
-- older data), TIME went back more than 100 ms, a schedule lies further
-- ahead than any process reserves, or the caller saw TIME run ahead of its
-- own clock (MAX_JUMP). Each process that had used the budget says so once.
-- A missing hash that no asking process knew starts at once when INFO shows
-- the server lost nothing since it could have held one (up longer than the
-- pause and a second, no eviction, flush, swap, DEBUG or change of role
-- ever: docs/redis.md "A budget's first use"); `why` is then `new`.
--
-- Sequences (`sequence_store`): a store for streamctl.engine.sequence whose values
-- follow the Redis server's clock: v = max(server ms, floor, every stream's
-- value + 1) for all of a call's streams in one script (`advance_all`), SET
-- with an expiry of sequence.KEEP_MS; a caller's own Sequence only when it
-- is above every stream's (`record_all`). A ZEGO call's Sequence can also
-- be taken with its slot, in the rate-limit script (`reserve_sequenced`).
-- Values stay below 2^53 (Redis' Lua numbers are doubles); one that cannot
-- be right is reset to the server's time, and said.
--
-- When Redis is unreachable, slow (timeout_ms) or answers an error, neither
-- store raises nor sends unlimited. The rate-limit store falls back to a
-- GCRA in this process (streamctl.engine.ratelimit.gcra on a table of its own, in
-- the monotonic clock) at `rate / nodes` with a burst of `floor(burst / nodes)` (at least
-- 1), where `nodes` is the config's (default 4, the number of processes
-- expected to share the account) or the processes Redis last counted (by
-- their heartbeats of the last ALIVE seconds), whichever is more: with that
-- many processes each in fallback, their sum stays at the rate. More
-- processes can exceed it while Redis is down; fewer leave budget unused. The
-- switches between the two never crowd the provider: the fallback starts
-- after the slots Redis had handed out (its
-- schedule ran as far ahead as its last answer said), and after Redis
-- answers again a process keeps to its own budget as well, until the others
-- (which may still be on theirs until they try Redis again) must be back,
-- and a second more (retry_ms + timeout_ms + its own interval + 1 s), and puts its
-- slot, not an earlier one, into Redis' schedule, so the shared schedule
-- resumes after the slots handed out locally. spec/62 kills Redis under
-- three processes at the cap and restarts it: zero throttled.
--
-- The sequence store falls back to `max(candidate, last + 1)` where `last`
-- is the last value it handed out for that stream (from Redis or locally),
-- and while Redis is back it passes `last + 1` as the floor, so the values
-- of one process never go down. Across processes, the fallback relies on the candidates (each machine's wall
-- clock in milliseconds) being sane: two machines whose clocks differ can
-- hand out values out of order for one stream while Redis is down.
--
-- An outage is told once by each store (a ZEGO client's two stores: twice;
-- in nginx, by each worker), through `opts.log` (default: `ngx.log(ngx.WARN,
-- ...)` inside nginx, else standard error), naming host:port and the error
-- (never the password), and its end once, when Redis answers again. While
-- in fallback a store does not try Redis on every call: again after
-- `opts.retry_ms` (default 500) milliseconds.
--
-- @module streamctl.store.redis


local redisconn = require "streamctl.store.redisconn"
local shared = require "streamctl.store.redisstore"
local rate = require "streamctl.store.redisrate"
local seq = require "streamctl.store.redisseq"

local M = {}

M.null = redisconn.null
M.config = redisconn.config
M.connect = redisconn.connect
M.is_connection = redisconn.is_connection
M.script = redisconn.script

--- Milliseconds a store in fallback waits before it tries Redis again.
M.RETRY_MS = shared.RETRY_MS

--- How far ahead (seconds) a slot of a process's own budget is committed
-- (the fallback, and a process just back from it): see redisstore.
M.FALLBACK_HORIZON = shared.FALLBACK_HORIZON

--- How long (seconds) nothing is sent on a budget after its state was lost
-- or first made: the limiter's (streamctl.engine.ratelimit.LOSS_PAUSE).
M.LOSS_PAUSE = rate.LOSS_PAUSE

--- The longest horizon a slot is committed ahead: the limiter's
-- (streamctl.engine.ratelimit.MAX_HORIZON).
M.MAX_HORIZON = rate.MAX_HORIZON

--- How long (seconds) the largest margin a caller asked with spaces a
-- shared schedule.
M.MARGIN_HOLD = rate.MARGIN_HOLD

M.ratelimit_store = rate.ratelimit_store
M.sequence_store = seq.sequence_store
M.replay_store = require("streamctl.store.redisreplay").replay_store

--- A backend of streamctl.pipeline.stores' contract, for the client option
-- `redis`: its rule (a connection object as given, else the config a URL
-- or table parses to), and its handle, that connection, or one made (on
-- first use: a client made while Redis is down works from its fallback),
-- which is then the client's to close.
function M.check(v)
  if redisconn.is_connection(v) then return v end
  return redisconn.config(v)
end
function M.handle(v)
  if redisconn.is_connection(v) then return v, false end
  local conn, err = redisconn.connect(v)
  if not conn then return nil, err end
  return conn, true
end

return M
