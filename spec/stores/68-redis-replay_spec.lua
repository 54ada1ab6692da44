-- streamctl.store.redis.replay_store: the callbacks an edge has seen, kept in
-- Redis (SET NX with the window as its expiry), so a callback replayed to
-- another edge is refused there; a Redis that cannot answer refuses the
-- callback (ReplayStoreUnavailable) rather than forget it. Against
-- redis-server processes this spec starts on 127.0.0.1, and through
-- streamctl.edge.callbacks' verify as two edges would call it.

local redis_store = require "streamctl.store.redis"
local callbacks = require "streamctl.edge.callbacks"
local helper = require "spec.helpers.redis"

local PASSWORD = "replay-s3cret"
-- (a call's timeout, not under test here: under valgrind and ASan this process runs slower)
local TIMEOUT = "timeout_ms=" .. 1000 * require("spec.helpers.process").slowdown()
-- Alibaba Cloud's documented callback (docs/callbacks.md), seen as its window begins: these servers
-- started moments ago, and a callback whose window began before a server's start is refused (issue 87)
local ALI = { domain = "learn.aliyundoc.com", timestamp = "1519375990", key = "yourkey",
              signature = "9e226fc2c250be266e3657e156f68c12", now = 1519375990 - callbacks.WINDOW_S }

local copy = require("spec.helpers.checks").copy

describe("streamctl.store.redis.replay_store", function()
  local srv
  lazy_setup(function() srv = helper.start { password = PASSWORD } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("remembers a key for its window with SET NX: new once, then seen, from any connection", function()
    local a = assert(redis_store.replay_store(srv.url .. "/0?prefix=edge:&" .. TIMEOUT))
    local b = assert(redis_store.replay_store(srv.url .. "/0?prefix=edge:&" .. TIMEOUT))
    assert.is_true(a:add("aliyun:sig:1", 300, nil, 0))
    assert.is_false(a:add("aliyun:sig:1", 300, nil, 0))
    assert.is_false(b:add("aliyun:sig:1", 300, nil, 0)) -- (another edge: the same Redis)
    assert.is_true(b:add("aliyun:sig:2", 300, nil, 0))
    local pttl = tonumber(srv:cli("PTTL", "edge:cb:aliyun:sig:1"))
    assert.is_true(pttl > 290000 and pttl <= 300000, "PTTL " .. tostring(pttl))
    a.conn:close()
    b.conn:close()
  end)

  it("through verify, a callback replayed to the other edge is refused there", function()
    local edge1 = assert(redis_store.replay_store(srv.url .. "?" .. TIMEOUT))
    local edge2 = assert(redis_store.replay_store(srv.url .. "?" .. TIMEOUT))
    assert.is_true(callbacks.aliyun.verify(copy(ALI, { replay = edge1, event = "publish&s1" })))
    local ok, err = callbacks.aliyun.verify(copy(ALI, { replay = edge2, event = "publish&s1" }))
    assert.is_nil(ok)
    assert.equal("ReplayedCallback", err.code)
    -- another stream's event in the same second passes on either
    assert.is_true(callbacks.aliyun.verify(copy(ALI, { replay = edge2, event = "publish&s2" })))
    edge1.conn:close()
    edge2.conn:close()
  end)

  it("a Redis that cannot answer refuses the callback (ReplayStoreUnavailable), never the password", function()
    local other = helper.start { password = PASSWORD }
    local store = assert(redis_store.replay_store(other.url .. "?" .. TIMEOUT)) -- (the add before the kill must answer)
    assert.is_true(store:add("k", 60, nil, 0))
    other:kill()
    local fresh, why, code = store:add("k2", 60, nil, 0)
    assert.is_nil(fresh)
    assert.equal("ReplayStoreUnavailable", code)
    assert.truthy(why:find("^Redis at 127%.0%.0%.1:" .. other.port .. ": "), why)
    assert.is_nil(why:find(PASSWORD, 1, true))
    local ok, err = callbacks.aliyun.verify(copy(ALI, { replay = store }))
    assert.is_nil(ok)
    assert.same({ "ReplayStoreUnavailable", "server" }, { err.code, err.kind })
    other:stop()
  end)

  it("refuses a bad config by its rule; misuse of add raises", function()
    local s, err = redis_store.replay_store("redis://h:0")
    assert.is_nil(s)
    assert.equal("redis URL: the port must be an integer in 1..65535", err.message)
    local store = assert(redis_store.replay_store(srv.url .. "?" .. TIMEOUT))
    assert.has_error(function() store:add(1, 60) end, "bad argument #1 to 'add' (key must be a string)")
    assert.has_error(function() store:add("k", 0) end, "bad argument #2 to 'add' (ttl must be at least 1 s)")
  end)
end)
