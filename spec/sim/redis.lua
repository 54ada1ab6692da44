--- The simulator's Redis: runs the stores' own scripts (the text
-- streamctl.store.redis sends with EVALSHA) against an in-memory keyspace,
-- with the commands they use, Redis' reply conversions and its faults.
--
-- A connection for the stores is a real streamctl.store.redis connection
-- object whose `eval` is this model's: the stores run exactly as they do
-- against a server, and only the wire is simulated. Time passes on the wire
-- (a round trip of `latency` seconds, the script running halfway), a slow
-- server answers after the connection's timeout (the script may still have
-- run: the caller cannot tell), a server that is gone refuses at once, and
-- the data can be lost (FLUSHALL, eviction) or the server restarted (a new
-- run id, with or without its data). Its clock (TIME) is the world's plus
-- a skew the schedule may step. With `lag` set, a replica follows it that
-- far behind (asynchronous replication: each script's keys copied `lag`
-- seconds after it ran), and a failover promotes the replica: its data,
-- missing the writes of the last `lag` seconds, a run id of its own, and
-- INFO saying it was a replica (second_repl_offset), as Sentinel leaves one.
--
-- Commands: TIME, INFO, GET, SET (PX), DEL, HMGET, HEXISTS, HSET, HDEL, ZADD,
-- ZREMRANGEBYSCORE, ZCARD. Replies follow Redis' Lua conversion: a number
-- becomes an integer (truncated), false a nil, a table an array up to its
-- first nil. Hand-written: no Redis library runs scripts without a server.
-- @module sim.redis

local redisconn = require "streamctl.store.redisconn"
local errors = require "streamctl.base.errors"

local type, tostring, tonumber, pairs, ipairs, error, setmetatable, load, select =
  type, tostring, tonumber, pairs, ipairs, error, setmetatable, load, select
local floor, huge = math.floor, math.huge
local format, upper = string.format, string.upper

local M = {}

-- A failure as conn:eval hands it on (streamctl.store.redisconn).
local function failure(message, reason)
  return errors.new { code = "RedisError", kind = "store", reason = reason, message = message,
                      retryable = reason ~= "server" }
end

local Server = {}
Server.__index = Server

--- A server in `world`.
function M.new(world)
  local s = setmetatable({ world = world, data = {}, expires = {}, run = 1, skew = 0, gone = false,
                           latency = 0.0005, started = world:now(), evicted = 0, flushes = 0 }, Server)
  return s
end

function Server:run_id()
  return format("%040x", self.run)
end

-- Now in microseconds of the server's clock.
function Server:time_us()
  return floor((1795392000 + self.world:now() + self.skew) * 1e6)
end

local function arg(v)
  if type(v) == "number" then
    if v == floor(v) and v > -2 ^ 63 and v < 2 ^ 63 then return format("%.0f", v) end
    return format("%.17g", v)
  end
  return tostring(v)
end

function Server:get_key(k)
  local e = self.expires[k]
  if e and self:time_us() >= e then self.data[k], self.expires[k] = nil, nil end
  return self.data[k]
end

