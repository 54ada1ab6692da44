--- OTLP/HTTP request bodies for spans (issue 71): `encode(spans, resource,
-- protocol)` makes one `ExportTraceServiceRequest` of OpenTelemetry's
-- protocol (opentelemetry-proto, collector/trace/v1/trace_service.proto,
-- trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto),
-- as protobuf ("http/protobuf", the default: `application/x-protobuf`) or in
-- OTLP's JSON encoding ("http/json": `application/json`).
--
-- The spans are streamctl.pipeline.spans' plain tables (a record,
-- streamctl.base.spanrecord, is encoded by `record_pb`, as its plain table):
--
--   { trace_id (32 hex), span_id (16 hex), parent_span_id (16 hex or nil), trace_state (or nil),
--     name, kind = "internal" | "client" (also "server", "producer", "consumer"),
--     start_time, end_time (Unix seconds), attributes = { [key] = string | number | boolean },
--     events = { { name, time, attributes } }, status = { code = "ok" | "error" | "unset", message } }
--
-- One ResourceSpans (`resource`: its attributes, e.g. `service.name`,
-- `telemetry.sdk.*`), one ScopeSpans (scope "streamctl", the version of
-- streamctl.version). The bytes are deterministic: fields in field-number
-- order, proto3's defaults left out as the official encoder leaves them out,
-- attributes sorted by key. An attribute that is an integral number in
-- int64's range is an `int_value` (a Lua number may be a float), any other
-- number a `double_value`. Times are rounded to the microsecond (the clock's
-- resolution) and written as nanoseconds, exact under LuaJIT too (whose
-- numbers are doubles, and nanoseconds since 1970 exceed 2^53): the 64 bits
-- are made of exact 32-bit parts. Text that is not UTF-8 (which protobuf's
-- `string` must be, or a collector refuses the whole request) has each bad
-- byte replaced by U+FFFD. Kinds, status codes: the enums' numbers (INTERNAL
-- 1, CLIENT 3; OK 1, ERROR 2, its message only with ERROR).
--
-- The JSON form follows OTLP's "JSON Protobuf Encoding": lowerCamelCase keys,
-- trace and span ids as hex (not base64), enums as integers, 64-bit integers
-- as decimal strings, NaN and the infinities as the strings proto3's JSON
-- mapping names.
--
-- Hand-written: Debian packages no protobuf library for Lua, and the
-- schema is fixed and small (a dozen fields written, nothing read).
-- @module streamctl.trace.otlp

local json = require "streamctl.base.json"
local spanrecord = require "streamctl.base.spanrecord"
local version = require "streamctl.version"
local core = require "streamctl.core"
local core_span, core_record = core.otlp_span, core.otlp_record

local type, pairs, tostring = type, pairs, tostring
local byte, char, find, format, gsub, lower, sub = string.byte, string.char, string.find, string.format,
  string.gsub, string.lower, string.sub
local concat, sort = table.concat, table.sort
local floor, huge = math.floor, math.huge
local math_type = math.type -- (nil under LuaJIT: every number is a double)
local pack, unpack = string.pack, string.unpack

local M = {}

local CONTENT_TYPE = { ["http/protobuf"] = "application/x-protobuf", ["http/json"] = "application/json" }
local KIND = { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 }
local STATUS = { unset = 0, ok = 1, error = 2 }
local SCOPE = "streamctl"

local TWO32, TWO63 = 2 ^ 32, 2 ^ 63 -- (floats under Lua 5.4 too: products of them never wrap)

local function bad(what)
  error("bad argument to 'encode' (" .. what .. ")", 0)
end

-- Where a value sits, for a message: spans[si](.events[ei])(.field); made
-- only when something is wrong (the places are passed as numbers).
local function place(si, ei, field)
  return "spans[" .. si .. "]" .. (ei and ".events[" .. ei .. "]" or "") .. (field and "." .. field or "")
end

