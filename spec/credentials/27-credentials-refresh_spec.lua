-- tier: unit
-- streamctl.credentials.refresh: temporary credentials renewed before they
-- expire, on a fake clock with fake fetches (no I/O): when it renews, what a
-- failed renewal does (the old credentials until they expire, a backoff with
-- jitter, then a clear error, then recovery), one renewal at a time within a
-- process (coroutines) and across processes (a shared store).
local refresh = require "streamctl.credentials.refresh"

local T0 = 1800000000

-- A clock and a source whose credentials last `life` seconds; `fail` makes
-- fetches fail while it is true.
local function world(life)
  local w = { now = T0, fail = false, issued = 0 }
  function w.clock() return w.now end
  function w.fetch()
    if w.fail then return nil, "the metadata service answered 500" end
    w.issued = w.issued + 1
    return { access_key_id = "STS.K" .. w.issued, access_key_secret = "secret-" .. w.issued,
             security_token = "token-" .. w.issued, expiration = w.now + life }
  end
  return w
end

local function holder(w, extra)
  local opts = { source = "the ECS instance's RAM role edge", fetch = w.fetch, clock = w.clock,
                 random = function() return 1 end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return refresh.new(opts)
end

describe("streamctl.credentials.refresh", function()
  it("fetches once, then uses the credentials until 15 minutes are left, then renews them first", function()
    local w = world(3600)
    local h = holder(w)
    local c = assert(h:get())
    assert.equal("STS.K1", c.access_key_id)
    w.now = T0 + 3600 - 901
    assert.equal(c, (h:get()))
    assert.equal(1, h.fetches)
    w.now = T0 + 3600 - 900
    local c2 = assert(h:get())
    assert.equal("STS.K2", c2.access_key_id)
    assert.equal(2, h.fetches)
    -- one table per renewal, never changed: id, secret and token always belong together; the
    -- secret held as a streamctl.secret (shown as nothing)
    assert.equal("STS.K1", c.access_key_id)
    assert.equal("token-1", c.security_token)
    assert.equal(T0 + 3600, c.expiration)
    assert.equal("userdata", type(c.access_key_secret))
    assert.equal(#"secret-1", #c.access_key_secret)
  end)

  it("keeps the current credentials while renewal fails, retrying after a doubling, jittered backoff", function()
    local w = world(3600)
    local r = 1
    local h = holder(w, { random = function() return r end })
    local c = assert(h:get())
    w.fail = true
    w.now = T0 + 3600 - 600 -- stale
    assert.equal(c, (h:get())) -- failed: the old ones, still valid
    assert.equal(2, h.fetches)
    local waits = {}
    for _ = 1, 8 do
      local next_try = h:state().next_try
      waits[#waits + 1] = next_try - w.now
      w.now = next_try - 0.001
      assert.equal(c, (h:get())) -- within the backoff: no fetch
      w.now = next_try
      h:get()
    end
    assert.same({ 1, 2, 4, 8, 16, 32, 60, 60 }, waits)
    assert.equal(10, h.fetches)
    -- the jitter: each wait a random fraction of its bound
    r = 0.25
    w.now = h:state().next_try
    h:get()
    assert.near(15, h:state().next_try - w.now, 1e-9) -- (0.25 of 60)
    assert.equal(11, h.fetches)
  end)

  it("fails clearly once they have expired, naming the source, the expiry and the last failure, then recovers",
    function()
      local w = world(3600)
      local h = holder(w)
      assert(h:get())
      w.fail = true
      w.now = T0 + 3600 - 1 -- in their last second: not used any more
      local c, err = h:get()
      assert.is_nil(c)
      assert.equal("auth", err.kind)
      assert.equal("CredentialsUnavailable", err.code)
      assert.equal("streamctl: aliyun: CredentialsUnavailable: credentials from the ECS instance's RAM role edge "
        .. "expired at 2027-01-15T09:00:00Z: the metadata service answered 500 (next try in 1.0 s)", tostring(err))
      w.fail = false
      w.now = w.now + 1
      c = assert(h:get())
      assert.equal("STS.K2", c.access_key_id)
    end)

  it("renews short-lived credentials with a third of their life left, and a source that has not rotated yet later",
    function()
      local w = world(900) -- (STS's shortest)
      local h = holder(w)
      assert(h:get())
      w.now = T0 + 599
      h:get()
      assert.equal(1, h.fetches)
      w.now = T0 + 600
      assert.equal("STS.K2", h:get().access_key_id)
      -- a source that gives the same credentials again: kept, and asked again after the backoff only
      local same = h:get()
      h = holder(w, { fetch = function() return same end })
      h:get()
      w.now = w.now + 601
      assert.equal(same, (h:get()))
      assert.equal(2, h.fetches)
      assert.equal(same, (h:get()))
      assert.equal(2, h.fetches)
      assert.equal("the source gave no newer credentials yet", h:state().last_error)
    end)

  it("says what fetch got wrong: an error raised, something that is not credentials", function()
    local w = world(3600)
    local h = holder(w, { fetch = function() error("boom", 0) end })
    local _, err = h:get()
    assert.equal("credentials from the ECS instance's RAM role edge could not be had: boom (next try in 1.0 s)",
      err.message)
    h = holder(w, { fetch = function() return { access_key_id = "K" } end })
    _, err = h:get()
    assert.equal("credentials from the ECS instance's RAM role edge could not be had: fetch returned something "
      .. "that is not credentials (access_key_id, access_key_secret, expiration) (next try in 1.0 s)", err.message)
  end)

  it("renews once at a time in a process: others use the current credentials, or wait for the renewal", function()
    local w = world(3600)
    local fetch_yields = false
    local inner = w.fetch
    local h = holder(w, { fetch = function()
      if fetch_yields then coroutine.yield("fetching") end
      return inner()
    end, sleep = function() coroutine.yield("sleeping") end })
    assert(h:get())
    fetch_yields = true
    w.now = T0 + 3600 - 600
    local a = coroutine.create(function() return h:get() end)
    assert.same({ true, "fetching" }, { coroutine.resume(a) }) -- a renews...
    assert.equal("STS.K1", h:get().access_key_id)               -- ...b meanwhile uses the current ones
    assert.equal(2, h.fetches)
    local ok, renewed = coroutine.resume(a)
    assert.is_true(ok)
    assert.equal("STS.K2", renewed.access_key_id)
    -- nothing valid: a second caller waits for the first's renewal, and fetches nothing itself
    w.now = T0 + 10 * 3600
    a = coroutine.create(function() return h:get() end)
    local b = coroutine.create(function() return h:get() end)
    assert.same({ true, "fetching" }, { coroutine.resume(a) })
    assert.same({ true, "sleeping" }, { coroutine.resume(b) })
    assert.is_true((coroutine.resume(a)))
    local ok_b, c = coroutine.resume(b)
    assert.is_true(ok_b)
    assert.equal("STS.K3", c.access_key_id)
    assert.equal(3, h.fetches)
  end)

  it("renews once per machine through a shared store: four holders, a thousand gets, one fetch per expiry", function()
    local w = world(3600)
    local store = { value = nil, locked = false }
    local shared = {
      get = function() return store.value end,
      set = function(c) store.value = c end,
      lock = function()
        if store.locked then return false end
        store.locked = true
        return true
      end,
      unlock = function() store.locked = false end,
    }
    local holders = {}
    for i = 1, 4 do holders[i] = holder(w, { shared = shared }) end
    for expiry = 0, 2 do
      for i = 1, 1000 do
        w.now = T0 + expiry * 2700 + i -- (each 2,700 s: past the stale point of the previous)
        local c = assert(holders[i % 4 + 1]:get())
        assert.equal("STS.K" .. (expiry + 1), c.access_key_id)
      end
    end
    local fetches = 0
    for i = 1, 4 do fetches = fetches + holders[i].fetches end
    assert.equal(3, fetches)
    assert.equal(3, w.issued)
  end)

  it("shares through an nginx shared dict (streamctl.store.shdict): the text there, a streamctl.secret in each holder",
    function()
      -- a dict with ngx.shared's get/set/add/delete (expiry ignored: the clock here is fake)
      local data = {}
      local dict = {
        get = function(_, k) return data[k] end,
        set = function(_, k, v) data[k] = v return true end,
        add = function(_, k, v)
          if data[k] ~= nil then return false, "exists" end
          data[k] = v
          return true
        end,
        delete = function(_, k) data[k] = nil end,
      }
      local shdict = require "streamctl.store.shdict"
      local w = world(3600)
      w.now = math.floor(require("streamctl.core").now()) -- (the store sets a TTL from the real clock)
      local workers = {}
      for i = 1, 4 do
        workers[i] = holder(w, { shared = shdict.credentials_store(dict, "the ECS instance's RAM role edge") })
      end
      local c1 = assert(workers[1]:get())
      local c2 = assert(workers[2]:get())
      assert.equal("STS.K1", c2.access_key_id)
      assert.equal("userdata", type(c2.access_key_secret))
      assert.equal(1, workers[1].fetches + workers[2].fetches)
      assert.matches('"secret":"secret%-1"', data["cred:the ECS instance's RAM role edge"])
      assert.is_nil(data["lock:cred:the ECS instance's RAM role edge"])
      assert.equal(c1.expiration, c2.expiration)
      -- a lock another worker holds: this one uses what it has, and fetches nothing
      w.now = w.now + 3000
      data["lock:cred:the ECS instance's RAM role edge"] = true
      assert.equal("STS.K1", workers[3]:get().access_key_id)
      assert.equal(0, workers[3].fetches)
    end)

  it("uses a renewal another process finished while this one waited for the lock, rather than fetch again", function()
    local w = world(3600)
    local store = {}
    local shared = {
      get = function() return store.value end,
      set = function(c) store.value = c end,
      -- the lock is granted just after another process has renewed
      lock = function() store.value = w.fetch() return true end,
      unlock = function() end,
    }
    local h = holder(w, { shared = shared })
    local c = assert(h:get())
    assert.equal("STS.K1", c.access_key_id)
    assert.equal(0, h.fetches)
  end)
end)
