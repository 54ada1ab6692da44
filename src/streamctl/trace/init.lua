--- Tracing set up the way OpenTelemetry's SDKs are, from the environment:
-- an OTLP/HTTP exporter (streamctl.trace.exporter) and its sampler
-- (streamctl.trace.sampler), for the command, a script or an nginx worker.
--
--   local tracer = assert(require("streamctl.trace").from_env { service_name = "nightly" })
--   local z = streamctl.zego.new { ..., on_span = tracer.on_span, sampler = tracer.sampler }
--   ...
--   tracer:shutdown(2)
--
-- The variables read (the OpenTelemetry specification's names; a
-- traces-only one, `..._TRACES_...`, wins over the general one):
--
--   OTEL_SDK_DISABLED                    "true": no tracer
--   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   the collector's URL for traces, as it is
--   OTEL_EXPORTER_OTLP_ENDPOINT          its base URL: "/v1/traces" is added
--                                        (neither set: no tracer)
--   OTEL_EXPORTER_OTLP_[TRACES_]HEADERS  "name=value,..." (values percent-decoded)
--   OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL http/protobuf (default) or http/json
--   OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT  ms a request may take (10000)
--   OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE  a CA file to verify the collector by
--   OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION  none only
--   OTEL_SERVICE_NAME                    the resource's service.name
--   OTEL_RESOURCE_ATTRIBUTES             "key=value,..." more resource attributes
--   OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG  streamctl.trace.sampler's names
--   OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_SCHEDULE_DELAY (ms)
--
-- A variable that breaks its rule is refused, named (`nil, why`): the
-- specification lets an SDK warn and go on, but this project refuses
-- input it cannot read whole.
-- @module streamctl.trace

local exporter = require "streamctl.trace.exporter"
local sampler = require "streamctl.trace.sampler"
local url = require "streamctl.base.url"
local header_fields = require("streamctl.transport.common").header_fields

local os_getenv, tonumber, type, floor, ipairs, error = os.getenv, tonumber, type, math.floor, ipairs, error
local format, gmatch, match, lower = string.format, string.gmatch, string.match, string.lower

local M = {}

M.exporter, M.sampler = exporter, sampler

-- "key=value,..." (W3C Baggage's form, which the specification names for
-- the headers and resource attributes): a table, or nil and why.
local function pairs_list(text, name)
  local out = {}
  for item in gmatch(text .. ",", "([^,]*),") do
    item = match(item, "^%s*(.-)%s*$")
    if item ~= "" then
      local k, v = match(item, "^([^=]-)%s*=%s*(.*)$")
      local value = v and url.unescape(v)
      if not k or k == "" or not value then
        return nil, format("%s has '%s': each item must be key=value (the value percent-encoded)", name, item)
      end
      out[k] = value
    end
  end
  return out
end

local function integer(text, name, min, max)
  local n = tonumber(text)
  if not n or n ~= floor(n) or n < min or n > max then
    return nil, format("%s is '%s': it must be a whole number from %d to %d", name, text, min, max)
  end
  return n
end

-- A variable's value, the traces-only one first: value, its name.
local function either(getenv, suffix)
  local name = "OTEL_EXPORTER_OTLP_TRACES_" .. suffix
  local v = getenv(name)
  if v ~= nil and v ~= "" then return v, name end
  name = "OTEL_EXPORTER_OTLP_" .. suffix
  v = getenv(name)
  if v ~= nil and v ~= "" then return v, name end
  return nil
end

-- The exporter's options from the environment, or nil (no tracer asked
-- for), or nil and why.
local function options(getenv, service_name)
  local disabled = getenv("OTEL_SDK_DISABLED")
  if disabled and lower(disabled) == "true" then return nil end
  local o = { resource = {} }
  local ename = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
  local given = getenv(ename)
  local endpoint = given
  if endpoint == nil or endpoint == "" then
    ename = "OTEL_EXPORTER_OTLP_ENDPOINT"
    given = getenv(ename)
    if given == nil or given == "" then return nil end
    endpoint = (given:gsub("/+$", "")) .. "/v1/traces"
  end
  local ok, bad = exporter.check_endpoint(endpoint)
  -- (a URL with user information is not echoed: it may hold a password)
  if not ok then return nil, format("%s is '%s': it %s", ename, given:find("@", 1, true) and "..." or given, bad) end
  o.endpoint = endpoint
  local v, name = either(getenv, "HEADERS")
  if v then
    local h, why = pairs_list(v, name)
    if not h then return nil, why end
    ok, why = header_fields(h)
    if not ok then return nil, name .. ": " .. why end
    o.headers = h
  end
  v, name = either(getenv, "PROTOCOL")
  if v then
    if v ~= "http/protobuf" and v ~= "http/json" then
      return nil, format("%s is '%s': it must be http/protobuf or http/json (OTLP over gRPC is not supported)",
        name, v)
    end
    o.protocol = v
  end
  v, name = either(getenv, "TIMEOUT")
  if v then
    local why
    o.timeout_ms, why = integer(v, name, 1, 600000)
    if not o.timeout_ms then return nil, why end
  end
  v = either(getenv, "CERTIFICATE")
  o.ca_file = v
  v, name = either(getenv, "COMPRESSION")
  if v and v ~= "none" then return nil, format("%s is '%s': only none is supported", name, v) end
  for _, b in ipairs { { "OTEL_BSP_MAX_QUEUE_SIZE", "max_queue", 1000000 },
                       { "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "max_batch", 100000 },
                       { "OTEL_BSP_SCHEDULE_DELAY", "interval_ms", 3600000 } } do
    v = getenv(b[1])
    if v ~= nil and v ~= "" then
      local why
      o[b[2]], why = integer(v, b[1], 1, b[3])
      if not o[b[2]] then return nil, why end
    end
  end
  v = getenv("OTEL_RESOURCE_ATTRIBUTES")
  if v and v ~= "" then
    local r, why = pairs_list(v, "OTEL_RESOURCE_ATTRIBUTES")
    if not r then return nil, why end
    o.resource = r
  end
  v = getenv("OTEL_SERVICE_NAME")
  o.resource["service.name"] = (v ~= nil and v ~= "" and v) or o.resource["service.name"] or service_name
  local sname, sarg = getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG")
  if sarg == "" then sarg = nil end
  local s, why = sampler.new(sname ~= nil and sname ~= "" and sname or "parentbased_always_on", sarg)
  if not s then return nil, "OTEL_TRACES_SAMPLER: " .. why end
  o.sampler = s
  return o
end

--- A tracer (an exporter: `on_span`, `sampler`, `flush`, `shutdown`,
-- `stats`) from the environment; nil when none is asked for
-- (OTEL_SDK_DISABLED=true, or no endpoint); nil and why (naming the
-- variable and its rule) when a variable breaks its rule.
-- @param opts `{ getenv = os.getenv, service_name, metrics, exit_seconds }`
function M.from_env(opts)
  opts = opts or {}
  local getenv = opts.getenv or os_getenv
  if type(getenv) ~= "function" then error("bad argument #1 to 'from_env' (getenv must be a function)", 2) end
  local o, why = options(getenv, opts.service_name or "unknown_service:streamctl")
  if not o then return nil, why end
  o.metrics, o.exit_seconds = opts.metrics, opts.exit_seconds
  return exporter.new(o)
end

return M
