--- A span as a record: one flat array, the form in which a client hands
-- its spans to a `tracer` (streamctl.trace's exporter, or an object of its
-- own with `record(self, rec)`), and from which the plain table a client's
-- `on_span` gets is made (`plain`).
--
-- Why a second form: the plain table is four tables (the span, its
-- attributes, events and status) with a dozen string keys, made for every
-- span and read back key by key by the encoder. A record is one table of
-- what changes from span to span, in slots of a fixed order; what does not
-- change (the name, the kind, the attributes a client and an action fix)
-- is its template's, made once per client and action, its bytes encoded
-- once (streamctl.core's otlp_template). The exporter's encoder
-- (otlp_record) reads a record by index and copies the template's bytes:
-- docs/tracing.md, "What it costs".
--
--   rec[1]   its template (`template`)
--   rec[2]   trace_id (32 hex digits)     rec[3]  span_id (16)
--   rec[4]   parent_span_id or nil        rec[5]  trace_state or nil
--   rec[6]   start_time, rec[7] end_time (Unix seconds)
--   rec[8]   status: 0 unset, 1 ok, 2 error
--   rec[9]   the status's message or nil
--   rec[10]  an event or nil: `{ name, time, attributes }`, as a plain span's
--   rec[11]  more attributes or nil: `{ [key] = value }`, keys the template
--            names neither way
--   rec[11 + i]  the value of the template's i-th name (`names`), nil when
--            the span has none
--
-- A record is made by streamctl.pipeline.spans. A tracer reads
-- it in its `record` call and keeps nothing of it: a tracer that keeps a
-- span keeps its encoding, or `plain(rec)`. A tracer may also have
-- `put(self, ...)`, which takes a record's slots as arguments, from its
-- template on (`put(self, table.unpack(rec, 1, 11 + #template.names))`):
-- the same span with no table made for it. A client hands its spans so
-- when it has no `on_span` (which needs the plain table).
-- @module streamctl.base.spanrecord

local core = require "streamctl.core"

local pairs, ipairs, type, error, tostring = pairs, ipairs, type, error, tostring

local M = {}

-- The kinds (OTLP's SpanKind numbers) and the slots, by name (above).
M.INTERNAL, M.CLIENT = 1, 3
M.TEMPLATE, M.TRACE_ID, M.SPAN_ID, M.PARENT, M.STATE, M.START, M.END, M.STATUS, M.MESSAGE, M.EVENT, M.MORE =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
M.VALUES = 11 -- (the i-th name's value is at VALUES + i)

local KINDS = { "internal", "server", "client", "producer", "consumer" }
local CODES = { [1] = "ok", [2] = "error" }

--- A template: the span's `name`, its `kind` (INTERNAL, CLIENT), the
-- `names` of the attributes its records give values to (sorted), and its
-- `constants` (`{ [key] = value }`, strings, numbers or booleans: the
-- attributes every span of it has). Every name must sort wholly before or
-- wholly after the constants (their keys in one run), so that its bytes
-- go between the names' in the Lua encoder's order; raises otherwise (a
-- template is the pipeline's, made from its own names).
--
-- Its slots, read by streamctl.core's encoder: [1] the Span's name and
-- kind fields, encoded; [2] its constant attributes' fields, encoded; [3]
-- how many names sort before the constants; [4] `names`; [5] their key
-- fields, encoded (each after a byte of its length).
function M.template(name, kind, names, constants)
  local head, fixed, keys = core.otlp_template(name, kind, constants, names)
  if not head then error("spanrecord.template: " .. tostring(fixed), 2) end
  local first, last
  for k in pairs(constants) do
    if first == nil or k < first then first = k end
    if last == nil or k > last then last = k end
  end
  local before = 0
  for i, n in ipairs(names) do
    if i > 1 and names[i - 1] >= n then error("spanrecord.template: names must be sorted, each once", 2) end
    if first and n >= first and n <= last then
      error("spanrecord.template: '" .. n .. "' sorts among the constants", 2)
    end
    if first and n < first then before = i end
  end
  return { head, fixed, before, names, keys, name = name, kind = kind, names = names, constants = constants }
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- The plain table of a record, as a client's `on_span` gets it (its
-- tables its own: none shared with the record):
--
--   { trace_id, span_id, parent_span_id, trace_state, name, kind = "internal" | "client",
--     start_time, end_time, attributes = { [key] = value }, events = { { name, time, attributes } },
--     status = { code = "ok" | "error", message } }
function M.plain(rec)
  local t = rec[M.TEMPLATE]
  local attributes = copy(t.constants)
  local names = t.names
  for i = 1, #names do
    local v = rec[M.VALUES + i]
    if v ~= nil then attributes[names[i]] = v end
  end
  for k, v in pairs(rec[M.MORE] or {}) do attributes[k] = v end
  local e = rec[M.EVENT]
  local code = CODES[rec[M.STATUS]]
  return { trace_id = rec[M.TRACE_ID], span_id = rec[M.SPAN_ID], parent_span_id = rec[M.PARENT],
           trace_state = rec[M.STATE], name = t.name, kind = KINDS[t.kind],
           start_time = rec[M.START], end_time = rec[M.END], attributes = attributes,
           events = e and { { name = e.name, time = e.time, attributes = copy(e.attributes) } } or {},
           status = code and { code = code, message = code == "error" and rec[M.MESSAGE] or nil } or nil }
end

return M
