--- What the two Redis stores share (streamctl.store.redis, which users
-- require, says what they do): their options, the retry after an outage,
-- the health that tells an outage once, and the keys' hash tags.
-- @module streamctl.store.redisstore

local tostring, require, format, match = tostring, require, string.format, string.match

local validate = require "streamctl.base.validate"
local errors = require "streamctl.base.errors"
local redisconn = require "streamctl.store.redisconn"

local M = {}

--- Milliseconds a store in fallback waits before it tries Redis again.
-- (It bounds how long a process may stay on its own budget after Redis is
-- back, which the pause after a loss waits out: see `FALLBACK_HORIZON`.)
M.RETRY_MS = 500

--- How far ahead (seconds) a slot of a process's own budget is committed
-- (the fallback, and a process just back from it). A local refusal costs no
-- round trip, so this can be short: the slots a process still in fallback
-- holds when Redis answers again end within retry_ms + timeout_ms + this,
-- and a schedule Redis starts afresh waits that out
-- (streamctl.engine.ratelimit.loss_pause).
M.FALLBACK_HORIZON = 0.05

local default_log = redisconn.default_log

local STORE_OPTIONS = {
  { name = "log", type = "function" },
  { name = "retry_ms", type = "integer", min = 1, max = 86400000 },
  { name = "monotonic", type = "function" },
}

-- Tracks one store's view of Redis: up, or down since an error and to be
-- tried again at retry_at. Tells each change once.
local function new_health(conn, what, fallback, opts)
  local log = opts.log or default_log
  local retry = (opts.retry_ms or M.RETRY_MS) / 1000
  local clock = opts.monotonic or require("streamctl.core").monotonic
  local h = { down = false, retry_at = 0 }

  function h.usable()
    return not h.down or clock() >= h.retry_at
  end

  function h.failed(err)
    h.retry_at = clock() + retry
    if not h.down then
      h.down = true
      log(format("streamctl: Redis at %s failed (%s); %s until it answers (tried again every %g ms)",
        conn:address(), tostring(err), fallback, retry * 1000))
    end
  end

  -- true when Redis was down until now
  function h.succeeded()
    if h.down then
      h.down = false
      log(format("streamctl: Redis at %s answers again; %s", conn:address(), what))
      return true
    end
    return false
  end

  return h
end

-- A store's options checked, and its connection: the one given, or a new
-- one for a config (its eviction-policy warning told through the store's
-- log). Returns opts and the connection, or nil and an InvalidParameter
-- error object (a bad config or option: streamctl.base.errors' convention);
-- options that are not a table raise at the store's caller.
local function store_setup(config_or_conn, opts, fname)
  local o, err = validate.construct(STORE_OPTIONS, opts, "streamctl.store.redis." .. fname, fname,
    fname == "sequence_store" and 3 or 2, 4) -- (blamed on the store's caller: two calls up)
  if not o then return nil, err end
  if redisconn.is_connection(config_or_conn) then return o, config_or_conn end
  local cfg, why = redisconn.config(config_or_conn)
  if not cfg then return nil, errors.invalid(nil, nil, why) end
  return o, redisconn.connect(cfg, { log = o.log })
end

-- ---- Keys

-- All of one account's keys share one hash tag (the text in braces), so one
-- script may touch them all behind a cluster proxy or in Redis Cluster.
-- The tag is the limiter key up to its last ':' ("aliyun:<account>",
-- "zego:<AppId>"), or a sequence store's prefix without its trailing ':'.
local function tagged(prefix, tag)
  return prefix .. "{" .. tag .. "}:"
end

-- "provider:account:action" -> "provider:account", "action"
local function split_key(key)
  local tag, action = match(key, "^(.*):([^:]*)$")
  if not tag or tag == "" then return key, "" end
  return tag, action
end

M.default_log = default_log
M.new_health = new_health
M.store_setup = store_setup
M.tagged = tagged
M.split_key = split_key

return M