-- One command, as redis.call runs it.
function Server:command(name, ...)
  local n = select("#", ...)
  local a = { ... }
  for i = 1, n do a[i] = arg(a[i]) end
  name = upper(name)
  if name == "TIME" then
    local us = self:time_us()
    return { format("%.0f", floor(us / 1e6)), format("%.0f", us % 1e6) }
  elseif name == "INFO" then
    -- (the sections the stores read: the run id and uptime, evictions,
    -- the role, the commands that replace data)
    local section = a[1] and string.lower(a[1]) or "server"
    if section == "server" then
      return format("# Server\r\nredis_version:7.0.0\r\nrun_id:%s\r\nuptime_in_seconds:%d\r\n", self:run_id(),
        floor(self.world:now() - self.started))
    elseif section == "stats" then
      return format("# Stats\r\nevicted_keys:%d\r\n", self.evicted)
    elseif section == "replication" then
      return "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nsecond_repl_offset:"
        .. (self.promoted and "1" or "-1") .. "\r\n"
    elseif section == "commandstats" then
      return "# Commandstats\r\ncmdstat_eval:calls=1,usec=1\r\n"
        .. (self.flushes > 0 and format("cmdstat_flushall:calls=%d,usec=1\r\n", self.flushes) or "")
    end
    error("sim redis: INFO " .. section .. " is not modelled")
  elseif name == "GET" then
    local v = self:get_key(a[1])
    if type(v) == "table" then error("WRONGTYPE") end
    return v or false
  elseif name == "SET" then
    self.data[a[1]], self.expires[a[1]] = a[2], nil
    if a[3] and upper(a[3]) == "PX" then self.expires[a[1]] = self:time_us() + tonumber(a[4]) * 1000 end
    return { ok = "OK" }
  elseif name == "DEL" then
    local c = 0
    for i = 1, n do if self:get_key(a[i]) ~= nil then c = c + 1 end self.data[a[i]] = nil end
    return c
  elseif name == "HMGET" then
    local h = self:get_key(a[1]) or {}
    local out = {}
    for i = 2, n do out[i - 1] = h[a[i]] or false end
    return out
  elseif name == "HEXISTS" then
    local h = self:get_key(a[1])
    return (h and h[a[2]] ~= nil) and 1 or 0
  elseif name == "HSET" then
    local h = self:get_key(a[1])
    if not h then h = {}; self.data[a[1]] = h end
    for i = 2, n, 2 do h[a[i]] = a[i + 1] end
    return (n - 1) / 2
  elseif name == "HDEL" then
    local h, c = self:get_key(a[1]), 0
    for i = 2, n do if h and h[a[i]] ~= nil then h[a[i]], c = nil, c + 1 end end
    return c
  elseif name == "ZADD" then
    local z = self:get_key(a[1])
    if not z then z = {}; self.data[a[1]] = z end
    for i = 2, n, 2 do z[a[i + 1]] = tonumber(a[i]) end
    return 1
  elseif name == "ZREMRANGEBYSCORE" then
    local z = self:get_key(a[1]) or {}
    local lo = a[2] == "-inf" and -huge or tonumber(a[2])
    local hi = a[3] == "+inf" and huge or tonumber(a[3])
    local c = 0
    for m, score in pairs(z) do if score >= lo and score <= hi then z[m] = nil; c = c + 1 end end
    return c
  elseif name == "ZCARD" then
    local c = 0
    for _ in pairs(self:get_key(a[1]) or {}) do c = c + 1 end
    return c
  end
  error("sim redis: command " .. name .. " is not modelled")
end

-- Redis' conversion of a script's Lua value into a reply.
local function reply(v)
  local t = type(v)
  if t == "number" then
    local i = v >= 0 and floor(v) or -floor(-v)
    return i
  elseif t == "string" then
    return v
  elseif t == "boolean" then
    return v and 1 or redisconn.null
  elseif t == "table" then
    if v.ok then return v.ok end
    local out = {}
    local i = 1
    while v[i] ~= nil do out[i] = reply(v[i]); i = i + 1 end
    return out
  end
  return redisconn.null
end

-- A script's text compiled once, with the environment it runs in (KEYS,
-- ARGV and the server set at each run): compiling it at every run was a
-- quarter of the simulation's time. As in Redis, a script may not set a
-- global.
local compiled = {}
local function compile(text)
  local c = compiled[text]
  if c then return c end
  local env = setmetatable({
    tonumber = tonumber, tostring = tostring, type = type, string = string,
    math = math, table = table, pairs = pairs, ipairs = ipairs,
  }, { __newindex = function(_, k) error("sim redis: a script set the global " .. tostring(k)) end })
  local fn, err = load(text, "=script", "t", env)
  if not fn then error("sim redis: " .. err) end
  c = { fn = fn, env = env }
  compiled[text] = c
  return c
