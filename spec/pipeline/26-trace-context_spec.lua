-- Issue 71, context in and out: a client's or a batch's `trace` (a W3C
-- traceparent and tracestate) puts every attempt in that trace, each a span
-- of its own named in the request's `traceparent` (outside the signature:
-- the emulator verifies every call), told to `on_attempt`; a traceparent
-- that breaks its rule starts a new trace and is never sent on;
-- `traceparent = false` sends none. The emulator logs what it received.
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"

local PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
local TRACE = "0af7651916cd43dd8448eb211c80319c"

describe("W3C Trace Context on the providers' requests", function()
  local server
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function() server:reset() end)

  local function client(mod, opts)
    local seen = {}
    local o = { ca_file = server.ca_file, on_attempt = function(info) seen[#seen + 1] = info end,
                retry = { base_ms = 1, throttle_base_ms = 1, random = function() return 0 end } }
    if mod == streamctl.aliyun then
      o.endpoint, o.access_key_id, o.access_key_secret = server.aliyun_tls_url, "LTAIemulatorKey", "emulator-secret"
    else
      o.endpoint, o.app_id, o.server_secret = server.zego_tls_url, 1234567890, "0123456789abcdef0123456789abcdef"
    end
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(mod.new(o)), seen
  end

  it("names each attempt's span in its traceparent, tracestate passed on; one span per attempt", function()
    local ali, seen = client(streamctl.aliyun, { trace = { traceparent = PARENT, tracestate = "rojo=00f067aa0ba902b7" } })
    server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 1 }
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
    local log = server:log { action = "ResumeLiveStream" }
    assert.equal(2, #log) -- (the throttled attempt, then the one that went through)
    assert.equal(2, #seen)
    for i, e in ipairs(log) do
      local trace, span, flags = e.traceparent:match("^00%-(%x+)%-(%x+)%-(%x%x)$")
      assert.same({ TRACE, "01", "rojo=00f067aa0ba902b7" }, { trace, flags, e.tracestate })
      assert.same({ TRACE, span }, { seen[i].trace_id, seen[i].span_id })
    end
    assert.not_equal(seen[1].span_id, seen[2].span_id)
    assert.is_true(seen[1].throttled)
  end)

  it("a batch's trace for its calls; a traceparent that breaks its rule starts a new trace, never sent on",
    function()
    local z, seen = client(streamctl.zego, { trace = "00-ZZ-bad" })
    local ids = {}
    for i = 1, 25 do ids[i] = "room-" .. i end
    assert(z:forbid_rtc_streams { stream_ids = ids, trace = PARENT })
    for _, e in ipairs(server:log { provider = "zego" }) do
      assert.equal(TRACE, e.traceparent:match("^00%-(%x+)%-"))
    end
    assert.equal(2, #seen)
    server:reset()
    assert(z:resume_rtc_streams { stream_ids = { "room-1" } })
    local sent = server:log({ provider = "zego" })[1].traceparent
    local trace = sent:match("^00%-(%x+)%-%x+%-01$")
    assert.truthy(trace and #trace == 32 and trace ~= TRACE, sent)
    assert.is_nil(sent:find("ZZ", 1, true))
  end)

  it("on_span: an operation's span and one CLIENT span per attempt under it, as the emulator saw them", function()
    local got = {}
    local ali = client(streamctl.aliyun, { trace = PARENT, on_span = function(s) got[#got + 1] = s end })
    server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 1 }
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
    assert.equal(3, #got) -- (two attempts as they end, then the operation)
    local op, first, second = got[3], got[1], got[2]
    assert.same({ "Live.ResumeLiveStream", "internal", TRACE, "b7ad6b7169203331", "ok", "ok" },
      { op.name, op.kind, op.trace_id, op.parent_span_id, op.status.code, op.attributes["streamctl.outcome"] })
    local log = server:log { action = "ResumeLiveStream" }
    for i, s in ipairs { first, second } do
      assert.same({ "Live.ResumeLiveStream", "client", TRACE, op.span_id }, { s.name, s.kind, s.trace_id,
        s.parent_span_id })
      assert.equal(log[i].traceparent, "00-" .. TRACE .. "-" .. s.span_id .. "-01")
      assert.same({ "alibaba-cloud-openapi", "Live", "ResumeLiveStream", "127.0.0.1", "POST" },
        { s.attributes["rpc.system"], s.attributes["rpc.service"], s.attributes["rpc.method"],
          s.attributes["server.address"], s.attributes["http.request.method"] })
      assert.truthy(s.end_time >= s.start_time)
    end
    assert.same({ "error", "Throttling.User", "Throttling.User", 400 }, { first.status.code,
      first.attributes["error.type"], first.attributes["streamctl.throttle_code"],
      first.attributes["http.response.status_code"] })
    assert.same({ "ok", 1, 200 }, { second.status.code, second.attributes["http.request.resend_count"],
      second.attributes["http.response.status_code"] })
    assert.equal(log[2].request_id, second.attributes["streamctl.request_id"])

    -- a batch: one span over its calls, their attempts under it; without a trace, a new one
    got = {}
    local z = client(streamctl.zego, { on_span = function(s) got[#got + 1] = s end })
    local ids = {}
    for i = 1, 25 do ids[i] = "room-" .. i end
    assert(z:forbid_rtc_streams { stream_ids = ids })
    assert.equal(3, #got)
    local batch = got[3]
    assert.same({ "ZEGO.ForbidRTCStreams", nil, "ok", 25, 2 }, { batch.name, batch.parent_span_id,
      batch.attributes["streamctl.outcome"], batch.attributes["streamctl.batch.total"],
      batch.attributes["streamctl.batch.calls"] })
    for i = 1, 2 do
      assert.same({ batch.trace_id, batch.span_id, "client" }, { got[i].trace_id, got[i].parent_span_id, got[i].kind })
    end
    assert.not_equal(TRACE, batch.trace_id)
    -- a hook that raises changes nothing of the call
    local raising = client(streamctl.aliyun, { on_span = function() error("boom", 0) end })
    assert(raising:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "c" })
    assert.equal("boom", raising.on_span_error)
  end)

  it("traceparent = false sends none, the attempt still in the trace; no trace, no header", function()
    local ali, seen = client(streamctl.aliyun, { trace = PARENT, traceparent = false })
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
    assert.is_nil(server:log({ action = "ResumeLiveStream" })[1].traceparent)
    assert.equal(TRACE, seen[1].trace_id)
    local plain, plain_seen = client(streamctl.aliyun)
    assert(plain:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "b" })
    assert.is_nil(server:log({ action = "ResumeLiveStream" })[2].traceparent)
    assert.is_nil(plain_seen[1].trace_id)
    local _, err = streamctl.aliyun.new { trace = 42 }
    assert.equal("option 'trace' must be a traceparent string or a table of traceparent and tracestate strings",
      err.message)
  end)
end)