--- Text as UTF-8: `s` itself when it is (the usual case: one scan), else
-- each byte that starts no valid sequence (overlong, a surrogate, beyond
-- U+10FFFF, cut short) replaced by U+FFFD. Hand-written: LuaJIT has no
-- utf8 library, and Lua 5.4's only finds the first bad byte.
local function utf8(s)
  local i = find(s, "[\128-\255]")
  if not i then return s end
  local out, n, len = {}, 0, #s
  local from = 1
  while i do
    local c, need = byte(s, i), 0
    if c >= 0xC2 and c <= 0xDF then need = 1 elseif c >= 0xE0 and c <= 0xEF then need = 2
    elseif c >= 0xF0 and c <= 0xF4 then need = 3 end
    local ok = need > 0 and i + need <= len
    if ok then
      for k = 1, need do
        local b = byte(s, i + k)
        if b < 0x80 or b > 0xBF then ok = false break end
      end
      local b2 = byte(s, i + 1)
      if c == 0xE0 and b2 < 0xA0 or c == 0xED and b2 > 0x9F or c == 0xF0 and b2 < 0x90 or c == 0xF4 and b2 > 0x8F
      then ok = false end
    end
    if ok then
      i = i + need + 1
    else
      out[n + 1], out[n + 2], n = sub(s, from, i - 1), "\239\191\189", n + 2
      i = i + 1
      from = i
    end
    i = find(s, "[\128-\255]", i)
  end
  if from == 1 then return s end
  out[n + 1] = sub(s, from)
  return concat(out)
end
M.utf8 = utf8

-- ---------------------------------------------------------------- numbers

--- A varint of a whole number in [0, 2^53).
local function varint(n)
  if n < 128 then return char(n) end
  if n < 16384 then return char(n % 128 + 128, floor(n / 128)) end
  local s = ""
  while n >= 128 do
    s = s .. char(n % 128 + 128)
    n = floor(n / 128)
  end
  return s .. char(n)
end

--- An integral value in int64's range as its two's complement: the low and
-- the high 32 bits, each a whole number in [0, 2^32).
local function int_words(v)
  if math_type and math_type(v) == "integer" then
    local lo, hi = unpack("<I4I4", pack("<i8", v))
    return lo, hi
  end
  local a = v < 0 and -v or v
  local hi = floor(a / TWO32)
  local lo = a - hi * TWO32
  if v < 0 then
    if lo == 0 then hi = (TWO32 - hi) % TWO32 else lo, hi = TWO32 - lo, TWO32 - 1 - hi end
  end
  return lo, hi
end

--- int64's varint from its two 32-bit words (ten bytes for a negative one).
local function varint64(lo, hi)
  local s = ""
  while hi > 0 or lo >= 128 do
    s = s .. char(lo % 128 + 128)
    lo = floor(lo / 128) + (hi % 128) * 33554432 -- (2^25: hi's low 7 bits move above lo's 25 left)
    hi = floor(hi / 128)
  end
  return s .. char(lo)
end

-- A 64-bit little-endian double.
local double_bytes
if pack then
  double_bytes = function(v) return pack("<d", v) end
else
  local ffi = require "ffi"
  local box = ffi.new("double[1]")
  local le = ffi.abi("le")
  double_bytes = function(v)
    box[0] = v
    local s = ffi.string(box, 8)
    return le and s or s:reverse()
  end
end

local function is_int(v)
  return v == floor(v) and v >= -TWO63 and v < TWO63
end

-- An integral number's decimal digits (exact for every double; "%d" for 5.4's integers).
local function decimal(v)
  if v == 0 then return "0" end
  if math_type and math_type(v) == "integer" then return format("%d", v) end
  return format("%.0f", v)
end

--- A time (Unix seconds) as whole microseconds, rounded to the nearest one:
-- exact in a double (below 2^53 until the year 2255). The whole seconds and
-- the fraction apart (both exact): t * 1e6 itself would be rounded to a
-- quarter of a microsecond first, and a fraction just below a half rounded up.
local function micros(t, si, ei, field)
  if type(t) ~= "number" or not (t >= 0 and t < 9.0e9) then
    bad(place(si, ei, field) .. " must be Unix seconds (a number from 0 to 9e9), got " .. tostring(t))
  end
  local s = floor(t)
  return s * 1000000 + floor((t - s) * 1e6 + 0.5)
end

--- fixed64 nanoseconds (`us` * 1000), little-endian, from exact parts:
-- us = q * 2^32 + r; us * 1000 = (1000 q + carry) * 2^32 + low.
local function fixed64_ns(us)
  local q = floor(us / TWO32)
  local r = us - q * TWO32
  local low = r * 1000
  local carry = floor(low / TWO32)
  local lo, hi = low - carry * TWO32, q * 1000 + carry
  return char(lo % 256, floor(lo / 256) % 256, floor(lo / 65536) % 256, floor(lo / 16777216),
    hi % 256, floor(hi / 256) % 256, floor(hi / 65536) % 256, floor(hi / 16777216))
end

--- The nanoseconds' decimal digits: the microseconds' and "000".
local function ns_decimal(us)
  return us == 0 and "0" or format("%.0f", us) .. "000"
end

-- ---------------------------------------------------------------- ids

