-- An attempt goes on the wire once (issue 66), through a client against the
-- emulator: a call whose kept-alive connection the emulator drops after it
-- applied the request (a `drop` fault, after_apply) arrives once; the engine
-- takes it as an attempt whose outcome is unknown (a look-up before anything
-- is sent again), never a second copy of the same signed request. Until
-- issue 66 libcurl sent that copy by itself on a fresh connection, within a
-- millisecond and without a slot (Aliyun's refused by its nonce, counted in
-- the account's budget all the same; a create's copy skipped the look-up).
-- The cosocket transport's rows: spec/transports/30 (the same rule, in Lua).
local cjson = require "cjson"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local ALI = { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret" }
local ZEGO = { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef" }
local SLOW = process.slowdown()
local unpack_row = table.unpack or unpack -- luacheck: ignore 143 (Lua 5.1's unpack)

describe("an attempt goes on the wire once, through a client (libcurl, the emulator)", function()
  local server
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function() server:reset() end)

  -- A client; `attempts` counts what it hands its transport, per action (on_attempt).
  local function client(mod, creds, url, attempts)
    local o = { endpoint = url, retry = { attempts = 3, base_ms = 1, throttle_base_ms = 1, cap_ms = 50 },
                timeout_ms = 3000 * SLOW, connect_timeout_ms = 1000 * SLOW, settle_ms = 0,
                on_attempt = function(info) attempts[info.action] = (attempts[info.action] or 0) + 1 end }
    for k, v in pairs(creds) do o[k] = v end
    return assert(mod.new(o))
  end

  -- The actions the emulator logged, in order, with their verdicts and codes.
  local function logged()
    local out = {}
    for i, e in ipairs(server:log { limit = 1000 }) do
      out[i] = { action = e.action, verdict = e.verdict, code = e.code, applied = e.applied or false }
    end
    return out
  end

  local function count(log, action)
    local n = 0
    for _, e in ipairs(log) do if e.action == action then n = n + 1 end end
    return n
  end

  local now = os.time()
  -- { row, provider, a call that warms the connection, the fault's action, the call, its look-up's action }
  local ROWS = {
    { "Aliyun ForbidLiveStream", "aliyun",
      function(c) return c:resume_live_stream { domain_name = "push.example.com", app_name = "live",
                                                stream_name = "warm" } end,
      "ForbidLiveStream",
      function(c) return c:forbid_live_stream { domain_name = "push.example.com", app_name = "live",
                                                stream_name = "once" } end,
      "DescribeLiveStreamsBlockList" },
    { "Aliyun CreateLivePullToPush (a create is looked up, never sent again blind)", "aliyun",
      function(c) return c:resume_live_stream { domain_name = "push.example.com", app_name = "live",
                                                stream_name = "warm" } end,
      "CreateLivePullToPush",
      function(c) return c:create_live_pull_to_push { region = "cn-shanghai", source_type = "url",
        source_urls = { "https://cdn.example.com/a.mp4" }, dst_url = "rtmp://push.example.com/live/once",
        start_time = now, end_time = now + 600 } end,
      "DescribeLivePullToPushList" },
    { "ZEGO ForbidRTCStreams (sent again by the engine, with its Sequence and a slot)", "zego",
      function(c) return c:resume_rtc_streams { stream_ids = { "warm" } } end,
      "ForbidRTCStreams",
      function(c) return c:forbid_rtc_streams { stream_ids = { "once" } } end },
  }

  for _, row in ipairs(ROWS) do
    local name, provider, warm, action, call, lookup = unpack_row(row)
    it(name .. ": dropped after it applied on a kept-alive connection, each attempt arrives once; done",
      function()
        local attempts = {}
        local c = provider == "aliyun" and client(aliyun, ALI, server.aliyun_url, attempts)
          or client(zego, ZEGO, server.zego_url, attempts)
        assert(warm(c))
        server:faults({ kind = "drop", action = action, count = 1, after_apply = true }, provider)
        local res, err = call(c)
        server:clear_faults()
        local log = logged()
        -- as many arrivals of each action as the client made attempts: no copy of its own
        for a, n in pairs(attempts) do assert.equal(n, count(log, a), a .. ": " .. cjson.encode(log)) end
        assert.truthy(res, tostring(err))
        local at
        for i, e in ipairs(log) do if e.action == action and not at then at = i end end
        assert.same({ "fault", true }, { log[at].verdict, log[at].applied })
        -- a call with a look-up: the look-up next, before anything is sent again
        if lookup then
          assert.equal(1, attempts[action])
          assert.equal(lookup, log[at + 1] and log[at + 1].action, cjson.encode(log))
        end
      end)
  end
end)
