-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- Issue 71 at the edge: the OpenResty example with OTEL_EXPORTER_OTLP_ENDPOINT
-- exports its calls' spans; a /streams request's calls are in the
-- request's trace (its traceparent header), and so is a callback's
-- reaction, though it runs in a timer; the emulator saw each attempt's
-- span. A bad OTEL variable stops nginx at start, named.
local cjson = require "cjson"
local core = require "streamctl.core"
local emu = require "spec.helpers.emulator"
local edge = require "spec.helpers.edge"
local nginx = require "spec.helpers.nginx"
local otlp = require "spec.helpers.otlp"
local checks = require "spec.helpers.checks"

local available, why_not = nginx.available()
assert(available, why_not)

local ZEGO_CB_SECRET = "zego-callback-secret-0123456789"
local TRACE, PARENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
local CB_TRACE, CB_SPAN = "5cf92f3577b34da6a3ce929d0e0e4737", "11f067aa0ba902b8"

local function traced_post(port, path, body, headers)
  headers["Content-Type"] = "application/json"
  return edge.concurrently(port, { edge.raw_request("POST", path, body, headers) }, 30)[1]
end

-- The spans of `trace_id`: its operations and its attempts.
local function tree(spans, trace_id)
  local ops, attempts = {}, {}
  for _, s in ipairs(spans) do
    if s.trace_id == trace_id then table.insert(s.kind == 1 and ops or attempts, s) end
  end
  return ops, attempts
end

describe("the OpenResty example's traces", function()
  if rawget(_G, "jit") or require("spec.helpers.process").preloaded() then
    pending("run once, in the plain Lua 5.4 run: the workers are nginx's, the same under any test interpreter")
    return
  end
  local emulator, receiver, server
  lazy_setup(function()
    emulator = emu.start {}
    receiver = otlp.start_receiver {}
    server = edge.start_edge(emulator, { workers = 2, env = { ZEGO_CALLBACK_SECRET = ZEGO_CB_SECRET,
      OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:" .. receiver.port, OTEL_BSP_SCHEDULE_DELAY = "100",
      OTEL_SERVICE_NAME = "edge-43" } })
  end)
  lazy_teardown(function()
    if server then server:stop() end
    if receiver then receiver.stop() end
    if emulator then emulator:stop() end
  end)

  it("a request's calls in its trace; a callback's reaction in the callback's", function()
    local port = server.ports[1]
    local res = traced_post(port, "/streams/zego/forbid", '{"stream_id":"z-traced"}',
      { Authorization = "Bearer " .. edge.TOKEN, traceparent = "00-" .. TRACE .. "-" .. PARENT_SPAN .. "-01" })
    assert.equal(200, res.status, res.body)
    local log = emulator:log { action = "ForbidRTCStreams" }
    assert.equal(1, #log)
    local sent_span = log[1].traceparent:match("^00%-" .. TRACE .. "%-(%x+)%-01$")
    assert.truthy(sent_span, log[1].traceparent)
    assert.is_true(checks.wait_until(function() local _, a = tree(receiver.spans(), TRACE) return #a >= 1 end, 10))
    local ops, attempts = tree(receiver.spans(), TRACE)
    assert.same({ 1, 1 }, { #ops, #attempts })
    assert.same({ "ZEGO.ForbidRTCStreams", PARENT_SPAN, ops[1].span_id, sent_span, "edge-43" },
      { ops[1].name, ops[1].parent_span_id, attempts[1].parent_span_id, attempts[1].span_id,
        ops[1].resource["service.name"].string })

    -- the stream is now on the forbid list: its stream_create is a reaction, made in a timer, in the
    -- callback request's trace
    emulator:reset()
    local ts, nonce = tostring(edge.fresh_ts()), "2001"
    res = traced_post(port, "/callbacks/zego", cjson.encode { event = "stream_create", appid = edge.ZEGO_APP,
      timestamp = ts, nonce = nonce, stream_id = "z-traced", room_id = "r",
      signature = core.digest_hex("sha1", "", true, ZEGO_CB_SECRET, ts, nonce) },
      { traceparent = "00-" .. CB_TRACE .. "-" .. CB_SPAN .. "-01" })
    assert.equal(200, res.status, res.body)
    assert.is_true(checks.wait_until(function() local _, a = tree(receiver.spans(), CB_TRACE) return #a >= 1 end, 10))
    log = emulator:log { action = "ForbidRTCStreams" }
    assert.equal(1, #log)
    ops, attempts = tree(receiver.spans(), CB_TRACE)
    assert.same({ 1, 1, CB_SPAN, ops[1].span_id }, { #ops, #attempts, ops[1].parent_span_id,
      attempts[1].parent_span_id })
    assert.equal("00-" .. CB_TRACE .. "-" .. attempts[1].span_id .. "-01", log[1].traceparent)
  end)

  it("a tracestate given in two header fields is passed on whole, in their order (issue 89: the first alone)",
    function()
    emulator:reset()
    local body = '{"stream_id":"z-state"}'
    local raw = table.concat({ "POST /streams/zego/forbid HTTP/1.0", "Host: 127.0.0.1",
      "Authorization: Bearer " .. edge.TOKEN, "Content-Type: application/json",
      "traceparent: 00-" .. TRACE .. "-" .. PARENT_SPAN .. "-01", "tracestate: rojo=00f067aa0ba902b7",
      "TraceState: congo=t61rcWkgMzE", "Content-Length: " .. #body }, "\r\n") .. "\r\n\r\n" .. body
    local res = edge.concurrently(server.ports[1], { raw }, 30)[1]
    assert.equal(200, res.status, res.body)
    local log = emulator:log { action = "ForbidRTCStreams" }
    assert.equal(1, #log)
    assert.equal("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", log[1].tracestate)
  end)

  it("a bad OTEL variable stops nginx at start, naming it", function()
    local ok, err = pcall(edge.start_edge, emulator, { env = { OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:1",
      OTEL_TRACES_SAMPLER = "sometimes" } })
    if ok then err:stop() end
    assert.is_false(ok)
    assert.truthy(tostring(err):find("streamctl.edge: OTEL_TRACES_SAMPLER: sampler 'sometimes' is not one of",
      1, true), tostring(err))
  end)
end)
