-- The Sequence stores' `renew` (issue 66): a ZEGO call whose Sequence aged
-- near the end of ZEGO's window is decided again in one step of the
-- store shared by every process: refused, nothing written, when one of the
-- streams it checks holds a later value (a later call decided); otherwise a
-- new value above every key's, a read's key among them, recorded on all.
-- Redis against redis-server (one script: atomic), the shared dict against
-- the stand-in dict. spec/pipeline/25 holds the client's side.
local R = require "streamctl.store.redis"
local shdict = require "streamctl.store.shdict"
local sequence = require "streamctl.engine.sequence"
local helper = require "spec.helpers.redis"
local fake_shdict = require "spec.helpers.fake_shdict"

local socket = require "socket"

-- Waits (bounded) until `srv` has been up 2 s: a call decided within a
-- second of the server's start is never renewed (the margin of
-- streamctl.store.redisseq's renew), and the rows decide right away.
local function up_two_seconds(srv)
  for _ = 1, 100 do
    if tonumber(srv:cli("INFO", "server"):match("uptime_in_seconds:(%d+)")) >= 2 then return end
    socket.sleep(0.05)
  end
  error("the server's uptime did not reach 2 s")
end

-- A redis-server for the describe it is called in, up 2 s before its rows
-- run (`t.srv`); the connections in `t.conns` closed after.
local function server_for_describe()
  local t = { conns = {} }
  lazy_setup(function()
    t.srv = helper.start()
    up_two_seconds(t.srv)
  end)
  lazy_teardown(function()
    for _, c in ipairs(t.conns) do c:close() end
    if t.srv then t.srv:stop() end
  end)
  return t
end

-- The rows every store must pass: `st` a fresh store, `now` a candidate
-- (ms) above every value the rows hand out.
local function rows(new_store)
  it("renews when no checked key moved past the old value: above every key, recorded on all", function()
    local st, now = new_store()
    local old = st:advance_all({ "s", "r:s" }, now)
    local read = st:advance_all({ "r:s" }, old + 50) -- a read after the call (its own key)
    local v = assert(st:renew({ "s", "r:s" }, old, now, 1))
    assert.is_true(v > read, "renewed to " .. tostring(v) .. ", not above the read's " .. tostring(read))
    assert.equal(v, st:get("s"))
    assert.equal(v, st:get("r:s"))
  end)

  it("refuses, writing nothing, when a later call decided on a checked key", function()
    local st, now = new_store()
    local old = st:advance_all({ "a", "b", "r:a", "r:b" }, now)
    local later = st:advance_all({ "b", "r:b" }, old + 10)
    local ok, gone = st:renew({ "a", "b", "r:a", "r:b" }, old, now, 2)
    assert.is_false(ok)
    assert.same({ b = later }, gone)
    assert.equal(old, st:get("a")) -- nothing written
  end)

  it("a key it does not check (a read's) never refuses", function()
    local st, now = new_store()
    local old = st:advance_all({ "s", "r:s" }, now)
    local read = st:advance_all({ "r:s" }, old + 10)
    assert.is_true(st:renew({ "s", "r:s" }, old, now, 1) > read)
  end)

  it("a stream it has no record of (forgotten: expired, flushed) renews", function()
    local st, now = new_store()
    assert.is_true(st:renew({ "x", "r:x" }, now - 5000, now, 1) > now - 5000)
  end)
end

