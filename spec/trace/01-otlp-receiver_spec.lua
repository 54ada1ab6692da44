-- sanitizers: none (the receiver is a Python process of its own; streamctl.trace.otlp is plain Lua)
-- The OTLP receiver the tracing specs start (spec/helpers/otlp.lua's
-- start_receiver, spec/helpers/otlp_receiver.py's `serve`) does what its
-- header says: POST /v1/traces over one kept-alive connection, protobuf and
-- JSON, each span a line with its request's number, Content-Type and answer;
-- the empty ExportTraceServiceResponse (`{}` for JSON); a status for the
-- first N requests; a delay; a body it cannot read answered 400 (another
-- Content-Type 415) and said; gone on SIGTERM, what it got kept.
local socket = require "socket"
local otlp = require "streamctl.trace.otlp"
local reader = require "spec.helpers.otlp"
local process = require "spec.helpers.process"

local SPAN = { trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", span_id = "00f067aa0ba902b7", name = "Live.X",
               kind = "client", start_time = 1795800000.25, end_time = 1795800000.5,
               attributes = { ["server.port"] = 443 }, status = { code = "ok" } }
local RESOURCE = { ["service.name"] = "spec" }

-- One request on `conn` (kept open): its status, headers (lowercased) and body.
local function post(conn, body, content_type, path)
  assert(conn:send("POST " .. (path or "/v1/traces") .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
    .. content_type .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body))
  local line = assert(conn:receive("*l"))
  local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  for _ = 1, 50 do
    local h = assert(conn:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    headers[name:lower()] = value
  end
  local length = tonumber(headers["content-length"])
  return status, headers, length > 0 and assert(conn:receive(length)) or ""
end

local function connect(r)
  local conn = assert(socket.connect("127.0.0.1", r.port))
  conn:settimeout(10 * process.slowdown())
  return conn
end

-- A span as the receiver writes it: as the reader decodes it, with its request's facts.
local function line(span, request, content_type, answered)
  local t = {}
  for k, v in pairs(span) do t[k] = v end
  t.request, t.content_type, t.answered = request, content_type, answered
  return t
end

describe("the OTLP receiver of the specs", function()
  local pb = otlp.encode({ SPAN }, RESOURCE)
  local js = otlp.encode({ SPAN }, RESOURCE, "http/json")
  local decoded = reader.decode(pb, "application/x-protobuf")[1]

  it("takes protobuf and JSON on one kept-alive connection and writes each span as it read it", function()
    local r = reader.start_receiver()
    finally(r.stop)
    local conn = connect(r)
    local status, headers, body = post(conn, pb, "application/x-protobuf")
    assert.equal(200, status)
    assert.equal("application/x-protobuf", headers["content-type"])
    assert.equal("", body) -- (an empty ExportTraceServiceResponse is no bytes)
    status, headers, body = post(conn, js, "application/json")
    assert.equal(200, status)
    assert.equal("application/json", headers["content-type"])
    assert.equal("{}", body)
    status = post(conn, otlp.encode({ SPAN, SPAN }, RESOURCE), "application/x-protobuf")
    assert.equal(200, status)
    conn:close()
    assert.same({ line(decoded, 1, "application/x-protobuf", 200), line(decoded, 2, "application/json", 200),
                  line(decoded, 3, "application/x-protobuf", 200), line(decoded, 3, "application/x-protobuf", 200) },
      r.wait_spans(4))
    local seen = r.requests()
    local peer = seen[1].peer -- (the client's port: the one connection's, for all three)
    assert.is_number(peer)
    assert.same({ { request = 1, content_type = "application/x-protobuf", answered = 200, spans = 1, peer = peer },
                  { request = 2, content_type = "application/json", answered = 200, spans = 1, peer = peer },
                  { request = 3, content_type = "application/x-protobuf", answered = 200, spans = 2, peer = peer } },
      seen)
  end)

  it("answers a status to the first N requests, after a delay, and records each on arrival", function()
    local r, always = reader.start_receiver { status = 503, fail_first = 2, delay = 0.2 }, nil
    finally(function()
      r.stop()
      if always then always.stop() end
    end)
    local conn = connect(r)
    assert.equal(503, (post(conn, pb, "application/x-protobuf")))
    assert.equal(503, (post(conn, pb, "application/x-protobuf")))
    assert.equal(200, (post(conn, pb, "application/x-protobuf")))
    conn:close()
    local answered = {}
    for i, req in ipairs(r.requests()) do answered[i] = req.answered end
    assert.same({ 503, 503, 200 }, answered)
    assert.equal(3, #r.spans())
    -- only a status: every request gets it
    always = reader.start_receiver { status = 429 }
    conn = connect(always)
    assert.equal(429, (post(conn, pb, "application/x-protobuf")))
    assert.equal(429, (post(conn, js, "application/json")))
    conn:close()
  end)

  it("answers 400 to a body it cannot read, 415 to another Content-Type, 404 elsewhere, and says why", function()
    local r = reader.start_receiver()
    finally(r.stop)
    local conn = connect(r)
    assert.equal(400, (post(conn, "\255\255\255", "application/x-protobuf")))
    assert.equal(400, (post(conn, '{"resourceSpans":[{"resource_spans":1}]}', "application/json")))
    assert.equal(415, (post(conn, pb, "text/plain")))
    assert.equal(404, (post(conn, pb, "application/x-protobuf", "/v1/metrics")))
    assert.equal(200, (post(conn, js, "application/json; charset=utf-8")))
    conn:close()
    local reqs = r.wait_requests(4)
    assert.equal(4, #reqs)
    assert.matches("not an ExportTraceServiceRequest", reqs[1].error, 1, true)
    assert.matches("keys are lowerCamelCase", reqs[2].error, 1, true)
    assert.matches("the Content-Type 'text/plain' is neither", reqs[3].error, 1, true)
    assert.is_nil(reqs[4].error)
    local spans = r.spans()
    assert.equal(4, #spans) -- (three lines saying why, one span)
    assert.equal(400, spans[1].answered)
    assert.equal(decoded.span_id, spans[4].span_id)
  end)

  it("ends on SIGTERM and keeps what it got", function()
    local r = reader.start_receiver()
    local conn = connect(r)
    post(conn, pb, "application/x-protobuf")
    conn:close()
    r.wait_spans(1)
    assert.is_true(r.alive())
    local pid = r.pid
    r.stop()
    assert.is_false(r.alive())
    assert.is_nil(process.read_file("/proc/" .. pid .. "/stat"))
    assert.equal(1, #r.spans())
    assert.is_true(r.stop()) -- (again: nothing to do)
  end)
end)
