-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- The callbacks the emulator sends (docs/development/emulator-fidelity.md, "Callbacks"): Alibaba
-- Cloud's stream ingest callbacks (publish / publish_done, GET, signed with
-- ALI-LIVE-SIGNATURE), pull-to-push task callbacks (POST JSON on each status
-- change, driven by a source_down fault and the emulator clock) and ZEGO's
-- stream_create / stream_close (POST JSON, SHA-1 signature), with their
-- retries, their request-log entries and the pending list. A receiver in this
-- process (spec/helpers/callback_receiver.lua) answers them; the documented
-- examples are matched byte for byte (clock pinned, nonce pinned), and every
-- signature is checked again with the openssl CLI.
local emu = require "spec.helpers.emulator"
local receiver = require "spec.helpers.callback_receiver"
local cjson = require "cjson"
local openssl = require "spec.helpers.openssl"

local ALI_DOMAIN = "learn.aliyundoc.com"     -- the auth page's example input
local ALI_KEY = "yourkey"
local ALI_TIME = 1519375990
local ALI_SIGNATURE = "9e226fc2c250be266e3657e156f68c12"   -- md5("learn.aliyundoc.com|1519375990|yourkey")

local ZEGO_APP = "1234567890"
local ZEGO_SECRET = "secret"                -- ZEGO's documented example
local ZEGO_TIME = 1470820198
local ZEGO_NONCE = "123412"
local ZEGO_SIGNATURE = "5bd59fd62953a8059fb7eaba95720f66d19e4517"

local function sha1_hex(s)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("openssl dgst -sha1 -r " .. openssl.shell_quote(path)))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return out:match("^(%x+)")
end

local function sleep(s)
  require("socket").sleep(s)
end

-- The emulator's delivery modules (callbacks.lua, with aliyun_notify.lua's and zego_streams.lua's
-- callbacks) loaded afresh in this process beside a stand-in for nginx: ngx.timer.at queues a timer on a
-- simulated clock (ngx.now), and each attempt (callback_http.request) is answered `statuses[n]` (nil: no
-- answer) after `took` seconds of that clock. `sim.run()` runs the timers in the order they come due;
-- `sim.sends` holds the simulated time of each attempt. When the retries are spaced is asserted here,
-- where a busy machine cannot move it; the real server's rows below assert what was sent and logged.
local SIMULATED = { "streamctl.emulator.callbacks", "streamctl.emulator.callback_http", "streamctl.emulator.clock",
  "streamctl.emulator.aliyun_notify", "streamctl.emulator.zego_streams", "streamctl.emulator.requestlog" }