describe("the Redis Sequence store's renew", function()
  local t = server_for_describe()
  local n = 0
  rows(function()
    n = n + 1
    local st = assert(R.sequence_store({ port = t.srv.port, prefix = "t" .. n .. ":", timeout_ms = 2000 },
      "zego:1234567890:", { log = function(m) error("unexpected log: " .. m) end }))
    t.conns[#t.conns + 1] = st.conn
    -- (its values follow the server's clock: a candidate ahead of it, so the rows' values are the store's)
    return st, math.floor(require("streamctl.core").now() * 1000) + 3600 * 1000
  end)

  it("two processes renewing one call's stream: one renews, the other finds it taken", function()
    local cfg = { port = t.srv.port, prefix = "two:", timeout_ms = 2000 }
    local a = assert(R.sequence_store(cfg, "zego:1:"))
    local b = assert(R.sequence_store(cfg, "zego:1:"))
    t.conns[#t.conns + 1], t.conns[#t.conns + 2] = a.conn, b.conn
    local now = math.floor(require("streamctl.core").now() * 1000) + 3600 * 1000
    local old = a:advance_all({ "s" }, now)
    local v = assert(a:renew({ "s" }, old, now, 1))
    local ok, gone = b:renew({ "s" }, old, now, 1)
    assert.is_false(ok)
    assert.same({ s = v }, gone)
  end)
end)

-- Redis' memory (streamctl.store.redismemory): a call decided before the
-- server forgot is never renewed, whoever asks; one decided after is.
describe("the Redis decision store's renew after Redis forgot", function()
  local core = require "streamctl.core"
  local t, said = server_for_describe(), {}
  local function store(prefix)
    local st = assert(R.sequence_store({ port = t.srv.port, prefix = prefix, timeout_ms = 2000 }, "aliyun:LTAI1:",
      { log = function(m) said[#said + 1] = m end }))
    t.conns[#t.conns + 1] = st.conn
    return st
  end
  before_each(function() said = {} end)

  it("renews a call decided since the server started, at a first use too", function()
    local st = store("m1:")
    local t0 = core.monotonic()
    local old = st:advance_all({ "s" }, 0)
    local v = assert(st:renew({ "s" }, old, 0, 1, (core.monotonic() - t0) * 1000))
    assert.is_true(v > old)
    assert.same({}, said)
  end)

  it("restarted without its data: a call decided before is not renewed, by the process that knew the store "
    .. "(said once) or by one that never asked", function()
    local knew, fresh = store("m2:"), store("m2:")
    local t0 = core.monotonic()
    local old = knew:advance_all({ "s" }, 0)
    assert(knew:renew({ "s" }, old, 0, 1, 0)) -- (it has seen the store's memory)
    old = assert(knew:get("s"))
    -- (Redis' clock before the restart: the new server's start is after it, and the moment it names,
    -- from its uptime in whole seconds, at most a second before its start)
    local started = tonumber(t.srv:cli("TIME"):match("^(%d+)")) - 1
    t.srv:restart()
    local ok, later, why = knew:renew({ "s" }, old, 0, 1, (core.monotonic() - t0) * 1000)
    assert.same({ false, nil }, { ok, later })
    assert.matches("^Redis at 127%.0%.0%.1:" .. t.srv.port .. " may have forgotten the decisions decided before "
      .. "%d+%-%d+%-%d+T%d+:%d+:%d+Z %(its memory is gone %(a restart without its data, a FLUSHALL, or an "
      .. "eviction%)%), and this call "
      .. "was decided before then$", why)
    -- (the loss is found by that renew: its moment is a second of Redis' clock from the restart to now)
    local ended = tonumber(t.srv:cli("TIME"):match("^(%d+)"))
    local named, seconds = why:match("before (%S+)"), {}
    for at = started, ended do seconds[os.date("!%Y-%m-%dT%H:%M:%SZ", at)] = true end
    assert.is_truthy(seconds[named], named .. " is not a second from the restart (" .. started .. ") to " .. ended)
    assert.equal("", t.srv:cli("GET", "m2:{aliyun:LTAI1}:seq:s")) -- nothing written
    assert.equal(1, #said)
    assert.equal("streamctl: Redis at 127.0.0.1:" .. t.srv.port .. " may have forgotten the decisions decided before "
      .. named .. ": its memory is gone (a restart without its data, a FLUSHALL, or an "
      .. "eviction); a call decided before then and sent late is not sent (Expired)", said[1])
    ok, later, why = fresh:renew({ "s" }, old, 0, 1, (core.monotonic() - t0) * 1000)
    assert.same({ false, nil }, { ok, later })
    assert.matches("may have forgotten the decisions decided before", why)
    assert.equal(1, #said)
  end)

  it("a FLUSHALL the process had seen the store before: found, said once, refused", function()
    up_two_seconds(t.srv) -- (after the restart above)
    local st = store("m3:")
    local t0 = core.monotonic()
    local old = st:advance_all({ "s" }, 0)
    assert(st:renew({ "s" }, old, 0, 1, 0))
    old = assert(st:get("s"))
    t.srv:cli("FLUSHALL")
    local ok, later, why = st:renew({ "s" }, old, 0, 1, (core.monotonic() - t0) * 1000)
    assert.same({ false, nil }, { ok, later })
    assert.matches("%(its memory is gone %(a restart without its data, a FLUSHALL, or an eviction%)%)", why)
    assert.equal(1, #said)
    assert.matches("^streamctl: Redis at 127%.0%.0%.1:%d+ may have forgotten the decisions decided before "
      .. "[%dTZ:%-]+: its memory is gone .*; a call decided before then and sent late is not sent %(Expired%)$", said[1])
    -- (a later call found answers first: written after the loss, it supersedes)
    local later_v = st:advance_all({ "s" }, 0)
    ok, later = st:renew({ "s" }, old, 0, 1, (core.monotonic() - t0) * 1000)
    assert.same({ false, { s = later_v } }, { ok, later })
    assert.equal(1, #said)
  end)
end)

describe("the shared dict's Sequence store renew", function()
  local enter, leave = fake_shdict.init_phase()
  before_each(enter)
  after_each(leave)
  rows(function()
    local dict = fake_shdict.new({ t = 0 })
    return shdict.sequence_store(dict, "zego:1:", { log = function() end }), 1700000000000
  end)
end)

describe("the memory store's renew", function()
  rows(function() return sequence.memory_store(), 1700000000000 end)
end)
