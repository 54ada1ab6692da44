--- W3C Trace Context (https://www.w3.org/TR/trace-context/): the
-- `traceparent` and `tracestate` headers read and written, and new ids.
--
--   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
--                 2, 32, 16 and 2 lowercase hex digits; version ff invalid; a trace-id or
--                 parent-id of zeros invalid; version 00 exactly 55 characters; a later
--                 version its four fields then, when longer, "-" and more (read as 00)
--   tracestate  = up to 32 list-members "key=value", joined by ",", blanks around each
--                 allowed; key: a-z then up to 255 of a-z 0-9 _ - * /, or tenant@system
--                 (up to 241 and 14); value: up to 256 printable characters but "," and
--                 "=", not ending in a space
--
-- As the specification says, a `traceparent` that breaks its rule is
-- ignored (a new trace starts), never an error and never sent on; a
-- `tracestate` that breaks its rule is dropped alone. New ids come from
-- OpenSSL (streamctl.core's random_id); an id of zeros is drawn again.
-- @module streamctl.base.tracecontext

local core = require "streamctl.core"

local type, ipairs = type, ipairs
local find, match, sub, gsub = string.find, string.match, string.sub, string.gsub
local concat, tonumber = table.concat, tonumber

local M = {}

local ZEROS32, ZEROS16 = string.rep("0", 32), string.rep("0", 16)

--- A `traceparent`: `{ trace_id, parent_id, flags, sampled }`, or nil
-- (absent, or breaking its rule: ignored).
function M.parse_parent(text)
  if type(text) ~= "string" then return nil end
  text = gsub(gsub(text, "^[ \t]+", ""), "[ \t]+$", "")
  local version, trace_id, parent_id, flags, rest = match(text,
    "^(%x%x)%-(%x+)%-(%x+)%-(%x%x)(.*)$")
  if not version or find(text, "%u") then return nil end
  if version == "ff" or #trace_id ~= 32 or #parent_id ~= 16 then return nil end
  if version == "00" and rest ~= "" then return nil end
  if rest ~= "" and sub(rest, 1, 1) ~= "-" then return nil end
  if trace_id == ZEROS32 or parent_id == ZEROS16 then return nil end
  local f = tonumber(flags, 16)
  return { trace_id = trace_id, parent_id = parent_id, flags = flags, sampled = f % 2 == 1 }
end

local KEY = "^[a-z][a-z0-9_%-%*/]*$"
local TENANT, SYSTEM = "^[a-z0-9][a-z0-9_%-%*/]*$", "^[a-z][a-z0-9_%-%*/]*$"

local function key_ok(k)
  local tenant, system = match(k, "^([^@]*)@([^@]*)$")
  if tenant then
    return #tenant >= 1 and #tenant <= 241 and #system >= 1 and #system <= 14 and find(tenant, TENANT) ~= nil
      and find(system, SYSTEM) ~= nil
  end
  return #k <= 256 and find(k, KEY) ~= nil
end

local function value_ok(v)
  return #v >= 1 and #v <= 256 and not find(v, "[^\32-\126]") and not find(v, "[,=]") and sub(v, -1) ~= " "
end

--- A `tracestate`, its members in order (`{ { key, value }, ... }`, at
-- most 32, each key once), and its text as it is to be sent on; or nil
-- (breaking its rule: dropped). Empty members are skipped, as the
-- specification allows.
function M.parse_state(text)
  if type(text) ~= "string" then return nil end
  local members, seen = {}, {}
  for item in (text .. ","):gmatch("([^,]*),") do
    item = gsub(gsub(item, "^[ \t]+", ""), "[ \t]+$", "")
    if item ~= "" then
      local k, v = match(item, "^([^=]+)=(.*)$")
      if not k or not key_ok(k) or not value_ok(v) or seen[k] then return nil end
      seen[k] = true
      members[#members + 1] = { k, v }
      if #members > 32 then return nil end
    end
  end
  if #members == 0 then return nil end
  local parts = {}
  for i, m in ipairs(members) do parts[i] = m[1] .. "=" .. m[2] end
  return members, concat(parts, ",")
end

--- A new id of `n` bytes (2n hex digits, lower case, never all zeros:
-- OpenSSL's, streamctl.core's random_id): `new_id(16)` a trace id,
-- `new_id(8)` a span id.
M.new_id = core.random_id

--- A new trace id (32 hex digits) and span id (16).
function M.new_trace_id() return M.new_id(16) end
function M.new_span_id() return M.new_id(8) end

--- Whether `id` is a trace id: 32 lower-case hex digits, not all zeros.
function M.is_trace_id(id)
  return type(id) == "string" and #id == 32 and not find(id, "[^0-9a-f]") and id ~= ZEROS32
end

--- The context a caller hands in (a client's, a call's `trace` option):
-- `{ traceparent, tracestate, trace_id }` or a `traceparent` string. Its
-- trace when valid: `{ trace_id, parent_id, sampled, tracestate }`
-- (tracestate: the text to send on, or nil); else a new trace, `{ trace_id,
-- sampled = true }` (the id `trace_id` when given: a caller that must know
-- it before the call, such as to write it in an audit record), and
-- `ignored` says why the traceparent given was not taken.
function M.from(given)
  local parent_text, state_text, id = given, nil, nil
  if type(given) == "table" then
    parent_text, state_text, id = given.traceparent, given.tracestate, given.trace_id
  end
  local p = M.parse_parent(parent_text)
  if not p then
    return { trace_id = id or M.new_trace_id(), sampled = true },
      parent_text ~= nil and "the traceparent breaks its rule: a new trace" or nil
  end
  local _, state = M.parse_state(state_text)
  return { trace_id = p.trace_id, parent_id = p.parent_id, sampled = p.sampled, tracestate = state }
end

--- OpenTelemetry's default sampler, parent-based always-on, as a client's
-- `sampler` (`(trace_id, parent) -> boolean`, streamctl.trace.sampler's
-- "parentbased_always_on"): the parent's choice, and yes at a root. A
-- client whose sampler is this function decides as it does without calling
-- it (streamctl.pipeline.spans).
function M.parentbased_always_on(_, parent) return parent == nil or parent.sampled == true end

--- A new span in trace `ctx`: its id (16 hex digits, as `new_id(8)`'s)
-- and the `traceparent` that names it (version 00; flags 01 when the trace
-- is sampled, else 00): `traceparent(ctx.trace_id, ctx.sampled)`, one call
-- to streamctl.core for what each traced request sends.
M.traceparent = core.traceparent

return M
