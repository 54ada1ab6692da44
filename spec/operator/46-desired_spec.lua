-- streamctl.operator.desired: a desired state's set and values, in a shared dict (a
-- stand-in with ngx.shared's calls here; spec/31 runs the real one in nginx)
-- and in Redis (a real server this spec starts), with the same answers; a
-- full dict refuses instead of evicting; a Redis that is gone says so.
local desired = require "streamctl.operator.desired"
local reconcile = require "streamctl.operator.reconcile"
local redis_helper = require "spec.helpers.redis"

-- ngx.shared's calls, over a table; `room` entries at most (safe_set: "no memory").
local function fake_dict(room)
  local t, n = {}, 0
  local d = {}
  function d.safe_set(_, k, v)
    if t[k] == nil then
      if n >= room then return nil, "no memory" end
      n = n + 1
    end
    t[k] = v
    return true
  end
  function d.get(_, k) return t[k] end
  function d.delete(_, k) if t[k] ~= nil then n = n - 1 end t[k] = nil end
  function d.get_keys()
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    return out
  end
  return d
end

local function sorted(list)
  table.sort(list)
  return list
end

local function behaves(store)
  -- (issue 87: a list never marked whole may have forgotten: never "nobody is forbidden")
  local none, why, code = store:members()
  assert.same({ nil, "ListUnavailable" }, { none, code })
  assert.truthy(why:find("^the forbid list may have forgotten streams: its .* holds no mark of being whole"), why)
  assert.same({ nil, "ListUnavailable" }, { select(1, store:has("aliyun|d|live|a")), select(3, store:has("x")) })
  assert.is_false((store:whole()))
  assert.is_true(store:made_whole("the spec"))
  assert.is_true(store:whole())
  assert.same({}, store:members())
  assert.is_true(store:add { "aliyun|d|live|a", "aliyun|d|live|b", "zego|z1" })
  assert.is_true(store:add { "aliyun|d|live|a" }) -- (again: still one)
  assert.is_true(store:has("aliyun|d|live|a"))
  assert.is_false(store:has("aliyun|d|live|c"))
  assert.same({ "aliyun|d|live|a", "aliyun|d|live|b", "zego|z1" }, sorted(store:members()))
  assert.is_true(store:remove { "aliyun|d|live|b", "aliyun|d|live|never" })
  assert.same({ "aliyun|d|live|a", "zego|z1" }, sorted(store:members()))
  -- values beside the set: a reconciler's state, and zego_forget on it
  assert.is_nil(store:get("streamctl:reconcile:zego:1"))
  assert.is_true(store:set("streamctl:reconcile:zego:1", '{"v":1,"streams":{"rtc:z1":0,"rtc:z2":0}}'))
  assert(reconcile.zego_forget(store, "streamctl:reconcile:zego:1", { { stream_id = "z1" } }))
  -- (a version-1 state read, written back as version 2)
  assert.equal('{"v":2,"streams":{"rtc:z2":0},"pending":{}}', store:get("streamctl:reconcile:zego:1"))
  assert.same({ "aliyun|d|live|a", "zego|z1" }, sorted(store:members())) -- (values are not members)
  assert.has_error(function() store:add { "" } end)
  assert.has_error(function() store:has(nil) end)
end

-- A ban counts from when it is decided (issue 87): `has` answers true for a
-- stream a forbid under way marked pending, until every such forbid settled
-- or its mark lapsed (`lapse()` lets `ttl` seconds pass); `members`, what a
-- reconciler enforces, is the list alone.
local function pending_rows(store, ttl, lapse)
  assert.is_true(store:made_whole("the spec"))
  assert.is_true(store:add { "aliyun|d|live|listed" })
  assert.is_true(store:pending({ "zego|p1", "aliyun|d|live|listed" }, "run-1", ttl))
  assert.is_true(store:pending({ "zego|p1" }, "run-2", ttl))
  assert.is_true(store:has("zego|p1"))
  assert.is_false(store:has("zego|p2"))
  assert.same({ "aliyun|d|live|listed" }, store:members())
  assert.is_true(store:settled({ "zego|p1", "aliyun|d|live|listed" }, "run-1"))
  assert.is_true(store:has("zego|p1")) -- (run-2 is still under way)
  assert.is_true(store:has("aliyun|d|live|listed")) -- (listed: a settled mark takes nothing off the list)
  assert.is_true(store:settled({ "zego|p1" }, "run-2"))
  assert.is_false(store:has("zego|p1"))
  assert.is_true(store:settled({ "zego|never" }, "run-3")) -- (nothing to take away)
  -- a worker that died mid-call: its mark lapses
  assert.is_true(store:pending({ "zego|p3" }, "run-4", ttl))
  assert.is_true(store:has("zego|p3"))
  lapse()
  assert.is_false(store:has("zego|p3"))
  assert.has_error(function() store:pending({ "x" }, "", ttl) end)
  assert.has_error(function() store:pending({ "x" }, "r", 0) end)
  assert.has_error(function() store:settled({ "x" }) end)
end

