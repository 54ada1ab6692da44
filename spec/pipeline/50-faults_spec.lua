-- The fault matrix: what a call meets on the way (the emulator's injected
-- faults, a scripted HTTP server, TLS it must not trust, a skewed clock, a
-- server that goes away) and what it must end as. Each row states the
-- outcome and is checked, with the emulator's own log where it can say more:
-- nothing applied twice, nothing reported done that was not. docs/faults.md
-- prints the same table.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local process = require "spec.helpers.process"

local ALI = { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret" }
local ZEGO = { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef" }
local STREAM = { domain_name = "push.example.com", app_name = "live", stream_name = "s" }
local RETRY = { attempts = 3, base_ms = 1, throttle_base_ms = 1, cap_ms = 50 }

-- (the timeouts of calls that must answer: scaled where the client runs slower, valgrind's and
-- ASan's runs; a row that tests a timeout gives its own)
local SLOW = process.slowdown()

local function client(mod, creds, opts)
  local o = { retry = RETRY, timeout_ms = 3000 * SLOW, connect_timeout_ms = 1000 * SLOW, settle_ms = 0 }
  for k, v in pairs(creds) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  return assert(mod.new(o))
end

describe("the fault matrix, against the emulator", function()
  local server
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function() server:reset() end)

  local function ali(opts)
    local o = { endpoint = server.aliyun_url }
    for k, v in pairs(opts or {}) do o[k] = v end
    return client(aliyun, ALI, o)
  end
  local function zg(opts)
    local o = { endpoint = server.zego_url }
    for k, v in pairs(opts or {}) do o[k] = v end
    return client(zego, ZEGO, o)
  end
  local function applied(action)
    local n = 0
    for _, e in ipairs(server:log({ action = action, limit = 1000 })) do
      if e.applied then n = n + 1 end
    end
    return n
  end
  local function status(name)
    local s = server:state().aliyun.streams["push.example.com/live/" .. name]
    return s and s.status
  end

  -- { row, fault(s), run() -> res, err, check(res, err) }
  local ROWS = {
    { "HTTP 500 twice, then an answer: retried, succeeded (ZEGO, no look-up)",
      { kind = "http500", action = "ResumeCDNLiveStream", count = 2, provider = "zego" },
      function() return zg():resume_cdn_live_stream { stream_id = "c" } end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.equal(1, applied("ResumeCDNLiveStream"))
      end },
    { "HTTP 503 on every attempt: failed ServiceUnavailable, outcome unknown (a 5xx may have applied)",
      { kind = "http503", action = "ForbidLiveStream", count = 10 },
      function() return ali():forbid_live_stream(STREAM) end,
      function(res, err)
        assert.is_nil(res)
        assert.same({ "ServiceUnavailable", "server", true }, { err.code, err.kind, err.outcome_unknown })
        assert.equal(0, applied("ForbidLiveStream"))
      end },
    { "HTTP 500 after it applied: looked up in the block list, reported done, not sent again",
      { kind = "http500", action = "ForbidLiveStream", count = 1, after_apply = true },
      function() return ali():forbid_live_stream(STREAM) end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.is_true(res.Recovered)
        assert.equal(1, applied("ForbidLiveStream"))
        assert.equal("forbidden", status("s"))
      end },
    { "throttled twice with x-acs-retry-after: waited, retried, succeeded",
      { kind = "throttle", action = "ResumeLiveStream", count = 2, retry_after_ms = 30 },
      function() return ali():resume_live_stream(STREAM) end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.equal(3, #server:log({ action = "ResumeLiveStream" }))
      end },
    { "throttled (ZEGO 30002, no retry-after header) ten times: sent again through the pacing, done (not 3 attempts)",
      { kind = "throttle", action = "ResumeCDNLiveStream", count = 10, provider = "zego" },
      function() return zg():resume_cdn_live_stream { stream_id = "c" } end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.equal(11, #server:log({ action = "ResumeCDNLiveStream" }))
        assert.equal(1, applied("ResumeCDNLiveStream"))
      end },
    { "throttled on every attempt until the run's deadline: failed with its throttle, not unknown",
      { kind = "throttle", action = "ResumeCDNLiveStream", count = 1000, provider = "zego" },
      function() return zg({ deadline_ms = 1500 }):resume_cdn_live_stream { stream_id = "c" } end,
      function(res, err)
        assert.is_nil(res)
        assert.same({ 30002, "throttled" }, { err.code, err.kind })
        assert.is_nil(err.outcome_unknown)
        -- (sent again until the deadline and never after it: how often is the machine's here, and
        -- asserted in virtual time, spec/engine/10-pacing-time, "a run's deadline")
        assert.equal(0, applied("ResumeCDNLiveStream"))
      end },
    { "a malformed body after it applied: unknown, looked up, reported done, applied once",
      { kind = "malformed", action = "ResumeLiveStream", count = 1, after_apply = true },
      function()
        local c = ali()
        assert(c:forbid_live_stream(STREAM))
        return c:resume_live_stream(STREAM)
      end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.is_true(res.Recovered)
        assert.equal(1, applied("ResumeLiveStream"))
        assert.equal("normal", status("s"))
      end },
    { "a truncated body before it applied: looked up (not done), sent again, done once",
      { kind = "truncated", action = "ForbidLiveStream", count = 1 },
      function() return ali():forbid_live_stream(STREAM) end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.equal(1, applied("ForbidLiveStream"))
        assert.equal(2, #server:log({ action = "ForbidLiveStream" }))
      end },
    { "the connection dropped after it applied: a create is looked up by DstUrl, not created twice",
      { kind = "drop", action = "CreateLivePullToPush", count = 1, after_apply = true },
      function()
        local now = os.time()
        return ali():create_live_pull_to_push { region = "cn-shanghai", source_type = "url",
          source_urls = { "https://cdn.example.com/a.mp4" }, dst_url = "rtmp://push.example.com/live/once",
          start_time = now, end_time = now + 600 }
      end,
      function(res, err)
        assert.truthy(res, tostring(err))
        assert.is_true(res.Recovered)
        assert.equal(1, #server:state().aliyun.task_order)
      end },
    { "an answer slower than the timeout: Timeout, sent, unknown; a ZEGO call is not sent again blind",
      -- (times SLOW: a request not yet written when the timeout passes is not sent, which is another row)
      { kind = "delay", action = "ForbidCDNLiveStream", count = 10, delay_ms = 1500 * SLOW, provider = "zego" },
      function()
        return zg { timeout_ms = 300 * SLOW, retry = { attempts = 1 } }:forbid_cdn_live_stream { stream_id = "c" }
      end,
      function(res, err)
        assert.is_nil(res)
        assert.same({ "Timeout", "timeout", true, true }, { err.code, err.kind, err.sent, err.outcome_unknown })
      end },
    { "the provider's clock 20 minutes ahead: corrected from Date once, then accepted",
      nil,
      function()
        server:clock { offset = 1200 }
        local res, err = ali():resume_live_stream(STREAM)
        server:clock {}
        return res, err
      end,
      function(res, err)
        assert.truthy(res, tostring(err))
        local log = server:log({ action = "ResumeLiveStream" })
        assert.same({ "InvalidTimeStamp.Expired", "OK" }, { log[1].code, log[2].code })
      end },
  }

  for i, row in ipairs(ROWS) do
    it(string.format("#%d %s", i, row[1]), function()
      if row[2] then
        server:faults(row[2], row[2].provider)
      end
      local res, err = row[3]()
      row[4](res, err)
      server:clear_faults()
    end)
  end
end)

describe("the fault matrix, against servers that misbehave", function()
  local child, port
  -- (its life, a bound for when this process dies without stopping it, times SLOW: valgrind's rows here
  -- are many times slower)
  lazy_setup(function() child, port = process.httpserver(1000) end)
  lazy_teardown(function() process.stop(child) end)

  -- One request straight through the libcurl transport to `path` on the scripted server (its timeouts
  -- times SLOW: /close, /big and /redirect must answer; /hang and /slowbody never finish).
  local function fetch(path)
    local t = require("streamctl.transport.curl").new { timeout_ms = 1000 * SLOW, connect_timeout_ms = 500 * SLOW }
    assert(t.start(1, { method = "GET", url = "http://127.0.0.1:" .. port .. path, headers = {}, body = "" }))
    local got
    for _ = 1, 100 * SLOW do -- at most 10 s (times SLOW)
      got = t.poll(0.1)[1]
      if got then break end
    end
    t.close()
    return got
  end

  it("a closed port: NetworkError, never sent, retryable", function()
    local z = client(zego, ZEGO, { endpoint = "http://127.0.0.1:" .. process.free_port() })
    local res, err = z:resume_cdn_live_stream { stream_id = "s" }
    assert.is_nil(res)
    assert.same({ "NetworkError", false, 3 }, { err.code, err.sent, err.attempts })
    assert.is_nil(err.outcome_unknown)
  end)

  -- { row, path, code, sent }
  local RAW = {
    { "the connection closed after the request was read: NetworkError, sent", "/close", "NetworkError", true },
    { "no answer within the timeout: Timeout, sent", "/hang", "Timeout", true },
    { "a body over 1 MiB: InvalidResponse", "/big", "InvalidResponse", true },
    { "a header section over 64 KiB: InvalidResponse", "/bigheaders", "InvalidResponse", true },
    { "headers, then a body slower than the timeout: Timeout, sent", "/slowbody", "Timeout", true },
  }
  for _, row in ipairs(RAW) do
    it(row[1], function()
      local got = fetch(row[2])
      assert.truthy(got and got.err, "no failure")
      assert.same({ row[3], row[4] }, { got.err.code, got.err.sent })
    end)
  end

  -- { row, server mode, scheme, code, sent }
  local TCP = {
    { "a connection reset as soon as it is accepted, before the request is read: NetworkError",
      "@reset", "http", "NetworkError" },
    { "a TLS handshake never answered (slower than the connect timeout): Timeout, never sent",
      "@stall", "https", "Timeout", false },
  }
  for _, row in ipairs(TCP) do
    it(row[1], function()
      local other, other_port = process.httpserver(100, row[2])
      local ok, err = pcall(function()
        local z = client(zego, ZEGO, { endpoint = row[3] .. "://127.0.0.1:" .. other_port,
          connect_timeout_ms = 300 * SLOW, timeout_ms = 600 * SLOW, retry = { attempts = 1 } })
        local res, e = z:resume_cdn_live_stream { stream_id = "s" }
        assert.is_nil(res)
        assert.equal(row[4], e.code)
        if row[5] ~= nil then assert.equal(row[5], e.sent) end
        -- unknown exactly when the request may have been read
        assert.equal(e.sent == true, e.outcome_unknown == true)
      end)
      process.stop(other)
      assert(ok, err)
    end)
  end

  it("a 302 to another port is the answer, never followed", function()
    local got = fetch("/redirect")
    assert.equal(302, got.res.status)
  end)

  it("a body that is not JSON, whatever its type: an InvalidResponse error, the outcome unknown", function()
    local z = client(zego, ZEGO, { endpoint = "http://127.0.0.1:" .. port, retry = { attempts = 1 } })
    -- "/" answers 404 with no JSON
    local res, err = z:resume_cdn_live_stream { stream_id = "s" }
    assert.is_nil(res)
    assert.same({ "InvalidResponse", true }, { err.code, err.outcome_unknown })
  end)
end)

describe("the fault matrix, TLS", function()
  it("a CA it does not trust: TLSError, not retried, nothing reaches the server", function()
    local server = emu.start {}
    local dir = nginx.temp_dir()
    nginx.make_ca(dir, "other")
    local ok, err = pcall(function()
      local c = client(aliyun, ALI, { endpoint = server.aliyun_tls_url, ca_file = dir .. "/other.pem" })
      local res, e = c:resume_live_stream(STREAM)
      assert.is_nil(res)
      assert.same({ "TLSError", "tls", false, 1 }, { e.code, e.kind, e.retryable, e.attempts })
      assert.same({}, server:log({ limit = 100 }))
    end)
    server:stop()
    os.execute("rm -rf " .. nginx.quote(dir))
    assert(ok, err)
  end)

  it("an expired certificate from the trusted CA: TLSError, not retried, nothing reaches the server", function()
    local dir = nginx.temp_dir()
    local server = emu.start { dir = dir }
    local ok, err = pcall(function()
      -- The same key and names, signed again by the emulator's CA with a notAfter of yesterday.
      local q = nginx.quote
      assert(os.execute("cd " .. q(dir) .. " && openssl req -new -key server.key -subj /CN=localhost -out expired.csr"
        .. " && openssl x509 -req -in expired.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days -1"
        .. " -extfile server.ext -out server.pem >/dev/null 2>&1"))
      server:restart()
      local c = client(zego, ZEGO, { endpoint = server.zego_tls_url, ca_file = server.ca_file })
      local res, e = c:resume_cdn_live_stream { stream_id = "s" }
      assert.is_nil(res)
      assert.same({ "TLSError", "tls", false, 1, false }, { e.code, e.kind, e.retryable, e.attempts, e.sent })
      assert.matches("expired", e.message)
      assert.same({}, server:log({ limit = 100 }))
    end)
    server:stop()
    os.execute("rm -rf " .. nginx.quote(dir))
    assert(ok, err)
  end)
end)

describe("the fault matrix, the emulator killed and restarted in the middle of a batch", function()
  -- The restart loses the emulator's state and log (a provider would not lose
  -- its state, so a stream applied before the restart and looked up after it
  -- is sent again; that is the emulator's loss, not a double apply).
  local RESTART_RETRY = { attempts = 6, base_ms = 50, cap_ms = 400, throttle_base_ms = 1 }

  -- Restarts `server` in the middle of a batch, and returns what it had applied by then (a set of
  -- names, by `name_of(entry)`, of its log's entries of `action` that applied). A call in flight may
  -- be applied just before the restart and its answer read after it, however fast the machine; so
  -- first every further call is dropped unapplied (a drop fault before the call is read), then the
  -- log is read whole, then the emulator restarts. (The client meets a closed connection either
  -- way: the drop's, or the restart's.)
  local function restart(server, provider, action, name_of)
    server:faults({ kind = "drop", action = "*", count = 100000, provider = provider }, provider)
    local before = {}
    for _, e in ipairs(server:log({ provider = provider, action = action, limit = 10000 })) do
      if e.applied then
        for _, name in ipairs(name_of(e)) do before[name] = true end
      end
    end
    server:restart()
    return before
  end

  it("Aliyun: every stream reported done, each applied at most once after the restart", function()
    local server = emu.start {}
    local ok, err = pcall(function()
      local c = client(aliyun, ALI, { endpoint = server.aliyun_url, retry = RESTART_RETRY })
      local names = {}
      for i = 1, 40 do names[i] = "restart-" .. i end
      local done_before, restarted, applied_before = {}, false, nil
      local report = c:forbid_live_streams { domain_name = "push.example.com", app_name = "live",
        stream_names = names, concurrency = 4,
        on_progress = function(done, _, r)
          if not restarted then done_before[r.stream] = true end
          if done == 10 and not restarted then
            restarted = true
            applied_before = restart(server, "aliyun", "ForbidLiveStream", function(e) return { e.params.StreamName } end)
          end
        end }
      assert.is_true(restarted)
      assert.same({ 40, 0, 0 }, { report.succeeded, report.failed, report.unknown })
      local applied = {}
      for _, e in ipairs(server:log({ action = "ForbidLiveStream", limit = 1000 })) do
        if e.applied then
          local name = e.params.StreamName
          applied[name] = (applied[name] or 0) + 1
        end
      end
      local streams = server:state().aliyun.streams
      for _, name in ipairs(names) do
        assert.is_true((applied[name] or 0) <= 1, name .. " applied twice")
        if done_before[name] then
          assert.is_nil(applied[name], name .. " was done before the restart and sent again")
        end
        if applied[name] then
          assert.equal("forbidden", streams["push.example.com/live/" .. name].status, name)
        else
          -- reported done and not sent after the restart: it was applied before it (its answer, read
          -- after the restart, came from the emulator that applied it)
          assert.is_true(applied_before[name], name .. " reported done, never applied")
        end
      end
      c:close()
    end)
    server:stop()
    assert(ok, err)
  end)

  it("ZEGO: 200 IDs in 10 calls, then resumed: every ID reported, each stream's Sequences increasing", function()
    local server = emu.start {}
    local ok, err = pcall(function()
      local c = client(zego, ZEGO, { endpoint = server.zego_url, retry = RESTART_RETRY })
      local ids = {}
      for i = 1, 200 do ids[i] = "restart-" .. i end
      local restarted, applied_before = false, nil
      local report = c:forbid_rtc_streams { stream_ids = ids, concurrency = 2,
        on_progress = function(done)
          if done >= 60 and not restarted then
            restarted = true
            applied_before = restart(server, "zego", "ForbidRTCStreams", function(e) return e.applied_streams or {} end)
          end
        end }
      assert.is_true(restarted)
      assert.same({ 200, 0, 0 }, { report.succeeded, report.failed, report.unknown })
      report = c:resume_rtc_streams { stream_ids = ids, concurrency = 2 }
      assert.same({ 200, 0, 0 }, { report.succeeded, report.failed, report.unknown })
      -- Sequences are per stream: calls for other streams may share one.
      local last, forbidden_after = {}, {}
      for _, e in ipairs(server:log({ provider = "zego", limit = 1000 })) do
        assert.same({}, e.stale_streams or {}, "stale in " .. e.action)
        for _, id in ipairs(e.applied_streams or {}) do
          local seq = tonumber(e.params.Sequence)
          assert.is_true(seq > (last[id] or -1), id .. ": Sequence " .. seq .. " after " .. tostring(last[id]))
          last[id] = seq
          if e.action == "ForbidRTCStreams" then forbidden_after[id] = true end
        end
      end
      -- every ID's forbid applied, before the restart or after it, and every ID resumed; after it, at
      -- least the 140 not reported done when it came, less the one call (20 IDs) that concurrency 2 may
      -- have had applied then, its answer read after the restart
      local left = 0
      for _, id in ipairs(ids) do
        assert.is_true(applied_before[id] or forbidden_after[id], id .. " reported done, never forbidden")
        if forbidden_after[id] then left = left + 1 end
        assert.is_truthy(last[id], id .. " never resumed")
      end
      assert.is_true(left >= 140 - 20, "forbids applied after the restart: " .. left)
      local streams = server:state().zego.streams["1234567890"]
      for _, id in ipairs(ids) do assert.equal("normal", streams[id].rtc, id) end
      c:close()
    end)
    server:stop()
    assert(ok, err)
  end)
end)