end

-- Runs a script's text with KEYS and ARGV (all strings, as Redis passes them).
function Server:exec(text, keys, args)
  local c = compile(text)
  if not self.script_api then
    local server = self
    self.script_api = { call = function(...) return server:command(...) end }
  end
  rawset(c.env, "KEYS", keys)
  rawset(c.env, "ARGV", args)
  rawset(c.env, "redis", self.script_api)
  return reply(c.fn())
end

--- Loses every key: FLUSHALL, or (`evict`) an eviction of everything;
-- either is counted where INFO shows it.
function Server:flush(evict)
  self.data, self.expires = {}, {}
  if self.replica and not evict then self.replica = { data = {}, expires = {} } end
  if evict then self.evicted = self.evicted + 1 else self.flushes = self.flushes + 1 end
end

-- A copy of a key's value (a string, or a hash or set as a table).
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = x end
  return out
end

-- A replica in sync with the data as it is now (before a script runs: its
-- writes reach the replica `lag` later), made the first time it is needed.
function Server:sync_replica()
  if not self.lag or self.replica then return end
  local r = { data = {}, expires = {} }
  for k, v in pairs(self.data) do r.data[k], r.expires[k] = copy(v), self.expires[k] end
  self.replica = r
end


-- The replica takes a script's keys, as they are now, `lag` seconds later
-- (unless a failover came first: then they are the writes it lost).
function Server:replicate(keys)
  local lag, r = self.lag, self.replica
  if not lag or not r then return end
  local writes, epoch = {}, self.run
  for i, k in ipairs(keys) do writes[i] = { k, copy(self.data[k]), self.expires[k] } end
  self.world:at(self.world:now() + lag, function()
    if self.run ~= epoch then return end
    for _, w in ipairs(writes) do r.data[w[1]], r.expires[w[1]] = w[2], w[3] end
  end)
end

--- A failover: the replica promoted, with what it had (the last `lag`
-- seconds of writes missing), a new run id, and INFO saying it was a
-- replica; a new replica follows it.
function Server:failover()
  local r = self.replica or { data = {}, expires = {} }
  self.data, self.expires, self.replica = r.data, r.expires, nil
  self.run, self.promoted = self.run + 1, true
end

--- Restarts: a new run id, uptime and counters; `keep` false loses the data too.
function Server:restart(keep)
  self.run = self.run + 1
  self.started, self.evicted, self.flushes = self.world:now(), 0, 0
  if not keep then self.data, self.expires = {}, {} end
  self.replica = nil -- (it syncs afresh)
end

--- A connection object for the stores: a real one, whose `eval` crosses
-- this model's wire. `timeout` in seconds (the config's timeout_ms).
function Server:connect()
  local conn = redisconn.connect("redis://127.0.0.1:6379/0?timeout_ms=200")
  local server, world = self, self.world
  local timeout = conn.config.timeout_ms / 1000
  function conn.eval(_, script, keys, args) -- luacheck: ignore 212
    local argv = {}
    for i, v in ipairs(args or {}) do argv[i] = arg(v) end
    if server.gone then
      world:sleep(0.0002)
      return nil, failure("connection refused (simulated)", "io")
    end
    local half = server.latency / 2
    if server.latency >= timeout then
      -- the script runs on the server, the answer comes too late
      world:at(world:now() + half, function()
        if not server.gone then server:exec(script.text, keys, argv) end
      end)
      world:sleep(timeout)
      return nil, failure("timeout (simulated)", "io")
    end
    world:sleep(half)
    if server.gone then
      world:sleep(timeout - half)
      return nil, failure("timeout (simulated)", "io")
    end
    server:sync_replica()
    local ok, res = pcall(server.exec, server, script.text, keys, argv)
    server:replicate(keys)
    world:sleep(half)
    if not ok then return nil, failure(tostring(res), "server") end
    return res
  end
  return conn
end

return M
