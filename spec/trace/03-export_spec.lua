-- sanitizers: none (what it checks is the bytes a collector receives; the C it runs is under valgrind elsewhere)
-- Issue 71's done-when, in a script: spans exported by OTLP/HTTP (protobuf
-- and JSON) to a receiver that reads them by OTLP's published messages
-- (spec/helpers/otlp_receiver.py, not streamctl's encoder), checked against
-- the emulator's log: every span in the caller's trace, parent links whole,
-- one CLIENT span per attempt the emulator logged (the throttled one with
-- its code), the emulator saw each attempt's span in its traceparent. A
-- collector answering 503, slow, or killed mid-run never changes a call's
-- result, and costs at most the flush's bound.
local emu = require "spec.helpers.emulator"
local otlp = require "spec.helpers.otlp"
local process = require "spec.helpers.process"
local streamctl = require "streamctl"
local trace = require "streamctl.trace"
local core = require "streamctl.core"

local PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
local TRACE, PARENT_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
local slow = process.slowdown()

local function str(s, key) local a = s.attributes[key]; return a and (a.string or a.int or a.double or a.bool) end

describe("spans exported by OTLP/HTTP", function()
  local server
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function() server:reset() end)

  local function tracer(endpoint, more)
    local env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = endpoint, OTEL_SERVICE_NAME = "spec-03" }
    for k, v in pairs(more or {}) do env[k] = v end
    return assert(trace.from_env { getenv = function(k) return env[k] end })
  end

  -- (`hook`: the exporter as the clients' tracer, by default, or its on_span and sampler)
  local function clients(t, trace_option, hook)
    local o = { ca_file = server.ca_file, trace = trace_option,
                retry = { base_ms = 1, throttle_base_ms = 1, random = function() return 0 end } }
    if hook == "on_span" then o.on_span, o.sampler = t.on_span, t.sampler else o.tracer = t end
    local a, z = {}, {}
    for k, v in pairs(o) do a[k], z[k] = v, v end
    a.endpoint, a.access_key_id, a.access_key_secret = server.aliyun_tls_url, "LTAIemulatorKey", "emulator-secret"
    z.endpoint, z.app_id, z.server_secret = server.zego_tls_url, 1234567890, "0123456789abcdef0123456789abcdef"
    return assert(streamctl.aliyun.new(a)), assert(streamctl.zego.new(z))
  end

  for _, case in ipairs { { "http/protobuf", "tracer" }, { "http/json", "tracer" }, { "http/protobuf", "on_span" } } do
    local protocol, hook = case[1], case[2]
    it("one tree per operation in the caller's trace, as the emulator saw it (" .. protocol .. ", " .. hook .. ")",
      function()
      local r = otlp.start_receiver {}
      finally(function() r.stop() end)
      local t = tracer(r.url, { OTEL_EXPORTER_OTLP_PROTOCOL = protocol })
      local ali, z = clients(t, PARENT, hook)
      server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 1 }
      assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
      local ids = {}
      for i = 1, 25 do ids[i] = "room-" .. i end
      assert.equal(25, z:forbid_rtc_streams { stream_ids = ids, trace = PARENT }.succeeded)
      local stats = t:shutdown(5 * slow)
      assert.same({ 6, 0, 0 }, { stats.exported, stats.dropped.queue_full, stats.dropped.export_failed })
      local spans = r.wait_spans(6)
      assert.equal(6, #spans)
      local by_id, ops, attempts = {}, {}, {}
      for _, s in ipairs(spans) do
        by_id[s.span_id] = s
        assert.equal(TRACE, s.trace_id)
        assert.equal(protocol == "http/json" and "application/json" or "application/x-protobuf", s.content_type)
        assert.same({ "spec-03", "streamctl", "lua" }, { s.resource["service.name"].string,
          s.resource["telemetry.sdk.name"].string, s.resource["telemetry.sdk.language"].string })
        assert.equal("streamctl", s.scope.name)
        if s.kind == 1 then ops[#ops + 1] = s else attempts[#attempts + 1] = s end
      end
      -- two operations under the caller's span; each attempt under one of them
      assert.equal(2, #ops)
      for _, op in ipairs(ops) do assert.equal(PARENT_SPAN, op.parent_span_id) end
      assert.same({ "Live.ResumeLiveStream", "ZEGO.ForbidRTCStreams" }, { ops[1].name, ops[2].name })
      assert.same({ "ok", "ok" }, { str(ops[1], "streamctl.outcome"), str(ops[2], "streamctl.outcome") })
      assert.equal(25, tonumber(str(ops[2], "streamctl.batch.total")))
      -- one CLIENT span per attempt the emulator logged, named in its traceparent
      local log = server:log {}
      assert.equal(#log, #attempts)
      for _, e in ipairs(log) do
        local span_id = e.traceparent:match("^00%-" .. TRACE .. "%-(%x+)%-01$")
        local s = assert(by_id[span_id], "no span for the attempt the emulator saw: " .. tostring(e.traceparent))
        assert.equal(3, s.kind)
        local op = by_id[s.parent_span_id]
        assert.truthy(op and op.kind == 1, "an attempt's parent is an operation")
        assert.equal(op.name, s.name)
        assert.equal(e.status, tonumber(str(s, "http.response.status_code")))
        assert.same({ "127.0.0.1", s.name:find("^ZEGO") and "GET" or "POST" }, { str(s, "server.address"),
          str(s, "http.request.method") })
        assert.is_true(tonumber(s.end_time_unix_nano) >= tonumber(s.start_time_unix_nano))
      end
      -- the throttled attempt: its code, and the retry after it a resend
      local throttled, resent = 0, 0
      for _, s in ipairs(attempts) do
        if str(s, "streamctl.throttle_code") then
          throttled = throttled + 1
          assert.same({ "Throttling.User", "Throttling.User", 2 }, { str(s, "streamctl.throttle_code"),
            str(s, "error.type"), s.status.code })
        end
        if str(s, "http.request.resend_count") then resent = resent + 1 end
      end
      assert.same({ 1, 1 }, { throttled, resent })
    end)
  end

  it("keeps its connection to the collector from flush to flush, and closes it at shutdown", function()
    local r = otlp.start_receiver {}
    finally(function() r.stop() end)
    local t = tracer(r.url)
    local ali = clients(t)
    for i = 1, 2 do
      assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
      assert.equal(2 * i, t:flush().exported)
    end
    t:shutdown(5 * slow)
    local seen = r.requests()
    assert.equal(2, #seen)
    assert.equal(seen[1].peer, seen[2].peer)
    assert.is_nil(t.exchange)
  end)

  it("a request still under way when its exchange gave up keeps its bytes; the next batch gets new ones", function()
    local r = otlp.start_receiver {}
    finally(function() r.stop() end)
    local t = tracer(r.url)
    local ali = clients(t)
    -- (a collector that takes the connection and never answers, and an exchange that stops waiting first:
    -- the request stays under way, as when a transport does not end one by its own timeout)
    local hang = assert(require("socket").bind("127.0.0.1", 0))
    finally(function() hang:close() end)
    local stuck = require("streamctl.curl").multi {}
    finally(function() stuck:close() end)
    local real = assert(require("streamctl.transport.auto").exchange { timeout_ms = 5000 * slow })
    local gave_up = false
    t.exchange = function(req)
      if gave_up then return real(req) end
      gave_up = true
      local req2 = { method = req.method, url = "http://127.0.0.1:" .. select(2, hang:getsockname()) .. "/v1/traces",
                     headers = req.headers, body = req.body }
      assert.is_true(stuck:add("under way", req2))
      return nil, { code = "NetworkError", message = "no answer (the transport did not end the request)" }
    end
    local first = t.body
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
    local st = t:flush()
    assert.same({ 0, 2 }, { st.exported, st.dropped.export_failed })
    assert.is_true(first:sending())
    assert.are_not.equal(first, t.body)
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "b" })
    assert.equal(2, t:flush().exported)
    assert.equal(2, #r.wait_spans(2, 10 * slow))
    assert.is_true(first:sending()) -- (still the stuck request's, untouched)
    stuck:close()
    assert.is_false(first:sending())
  end)

  it("a collector answering 503, slow, or killed mid-run: calls unchanged, the flush bounded", function()
    local function forbid(z, n)
      local ids = {}
      for i = 1, n do ids[i] = "room-" .. i end
      return z:forbid_rtc_streams { stream_ids = ids }
    end
    -- 503 to every export: the spans dropped and counted, said once in last_error
    local r = otlp.start_receiver { status = 503 }
    finally(function() r.stop() end)
    local t = tracer(r.url)
    local _, z = clients(t)
    assert.equal(20, forbid(z, 20).succeeded)
    local stats = t:shutdown(5 * slow)
    assert.same({ 0, 2, "the collector answered HTTP 503" }, { stats.exported, stats.dropped.export_failed,
      stats.last_error })
    assert.equal(1, #r.requests())
    -- slow (3 s a request): shutdown(0.5) gives up when its time is up
    local lazy = otlp.start_receiver { delay = 3 }
    finally(function() lazy.stop() end)
    t = tracer(lazy.url)
    _, z = clients(t)
    assert.equal(20, forbid(z, 20).succeeded)
    local t0 = core.monotonic()
    stats = t:shutdown(0.5)
    assert.is_true(core.monotonic() - t0 < 0.5 + 2 * slow, "the flush took " .. (core.monotonic() - t0) .. " s")
    assert.same({ 0, 2 }, { stats.exported, stats.dropped.export_failed })
    -- killed mid-run: what was flushed arrived; what came after is dropped, counted, the calls unchanged
    local dying = otlp.start_receiver {}
    finally(function() dying.stop() end)
    t = tracer(dying.url)
    _, z = clients(t)
    assert.equal(20, forbid(z, 20).succeeded)
    assert.equal(2, t:flush(5 * slow).exported)
    assert.equal(2, #dying.wait_spans(2))
    dying.stop()
    assert.equal(20, forbid(z, 20).succeeded)
    stats = t:shutdown(5 * slow)
    assert.same({ 2, 2 }, { stats.exported, stats.dropped.export_failed })
    assert.truthy(stats.last_error:find("127.0.0.1", 1, true), stats.last_error)
  end)

  it("sampled out, nothing is exported and the traceparent says so", function()
    local r = otlp.start_receiver {}
    finally(function() r.stop() end)
    local t = tracer(r.url, { OTEL_TRACES_SAMPLER = "always_off" })
    local _, z = clients(t)
    assert.equal(1, z:forbid_rtc_streams { stream_ids = { "room-1" } }.succeeded)
    assert.same({ queued = 0, exported = 0, dropped = { queue_full = 0, export_failed = 0, queue_full_roots = 0 } },
      t:shutdown(1))
    assert.same({}, r.requests())
    assert.truthy(server:log({ provider = "zego" })[1].traceparent:find("%-00$"))
  end)
end)