-- Two hex digits (either case) -> their byte.
local HEX_BYTE = {}
do
  local digits = "0123456789abcdefABCDEF"
  for i = 1, #digits do
    for j = 1, #digits do
      local a, b = sub(digits, i, i), sub(digits, j, j)
      HEX_BYTE[a .. b] = char(tonumber(a .. b, 16))
    end
  end
end

local function check_id(id, len, si, field)
  if type(id) ~= "string" or #id ~= len or find(id, "%X") then
    bad(place(si, nil, field) .. " must be " .. len .. " hex digits, got " .. tostring(id))
  end
  return id
end

-- ---------------------------------------------------------------- attributes

-- (si nil: the resource's)
local function sorted_keys(attributes, si, ei)
  local keys, n = {}, 0
  for k, v in pairs(attributes) do
    local t = type(v)
    if type(k) ~= "string" or t ~= "string" and t ~= "number" and t ~= "boolean" then
      local where = si and place(si, ei, "attributes") or "resource"
      if type(k) ~= "string" then bad(where .. " has a key that is not a string: " .. tostring(k)) end
      bad(where .. "[" .. json.string(k) .. "] must be a string, number or boolean, got " .. t)
    end
    n = n + 1
    keys[n] = k
  end
  sort(keys)
  return keys, n
end

-- An attribute key's bytes before its value, each encoding's: kept for
-- the keys seen first (spans repeat a few dozen keys), at most KEYS_KEPT of them.
local KEYS_KEPT = 512
local KEY_PB, KEY_JSON, kept_pb, kept_json = {}, {}, 0, 0

local function key_pb(k)
  local e = KEY_PB[k]
  if e then return e end
  local key = utf8(k)
  e = key == "" and "" or "\10" .. varint(#key) .. key
  if kept_pb < KEYS_KEPT then KEY_PB[k], kept_pb = e, kept_pb + 1 end
  return e
end

local function key_json(k)
  local e = KEY_JSON[k]
  if e then return e end
  e = '{"key":' .. json.string(utf8(k)) .. ',"value":'
  if kept_json < KEYS_KEPT then KEY_JSON[k], kept_json = e, kept_json + 1 end
  return e
end

-- protobuf: AnyValue's oneof (its default values written all the same: a oneof has presence)
local function any_pb(v)
  local t = type(v)
  if t == "string" then
    v = utf8(v)
    return "\10" .. varint(#v) .. v
  elseif t == "boolean" then
    return v and "\16\1" or "\16\0"
  elseif is_int(v) then
    return "\24" .. varint64(int_words(v == 0 and 0 or v))
  end
  return "\33" .. double_bytes(v)
end

-- protobuf: repeated KeyValue `tag` (one LEN field each), sorted by key.
-- (the Lua encoder: spans the C one leaves to it, and the resource)
local function attributes_pb(out, n, tag, attributes, si, ei)
  if not attributes then return n end
  local keys, count = sorted_keys(attributes, si, ei)
  for i = 1, count do
    local k = keys[i]
    local value = any_pb(attributes[k])
    local kv = key_pb(k) .. "\18" .. varint(#value) .. value
    out[n + 1], out[n + 2], out[n + 3], n = tag, varint(#kv), kv, n + 3
  end
  return n
end

local function double_json(v)
  if v ~= v then return '"NaN"' end
  if v == huge then return '"Infinity"' elseif v == -huge then return '"-Infinity"' end
  local s = format("%.15g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  return s
end

local function any_json(v)
  local t = type(v)
  if t == "string" then return '{"stringValue":' .. json.string(utf8(v)) .. "}" end
  if t == "boolean" then return v and '{"boolValue":true}' or '{"boolValue":false}' end
  if is_int(v) then return '{"intValue":"' .. decimal(v) .. '"}' end
  return '{"doubleValue":' .. double_json(v) .. "}"
end

-- JSON: `,"attributes":[...]` (nothing when there are none), sorted by key.
local function attributes_json(attributes, first, si, ei)
  if not attributes then return "" end
  local keys, count = sorted_keys(attributes, si, ei)
  if count == 0 then return "" end
  local parts = {}
  for i = 1, count do
    local k = keys[i]
    parts[i] = key_json(k) .. any_json(attributes[k]) .. "}"
  end
  return (first and '"attributes":[' or ',"attributes":[') .. concat(parts, ",") .. "]"
end

-- ---------------------------------------------------------------- a span's parts, checked once

-- What both encodings need of a span, checked: its times in microseconds,
-- kind and status numbers, text made UTF-8.
local function fields(s, i)
  if type(s) ~= "table" then bad(place(i) .. " must be a table, got " .. type(s)) end
  local kind = KIND[s.kind]
  if not kind then bad(place(i, nil, "kind") .. " must be one of internal, server, client, producer, consumer") end
  if type(s.name) ~= "string" then bad(place(i, nil, "name") .. " must be a string") end
  local status, code = s.status, 0
  if status ~= nil then
    code = type(status) == "table" and STATUS[status.code]
    if not code then bad(place(i, nil, "status.code") .. " must be ok, error or unset") end
  end
  local ts = s.trace_state
  if ts ~= nil and type(ts) ~= "string" then bad(place(i, nil, "trace_state") .. " must be a string") end
  return {
    i = i, kind = kind, code = code, name = utf8(s.name),
    trace_state = ts ~= nil and ts ~= "" and utf8(ts) or nil,
    message = code == 2 and status.message ~= nil and utf8(tostring(status.message)) or nil,
    trace_id = check_id(s.trace_id, 32, i, "trace_id"), span_id = check_id(s.span_id, 16, i, "span_id"),
    parent = s.parent_span_id ~= nil and check_id(s.parent_span_id, 16, i, "parent_span_id") or nil,
    start_us = micros(s.start_time, i, nil, "start_time"), end_us = micros(s.end_time, i, nil, "end_time"),
  }
end

local function event_fields(e, si, ei)
  if type(e) ~= "table" then bad(place(si, ei) .. " must be a table") end
  if e.name ~= nil and type(e.name) ~= "string" then bad(place(si, ei, "name") .. " must be a string") end
  return utf8(e.name or ""), micros(e.time, si, ei, "time")
end

-- ---------------------------------------------------------------- protobuf

local function len_field(tag, body)
  return tag .. varint(#body) .. body
end

local function span_pb(s, f)
  local out = { "\10\16", (gsub(f.trace_id, "%x%x", HEX_BYTE)), "\18\8", (gsub(f.span_id, "%x%x", HEX_BYTE)) }
  local n = 4
  if f.trace_state then out[n + 1], n = len_field("\26", f.trace_state), n + 1 end
  if f.parent then out[n + 1], out[n + 2], n = "\34\8", (gsub(f.parent, "%x%x", HEX_BYTE)), n + 2 end
  if f.name ~= "" then out[n + 1], n = len_field("\42", f.name), n + 1 end
  out[n + 1], out[n + 2], n = "\48", char(f.kind), n + 2
  if f.start_us ~= 0 then out[n + 1], out[n + 2], n = "\57", fixed64_ns(f.start_us), n + 2 end
  if f.end_us ~= 0 then out[n + 1], out[n + 2], n = "\65", fixed64_ns(f.end_us), n + 2 end
  n = attributes_pb(out, n, "\74", s.attributes, f.i)
  local events = s.events
  for j = 1, events and #events or 0 do
    local name, us = event_fields(events[j], f.i, j)
    local ev = { us ~= 0 and "\9" .. fixed64_ns(us) or "", name ~= "" and len_field("\18", name) or "" }
    local en = attributes_pb(ev, 2, "\26", events[j].attributes, f.i, j)
    out[n + 1], n = len_field("\90", concat(ev, "", 1, en)), n + 1
  end
  if s.status ~= nil and f.code ~= 0 then
    local st = (f.message and f.message ~= "" and len_field("\18", f.message) or "") .. "\24" .. char(f.code)
    out[n + 1], n = len_field("\122", st), n + 1
  end
  return concat(out, "", 1, n)
end

--- One span's Span message (protobuf): streamctl.core's encoder (C, the
-- same bytes), else, for a span it does not take as it is, this file's,
-- which says what is wrong (it raises) or mends it (text not UTF-8). `i`:
-- its place, for a message (default 1).
function M.span_pb(s, i)
  return core_span(s) or span_pb(s, fields(s, i or 1))
end

--- A record's Span message (streamctl.base.spanrecord: what a client
-- hands its tracer): the same bytes as `span_pb` of its plain table, made
-- in C from the record, or by `span_pb` of the plain table when the C
-- encoder does not take the record as it is.
function M.record_pb(rec, i)
  return core_record(rec) or M.span_pb(spanrecord.plain(rec), i)
end

--- The Lua encoder's Span message alone (spec/trace/01 holds the C one to it).
function M._lua_span_pb(s, i)
  return span_pb(s, fields(s, i or 1))
end

--- What an export request (protobuf) holds besides its spans: the
-- ResourceSpans' `resource` field and the ScopeSpans' `scope` field, each
-- whole (tag, length, bytes). An exporter makes them once; its queue
-- (streamctl.core's otlp_queue) puts its spans between them.
function M.request_parts(resource)
  if resource ~= nil and type(resource) ~= "table" then bad("resource must be a table of attributes") end
  local res = {}
  local rn = attributes_pb(res, 0, "\10", resource)
  local scope = len_field("\10", SCOPE) .. len_field("\18", version._VERSION)
  return len_field("\10", concat(res, "", 1, rn)), len_field("\10", scope)
end

--- An export request (protobuf) of spans already encoded (`span_pb`'s).
function M.request_pb(encoded, resource)
  local resource_field, scope_field = M.request_parts(resource)
  local ss = { scope_field }
  for i = 1, #encoded do ss[i + 1] = len_field("\18", encoded[i]) end
  return len_field("\10", resource_field .. len_field("\18", concat(ss)))
end

local function encode_pb(spans, resource)
  local encoded = {}
  for i = 1, #spans do encoded[i] = M.span_pb(spans[i], i) end
  return M.request_pb(encoded, resource)
end

-- ---------------------------------------------------------------- JSON

local function span_json(s, f)
  local out = { '{"traceId":"', lower(f.trace_id), '","spanId":"', lower(f.span_id), '"' }
  local n = 5
  if f.trace_state then out[n + 1], n = ',"traceState":' .. json.string(f.trace_state), n + 1 end
  if f.parent then out[n + 1], n = ',"parentSpanId":"' .. lower(f.parent) .. '"', n + 1 end
  out[n + 1], n = ',"name":' .. json.string(f.name) .. ',"kind":' .. f.kind, n + 1
  if f.start_us ~= 0 then out[n + 1], n = ',"startTimeUnixNano":"' .. ns_decimal(f.start_us) .. '"', n + 1 end
  if f.end_us ~= 0 then out[n + 1], n = ',"endTimeUnixNano":"' .. ns_decimal(f.end_us) .. '"', n + 1 end
  out[n + 1], n = attributes_json(s.attributes, false, f.i), n + 1
  local events = s.events
  if events and #events > 0 then
    local evs = {}
    for j = 1, #events do
      local name, us = event_fields(events[j], f.i, j)
      local parts = {}
      if us ~= 0 then parts[#parts + 1] = '"timeUnixNano":"' .. ns_decimal(us) .. '"' end
      if name ~= "" then parts[#parts + 1] = '"name":' .. json.string(name) end
      local attrs = attributes_json(events[j].attributes, true, f.i, j)
      if attrs ~= "" then parts[#parts + 1] = attrs end
      evs[j] = "{" .. concat(parts, ",") .. "}"
    end
    out[n + 1], n = ',"events":[' .. concat(evs, ",") .. "]", n + 1
  end
  if s.status ~= nil and f.code ~= 0 then
    out[n + 1], n = ',"status":{' .. (f.message and f.message ~= "" and '"message":' .. json.string(f.message) .. ","
      or "") .. '"code":' .. f.code .. "}", n + 1
  end
  out[n + 1] = "}"
  return concat(out, "", 1, n + 1)
end

local function encode_json(spans, resource)
  local list = {}
  for i = 1, #spans do
    local s = spans[i]
    list[i] = span_json(s, fields(s, i))
  end
  return '{"resourceSpans":[{"resource":{' .. attributes_json(resource, true)
    .. '},"scopeSpans":[{"scope":{"name":' .. json.string(SCOPE) .. ',"version":' .. json.string(version._VERSION)
    .. '},"spans":[' .. concat(list, ",") .. "]}]}]}"
end

--- The body of an OTLP/HTTP export of `spans` and its Content-Type.
-- @tparam {table,...} spans streamctl's span tables (above)
-- @tparam[opt] table resource the resource's attributes (`{ ["service.name"] = "..." }`)
-- @tparam[opt="http/protobuf"] string protocol "http/protobuf" or "http/json"
-- @treturn string the body
-- @treturn string its Content-Type
-- @raise when a span, an attribute or the protocol breaks its rule (misuse)
function M.encode(spans, resource, protocol)
  protocol = protocol or "http/protobuf"
  local content_type = CONTENT_TYPE[protocol]
  if not content_type then bad("protocol must be http/protobuf or http/json, got " .. tostring(protocol)) end
  if type(spans) ~= "table" then bad("spans must be a list of spans, got " .. type(spans)) end
  if resource ~= nil and type(resource) ~= "table" then bad("resource must be a table of attributes") end
  if protocol == "http/json" then return encode_json(spans, resource), content_type end
  return encode_pb(spans, resource), content_type
end

return M
