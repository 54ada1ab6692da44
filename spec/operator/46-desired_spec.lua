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

describe("streamctl.operator.desired", function()
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
