-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- Issue 71's done-when inside nginx, four workers: each worker's exporter
-- (streamctl.trace.from_env) queues the spans of the calls its requests
-- make, in each request's own trace (its `traceparent` header, taken by
-- default); one timer per worker sends them with cosockets; a worker's
-- exit (nginx -s quit) flushes what is left. The receiver reads them by
-- OTLP's published messages; the emulator's log names every attempt's span.
local cjson = require "cjson"
local socket = require "socket"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local otlp = require "spec.helpers.otlp"
local checks = require "spec.helpers.checks"

local available, why_not = nginx.available()
assert(available, why_not)

local DRIVER = [[
local M = {}
local tracer, client
local function setup()
  if client then return end
  tracer = assert(require("streamctl.trace").from_env { service_name = "edge" })
  client = assert(require("streamctl.zego").new { endpoint = os.getenv("ZEGO"), app_id = 1234567890,
    server_secret = "0123456789abcdef0123456789abcdef", tracer = tracer })
end
function M.forbid()
  setup()
  local report = assert(client:forbid_rtc_streams { stream_ids = { ngx.var.arg_id } })
  ngx.say(require("cjson").encode { worker = ngx.worker.id(), succeeded = report.succeeded })
end
return M
]]

-- `n` requests, each with a traceparent of its own: the traceparents sent, and the workers that answered.
local function forbid(port, n, tag)
  local sent, workers = {}, {}
  for i = 1, n do
    local parent = string.format("00-%s%08x%08x%08x-%016x-01", tag, i, i, i, i)
    local s = socket.tcp()
    s:settimeout(10)
    assert(s:connect("127.0.0.1", port))
    assert(s:send("GET /forbid?id=room-" .. i .. " HTTP/1.0\r\nHost: 127.0.0.1\r\ntraceparent: " .. parent
      .. "\r\n\r\n"))
    local raw = assert(s:receive("*a"))
    s:close()
    local answer = cjson.decode(raw:match("\r\n\r\n(.*)$"))
    assert.equal(1, answer.succeeded)
    workers[answer.worker] = true
    sent[i] = parent
  end
  return sent, workers
end

-- Every request's spans: one operation under the request's span, and under it one CLIENT span per
-- attempt the emulator logged in that trace (a throttled one included: four workers pace apart, at
-- the provider's cap), each named in the traceparent the emulator received.
local function check_trees(sent, spans, log)
  local by_trace, logged = {}, {}
  for _, s in ipairs(spans) do
    by_trace[s.trace_id] = by_trace[s.trace_id] or {}
    table.insert(by_trace[s.trace_id], s)
  end
  for _, e in ipairs(log) do
    local trace_id, span_id = e.traceparent:match("^00%-(%x+)%-(%x+)%-01$")
    logged[trace_id] = logged[trace_id] or {}
    logged[trace_id][span_id] = true
  end
  local total = 0
  for _, parent in ipairs(sent) do
    local trace_id, parent_span = parent:match("^00%-(%x+)%-(%x+)%-01$")
    local ops, attempts = {}, {}
    for _, s in ipairs(by_trace[trace_id] or {}) do table.insert(s.kind == 1 and ops or attempts, s) end
    assert.equal(1, #ops, "operations in " .. parent)
    assert.same({ "ZEGO.ForbidRTCStreams", parent_span, "edge" },
      { ops[1].name, ops[1].parent_span_id, ops[1].resource["service.name"].string })
    local n = 0
    for _ in pairs(logged[trace_id] or {}) do n = n + 1 end
    assert.is_true(n >= 1)
    assert.equal(n, #attempts, "attempts in " .. parent)
    for _, s in ipairs(attempts) do
      assert.equal(ops[1].span_id, s.parent_span_id)
      assert.is_true(logged[trace_id][s.span_id], "the emulator saw " .. s.span_id)
    end
    total = total + 1 + #attempts
  end
  assert.equal(total, #spans, "every span belongs to a request's tree")
end

describe("spans exported from four nginx workers", function()
  if rawget(_G, "jit") or require("spec.helpers.process").preloaded() then
    pending("run once, in the plain Lua 5.4 run: the workers are nginx's, the same under any test interpreter")
    return
  end
  local emulator
  lazy_setup(function() emulator = emu.start {} end)
  lazy_teardown(function() if emulator then emulator:stop() end end)

  local function start(receiver, delay_ms)
    return nginx.start_driver { driver = DRIVER, workers = 4, locations = { ["/forbid"] = "forbid" },
      env = { ZEGO = emulator.zego_url, OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:" .. receiver.port,
              OTEL_BSP_SCHEDULE_DELAY = tostring(delay_ms) } }
  end

  it("every request's trace, sent by each worker's timer", function()
    emulator:reset()
    local receiver = otlp.start_receiver {}
    finally(function() receiver.stop() end)
    local server = start(receiver, 200)
    finally(function() server:stop() end)
    local sent, workers = forbid(server.ports[1], 40, "aaaa1111")
    local n = 0
    for _ in pairs(workers) do n = n + 1 end
    assert.is_true(n >= 2, "the requests reached " .. n .. " worker(s)")
    local log = emulator:log { provider = "zego" }
    check_trees(sent, receiver.wait_spans(40 + #log), log)
    -- sent by timers while nginx runs, in more than one request (a batch per worker and tick)
    assert.is_true(#receiver.requests() >= 2)
    assert.equal("", (server:error_log():match("%[error%][^\n]*") or ""))
  end)

  it("a worker's exit flushes what its timer had not sent", function()
    emulator:reset()
    local receiver = otlp.start_receiver {}
    finally(function() receiver.stop() end)
    local server = start(receiver, 600000) -- (the timer's next tick never comes: only the exit sends)
    finally(function() server:stop() end)
    local sent = forbid(server.ports[1], 20, "bbbb2222")
    assert.same({}, receiver.requests())
    os.execute("kill -QUIT " .. server.pid)
    local log = emulator:log { provider = "zego" }
    assert.is_true(checks.wait_until(function() return #receiver.spans() >= 20 + #log end, 20),
      #receiver.spans() .. " spans after the workers' exit")
    check_trees(sent, receiver.spans(), log)
  end)
end)
