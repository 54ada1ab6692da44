-- sanitizers: none (streamctl.trace.otlp is plain Lua; the reader and protoc run in processes of their own)
-- OTLP/HTTP bodies (issue 71, streamctl.trace.otlp): known spans (both
-- kinds, both status codes, events, a tracestate, every attribute type, a
-- negative int, int64's edges, times with fractions, a root span) encoded
-- as protobuf are exactly the bytes `protoc --encode` makes of the same
-- message written by hand in protobuf's text format (the official encoder as
-- the oracle); the JSON form read by an independent reader
-- (spec/helpers/otlp_receiver.py, Debian's protobuf runtime) equals the
-- protobuf form read by it; the values read are the ones given (ids,
-- nanoseconds to the microsecond, attribute types). Misuse raises, naming
-- the field and its rule.
local otlp = require "streamctl.trace.otlp"
local version = require("streamctl.version")._VERSION
local reader = require "spec.helpers.otlp"

local TRACE, ROOT_SPAN, CHILD = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "53995c3f42cd8ad8"

local RESOURCE = { ["service.name"] = "streamctl-spec", ["telemetry.sdk.name"] = "streamctl",
                   ["telemetry.sdk.language"] = "lua", ["telemetry.sdk.version"] = version }

-- (fresh tables each time: encode must not change what it is given)
local function spans()
  return {
    { trace_id = TRACE, span_id = ROOT_SPAN, trace_state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
      name = "Live.ForbidLiveStreams", kind = "internal", start_time = 1795800000.123456, end_time = 1795800002.5,
      attributes = { ["rpc.system"] = "alibaba-cloud-openapi", ["rpc.method"] = "ForbidLiveStream",
                     ["streamctl.outcome"] = "ok", ["streamctl.batch.calls"] = 3, ["streamctl.batch.ok"] = 2.0,
                     ["streamctl.empty"] = "", ["streamctl.dry_run"] = false, ["streamctl.guarded"] = true,
                     ["streamctl.note"] = "直播 caf\233" },
      events = {}, status = { code = "ok", message = "not sent with OK" } },
    { trace_id = TRACE, span_id = CHILD, parent_span_id = ROOT_SPAN, name = "Live.ForbidLiveStream", kind = "client",
      start_time = 1795800000.2, end_time = 1795800001.9999996,
      attributes = { ["server.address"] = "live.aliyuncs.com", ["server.port"] = 443,
                     ["http.request.method"] = "GET", ["http.response.status_code"] = 503,
                     ["http.request.resend_count"] = 1, ["error.type"] = "ServiceUnavailable",
                     ["streamctl.retry_after_ms"] = 1500.5, ["streamctl.offset"] = -1234567890123,
                     ["streamctl.min"] = -2 ^ 63, ["streamctl.over"] = 2 ^ 63, ["streamctl.delta"] = -3.0 },
      events = { { name = "streamctl.slot_wait", time = 1795800000.2500004,
                   attributes = { seconds = 0.012, room = 5, cap = 10 } },
                 { name = "retry", time = 1795800001.5, attributes = {} } },
      status = { code = "error", message = "Service unavailable" } },
    { trace_id = "0AF7651916CD43DD8448EB211C80319C", span_id = "B7AD6B7169203331",
      name = "Live.DescribeLiveStreamsOnlineList", kind = "client", start_time = 1795800003,
      end_time = 1795800003.000001 },
  }
end

-- An id as protobuf text's escapes (octal, three digits each).
local function esc(hex)
  return (hex:gsub("%x%x", function(x) return string.format("\\%03o", tonumber(x, 16)) end))
end

local function kv(key, value) return 'attributes { key: "' .. key .. '" value { ' .. value .. " } }\n" end

-- The same request, written by hand in protobuf's text format: what the
-- bytes must be is what protoc makes of it.
local TEXT = table.concat {
  "resource_spans {\n resource {\n",
  kv("service.name", 'string_value: "streamctl-spec"'),
  kv("telemetry.sdk.language", 'string_value: "lua"'),
  kv("telemetry.sdk.name", 'string_value: "streamctl"'),
  kv("telemetry.sdk.version", 'string_value: "' .. version .. '"'),
  " }\n scope_spans {\n  scope { name: \"streamctl\" version: \"" .. version .. "\" }\n",
  "  spans {\n",
  '   trace_id: "', esc(TRACE), '" span_id: "', esc(ROOT_SPAN), '"\n',
  '   trace_state: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"\n',
  '   name: "Live.ForbidLiveStreams" kind: SPAN_KIND_INTERNAL\n',
  "   start_time_unix_nano: 1795800000123456000 end_time_unix_nano: 1795800002500000000\n",
  kv("rpc.method", 'string_value: "ForbidLiveStream"'),
  kv("rpc.system", 'string_value: "alibaba-cloud-openapi"'),
  kv("streamctl.batch.calls", "int_value: 3"),
  kv("streamctl.batch.ok", "int_value: 2"),
  kv("streamctl.dry_run", "bool_value: false"),
  kv("streamctl.empty", 'string_value: ""'),
  kv("streamctl.guarded", "bool_value: true"),
  kv("streamctl.note", 'string_value: "直播 caf\\357\\277\\275"'),
  kv("streamctl.outcome", 'string_value: "ok"'),
  "   status { code: STATUS_CODE_OK }\n",
  "  }\n  spans {\n",
  '   trace_id: "', esc(TRACE), '" span_id: "', esc(CHILD), '" parent_span_id: "', esc(ROOT_SPAN), '"\n',
  '   name: "Live.ForbidLiveStream" kind: SPAN_KIND_CLIENT\n',
  "   start_time_unix_nano: 1795800000200000000 end_time_unix_nano: 1795800002000000000\n",
  kv("error.type", 'string_value: "ServiceUnavailable"'),
  kv("http.request.method", 'string_value: "GET"'),
  kv("http.request.resend_count", "int_value: 1"),
  kv("http.response.status_code", "int_value: 503"),
  kv("server.address", 'string_value: "live.aliyuncs.com"'),
  kv("server.port", "int_value: 443"),
  kv("streamctl.delta", "int_value: -3"),
  kv("streamctl.min", "int_value: -9223372036854775808"),
  kv("streamctl.offset", "int_value: -1234567890123"),
  kv("streamctl.over", "double_value: 9223372036854775808"),
  kv("streamctl.retry_after_ms", "double_value: 1500.5"),
  '   events { time_unix_nano: 1795800000250000000 name: "streamctl.slot_wait"\n',
  "    ", kv("cap", "int_value: 10"), "    ", kv("room", "int_value: 5"), "    ", kv("seconds", "double_value: 0.012"),
  "   }\n",
  '   events { time_unix_nano: 1795800001500000000 name: "retry" }\n',
  '   status { message: "Service unavailable" code: STATUS_CODE_ERROR }\n',
  "  }\n  spans {\n",
  '   trace_id: "', esc("0af7651916cd43dd8448eb211c80319c"), '" span_id: "', esc("b7ad6b7169203331"), '"\n',
  '   name: "Live.DescribeLiveStreamsOnlineList" kind: SPAN_KIND_CLIENT\n',
  "   start_time_unix_nano: 1795800003000000000 end_time_unix_nano: 1795800003000001000\n",
  "  }\n }\n}\n",
}

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

describe("streamctl.trace.otlp", function()
  local body, content_type = otlp.encode(spans(), RESOURCE)
  local json_body, json_type = otlp.encode(spans(), RESOURCE, "http/json")

  it("names each body's Content-Type (protobuf by default)", function()
    assert.equal("application/x-protobuf", content_type)
    assert.equal("application/json", json_type)
    assert.equal(body, (otlp.encode(spans(), RESOURCE, "http/protobuf")))
  end)

  it("writes protobuf exactly as protoc --encode writes the same message", function()
    local expected = reader.protoc_encode(TEXT)
    assert.is_true(#expected > 500)
    assert.equal(hex(expected), hex(body))
    -- no spans: the resource and the scope alone
    assert.equal(hex(reader.protoc_encode('resource_spans { resource { } scope_spans { scope { name: "streamctl" '
      .. 'version: "' .. version .. '" } } }')), hex((otlp.encode({}))))
  end)

  it("writes Lua 5.4's integers at int64's edges (LuaJIT has none: its numbers are doubles)", function()
    local tointeger = math.tointeger
    if not tointeger then return end
    local edges = { trace_id = TRACE, span_id = CHILD, name = "n", kind = "internal", start_time = 0, end_time = 0,
                    attributes = { max = math.maxinteger, min = math.mininteger, one = tointeger(-1) } }
    local expected = reader.protoc_encode('resource_spans { resource { } scope_spans { scope { name: "streamctl" '
      .. 'version: "' .. version .. '" } spans { trace_id: "' .. esc(TRACE) .. '" span_id: "' .. esc(CHILD)
      .. '" name: "n" kind: SPAN_KIND_INTERNAL ' .. kv("max", "int_value: 9223372036854775807")
      .. kv("min", "int_value: -9223372036854775808") .. kv("one", "int_value: -1") .. " } } }")
    assert.equal(hex(expected), hex((otlp.encode({ edges }))))
    local json = otlp.encode({ edges }, nil, "http/json")
    assert.matches('{"key":"max","value":{"intValue":"9223372036854775807"}}', json, 1, true)
    assert.same(reader.decode(expected, "application/x-protobuf"), reader.decode(json, "application/json"))
  end)

  it("writes JSON that reads as the protobuf reads (OTLP's JSON encoding)", function()
    local from_pb, from_json = reader.decode(body, content_type), reader.decode(json_body, json_type)
    assert.equal(3, #from_pb)
    assert.same(from_pb, from_json)
    -- the smallest span, byte for byte: ids as lowercase hex, nanoseconds as decimal strings, enums as numbers
    assert.equal('{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{"name":"streamctl","version":"'
      .. version .. '"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331",'
      .. '"name":"Live.DescribeLiveStreamsOnlineList","kind":3,"startTimeUnixNano":"1795800003000000000",'
      .. '"endTimeUnixNano":"1795800003000001000"}]}]}]}', (otlp.encode({ spans()[3] }, nil, "http/json")))
  end)

  it("carries the values given: ids, times to the microsecond, attribute types", function()
    local got = reader.decode(body, content_type)
    local root, child, last = got[1], got[2], got[3]
    assert.same({ name = "streamctl", version = version }, root.scope)
    assert.same({ ["service.name"] = { string = "streamctl-spec" }, ["telemetry.sdk.language"] = { string = "lua" },
                  ["telemetry.sdk.name"] = { string = "streamctl" }, ["telemetry.sdk.version"] = { string = version } },
      root.resource)
    assert.equal(TRACE, root.trace_id)
    assert.equal(ROOT_SPAN, root.span_id)
    assert.is_nil(root.parent_span_id)
    assert.equal("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", root.trace_state)
    assert.equal(1, root.kind)
    assert.equal("1795800000123456000", root.start_time_unix_nano)
    assert.equal("1795800002500000000", root.end_time_unix_nano)
    assert.same({ ["rpc.method"] = { string = "ForbidLiveStream" }, ["rpc.system"] = { string = "alibaba-cloud-openapi" },
                  ["streamctl.batch.calls"] = { int = 3 }, ["streamctl.batch.ok"] = { int = 2 },
                  ["streamctl.dry_run"] = { bool = false }, ["streamctl.empty"] = { string = "" },
                  ["streamctl.guarded"] = { bool = true }, ["streamctl.note"] = { string = "直播 caf\239\191\189" },
                  ["streamctl.outcome"] = { string = "ok" } }, root.attributes)
    assert.same({}, root.events)
    assert.same({ code = 1, message = "" }, root.status)

    assert.equal(TRACE, child.trace_id)
    assert.equal(CHILD, child.span_id)
    assert.equal(ROOT_SPAN, child.parent_span_id)
    assert.is_nil(child.trace_state)
    assert.equal(3, child.kind)
    assert.equal("1795800000200000000", child.start_time_unix_nano)
    assert.equal("1795800002000000000", child.end_time_unix_nano) -- (.9999996 s: the next whole second)
    assert.same({ ["error.type"] = { string = "ServiceUnavailable" }, ["http.request.method"] = { string = "GET" },
                  ["http.request.resend_count"] = { int = 1 }, ["http.response.status_code"] = { int = 503 },
                  ["server.address"] = { string = "live.aliyuncs.com" }, ["server.port"] = { int = 443 },
                  ["streamctl.delta"] = { int = -3 },
                  ["streamctl.min"] = { int = "-9223372036854775808" }, ["streamctl.offset"] = { int = -1234567890123 },
                  ["streamctl.over"] = { double = 2 ^ 63 }, ["streamctl.retry_after_ms"] = { double = 1500.5 } },
      child.attributes)
    assert.same({ { name = "streamctl.slot_wait", time_unix_nano = "1795800000250000000", -- (.2500004 s: down)
                    attributes = { cap = { int = 10 }, room = { int = 5 }, seconds = { double = 0.012 } } },
                  { name = "retry", time_unix_nano = "1795800001500000000", attributes = {} } }, child.events)
    assert.same({ code = 2, message = "Service unavailable" }, child.status)

    assert.equal("0af7651916cd43dd8448eb211c80319c", last.trace_id)
    assert.equal("1795800003000001000", last.end_time_unix_nano)
    assert.same({}, last.attributes)
    assert.same({ code = 0, message = "" }, last.status)
  end)

  it("leaves what it is given as it was", function()
    local given = spans()
    otlp.encode(given, RESOURCE)
    otlp.encode(given, RESOURCE, "http/json")
    assert.same(spans(), given)
  end)

  it("makes text UTF-8: each byte that starts no valid sequence becomes U+FFFD", function()
    for _, row in ipairs {
      { "plain", "plain" }, { "直播", "直播" }, { "caf\233", "caf\239\191\189" },
      { "\192\175", "\239\191\189\239\191\189" },           -- overlong "/"
      { "\237\160\128", "\239\191\189\239\191\189\239\191\189" }, -- a surrogate
      { "\244\144\128\128x", "\239\191\189\239\191\189\239\191\189\239\191\189x" }, -- beyond U+10FFFF
      { "ab\226\130", "ab\239\191\189\239\191\189" },       -- cut short
      { "\240\159\142\165", "\240\159\142\165" },           -- U+1F3A5, four bytes
    } do
      assert.equal(row[2], otlp.utf8(row[1]), row[1])
    end
  end)

  it("refuses misuse, naming the field and its rule", function()
    local function refused(message, list, resource, protocol)
      local ok, err = pcall(otlp.encode, list, resource, protocol)
      assert.is_false(ok)
      assert.equal("bad argument to 'encode' (" .. message .. ")", err)
    end
    local function with(i, field, value)
      local list = spans()
      list[i][field] = value
      return list
    end
    refused("protocol must be http/protobuf or http/json, got grpc", spans(), nil, "grpc")
    refused("spans must be a list of spans, got string", "x")
    refused("resource must be a table of attributes", spans(), "x")
    refused("spans[2].trace_id must be 32 hex digits, got 4bf92f35", with(2, "trace_id", "4bf92f35"))
    refused("spans[1].span_id must be 16 hex digits, got 00f067aa0ba902bz", with(1, "span_id", "00f067aa0ba902bz"))
    refused("spans[3].parent_span_id must be 16 hex digits, got 1", with(3, "parent_span_id", 1))
    refused("spans[1].kind must be one of internal, server, client, producer, consumer", with(1, "kind", "INTERNAL"))
    refused("spans[1].start_time must be Unix seconds (a number from 0 to 9e9), got -1", with(1, "start_time", -1))
    refused("spans[3].end_time must be Unix seconds (a number from 0 to 9e9), got nil", with(3, "end_time", nil))
    refused("spans[1].status.code must be ok, error or unset", with(1, "status", { code = "OK" }))
    refused('spans[1].attributes["x"] must be a string, number or boolean, got table',
      with(1, "attributes", { x = {} }), nil, "http/json")
    refused("spans[2].events[1].time must be Unix seconds (a number from 0 to 9e9), got nil",
      with(2, "events", { { name = "e" } }))
    refused('resource["a"] must be a string, number or boolean, got function', {}, { a = print })
  end)
end)

describe("the reader of the specs (spec/helpers/otlp_receiver.py)", function()
  local json_body = otlp.encode(spans(), RESOURCE, "http/json")

  it("holds JSON to OTLP's encoding: a 64-bit integer as a number, a snake_case key, an enum's name refused",
    function()
    for _, row in ipairs {
      { '"startTimeUnixNano":"1795800000123456000"', '"startTimeUnixNano":1795800000123456000', "decimal string" },
      { '"parentSpanId"', '"parent_span_id"', "lowerCamelCase" },
      { '"kind":1', '"kind":"SPAN_KIND_INTERNAL"', "enum's number" },
      { '"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"', '"traceId":"S/kvNXezTaajzpKdDg5HNg=="', "32 hex digits" },
    } do
      local changed, n = json_body:gsub(row[1]:gsub("%p", "%%%0"), (row[2]:gsub("%%", "%%%%")), 1)
      assert.equal(1, n, row[1])
      local ok, err = pcall(reader.decode, changed, "application/json")
      assert.is_false(ok, row[2])
      assert.matches(row[3], err, 1, true)
    end
  end)
end)
