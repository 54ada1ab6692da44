-- The budget belongs to the provider's account. Alibaba Cloud counts an API's
-- QPS per account (the UID), over all its RAM users' AccessKeys and STS
-- sessions together: the emulator counts so for keys configured with one
-- "account", and a client given `account_id` paces on that account's budget
-- (shared through one rate_limit_store, a shared_dict or Redis) instead of
-- its AccessKeyId's. The emulator's side is driven by hand-built requests
-- (spec/helpers/emulator.lua, never streamctl's core); the client's against
-- the emulator, two clients side by side in this process.
local emu = require "spec.helpers.emulator"
local rates = require "spec.helpers.rate_model"
local cjson = require "cjson"
local streamctl = require "streamctl"
local config = require "streamctl.emulator.config"
local cli = require "streamctl.cli"
local core = require "streamctl.core"
local curl = require "streamctl.transport.curl"
local ratelimit = require "streamctl.engine.ratelimit"
local log = require "streamctl.base.log"

local UID = "1234567890123456"
local EDGE_UID = "2000000000000001"

local CONFIG = {
  aliyun = {
    accounts = {
      -- two RAM users' keys of one account, and a key that is an account of
      -- its own, each at 5/s to fill a window quickly
      LTAIram1 = { secret = "ram1-secret", account = UID, qps = { ResumeLiveStream = 5 } },
      LTAIram2 = { secret = "ram2-secret", account = UID, qps = { ResumeLiveStream = 5 } },
      LTAIalone = { secret = "alone-secret", qps = { ResumeLiveStream = 5 } },
      -- a key whose id reads like the UID: still an account of its own
      [UID] = { secret = "digits-secret", qps = { ResumeLiveStream = 5 } },
      -- two machines' keys of one account, at the published caps
      LTAIedge1 = { secret = "edge1-secret", account = EDGE_UID },
      LTAIedge2 = { secret = "edge2-secret", account = EDGE_UID },
    },
  },
}

local SECRETS = { LTAIram1 = "ram1-secret", LTAIram2 = "ram2-secret", LTAIalone = "alone-secret",
                  LTAIemulatorKey = "emulator-secret", [UID] = "digits-secret" }

local ACCOUNT_RULE = "must be a string of 1 to 32 decimal digits (the account UID)"

local function decode(text)
  local ok, v = pcall(cjson.decode, text or "")
  return ok and v or nil
end

describe("the budget belongs to the account", function()
  local server

  lazy_setup(function()
    server = emu.start { config = CONFIG }
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    server:reset()
  end)

  describe("in the emulator", function()
    -- A signed ResumeLiveStream of `key` (V1, or V3 when v3 is true), built
    -- before the timed part: signing runs the openssl CLI.
    local n = 0
    local function resume(key, v3)
      n = n + 1
      local params = { DomainName = "live.example.com", AppName = "app", StreamName = "acct" .. n,
                       LiveStreamType = "publisher" }
      if not v3 then
        local q = emu.v1_request { action = "ResumeLiveStream", params = params, key = key, secret = SECRETS[key] }
        return { method = "POST", provider = "aliyun", path = "/?" .. q }
      end
      local headers = emu.v3_sign {
        method = "POST", path = "/", query = params, key = key, secret = SECRETS[key],
        headers = {
          host = "127.0.0.1:" .. server.ports.aliyun,
          ["x-acs-action"] = "ResumeLiveStream",
          ["x-acs-version"] = "2016-11-01",
          ["x-acs-date"] = emu.iso8601(os.time()),
          ["x-acs-signature-nonce"] = emu.nonce(),
        },
      }
      return { method = "POST", provider = "aliyun", path = "/?" .. emu.query(params), headers = headers }
    end

    -- Sends the requests back to back: "ok", "throttled" or what else came
    -- back, each.
    local function burst(requests)
      local out = {}
      for i, r in ipairs(requests) do
        local status, body = server:request(r)
        local v = decode(body)
        if status == 200 and v and v.Code == nil then
          out[i] = "ok"
        elseif status == 400 and v and v.Code == "Throttling.User" then
          out[i] = "throttled"
        else
          out[i] = tostring(v and v.Code or status)
        end
      end
      return out
    end

    it("counts two keys of one account in one window: exactly N accepted in a second across both", function()
      if not emu.timed_bursts() then pending(emu.TIMED_BURSTS) return end
      -- 5/s for the account: its two keys, taking turns, V1 and V3 alike
      local requests = {}
      for i = 1, 8 do requests[i] = resume(i % 2 == 1 and "LTAIram1" or "LTAIram2", i % 4 == 0) end
      local got = burst(requests)
      -- the log shows each request's key and the account it counted against
      local entries = server:log { action = "ResumeLiveStream" }
      assert.equal(8, #entries)
      for i, e in ipairs(entries) do
        assert.equal(i % 2 == 1 and "LTAIram1" or "LTAIram2", e.account)
        assert.equal(UID, e.account_uid)
        assert.equal(got[i], e.verdict)
      end
      -- one window for the account at the limiter's own times, on any
      -- machine; the planned 5 of 8 when the 8 came within its second
      local replay = rates.check(entries, 5, "8 of one account's two keys at 5/s")
      local c = server:state().aliyun.counters.ResumeLiveStream
      assert.same({ replay.accepted, replay.throttled }, { c.accepted, c.throttled })
      if rates.within(replay.times, 1, "8 of one account's two keys at 5/s") then
        assert.same({ "ok", "ok", "ok", "ok", "ok", "throttled", "throttled", "throttled" }, got)
        assert.same({ 5, 3 }, { c.accepted, c.throttled })
      end
    end)

    it("keeps a key without an account on a budget of its own, whatever the account's keys sent", function()
      if not emu.timed_bursts() then pending(emu.TIMED_BURSTS) return end
      local requests = {}
      for _ = 1, 3 do requests[#requests + 1] = resume("LTAIram1") end
      for _ = 1, 3 do requests[#requests + 1] = resume("LTAIram2") end
      for _ = 1, 6 do requests[#requests + 1] = resume("LTAIalone") end
      requests[#requests + 1] = resume("LTAIemulatorKey") -- at 30/s: far from its cap
      requests[#requests + 1] = resume(UID)
      local got = burst(requests)
      local entries = server:log { action = "ResumeLiveStream" }
      assert.equal(14, #entries)
      for i, e in ipairs(entries) do
        assert.equal(got[i], e.verdict)
        if e.account == "LTAIalone" or e.account == "LTAIemulatorKey" or e.account == UID then
          assert.is_nil(e.account_uid)
        else
          assert.equal(UID, e.account_uid)
        end
      end
      -- each budget's window at the limiter's own times, on any machine (the
      -- account's two keys on one, each other key on its own: 5/s, the
      -- emulator's key 30/s); the planned verdicts when they came within a second
      local replay = rates.check(entries, function(e)
        return e.account == "LTAIemulatorKey" and 30 or 5
      end, "budgets of their own")
      local c = server:state().aliyun.counters.ResumeLiveStream
      assert.same({ replay.accepted, replay.throttled }, { c.accepted, c.throttled })
      if rates.within(replay.times, 1, "budgets of their own") then
        assert.same({ "ok", "ok", "ok", "ok", "ok", "throttled",
                      "ok", "ok", "ok", "ok", "ok", "throttled", "ok", "ok" }, got)
        assert.same({ 12, 2 }, { c.accepted, c.throttled })
      end
    end)

    it("names the account of a request an injected fault answered instead", function()
      server:faults { action = "ResumeLiveStream", kind = "http500" }
      local got = burst { resume("LTAIram1"), resume("LTAIalone") }
      assert.same({ "InternalError", "ok" }, got)
      local entries = server:log { action = "ResumeLiveStream" }
      assert.equal("fault", entries[1].verdict)
      assert.equal("LTAIram1", entries[1].account)
      assert.equal(UID, entries[1].account_uid)
      assert.equal("LTAIalone", entries[2].account)
      assert.is_nil(entries[2].account_uid)
    end)

    it("shows each key's account in the state", function()
      assert.same({ LTAIram1 = UID, LTAIram2 = UID, LTAIedge1 = EDGE_UID, LTAIedge2 = EDGE_UID },
        server:state().aliyun.account_uids)
    end)

    it("refuses an account that is not a UID, and keys of one account that disagree on its budget", function()
      local SAME = "; the keys of one account share its budget, so they must give the same qps and "
        .. "rate_limiter (or leave them out)"
      local function keys(a, b)
        return { aliyun = { accounts = { LTAIa = a, LTAIb = b } } }
      end
      local cases = {
        { { aliyun = { accounts = { LTAIx = { secret = "s", account = 1234567890123456 } } } },
          "aliyun.accounts.LTAIx.account: expected a string of 1 to 32 decimal digits (the account's UID), "
          .. "got number" },
        { { aliyun = { accounts = { LTAIx = { secret = "s", account = "" } } } },
          'aliyun.accounts.LTAIx.account: expected a string of 1 to 32 decimal digits (the account\'s UID), got ""' },
        { { aliyun = { accounts = { LTAIx = { secret = "s", account = "12345678-9" } } } },
          "aliyun.accounts.LTAIx.account: expected a string of 1 to 32 decimal digits (the account's UID), "
          .. 'got "12345678-9"' },
        { { aliyun = { accounts = { LTAIx = { secret = "s", account = string.rep("9", 33) } } } },
          "aliyun.accounts.LTAIx.account: expected a string of 1 to 32 decimal digits (the account's UID), "
          .. 'got "' .. string.rep("9", 33) .. '"' },
        { keys({ secret = "a", account = UID, qps = { ResumeLiveStream = 2 } }, { secret = "b", account = UID }),
          "aliyun.accounts.LTAIb.qps.ResumeLiveStream: not given here but 2 on LTAIa, another key of account "
          .. UID .. SAME },
        { keys({ secret = "a", account = UID, qps = { ResumeLiveStream = 2, ForbidLiveStream = 3 } },
               { secret = "b", account = UID, qps = { ResumeLiveStream = 2, ForbidLiveStream = 4 } }),
          "aliyun.accounts.LTAIb.qps.ForbidLiveStream: 4 here but 3 on LTAIa, another key of account " .. UID
          .. SAME },
        { keys({ secret = "a", account = UID }, { secret = "b", account = UID, rate_limiter = "token_bucket" }),
          'aliyun.accounts.LTAIb.rate_limiter: "token_bucket" here but not given on LTAIa, another key of '
          .. "account " .. UID .. SAME },
        { keys({ secret = "a", account = UID, qps = 5 }, { secret = "b", account = UID }),
          "aliyun.accounts.LTAIa.qps: expected an object" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(config.build, c[1])
        assert.is_false(ok, c[2])
        assert.equal(c[2], err)
      end
      -- the same settings, or none, on each key; keys of different accounts may differ
      for _, good in ipairs {
        keys({ secret = "a", account = UID, qps = { ResumeLiveStream = 2 }, rate_limiter = "token_bucket" },
             { secret = "b", account = UID, qps = { ResumeLiveStream = 2 }, rate_limiter = "token_bucket" }),
        keys({ secret = "a", account = UID }, { secret = "b", account = UID }),
        keys({ secret = "a", account = UID, qps = { ResumeLiveStream = 2 } },
             { secret = "b", account = EDGE_UID, qps = { ResumeLiveStream = 3 } }),
        keys({ secret = "a", account = UID, qps = { ResumeLiveStream = 2 } },
             { secret = "b", qps = { ResumeLiveStream = 3 } }),
      } do
        local cfg = config.build(good)
        assert.equal(good.aliyun.accounts.LTAIa.account, cfg.aliyun.accounts.LTAIa.account)
        assert.equal(good.aliyun.accounts.LTAIb.account, cfg.aliyun.accounts.LTAIb.account)
      end
      -- and the start stops with the message
      local dir = os.tmpname()
      os.remove(dir)
      local ok, err = pcall(emu.start, { dir = dir, config = cases[5][1] })
      if ok then err:stop() end
      os.execute("rm -rf '" .. dir .. "'")
      assert.is_false(ok)
      assert.matches("config.json: " .. cases[5][2], tostring(err), 1, true)
    end)
  end)

  describe("in the client", function()
    local function ali(extra)
      local o = { access_key_id = "LTAIedge1", access_key_secret = "edge1-secret" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return streamctl.aliyun.new(o)
    end

    it("takes account_id, 1 to 32 decimal digits as a string, and keys its budget by it", function()
      for _, id in ipairs { UID, "1", string.rep("9", 32) } do
        local c = assert(ali { account_id = id })
        assert.equal(id, c:account())
        c:close()
      end
      local c = assert(ali())
      assert.equal("LTAIedge1", c:account())
      c:close()
      -- the pacing key: provider, account, action
      local keys = {}
      local store = ratelimit.memory_store()
      local watched = {
        get = function(_, key)
          -- (the budget's room, read with it, is under the same key: streamctl.engine.room)
          local budget = key:gsub("^room:w:", "")
          if keys[#keys] ~= budget then keys[#keys + 1] = budget end
          return store:get(key)
        end,
        set = function(_, ...) return store:set(...) end,
      }
      -- Live answers; STS GetCallerIdentity answers `identity` (JSON text)
      local sent = {}
      local function transport_for(identity)
        return function(req)
          local action = req.headers["x-acs-action"]
          sent[#sent + 1] = action .. " " .. req.url:match("^https://([^/]+)")
          if action == "GetCallerIdentity" then return { status = 200, headers = {}, body = identity } end
          return { status = 200, headers = {}, body = '{"RequestId":"R1"}' }
        end
      end
      local WHO = '{"RequestId":"R2","AccountId":"%s","Arn":"acs:ram::%s:user/edge","IdentityType":"RAMUser"}'
      local warnings = {}
      local warn = log.warn
      log.warn = function(msg) warnings[#warnings + 1] = msg end
      local clients = {
        { account_id = UID, transport = transport_for("{}") },
        -- no account_id: STS says it, asked once (the second call and client know it)
        { transport = transport_for(WHO:format(EDGE_UID, EDGE_UID)) },
        { transport = transport_for(WHO:format(EDGE_UID, EDGE_UID)) },
        -- STS answers nothing usable: the one budget of unknown accounts, said once
        { transport = transport_for("{}"), access_key_id = "LTAIedge2", endpoint = "https://live.cn-shanghai.aliyuncs.com" },
        { transport = transport_for("{}"), access_key_id = "LTAIedge2", endpoint = "https://live.cn-shanghai.aliyuncs.com" },
      }
      for _, extra in ipairs(clients) do
        extra.rate_limit_store = watched
        c = assert(ali(extra))
        for _ = 1, 2 do
          assert(c:resume_live_stream { domain_name = "d.example.com", app_name = "a", stream_name = "s" })
        end
      end
      log.warn = warn
      assert.same({ "aliyun:" .. UID .. ":ResumeLiveStream", "aliyun:" .. EDGE_UID .. ":ResumeLiveStream",
                    "aliyun:unknown-account:ResumeLiveStream" }, keys)
      assert.same({
        "ResumeLiveStream live.aliyuncs.com", "ResumeLiveStream live.aliyuncs.com",
        "GetCallerIdentity sts.aliyuncs.com", "ResumeLiveStream live.aliyuncs.com",
        "ResumeLiveStream live.aliyuncs.com", "ResumeLiveStream live.aliyuncs.com",
        "ResumeLiveStream live.aliyuncs.com",
        -- (asked again only after LOOKUP_RETRY_S)
        "GetCallerIdentity sts.cn-shanghai.aliyuncs.com",
        "ResumeLiveStream live.cn-shanghai.aliyuncs.com", "ResumeLiveStream live.cn-shanghai.aliyuncs.com",
        "ResumeLiveStream live.cn-shanghai.aliyuncs.com", "ResumeLiveStream live.cn-shanghai.aliyuncs.com",
      }, sent)
      assert.equal(1, #warnings)
      assert.matches("^streamctl: the account behind AccessKeyId LTAIedge2 is unknown %(STS GetCallerIdentity at "
        .. "https://sts.cn%-shanghai.aliyuncs.com: .-%); its calls are paced under one budget with every other "
        .. "unknown account's until STS answers %(asked again every 60 s%); give account_id to say it$", warnings[1])
      assert.not_matches("secret", warnings[1])
    end)

    it("asks STS where the caller named: the region's STS for Alibaba Cloud's endpoints, else the endpoint itself",
      function()
      local acs = require "streamctl.pipeline.acs"
      local parse = require("streamctl.pipeline.options").parse_endpoint
      for endpoint, sts in pairs {
        ["https://live.aliyuncs.com"] = "https://sts.aliyuncs.com",
        ["https://live.aliyuncs.com:443"] = "https://sts.aliyuncs.com",
        ["https://live.cn-shanghai.aliyuncs.com"] = "https://sts.cn-shanghai.aliyuncs.com",
        ["https://LIVE.ap-southeast-1.aliyuncs.com:8443"] = "https://sts.ap-southeast-1.aliyuncs.com",
        ["https://live-vpc.aliyuncs.com"] = "https://sts.aliyuncs.com",
        ["https://127.0.0.1:18443"] = "https://127.0.0.1:18443",
        ["https://gateway.example.com"] = "https://gateway.example.com",
      } do
        assert.equal(sts, acs.sts_endpoint_for(assert(parse(endpoint))), endpoint)
      end
      assert.equal("https://sts-vpc.cn-beijing.aliyuncs.com",
        acs.sts_endpoint_for(assert(parse("https://live.aliyuncs.com")), "sts-vpc.cn-beijing.aliyuncs.com"))
    end)

    it("asks STS for the account only when the budget is shared, or never with account_id", function()
      local sent = 0
      local function transport(req)
        sent = sent + 1
        assert.equal("ResumeLiveStream", req.headers["x-acs-action"])
        return { status = 200, headers = {}, body = '{"RequestId":"R1"}' }
      end
      for _, extra in ipairs { { transport = transport }, { transport = transport, rate_limits = false },
                               { transport = transport, rate_limit_store = ratelimit.memory_store(), account_id = UID } } do
        extra.access_key_id = "LTAIprivate"
        local c = assert(ali(extra))
        assert(c:resume_live_stream { domain_name = "d.example.com", app_name = "a", stream_name = "s" })
        -- a private budget's key is the AccessKeyId's, as before
        assert.equal(extra.account_id or "LTAIprivate", c:account())
      end
      assert.equal(3, sent)
    end)

    it("refuses an account_id that is not 1 to 32 decimal digits as a string, naming the option", function()
      for _, bad in ipairs { "", " 123", "123 ", "12a", "-1", "1.5", "0x10", string.rep("9", 33), "１２３",
                             1234567890123456, 1, true, {} } do
        local c, err = ali { account_id = bad }
        assert.is_nil(c)
        assert.equal("InvalidParameter", err.code)
        assert.equal("option 'account_id' " .. ACCOUNT_RULE, err.message)
      end
    end)

    -- A libcurl transport whose waits yield (the time to be resumed at), so
    -- that clients in coroutines send side by side in this process.
    local function cooperative()
      local t = curl.new {}
      local now = core.monotonic
      return {
        start = t.start,
        poll = function(timeout)
          local deadline = now() + timeout
          while true do
            local got = t.poll(0)
            if #got > 0 or now() >= deadline then return got end
            coroutine.yield(math.min(deadline, now() + 0.001))
          end
        end,
        sleep = function(seconds) coroutine.yield(now() + seconds) end,
        close = t.close,
      }
    end

    -- Runs the functions side by side, each resumed when the time it yielded
    -- has come; returns their results, in order.
    local function side_by_side(...)
      local threads = {}
      for i, fn in ipairs { ... } do threads[i] = { co = coroutine.create(fn), at = 0 } end
      local left = #threads
      while left > 0 do
        local next_one
        for _, th in ipairs(threads) do
          if not th.done and (not next_one or th.at < next_one.at) then next_one = th end
        end
        local wait = next_one.at - core.monotonic()
        if wait > 0 then curl.sleep(wait) end
        local ok, v = coroutine.resume(next_one.co)
        if not ok then error(v, 0) end
        if coroutine.status(next_one.co) == "dead" then
          next_one.done, next_one.result, left = true, v, left - 1
        else
          next_one.at = v
        end
      end
      local out = {}
      for i, th in ipairs(threads) do out[i] = th.result end
      return out
    end

    -- Two machines' clients, each with its own AccessKey of the account,
    -- one store between them (as Redis or a shared_dict would be), each
    -- resuming 25 streams of its own at once. They pace at 25/s, under the
    -- emulator's 30: one budget sends under the account's cap with room for
    -- a late send, two budgets send at about 50/s.
    -- (`pace`: { streams = n, rate = r[, retry = settings] } instead of 25 streams each at 25/s)
    local STREAMS = 25
    local function two_machines(account_id, stores, pace)
      local store = ratelimit.memory_store()
      local streams, rate = pace and pace.streams or STREAMS, pace and pace.rate or 25
      local function machine(n)
        return function()
          local c = assert(streamctl.aliyun.new {
            endpoint = server.aliyun_url, transport = cooperative(), rate_limit_store = stores and stores[n] or store,
            access_key_id = "LTAIedge" .. n, access_key_secret = "edge" .. n .. "-secret",
            account_id = account_id, rate_limits = { ResumeLiveStream = rate }, retry = pace and pace.retry,
          })
          local names = {}
          for i = 1, streams do names[i] = string.format("edge%d-%02d", n, i) end
          local report = c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
                                                 stream_names = names }
          c:close()
          return report
        end
      end
      return side_by_side(machine(1), machine(2))
    end

    it("paces two AccessKeys of one account on one budget with account_id: zero throttled", function()
      local reports = two_machines(EDGE_UID)
      for _, r in ipairs(reports) do
        assert.equal(STREAMS, r.succeeded)
        assert.equal(STREAMS, r.calls)
      end
      local c = server:state().aliyun.counters.ResumeLiveStream
      assert.equal(0, c.throttled)
      assert.equal(2 * STREAMS, c.accepted)
      -- (one schedule for both, 50 requests at 25/s less the margin, is asserted in virtual time:
      -- spec/engine/10-pacing-time, "two AccessKeys of one account")
      local seen = {}
      for _, e in ipairs(server:log { action = "ResumeLiveStream" }) do
        seen[e.account] = (seen[e.account] or 0) + 1
        assert.equal(EDGE_UID, e.account_uid)
      end
      assert.same({ LTAIedge1 = STREAMS, LTAIedge2 = STREAMS }, seen)
    end)

    it("without account_id, asks STS once per AccessKey and paces both on the account's budget: zero throttled",
      function()
      local reports = two_machines(nil)
      for _, r in ipairs(reports) do assert.equal(STREAMS, r.succeeded) end
      local c = server:state().aliyun.counters.ResumeLiveStream
      assert.equal(0, c.throttled)
      assert.equal(2 * STREAMS, c.accepted)
      local asked = {}
      for _, e in ipairs(server:log { action = "GetCallerIdentity" }) do asked[#asked + 1] = e.account end
      table.sort(asked)
      assert.same({ "LTAIedge1", "LTAIedge2" }, asked)
      -- a second run asks nobody: the account is remembered per AccessKey (and STS endpoint)
      server:reset()
      two_machines(nil)
      assert.same({}, server:log { action = "GetCallerIdentity" })
      assert.equal(0, server:state().aliyun.counters.ResumeLiveStream.throttled)
    end)

    it("with a budget each (what keying by AccessKeyId did), the account is throttled", function()
      -- Not by outrunning the published cap (two budgets at 25/s each reach 50/s only on a machine fast
      -- enough to send that): the account's cap is one call in any 10 s from now (a run-time qps of 0.1,
      -- docs/emulator.md "Run-time caps") and each client sends one stream (its account given: no STS
      -- call before it). A budget's first call goes at once, so two budgets send two calls at about the
      -- same time, which any machine lands within 10 s of each other: the second is throttled (not
      -- retried: what is counted is the throttle). Each budget paces at 1/s, not at the cap: an attempt
      -- whose signing outlasts its slot's lateness (under valgrind with the machine busy) is taken back
      -- and takes the budget's next slot, which at the cap's 0.1/s came 10.3 s later, past the window.
      -- The first half fails if the emulator counted the two keys apart; the second, one budget for both
      -- at the cap, spacing them 10.5 s apart however slow the machine (none throttled), fails if the
      -- clients' one budget did not hold them apart.
      local cap = { account_uid = EDGE_UID, action = "ResumeLiveStream", qps = 0.1 }
      server:control("POST", "qps", cap)
      two_machines(EDGE_UID, { ratelimit.memory_store(), ratelimit.memory_store() },
        { streams = 1, rate = 1, retry = { attempts = 1 } })
      local c = server:state().aliyun.counters.ResumeLiveStream
      local seen = {}
      for _, e in ipairs(server:log {}) do
        seen[#seen + 1] = string.format("%s %s %s %s", e.action, e.account, e.verdict, tostring(e.rate_limit_time))
      end
      assert.is_true(c.throttled > 0, "two budgets of one account were never throttled: " .. table.concat(seen, "; "))
      -- the same with one budget between them: zero throttled
      server:reset()
      server:control("POST", "qps", cap)
      local reports = two_machines(EDGE_UID, nil, { streams = 1, rate = 0.1, retry = { attempts = 1 } })
      for _, r in ipairs(reports) do assert.equal(1, r.succeeded) end
      c = server:state().aliyun.counters.ResumeLiveStream
      assert.same({ 0, 2 }, { c.throttled, c.accepted })
    end)
  end)

  describe("on the command line", function()
    local HOME -- empty: no profile or config file is read

    lazy_setup(function()
      HOME = os.tmpname()
      os.remove(HOME)
      assert(os.execute("mkdir " .. HOME))
    end)

    lazy_teardown(function()
      if HOME then os.execute("rm -rf '" .. HOME .. "'") end
    end)

    -- Runs `streamctl aliyun resume-live-stream ... --dry-run <extra>` in
    -- this process with the environment `env`; returns the exit status,
    -- stderr and the options the client was made with.
    local function run(extra, env)
      local argv = { "aliyun", "resume-live-stream", "--dry-run", "--endpoint", server.aliyun_url,
                     "--access-key-id", "LTAIedge1", "--access-key-secret", "edge1-secret",
                     "--domain-name", "push.example.com", "--app-name", "live", "--stream-name", "s" }
      for _, a in ipairs(extra) do argv[#argv + 1] = a end
      local function buffer()
        local b = { parts = {} }
        function b.write(self, ...)
          for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
          return self
        end
        function b.flush() return true end
        return b
      end
      local out, err = buffer(), buffer()
      local made
      local new = streamctl.aliyun.new
      streamctl.aliyun.new = function(o) made = o return new(o) end
      local ok, status = pcall(cli.main, argv, {
        stdout = out, stderr = err, signal = { catch = function() end, caught = function() return nil end },
        getenv = function(name)
          if name == "HOME" then return HOME end
          return (env or {})[name]
        end,
      })
      streamctl.aliyun.new = new
      assert(ok, "raised: " .. tostring(status))
      return status, table.concat(err.parts), made
    end

    it("takes --account-id, else ALIBABA_CLOUD_ACCOUNT_ID", function()
      local status, _, o = run { "--account-id", UID }
      assert.equal(0, status)
      assert.equal(UID, o.account_id)
      status, _, o = run({}, { ALIBABA_CLOUD_ACCOUNT_ID = EDGE_UID })
      assert.equal(0, status)
      assert.equal(EDGE_UID, o.account_id)
      status, _, o = run({ "--account-id", UID }, { ALIBABA_CLOUD_ACCOUNT_ID = EDGE_UID })
      assert.equal(0, status)
      assert.equal(UID, o.account_id)
      status, _, o = run({}, { ALIBABA_CLOUD_ACCOUNT_ID = "" })
      assert.equal(0, status)
      assert.is_nil(o.account_id)
      assert.equal(0, #server:log {}) -- dry runs: nothing sent
    end)

    it("refuses a bad one with exit 2, naming the flag or the variable", function()
      local status, err = run { "--account-id", "12a" }
      assert.equal(2, status)
      assert.equal("streamctl: '--account-id' " .. ACCOUNT_RULE .. "\n", err)
      status, err = run({}, { ALIBABA_CLOUD_ACCOUNT_ID = "LTAIedge1" })
      assert.equal(2, status)
      assert.equal("streamctl: environment variable ALIBABA_CLOUD_ACCOUNT_ID " .. ACCOUNT_RULE .. "\n", err)
    end)
  end)
end)