local function simulated(statuses, took)
  local sim = { t = 1000, timers = {}, sends = {}, saved = { ngx = rawget(_G, "ngx") } }
  for _, m in ipairs(SIMULATED) do sim.saved[m], package.loaded[m] = package.loaded[m], nil end
  local seq = 0
  rawset(_G, "ngx", {
    now = function() return sim.t end, update_time = function() end, log = function() end, ERR = 4,
    md5 = function() return "md5" end, sha1_bin = function() return "sha1" end,
    socket = { tcp = function() error("no sockets here") end },
    timer = { at = function(delay, fn, ...)
      seq = seq + 1
      sim.timers[#sim.timers + 1] = { at = sim.t + delay, seq = seq, fn = fn, args = { n = select("#", ...), ... } }
      return true
    end },
  })
  require("streamctl.emulator.callback_http").request = function()
    sim.sends[#sim.sends + 1] = sim.t
    sim.t = sim.t + took
    local status = statuses[#sim.sends]
    return status, not status and "timeout" or nil
  end
  function sim.run()
    while sim.timers[1] do
      table.sort(sim.timers, function(a, b) return a.at < b.at or (a.at == b.at and a.seq < b.seq) end)
      local due = table.remove(sim.timers, 1)
      sim.t = math.max(sim.t, due.at)
      due.fn(false, (table.unpack or unpack)(due.args, 1, due.args.n))
    end
  end
  -- The gaps between each attempt's end and the next attempt.
  function sim.waits()
    local out = {}
    for i = 2, #sim.sends do out[i - 1] = sim.sends[i] - (sim.sends[i - 1] + took) end
    return out
  end
  function sim.restore()
    for _, m in ipairs(SIMULATED) do package.loaded[m] = sim.saved[m] end
    rawset(_G, "ngx", sim.saved.ngx)
  end
  return sim
end

-- Asserts that `got` are `want`, each within a nanosecond (sums of binary fractions).
local function near_all(want, got, what)
  assert.equal(#want, #got, what)
  for i = 1, #want do assert.near(want[i], got[i], 1e-9, what .. ": wait " .. i) end
end

describe("the emulator's callback retries, on a simulated clock", function()
  local sim
  after_each(function() if sim then sim.restore() end end)

  local function aliyun_publish(statuses)
    sim = simulated(statuses, 0.25)
    local notify = require "streamctl.emulator.aliyun_notify"
    notify.init({ aliyun = { notify = { [ALI_DOMAIN] = { url = "http://127.0.0.1:9/ali", auth_key = ALI_KEY } } } })
    assert(notify.stream_event("publish", { DomainName = ALI_DOMAIN, AppName = "app", StreamName = "s",
      ClientIp = "192.168.0.7", publish_unix = 1000, notify_key = ALI_KEY }, 1000))
    sim.run()
    return require("streamctl.emulator.requestlog").query(0, "aliyun", nil, 100)
  end

  local function zego_create(statuses, scale)
    sim = simulated(statuses, 0.25)
    local streams = require "streamctl.emulator.zego_streams"
    streams.init({ zego = { apps = { [ZEGO_APP] = { callback_url = "http://127.0.0.1:9/zego", callback_secret = "s" } },
                            callback_retry_scale = scale } }, function() return false end)
    assert(streams.publish({ { app_id = ZEGO_APP, stream_id = "s", room_id = "r", user_id = "u" } }, 1000))
    sim.run()
  end

  it("Alibaba Cloud's ingest callback: each retry 1 s after the attempt before it ended, until a 200", function()
    local entries = aliyun_publish({ 500, 503, 200 })
    near_all({ 1, 1 }, sim.waits(), "500, 503, 200")
    assert.equal(3, #entries)
    assert.same({ 1000, 1000, nil }, { entries[1].retry_in_ms, entries[2].retry_in_ms, entries[3].retry_in_ms })
  end)

  it("Alibaba Cloud's ingest callback: 5 retries at most (6 sends), 1 s apart, none answering", function()
    aliyun_publish({})
    near_all({ 1, 1, 1, 1, 1 }, sim.waits(), "no answer")
  end)

  it("ZEGO's stream callbacks: retries 2, 4, 8, 16 and 32 s after, times callback_retry_scale", function()
    zego_create({}, 0.05)
    near_all({ 0.1, 0.2, 0.4, 0.8, 1.6 }, sim.waits(), "scale 0.05")
    sim.restore()
    zego_create({ 500, 302, 204 }, nil)
    near_all({ 2, 4 }, sim.waits(), "the default scale, 1; a 204 ends it")
  end)
end)

describe("emulator callbacks", function()
  local server, r

  lazy_setup(function()
    r = receiver.start()
    server = emu.start({
      config = {
        aliyun = {
          notify = { [ALI_DOMAIN] = { url = r:url("/ali"), auth_key = ALI_KEY } },
        },
        zego = {
          apps = {
            [ZEGO_APP] = {
              secret = "0123456789abcdef0123456789abcdef",
              callback_url = r:url("/zego"), callback_secret = ZEGO_SECRET,
            },
          },
          callback_retry_scale = 0.05,
        },
      },
    })
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if r then r:close() end
  end)

  before_each(function()
    server:reset()
    r:reset()
  end)

  -- A signed V1 Live request; returns the status and the decoded answer.
  local function ali(action, params)
    local q = emu.v1_request({ action = action, params = params, time = server:clock().now })
    local status, body = server:request({ method = "POST", provider = "aliyun", path = "/?" .. q })
    return status, cjson.decode(body)
  end

  local function callback_entries(provider)
    local out = {}
    for _, e in ipairs((server:log({ provider = provider }))) do
      if e.kind == "callback" then
        out[#out + 1] = e
      end
    end
    return out
  end

  -- When the emulator sent each of the first `n` attempts of the provider's callback (its log's
  -- real_time), once it has logged them (bounded: 5 s).
  local function sent_times(provider, n)
    local sent = require("spec.helpers.checks").wait_until(function()
      local t = {}
      for _, e in ipairs(callback_entries(provider)) do t[e.attempt] = e.real_time end
      return t[n] and t
    end, 5)
    assert(sent, "the emulator logged no attempt " .. n)
    return sent
  end

  describe("Alibaba Cloud stream ingest", function()
    it("sends publish and publish_done as the documented example, signed with the documented input", function()
      server:clock({ now = ALI_TIME })
      local marked = server:online({ domain = ALI_DOMAIN, app = "liveApp", stream = "world",
        client_ip = "192.168.0.7", usrargs = "token=a b&x=1", node = "cdnvideocenter01.cm3",
        height = 720, width = 1280 })
      assert.same({ ALI_DOMAIN .. "/liveApp/world" }, marked.marked)
      local reqs = r:wait(1, 10)
      assert.equal(1, #reqs)
      local req = reqs[1]
      assert.equal("GET", req.method)
      assert.equal("/ali?action=publish&ip=192.168.0.7&id=world&app=learn.aliyundoc.com&appname=liveApp"
        .. "&time=1519375990&usrargs=token%3Da%20b%26x%3D1&node=cdnvideocenter01.cm3&height=720&width=1280",
        req.target)
      assert.equal("", req.body)
      assert.equal(tostring(ALI_TIME), req.headers["ali-live-timestamp"])
      assert.equal(ALI_SIGNATURE, req.headers["ali-live-signature"])
      assert.equal(ALI_SIGNATURE, openssl.md5_hex(ALI_DOMAIN .. "|" .. ALI_TIME .. "|" .. ALI_KEY))

      server:clock({ now = ALI_TIME + 42 })
      local removed = server:online({ domain = ALI_DOMAIN, app = "liveApp", stream = "world" }, "DELETE")
      assert.same({ ALI_DOMAIN .. "/liveApp/world" }, removed.removed)
      reqs = r:wait(2, 10)
      assert.equal(2, #reqs)
      assert.equal("/ali?action=publish_done&ip=192.168.0.7&id=world&app=learn.aliyundoc.com&appname=liveApp"
        .. "&time=1519376032&usrargs=token%3Da%20b%26x%3D1&node=cdnvideocenter01.cm3", reqs[2].target)
      assert.equal("1519376032", reqs[2].headers["ali-live-timestamp"])
      assert.equal(openssl.md5_hex(ALI_DOMAIN .. "|1519376032|" .. ALI_KEY), reqs[2].headers["ali-live-signature"])

      local entries = callback_entries("aliyun")
      assert.equal(2, #entries)
      assert.equal("callback:publish", entries[1].action)
      assert.equal("callback:publish_done", entries[2].action)
      assert.equal(200, entries[1].status)
      assert.equal(1, entries[1].attempt)
      assert.equal(6, entries[1].max_attempts)
      assert.equal("ok", entries[1].verdict)
      assert.equal(ALI_DOMAIN .. "/liveApp/world", entries[1].stream)
      assert.equal(r:url(req.target), entries[1].url)
      assert.equal("***", entries[1].headers["ALI-LIVE-SIGNATURE"])
      local text = cjson.encode((server:log()))
      assert.is_nil(text:find(ALI_KEY, 1, true))
      assert.is_nil(text:find(ALI_SIGNATURE, 1, true))
    end)

    it("retries 1 s apart until the receiver answers 200, each send stamped with its own time", function()
      r:script({ 500, 503, 200 })
      server:online({ domain = ALI_DOMAIN, app = "app", stream = "retry" })
      local reqs = r:wait(3, 15)
      assert.equal(3, #reqs)
      -- (not at once: each retry about a second or more after the attempt before it was sent, by the emulator's
      -- own clock (0.1 s given to an nginx timer that fires early); that it is 1 s after that attempt ended,
      -- and not more, is asserted on a simulated clock above, where a busy machine cannot move it)
      local sent = sent_times("aliyun", 3)
      for i = 2, 3 do
        assert.is_true(sent[i] - sent[i - 1] >= 0.9, "retry " .. (i - 1) .. " sent " .. sent[i] - sent[i - 1]
          .. " s after the attempt before it")
      end
      for _, q in ipairs(reqs) do
        local ts = q.headers["ali-live-timestamp"]
        assert.equal(openssl.md5_hex(ALI_DOMAIN .. "|" .. ts .. "|" .. ALI_KEY), q.headers["ali-live-signature"])
        assert.equal(q.target, reqs[1].target)
      end
      assert.is_true(tonumber(reqs[3].headers["ali-live-timestamp"]) > tonumber(reqs[1].headers["ali-live-timestamp"]))
      local entries = callback_entries("aliyun")
      assert.equal(3, #entries)
      for i, status in ipairs({ 500, 503, 200 }) do
        assert.equal(i, entries[i].attempt)
        assert.equal(status, entries[i].status)
      end
      assert.equal("failed", entries[1].verdict)
      assert.equal(1000, entries[1].retry_in_ms)
      assert.equal("ok", entries[3].verdict)
      assert.same({}, server:state().callbacks.pending)
    end)

    it("gives up after 5 retries (6 sends)", function()
      r:script({ 500, 500, 500, 500, 500, 500, 500 })
      server:online({ domain = ALI_DOMAIN, app = "app", stream = "never" })
      local reqs = r:wait(6, 15)
      assert.equal(6, #reqs)
      r:serve(1.5)
      assert.equal(6, #r.requests)
      local entries = callback_entries("aliyun")
      assert.equal(6, #entries)
      assert.is_true(entries[6].final)
      assert.is_nil(entries[6].retry_in_ms)
      assert.equal(1, server:state().callbacks.counters.aliyun.failed)
    end)

    it("sends nothing for a publish refused because the stream is blocked", function()
      local status = ali("ForbidLiveStream", { DomainName = ALI_DOMAIN, AppName = "app", StreamName = "bad",
        LiveStreamType = "publisher" })
      assert.equal(200, status)
      local answer = server:online({ domain = ALI_DOMAIN, app = "app", stream = "bad" })
      assert.same({ ALI_DOMAIN .. "/app/bad" }, answer.refused)
      r:serve(1.5)
      assert.equal(0, #r.requests)
      assert.equal(0, #callback_entries("aliyun"))
    end)

    it("sends publish_done when a forbid cuts a stream being published", function()
      server:online({ domain = ALI_DOMAIN, app = "app", stream = "cut" })
      r:wait(1, 10)
      ali("ForbidLiveStream", { DomainName = ALI_DOMAIN, AppName = "app", StreamName = "cut",
        LiveStreamType = "publisher", Oneshot = "yes" })
      local reqs = r:wait(2, 10)
      assert.equal(2, #reqs)
      assert.truthy(reqs[2].target:find("^/ali%?action=publish_done&"))
    end)

    it("shows pending deliveries in the state; a reset drops them", function()
      local dead = emu.free_ports(1)[1]
      local status = ali("SetLiveStreamsNotifyUrlConfig", { DomainName = "push.example.com",
        NotifyUrl = "http://127.0.0.1:" .. dead .. "/cb" })
      assert.equal(200, status)
      server:online({ domain = "push.example.com", app = "app", stream = "s" })
      local pending
      for _ = 1, 50 do
        pending = server:state().callbacks.pending
        if pending[1] and pending[1].attempts >= 1 then break end
        sleep(0.05)
      end
      assert.equal(1, #pending)
      assert.equal("callback:publish", pending[1].action)
      assert.equal("push.example.com/app/s", pending[1].stream)
      assert.equal("retry", pending[1].state)
      assert.truthy(pending[1].last_error:find("connect", 1, true))
      server:reset()
      assert.same({}, server:state().callbacks.pending)
      sleep(1.5) -- (real time: deliveries are nginx timers in the emulator, retried 1 s apart as Alibaba Cloud's)
      assert.equal(0, #callback_entries("aliyun"))
    end)

    it("configures the callbacks through the API, the key in clear only in Describe", function()
      local key = "Abcdef0123456789Key"
      local status, body = ali("SetLiveStreamsNotifyUrlConfig", { DomainName = "push.example.com",
        NotifyUrl = r:url("/set"), NotifyReqAuth = "yes", NotifyAuthKey = key })
      assert.equal(200, status, cjson.encode(body))
      status, body = ali("DescribeLiveStreamsNotifyUrlConfig", { DomainName = "push.example.com" })
      assert.equal(200, status)
      assert.same({ DomainName = "push.example.com", NotifyUrl = r:url("/set"), NotifyReqAuth = "yes",
        NotifyAuthKey = key }, body.LiveStreamsNotifyConfig)
      server:clock({ now = ALI_TIME })
      server:online({ domain = "push.example.com", app = "a", stream = "b" })
      local reqs = r:wait(1, 10)
      assert.equal("/set", reqs[1].path)
      assert.equal(openssl.md5_hex("push.example.com|" .. ALI_TIME .. "|" .. key), reqs[1].headers["ali-live-signature"])
      local text = cjson.encode((server:log()))
      assert.is_nil(text:find(key, 1, true))
      status = ali("DeleteLiveStreamsNotifyUrlConfig", { DomainName = "push.example.com" })
      assert.equal(200, status)
      status, body = ali("DescribeLiveStreamsNotifyUrlConfig", { DomainName = "push.example.com" })
      assert.equal(200, status)
      assert.is_nil(body.LiveStreamsNotifyConfig)
    end)

    it("refuses a bad notify configuration", function()
      local cases = {
        { {}, "MissingDomainName" },
        { { DomainName = "d.example.com" }, "MissingNotifyUrl" },
        { { DomainName = "d.example.com", NotifyUrl = "ftp://x/y" }, "InvalidParameter" },
        { { DomainName = "d.example.com", NotifyUrl = "http://127.0.0.1/", NotifyReqAuth = "yes" },
          "MissingNotifyAuthKey" },
        { { DomainName = "d.example.com", NotifyUrl = "http://127.0.0.1/", NotifyReqAuth = "yes",
            NotifyAuthKey = "123456" }, "InvalidParameter" },
        { { DomainName = "d.example.com", NotifyUrl = "http://127.0.0.1/", NotifyReqAuth = "maybe" },
          "InvalidParameter" },
        { { DomainName = "d.example.com", NotifyUrl = "http://127.0.0.1/", NotifyAuthKey = "0123456789abcdefXY" },
          "InvalidParameter" },
      }
      for _, c in ipairs(cases) do
        local status, body = ali("SetLiveStreamsNotifyUrlConfig", c[1])
        assert.equal(400, status)
        assert.equal(c[2], body.Code)
      end
    end)
  end)

  describe("pull-to-push task callbacks", function()
    local task_n = 0

    local function create(callback_path, extra)
      task_n = task_n + 1
      local now = server:clock().now
      local params = {
        Region = "cn-shanghai", StartTime = emu.iso8601(now - 10), EndTime = emu.iso8601(now + 86400),
        SourceType = "live", SourceProtocol = "rtmp", SourceUrls = '["rtmp://src.example.com/live/s' .. task_n .. '"]',
        DstUrl = "rtmp://dst.example.com/live/t" .. task_n, CallbackUrl = r:url(callback_path),
      }
      for k, v in pairs(extra or {}) do params[k] = v end
      local status, body = ali("CreateLivePullToPush", params)
      assert.equal(200, status, cjson.encode(body))
      return body.TaskId
    end

    local function describe_status(id)
      local _, body = ali("DescribeLivePullToPush", { Region = "cn-shanghai", TaskId = id })
      return body.TaskStatus
    end

    local function bodies(reqs, from)
      local out = {}
      for i = from or 1, #reqs do
        out[#out + 1] = cjson.decode(reqs[i].body)
      end
      return out
    end

    it("goes Running -> Recovering -> Running over a short source fault", function()
      local id = create("/task")
      local reqs = r:wait(1, 5)
      assert.equal(1, #reqs)
      local b = cjson.decode(reqs[1].body)
      assert.equal("POST", reqs[1].method)
      assert.equal("application/json", reqs[1].headers["content-type"])
      assert.truthy(reqs[1].body:find('^{"Event":"LivePullToPushRuning","EventTime":"%d+","TaskId":"'))
      assert.equal(1, b.TaskStatus)
      assert.equal(id, b.TaskId)
      assert.equal(id, b.TaskInfo.TaskId)
      assert.equal("rtmp://dst.example.com/live/t" .. task_n, b.TaskInfo.DstUrl)
      assert.is_nil(b.TaskInvalidReason)
      assert.equal(1, describe_status(id))

      server:faults({ kind = "source_down", task_id = id, duration_s = 30 })
      reqs = r:wait(2, 5)
      local down = cjson.decode(reqs[2].body)
      assert.equal(2, down.TaskStatus)
      assert.equal(2, describe_status(id))
      assert.equal(2, server:state().aliyun.tasks[id].TaskStatus)

      server:clock({ offset = 61 })         -- the first retry (down + 60 s) finds the source up
      reqs = r:wait(3, 5)
      local up = cjson.decode(reqs[3].body)
      assert.equal(1, up.TaskStatus)
      assert.equal(tostring(tonumber(down.EventTime) + 60), up.EventTime)
      assert.equal(1, describe_status(id))
      r:serve(0.5)
      assert.equal(3, #r.requests)
      local actions = {}
      for _, e in ipairs(callback_entries("aliyun")) do actions[#actions + 1] = e.action .. ":" .. math.floor(e.task_status) end
      assert.same({ "callback:LivePullToPushRuning:1", "callback:LivePullToPushRuning:2",
        "callback:LivePullToPushRuning:1" }, actions)
    end)

    it("goes Offline (RetryTimesOffline) when every retry fails; restart and stop", function()
      local id = create("/task", { RetryCount = "2", RetryInterval = "60" })
      r:wait(1, 5)
      server:faults({ kind = "source_down", source_url = "rtmp://src.example.com/live/s" .. task_n,
        duration_s = 1000 })
      r:wait(2, 5)
      server:clock({ offset = 121 })        -- retries at down + 60 and + 120 fail
      local reqs = r:wait(3, 5)
      local b = bodies(reqs)
      assert.same({ 1, 2, 3 }, { b[1].TaskStatus, b[2].TaskStatus, b[3].TaskStatus })
      assert.equal("RetryTimesOffline", b[3].TaskInvalidReason)
      assert.equal(tostring(tonumber(b[2].EventTime) + 120), b[3].EventTime)
      assert.equal(3, describe_status(id))
      r:serve(0.5)
      assert.equal(3, #r.requests)

      server:clear_faults()
      local status = ali("RestartLivePullToPush", { Region = "cn-shanghai", TaskId = id })
      assert.equal(200, status)
      reqs = r:wait(4, 5)
      assert.equal(1, cjson.decode(reqs[4].body).TaskStatus)
      assert.equal(1, describe_status(id))
      status = ali("StopLivePullToPush", { Region = "cn-shanghai", TaskId = id })
      assert.equal(200, status)
      reqs = r:wait(5, 5)
      local stop = cjson.decode(reqs[5].body)
      assert.equal(3, stop.TaskStatus)
      assert.equal("TriggerByUser", stop.TaskInvalidReason)
      assert.equal(3, describe_status(id))
    end)
  end)

  describe("ZEGO stream callbacks", function()
    it("sends stream_create signed as ZEGO's documented example, then stream_close", function()
      server:clock({ now = ZEGO_TIME })
      local answer = server:control("POST", "zego_online", { app_id = ZEGO_APP, stream_id = "s1", room_id = "r1",
        user_id = "u1", nonce = ZEGO_NONCE })
      assert.same({ ZEGO_APP .. "/s1" }, answer.marked)
      local reqs = r:wait(1, 5)
      assert.equal(1, #reqs)
      assert.equal("POST", reqs[1].method)
      assert.equal("/zego", reqs[1].target)
      assert.equal("application/json", reqs[1].headers["content-type"])
      assert.truthy(reqs[1].body:find('{"event":"stream_create","appid":"1234567890","timestamp":"1470820198",'
        .. '"nonce":"123412","signature":"' .. ZEGO_SIGNATURE .. '","room_id":"r1",', 1, true))
      assert.equal(ZEGO_SIGNATURE, sha1_hex("1234121470820198secret"))
      local b = cjson.decode(reqs[1].body)
      assert.equal("u1", b.user_id)
      assert.equal("s1", b.stream_id)
      assert.equal("1", b.stream_seq)
      assert.equal("1470820198", b.create_time)
      assert.equal("1470820198000", b.create_time_ms)
      assert.equal("r1", b.channel_id)

      server:clock({ now = ZEGO_TIME + 5 })
      server:control("DELETE", "zego_online", { app_id = ZEGO_APP, stream_id = "s1" })
      reqs = r:wait(2, 5)
      local c = cjson.decode(reqs[2].body)
      assert.equal("stream_close", c.event)
      assert.equal("0", c.type)
      assert.equal("2", c.stream_seq)
      assert.equal(b.stream_sid, c.stream_sid)
      assert.equal(b.room_session_id, c.room_session_id)
      assert.equal("1470820203", c.timestamp)
      assert.equal(sha1_hex(table.concat((function()
        local t = { ZEGO_SECRET, c.timestamp, c.nonce }
        table.sort(t)
        return t
      end)())), c.signature)
      local entries = callback_entries("zego")
      assert.equal("callback:stream_create", entries[1].action)
      assert.equal("callback:stream_close", entries[2].action)
      assert.equal("***", entries[1].payload.signature)
      assert.is_nil(cjson.encode((server:log())):find(ZEGO_SIGNATURE, 1, true))
    end)

    it("sends a delivery again byte for byte (at least once), logged as again; 404 and 400 otherwise", function()
      server:control("POST", "zego_online", { app_id = ZEGO_APP, stream_id = "s9", room_id = "r9", user_id = "u9" })
      r:wait(1, 5)
      local entry = callback_entries("zego")[1]
      local answer, status = server:control("POST", "callbacks", { delivery = entry.delivery })
      assert.equal(202, status)
      assert.same({ delivery = entry.delivery }, answer)
      local reqs = r:wait(2, 5)
      assert.same({ reqs[1].method, reqs[1].target, reqs[1].body, reqs[1].headers["content-type"] },
        { reqs[2].method, reqs[2].target, reqs[2].body, reqs[2].headers["content-type"] })
      local entries
      for _ = 1, 100 do -- (logged once the receiver answered: bounded)
        entries = callback_entries("zego")
        if entries[2] then break end
        sleep(0.05)
      end
      assert.same({ true, "ok", entry.delivery }, { entries[2].again, entries[2].verdict, entries[2].delivery })
      assert.is_nil(entries[1].again)
      answer, status = server:control("POST", "callbacks", { delivery = 999999 })
      assert.equal(404, status)
      assert.equal("callbacks: no delivery 999999 was sent (the last 100 are kept)", answer.error)
      for _, bad in ipairs { {}, { delivery = "1" }, { delivery = 1.5 }, { delivery = 0 } } do
        assert.equal(400, select(2, server:control("POST", "callbacks", bad)))
      end
    end)

    it("retries after 2, 4, 8... s times callback_retry_scale until a 2xx", function()
      r:script({ 500, 302, 204 })
      server:control("POST", "zego_online", { app_id = ZEGO_APP, stream_id = "s2", room_id = "r2", user_id = "u2" })
      local reqs = r:wait(3, 10)
      assert.equal(3, #reqs)
      -- (the gaps the emulator kept between its sends, by its own clock: the receiver here may read a
      -- request late on a busy machine and see a gap shrink. Not at once: about 2 s and 4 s x 0.05 or more
      -- (as before, a tenth given to an early timer); that they are no longer, not the unscaled 2 and
      -- 4 s, is asserted on a simulated clock above)
      local sent = sent_times("zego", 3)
      local g1, g2 = sent[2] - sent[1], sent[3] - sent[2]
      assert.is_true(g1 >= 0.09, "first gap " .. g1)
      assert.is_true(g2 >= 0.19, "second gap " .. g2)
      local n1, n2 = cjson.decode(reqs[1].body).nonce, cjson.decode(reqs[2].body).nonce
      assert.truthy(n1:find("^%d+$"))
      assert.are_not.equal(n1, n2)
      r:serve(0.5)
      assert.equal(3, #r.requests)
      local entries = callback_entries("zego")
      assert.equal(3, #entries)
      assert.equal(100, entries[1].retry_in_ms)
      assert.equal(200, entries[2].retry_in_ms)
      assert.equal(204, entries[3].status)
      assert.equal("ok", entries[3].verdict)
    end)

    it("refuses to publish a forbidden stream and sends nothing", function()
      local q = emu.zego_query({ action = "ForbidRTCStream", params = { StreamId = "bad" },
        time = server:clock().now })
      local status, body = server:request({ provider = "zego", path = "/?" .. q })
      assert.equal(200, status)
      assert.equal(0, cjson.decode(body).Code)
      local answer = server:control("POST", "zego_online", { app_id = ZEGO_APP, stream_id = "bad", room_id = "r",
        user_id = "u" })
      assert.same({ ZEGO_APP .. "/bad" }, answer.refused)
      assert.same({}, answer.marked)
      r:serve(1)
      assert.equal(0, #r.requests)
      assert.equal(0, #callback_entries("zego"))
    end)
  end)
end)
