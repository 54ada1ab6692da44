-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- The callbacks the emulator sends (docs/emulator.md, "Callbacks"): Alibaba
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
      for i = 2, 3 do
        local gap = reqs[i].time - reqs[i - 1].time
        assert.is_true(gap >= 0.9 and gap < 1.8, "gap " .. gap)
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

    it("retries after 2, 4, 8... s times callback_retry_scale until a 2xx", function()
      r:script({ 500, 302, 204 })
      server:control("POST", "zego_online", { app_id = ZEGO_APP, stream_id = "s2", room_id = "r2", user_id = "u2" })
      local reqs = r:wait(3, 10)
      assert.equal(3, #reqs)
      -- (the gaps the emulator kept between its sends, by its own clock: the receiver here may read a
      -- request late on a busy machine, or under valgrind, and see a gap shrink; its lower bounds catch
      -- retries sent at once, its upper ones retries that wait the unscaled 2 and 4 s)
      local sent = require("spec.helpers.checks").wait_until(function()
        local t = {}
        for _, e in ipairs(callback_entries("zego")) do t[e.attempt] = e.real_time end
        return t[3] and t
      end, 5)
      assert(sent, "the emulator logged no third attempt")
      local g1, g2 = sent[2] - sent[1], sent[3] - sent[2]
      assert.is_true(g1 >= 0.09 and g1 < 0.6 * require("spec.helpers.process").slowdown(), "first gap " .. g1)      -- 2 s x 0.05
      assert.is_true(g2 >= 0.19 and g2 < 0.8 * require("spec.helpers.process").slowdown(), "second gap " .. g2)     -- 4 s x 0.05
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