-- One holder at a time (issue 88: one reconciler for every edge): taken, renewed by its holder,
-- refused to another (naming the holder), free again once it lapsed (`lapse()`).
local function lease_rows(store, ttl, lapse)
  assert.same({ true }, { store:lease("reconciler", "edge-a:1", ttl) })
  assert.same({ true }, { store:lease("reconciler", "edge-a:1", ttl) })
  assert.same({ false, "edge-a:1" }, { store:lease("reconciler", "edge-b:2", ttl) })
  assert.same({ true }, { store:lease("another job", "edge-b:2", ttl) })
  lapse()
  assert.same({ true }, { store:lease("reconciler", "edge-b:2", ttl) })
  assert.same({ false, "edge-b:2" }, { store:lease("reconciler", "edge-a:1", ttl) })
  assert.has_error(function() store:lease("reconciler", "", ttl) end)
  assert.has_error(function() store:lease("", "edge-a:1", ttl) end)
end

describe("streamctl.operator.desired", function()
  it("in a shared dict: a lease, one holder at a time", function()
    local clock = { t = 0 }
    lease_rows(desired.shdict(require("spec.helpers.fake_shdict").new(clock)), 5, function() clock.t = 6 end)
  end)

  it("in a shared dict: a forbid's pending marks (a count per stream, lapsing with the latest)", function()
    local clock = { t = 0 }
    pending_rows(desired.shdict(require("spec.helpers.fake_shdict").new(clock)), 5, function() clock.t = 6 end)
  end)

  it("in a shared dict: a set and values; a full dict refuses, naming the stream, and evicts nothing", function()
    behaves(desired.shdict(fake_dict(100)))
    local small = desired.shdict(fake_dict(3))
    assert.is_true(small:made_whole("the spec"))
    assert.is_true(small:add { "a", "b" })
    local ok, err = small:add { "c" }
    assert.is_nil(ok)
    assert.equal("the shared dict cannot keep c: no memory (make it larger)", err)
    assert.same({ "a", "b" }, sorted(small:members()))
  end)

  describe("in Redis", function()
    local redis
    lazy_setup(function() redis = redis_helper.start { password = "desired-pw" } end)
    lazy_teardown(function() if redis then redis:stop() end end)

    it("the same answers, in one hash tag; two stores on one Redis agree", function()
      local a = assert(desired.redis(redis.url))
      behaves(a)
      local b = assert(desired.redis(redis.url))
      assert.is_true(b:has("zego|z1"))
      assert.equal("1", redis:cli("SISMEMBER", "{streamctl:desired}:set", "zego|z1"))
      -- another prefix is another list, whole of its own
      local other = assert(desired.redis(redis.url, { prefix = "other" }))
      assert.equal("ListUnavailable", select(3, other:has("zego|z1")))
      assert.is_true(other:made_whole("the spec"))
      assert.is_false(other:has("zego|z1"))
      assert.has_error(function() desired.redis(redis.url, { prefix = "{x}" }) end)
    end)

    -- (issue 87: after a restart, the list is not vouched for: with its data, what came after its last
    -- save may be gone; without, everything)
    it("a restart, with its data or without: ListUnavailable until made whole again", function()
      local a = assert(desired.redis(redis.url, { prefix = "restart" }))
      assert.is_true(a:made_whole("the spec"))
      assert.is_true(a:add { "zego|r1" })
      assert.is_true(a:has("zego|r1"))
      local function after_restart()
        redis:restart()
        local v, why, code
        for _ = 1, 100 do
          v, why, code = a:has("zego|r1")
          if v ~= nil or code then break end
          require("socket").sleep(0.05)
        end
        assert.same({ nil, "ListUnavailable" }, { v, code })
        return why
      end
      assert.equal("OK", redis:cli("SAVE"))
      local why = after_restart()
      assert.truthy(why:find("its Redis restarted or failed over since it was made whole", 1, true), why)
      assert.equal("1", redis:cli("SISMEMBER", "{restart}:set", "zego|r1")) -- (there, but unvouched for)
      assert.is_true(a:made_whole("the spec, again"))
      assert.is_true(a:has("zego|r1"))
      os.remove(redis.dir .. "/dump.rdb")
      why = after_restart()
      assert.truthy(why:find("its Redis holds no mark of being whole", 1, true), why)
      assert.equal("ListUnavailable", select(3, a:members()))
    end)

    it("a forbid's pending marks: a sorted set per stream, by Redis' clock, in the list's hash tag", function()
      local a = assert(desired.redis(redis.url, { prefix = "pending" }))
      pending_rows(a, 1, function()
        assert.equal("1", redis:cli("ZCARD", "{pending}:p:zego|p3"))
        for _ = 1, 100 do
          if not a:has("zego|p3") then return end
          require("socket").sleep(0.05)
        end
      end)
    end)

    it("a lease, one holder at a time, by Redis' clock", function()
      local a = assert(desired.redis(redis.url, { prefix = "lease" }))
      lease_rows(a, 1, function()
        for _ = 1, 100 do
          if redis:cli("EXISTS", "{lease}:l:reconciler") == "0" then return end
          require("socket").sleep(0.05)
        end
      end)
    end)

    it("a Redis that is gone: nil and why, never a guess, no password", function()
      local s = assert(desired.redis("redis://:desired-pw@127.0.0.1:" .. require("spec.helpers.emulator").free_ports(1)[1]))
      for _, call in ipairs { function() return s:has("x") end, function() return s:members() end,
                              function() return s:add { "x" } end, function() return s:get("k") end } do
        local v, err = call()
        assert.is_nil(v)
        assert.matches("^Redis at 127%.0%.0%.1:%d+: ", err)
        assert.is_nil(err:find("desired-pw", 1, true))
      end
    end)
  end)
end)
