-- Issue 71, context in and out: a client's or a batch's `trace` (a W3C
-- traceparent and tracestate) puts every attempt in that trace, each a span
-- of its own named in the request's `traceparent` (outside the signature:
-- the emulator verifies every call), told to `on_attempt`; a traceparent
-- that breaks its rule starts a new trace and is never sent on;
-- `traceparent = false` sends none. The emulator logs what it received.
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"
local spanrecord = require "streamctl.base.spanrecord"

local PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
local mixed_client -- (the client a coroutine calls while a reconcile on it runs)
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
    assert.same({ "error", "Throttling.User", "Throttling.User", 400, 1 }, { first.status.code,
      first.attributes["error.type"], first.attributes["streamctl.throttle_code"],
      first.attributes["http.response.status_code"], first.attributes["streamctl.retry_after_ms"] })
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

  it("a tracer gets each span as a record: the span on_span gets; its sampler, unless the client names one",
    function()
    local plain, records = {}, {}
    local tracer = { record = function(_, rec) records[#records + 1] = spanrecord.plain(rec) end }
    local ali = client(streamctl.aliyun, { trace = PARENT, tracer = tracer,
                                           on_span = function(s) plain[#plain + 1] = s end })
    server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 1 }
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a" })
    local z = client(streamctl.zego, { tracer = tracer, on_span = function(s) plain[#plain + 1] = s end })
    local ids = {}
    for i = 1, 25 do ids[i] = "room-" .. i end
    assert(z:forbid_rtc_streams { stream_ids = ids })
    assert.equal(6, #plain) -- (two attempts and a call; two attempts and a batch)
    assert.same(plain, records)
    assert.same({ "Throttling.User", 1, 25 }, { records[1].attributes["streamctl.throttle_code"],
      records[2].attributes["http.request.resend_count"], records[6].attributes["streamctl.batch.total"] })
    -- the tracer's sampler decides, unless the client's own `sampler` is given
    records = {}
    tracer.sampler = function() return false end
    local quiet = client(streamctl.aliyun, { tracer = tracer })
    assert(quiet:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "b" })
    assert.same({}, records)
    local loud = client(streamctl.aliyun, { tracer = tracer, sampler = function() return true end })
    assert(loud:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "b" })
    assert.equal(2, #records)
    -- a tracer that raises changes nothing of the call; one without `record` is refused
    local raising = client(streamctl.aliyun, { tracer = { record = function() error("boom", 0) end } })
    assert(raising:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "c" })
    assert.equal("boom", raising.on_span_error)
    local none, err = streamctl.aliyun.new { access_key_id = "LTAIx", access_key_secret = "x", tracer = {} }
    assert.is_nil(none)
    assert.equal("option 'tracer' must be an object with methods 'record' (it has no 'record')", err.message)
  end)

  it("a tracer with put gets each span as its record's slots; with on_span, as records", function()
    local via_put, via_record, plain = {}, {}, {}
    local tracer = { record = function(_, rec) via_record[#via_record + 1] = spanrecord.plain(rec) end,
                     put = function(_, ...) via_put[#via_put + 1] = spanrecord.plain({ ... }) end }
    local STREAM = { domain_name = "push.example.com", app_name = "live", stream_name = "p" }
    local c = client(streamctl.aliyun, { trace = PARENT, tracer = tracer })
    server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 1 }
    assert(c:resume_live_stream(STREAM))
    -- (the two attempts and the call's span by put, no table made for them)
    assert.same({ 3, 0 }, { #via_put, #via_record })
    assert.same({ "client", "client", "internal" }, { via_put[1].kind, via_put[2].kind, via_put[3].kind })
    assert.same({ "Throttling.User", 1, via_put[3].span_id, via_put[3].span_id, "ok" },
      { via_put[1].attributes["streamctl.throttle_code"], via_put[2].attributes["http.request.resend_count"],
        via_put[1].parent_span_id, via_put[2].parent_span_id, via_put[3].attributes["streamctl.outcome"] })
    -- with on_span, which takes the plain span made of the record: records alone, the same spans
    local both = client(streamctl.aliyun, { trace = PARENT, tracer = tracer,
                                            on_span = function(s) plain[#plain + 1] = s end })
    via_put, via_record = {}, {}
    server:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 1 }
    assert(both:resume_live_stream(STREAM))
    assert.same({ 0, 3 }, { #via_put, #via_record })
    assert.same(plain, via_record)
    -- a put that raises changes nothing of the call; a put that is no function is refused
    local raising = client(streamctl.aliyun, { tracer = { record = function() end,
                                                          put = function() error("put boom", 0) end } })
    assert(raising:resume_live_stream(STREAM))
    assert.equal("put boom", raising.on_span_error)
    local bad, err = streamctl.aliyun.new { access_key_id = "LTAIx", access_key_secret = "x",
                                            tracer = { record = print, put = 1 } }
    assert.is_nil(bad)
    assert.matches("option 'tracer'", err.message, 1, true)
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
    assert.equal("option 'trace' must be a traceparent string or a table of traceparent, tracestate and trace_id "
      .. "strings", err.message)
    _, err = streamctl.aliyun.new { trace = { trace_id = "0AF7651916CD43DD8448EB211C80319C" } }
    assert.equal("option 'trace' has trace_id '0AF7651916CD43DD8448EB211C80319C': it must be 32 lower-case hex "
      .. "digits, not all zeros", err.message)
    _, err = streamctl.aliyun.new { trace = { parent = PARENT } }
    assert.equal("option 'trace' has 'parent': a trace holds traceparent, tracestate and trace_id", err.message)
  end)

  it("trace_id names a new trace; the sampler decides what is recorded, the parent's choice by default", function()
    local got = {}
    local function keep(s) got[#got + 1] = s end
    local NEW = "4bf92f3577b34da6a3ce929d0e0e4736"
    -- a new trace of the caller's id, its root sampled; a valid traceparent wins over trace_id
    local z = client(streamctl.zego, { on_span = keep })
    assert(z:forbid_rtc_streams { stream_ids = { "room-1" }, trace = { trace_id = NEW } })
    assert.same({ NEW, NEW, nil }, { got[1].trace_id, got[2].trace_id, got[2].parent_span_id })
    assert.equal("00-" .. NEW .. "-" .. got[1].span_id .. "-01", server:log({ provider = "zego" })[1].traceparent)
    got = {}
    assert(z:forbid_rtc_streams { stream_ids = { "room-1" }, trace = { trace_id = NEW, traceparent = PARENT } })
    assert.same({ TRACE, "b7ad6b7169203331" }, { got[2].trace_id, got[2].parent_span_id })
    -- a parent that did not sample: nothing recorded, its choice sent on
    server:reset()
    got = {}
    local unsampled = PARENT:sub(1, -3) .. "00"
    assert(z:forbid_rtc_streams { stream_ids = { "room-2" }, trace = unsampled })
    assert.same({}, got)
    assert.truthy(server:log({ provider = "zego" })[1].traceparent:find("^00%-" .. TRACE .. "%-%x+%-00$"))
    -- a sampler asked with the trace id and the parent (nil at a root); its no sends flags 00
    server:reset()
    local asked = {}
    local off = client(streamctl.zego, { on_span = keep, sampler = function(id, parent)
      asked[#asked + 1] = { id, parent and parent.parent_id or "root" }
      return false
    end })
    assert(off:forbid_rtc_streams { stream_ids = { "room-3" }, trace = PARENT })
    assert(off:resume_rtc_streams { stream_ids = { "room-3" }, trace = { trace_id = NEW } })
    assert.same({ { TRACE, "b7ad6b7169203331" }, { NEW, "root" } }, asked)
    assert.same({}, got)
    for _, e in ipairs(server:log { provider = "zego" }) do assert.truthy(e.traceparent:find("%-00$"), e.traceparent) end
    -- a sampler's yes records under a parent that did not sample; one that raises records nothing
    local on = client(streamctl.zego, { on_span = keep, sampler = function() return true end })
    assert(on:resume_rtc_streams { stream_ids = { "room-3" }, trace = unsampled })
    assert.equal(2, #got)
    got = {}
    local raising = client(streamctl.zego, { on_span = keep, sampler = function() error("no sampler", 0) end })
    assert(raising:resume_rtc_streams { stream_ids = { "room-3" } })
    assert.same({}, got)
    assert.equal("no sampler", raising.on_span_error)
  end)

  it("a call's own trace, as a client's; one that breaks the option's rule refused, nothing sent", function()
    local ali = client(streamctl.aliyun, { trace = "00-" .. string.rep("1", 32) .. "-" .. string.rep("2", 16) .. "-01" })
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a",
                                    trace = { traceparent = PARENT, tracestate = "rojo=1" } })
    local e = server:log({ action = "ResumeLiveStream" })[1]
    assert.same({ TRACE, "rojo=1" }, { e.traceparent:match("^00%-(%x+)%-"), e.tracestate })
    local _, err = ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "a",
                                            trace = 7 }
    assert.equal("field 'trace' must be a traceparent string or a table of traceparent, tracestate and trace_id "
      .. "strings", err.message)
    assert.equal(1, #server:log { action = "ResumeLiveStream" })
    -- (the provider's fields are checked as before: the trace is not one of them)
    _, err = ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", trace = PARENT }
    assert.equal("field 'stream_name' is required", err.message)
  end)

  it("a reconcile is one span over its calls; a refused one not_sent; other coroutines' calls not under it",
    function()
    local reconcile = require "streamctl.operator.reconcile"
    local got = {}
    local ali = client(streamctl.aliyun, { trace = PARENT, on_span = function(s) got[#got + 1] = s end })
    local report = assert(reconcile.aliyun(ali, {
      { domain_name = "push.example.com", app_name = "live", stream_name = "a" } }))
    assert.equal(1, report.fixed)
    local root = got[#got]
    assert.same({ "Live.Reconcile", TRACE, "b7ad6b7169203331", "ok", 1, 1 }, { root.name, root.trace_id,
      root.parent_span_id, root.attributes["streamctl.outcome"], root.attributes["streamctl.reconcile.missing"],
      root.attributes["streamctl.reconcile.fixed"] })
    local ids, ops = { [root.span_id] = true }, 0
    for i = 1, #got - 1 do
      if got[i].kind == "internal" then
        ops = ops + 1
        ids[got[i].span_id] = true
        assert.equal(root.span_id, got[i].parent_span_id, got[i].name)
      end
    end
    for i = 1, #got - 1 do
      assert.equal(TRACE, got[i].trace_id)
      assert.is_true(ids[got[i].parent_span_id], got[i].name .. " hangs under no span of the reconcile")
    end
    assert.is_true(ops >= 2) -- (the block list read, the places, the forbid batch)
    for _, e in ipairs(server:log {}) do assert.equal(TRACE, e.traceparent:match("^00%-(%x+)%-")) end
    -- a call from another coroutine while the reconcile runs is not under it (nginx requests share clients)
    got = {}
    local outside
    local mixed = client(streamctl.aliyun, { on_span = function(s)
      got[#got + 1] = s
      if not outside and s.kind == "client" then
        outside = true
        local co = coroutine.create(function()
          return mixed_client:resume_live_stream { domain_name = "push.example.com", app_name = "live",
                                                   stream_name = "z" }
        end)
        assert(coroutine.resume(co))
      end
    end })
    mixed_client = mixed
    assert(reconcile.aliyun(mixed, { { domain_name = "push.example.com", app_name = "live", stream_name = "b" } }))
    local rec
    for _, s in ipairs(got) do if s.name == "Live.Reconcile" then rec = s end end
    for _, s in ipairs(got) do
      if s.name == "Live.ResumeLiveStream" and s.kind == "internal" then
        assert.not_equal(rec.trace_id, s.trace_id)
        assert.is_nil(s.parent_span_id)
      end
    end
    -- a refusal (the guard): nothing sent, the span not_sent
    got = {}
    local _, err = reconcile.aliyun(ali, { { domain_name = "push.example.com", app_name = "live", stream_name = "c" },
      { domain_name = "push.example.com", app_name = "live", stream_name = "d" } }, { max_forbid = 1 })
    assert.truthy(err)
    assert.same({ "Live.Reconcile", "not_sent", "error" }, { got[#got].name, got[#got].attributes["streamctl.outcome"],
      got[#got].status.code })
  end)

  it("a batch refused before sending ends its span not_sent, in the trace the audit would name", function()
    local got = {}
    local z = client(streamctl.zego, { on_span = function(s) got[#got + 1] = s end })
    local ids = {}
    for i = 1, 3 do ids[i] = "room-" .. i end
    local report, err = z:forbid_rtc_streams { stream_ids = ids, trace = PARENT, guard = { max_forbid = 2 } }
    assert.is_nil(report)
    assert.equal("TooManyStreams", err.code)
    assert.equal(1, #got)
    assert.same({ "ZEGO.ForbidRTCStreams", TRACE, "not_sent", "error", err.message },
      { got[1].name, got[1].trace_id, got[1].attributes["streamctl.outcome"], got[1].status.code,
        got[1].status.message })
    assert.same({}, server:log { provider = "zego" })
  end)
  -- Two ResumeLiveStream calls of a scripted client made with options `o` (simulated time): the second
  -- call's first attempt is throttled, its retry waits for its slot.
  local function throttled_run(o)
    local checks = require "spec.helpers.checks"
    local c = checks.scripted_client(require "streamctl.aliyun", 1700000000, o, function(_, n)
      if n == 2 then return checks.reply(400, '{"Code":"Throttling.User","RequestId":"t"}') end
      return checks.reply(200, '{"RequestId":"r"}')
    end)
    for _ = 1, 2 do assert(c:resume_live_stream { domain_name = "d.example", app_name = "live", stream_name = "s" }) end
  end
  it("an attempt that waited for its slot has the wait, the room and the cap as on_attempt saw them", function()
    local got, seen = {}, {}
    throttled_run { on_span = function(sp) got[#got + 1] = sp end, on_attempt = function(a) seen[#seen + 1] = a end }
    local waits = {}
    for _, sp in ipairs(got) do
      for _, e in ipairs(sp.events or {}) do
        if e.name == "streamctl.slot_wait" then waits[#waits + 1] = e.attributes end
      end
    end
    local last = seen[#seen] -- (the throttled call's retry: it waited, at the room the throttle left)
    assert.is_true(last.waited > 0 and last.room < last.cap)
    assert.same({ ["streamctl.waited_s"] = last.waited, ["streamctl.room"] = last.room, ["streamctl.cap"] = last.cap },
      waits[#waits])
    local codes = {}
    for _, sp in ipairs(got) do codes[#codes + 1] = sp.attributes["streamctl.throttle_code"] or "-" end
    assert.same({ "-", "-", "Throttling.User", "-", "-" }, codes) -- (attempt, call; attempt, attempt, call)
  end)
  it("a client without an on_attempt hook makes the same spans: the wait, the room, the cap, the codes", function()
    -- (the run of the test above, with and without the hook: the engine calls the span observer itself
    -- without one, through the hook's observer with one)
    local function spans_of(hooked)
      local got = {}
      local o = { on_span = function(sp) got[#got + 1] = sp end }
      if hooked then o.on_attempt = function() end end
      throttled_run(o)
      local out = {}
      for i, sp in ipairs(got) do
        out[i] = { sp.name, sp.kind, sp.status and sp.status.code, sp.attributes["streamctl.throttle_code"] or "-",
                   sp.attributes["http.request.resend_count"] or 0, sp.attributes["streamctl.request_id"] or "-",
                   sp.events[1] and sp.events[1].attributes or "no wait" }
      end
      return out
    end
    local bare = spans_of(false)
    assert.same(spans_of(true), bare)
    assert.same({ "-", "-", "Throttling.User", "-", "-" }, { bare[1][4], bare[2][4], bare[3][4], bare[4][4], bare[5][4] })
    local wait = bare[4][7] -- (the retry, after the throttle)
    assert.is_true(wait["streamctl.waited_s"] > 0 and wait["streamctl.room"] < wait["streamctl.cap"])
  end)
end)
