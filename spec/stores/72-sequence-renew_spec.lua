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
  local srv, conns = nil, {}
  lazy_setup(function() srv = helper.start() end)
  lazy_teardown(function()
    for _, c in ipairs(conns) do c:close() end
    if srv then srv:stop() end
  end)
  local n = 0
  rows(function()
    n = n + 1
    local st = assert(R.sequence_store({ port = srv.port, prefix = "t" .. n .. ":", timeout_ms = 2000 },
      "zego:1234567890:", { log = function(m) error("unexpected log: " .. m) end }))
    conns[#conns + 1] = st.conn
    -- (its values follow the server's clock: a candidate ahead of it, so the rows' values are the store's)
    return st, math.floor(require("streamctl.core").now() * 1000) + 3600 * 1000
  end)

  it("two processes renewing one call's stream: one renews, the other finds it taken", function()
    local cfg = { port = srv.port, prefix = "two:", timeout_ms = 2000 }
    local a = assert(R.sequence_store(cfg, "zego:1:"))
    local b = assert(R.sequence_store(cfg, "zego:1:"))
    conns[#conns + 1], conns[#conns + 2] = a.conn, b.conn
    local now = math.floor(require("streamctl.core").now() * 1000) + 3600 * 1000
    local old = a:advance_all({ "s" }, now)
    local v = assert(a:renew({ "s" }, old, now, 1))
    local ok, gone = b:renew({ "s" }, old, now, 1)
    assert.is_false(ok)
    assert.same({ s = v }, gone)
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
