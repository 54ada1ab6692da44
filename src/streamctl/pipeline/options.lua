--- A client's options: the schema every client takes, the rules of its
-- values (endpoint, credentials, caps), and the rules between options.
--
-- `schema(rules)` is the common options, then the provider's own
-- (`rules.options`), then the built-in transport's; `check(rules, schema,
-- opts)` returns the parsed options or `nil, message [, code]`, the message
-- naming the option and the rule (streamctl.base.validate), or the two options
-- that cannot go together. Nothing here reads the environment
-- (streamctl.credentials does) or builds anything.
-- @module streamctl.pipeline.options

local core = require "streamctl.core"
local validate = require "streamctl.base.validate"
local retry = require "streamctl.engine.retry"
local ratelimit = require "streamctl.engine.ratelimit"
local transport_common = require "streamctl.transport.common"
local stores = require "streamctl.pipeline.stores"
local url = require "streamctl.base.url"
local tracecontext = require "streamctl.base.tracecontext"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local huge = math.huge
local format, lower, find = string.format, string.lower, string.find

local M = {}

--- The lowest `max_rate` (and command-line `--rate`) accepted, in requests
-- per second: one request every 10,000 s (2 h 47 min), slower than any pace
-- anyone asks of a stream switch. Below some rate pacing cannot keep its
-- word: the Redis store caps an interval at a year (a slower rate would run
-- faster than asked), and from about 5e-324 the interval 1/rate is infinite
-- and the slots' arithmetic NaN, which sends unpaced. A clear floor, named
-- in the message, instead of a limit found by accident.
M.MIN_RATE = 0.0001

--- The longest credential taken, in bytes: key IDs, AppIds and secrets are
-- tens of bytes; an STS security token can run to a few KiB (MAX_TOKEN).
M.MAX_CREDENTIAL = 256
M.MAX_TOKEN = 16384

--- Is `host` (as url.host_port gives it) this machine: 127.0.0.0/8, ::1 or localhost?
function M.is_loopback(host)
  host = lower(host)
  return host == "localhost" or host == "::1" or find(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

--- Parses and checks an endpoint: scheme, host and optional port, no path;
-- https, or http to this machine only.
-- @return { url = "https://host[:port]", host = "host[:port]", scheme = ... }, or nil and
--   the rule broken ("must not have a path, query or fragment")
function M.parse_endpoint(s)
  if type(s) ~= "string" then return nil, "must be a string" end
  if #s > 300 then return nil, "must be at most 300 bytes (got " .. #s .. ")" end
  if find(s, "[%z\r\n%s]") then return nil, "must not contain whitespace, CR, LF or NUL" end
  local scheme, authority, rest = url.split(s)
  if not scheme then return nil, "must look like https://host[:port]" end
  if scheme ~= "https" and scheme ~= "http" then
    return nil, "must use https or http (got " .. scheme .. ")"
  end
  if authority == "" then return nil, "must look like https://host[:port]" end
  if rest ~= "" and rest ~= "/" then return nil, "must not have a path, query or fragment" end
  if url.userinfo(authority) then return nil, "must not carry user information" end
  local host, port, bracketed = url.host_port(authority)
  if port == "port" then return nil, "must have a port in 1..65535" end
  if not host or not (bracketed or url.is_name(host)) then return nil, "must name a valid host" end
  -- Plain HTTP only where nothing but this machine can read or change it (the
  -- emulator's HTTP ports): the providers answer over TLS, verified always.
  if scheme == "http" and not M.is_loopback(host) then
    return nil, "must use https (plain http only for this machine: 127.0.0.1, ::1, localhost)"
  end
  local base = scheme .. "://" .. lower(authority)
  -- query_url: what a request's query string follows
  return { scheme = scheme, url = base, query_url = base .. "/?", host = lower(authority) }
end

--- Checks a value that will reach a header (a key id, a token): the rule
-- broken, or nil when it is fine.
-- @param value the value
-- @param max (optional) the most bytes it may have (default MAX_CREDENTIAL)
function M.header_rule(value, max)
  if type(value) ~= "string" or value == "" then return "must be a non-empty string" end
  max = max or M.MAX_CREDENTIAL
  if #value > max then return format("must be at most %d bytes (got %d)", max, #value) end
  if find(value, "[%z\r\n]") then return "must not contain CR, LF or NUL" end
  if find(value, "[%c\128-\255]") then return "must be printable ASCII" end
  return nil
end

--- Is `v` a streamctl.secret (see streamctl.core)?
function M.is_secret(v)
  return core.is_secret(v)
end

--- Checks a secret: a non-empty string or a streamctl.secret; the rule
-- broken, or nil. (The value itself never goes into a message.)
function M.secret_rule(value)
  if not M.is_secret(value) and type(value) ~= "string" then return "must be a string or a streamctl.secret" end
  if #value == 0 then return "must not be empty" end
  if #value > M.MAX_CREDENTIAL then return format("must be at most %d bytes (got %d)", M.MAX_CREDENTIAL, #value) end
  -- Both providers issue secrets in printable ASCII; anything else (most
  -- often a line break read from a file) would only come back as a refused
  -- signature. (A streamctl.secret's bytes are not looked at.)
  if type(value) == "string" and find(value, "[%c\128-\255]") then
    return "must be printable ASCII (a line break or control character in a secret is usually a copy-and-paste "
      .. "mistake)"
  end
  return nil
end

-- A transport: a name, a blocking function, or a table with start and poll.
local TRANSPORT_NAMES = { auto = true, curl = true, ngx = true }
local function check_transport(t)
  if type(t) == "function" then return t end
  if type(t) == "table" and type(t.start) == "function" and type(t.poll) == "function" then return t end
  if TRANSPORT_NAMES[t] then return t end
  return nil, "must be \"auto\", \"curl\", \"ngx\", a function(request) or a table with start and poll"
end

-- The caller's overrides of the caps: every key an action of the provider
-- (or "*"), every value a rate > 0 or false.
local function rate_limits_check(operations)
  local actions = {}
  for a in pairs(operations) do actions[#actions + 1] = a end
  table.sort(actions)
  return function(v)
    if type(v) ~= "table" then return nil, "must be a table of action = requests per second, or false" end
    for k, rate in pairs(v) do
      if k ~= "*" and not operations[k] then
        return nil, format("names '%s', which is not an action%s", tostring(k), validate.hint(tostring(k), actions))
      end
      if rate ~= false and not (type(rate) == "number" and rate > 0 and rate < huge) then
        return nil, format("['%s'] must be a number > 0 (requests per second) or false", k)
      end
    end
    return v
  end
end

local function retry_check(v)
  if type(v) ~= "table" then return nil, "must be a table of retry settings, or false" end
  local ok, why = validate.options(retry.OPTIONS, v, "the retry settings", "retry.")
  if not ok then return nil, why, true end
  return v
end

--- A `trace` option: a `traceparent` string, or `{ traceparent, tracestate,
-- trace_id }` (strings; `trace_id`, 32 lower-case hex digits, is the id of
-- the new trace started when there is no valid traceparent). A traceparent
-- or tracestate is never refused for breaking the header's rule: as the W3C
-- specification says, such a one starts a new trace
-- (streamctl.base.tracecontext.from).
function M.trace_check(v)
  if type(v) == "string" then return v end
  if type(v) ~= "table" then
    return nil, "must be a traceparent string or a table of traceparent, tracestate and trace_id strings"
  end
  for k, x in pairs(v) do
    if k ~= "traceparent" and k ~= "tracestate" and k ~= "trace_id" then
      return nil, "has '" .. tostring(k) .. "': a trace holds traceparent, tracestate and trace_id"
    end
    if type(x) ~= "string" then return nil, "has a " .. type(x) .. " " .. k .. ": it must be a string" end
  end
  if v.trace_id ~= nil and not tracecontext.is_trace_id(v.trace_id) then
    return nil, "has trace_id '" .. v.trace_id .. "': it must be 32 lower-case hex digits, not all zeros"
  end
  return v
end

--- The options a client of `rules` takes: every client's, the provider's
-- own, then the built-in transport's.
function M.schema(rules)
  local schema = {
    { name = "endpoint", type = "custom", check = M.parse_endpoint },
    { name = "concurrency", type = "integer", min = 1, max = 256 },
    { name = "rate_limits", type = "custom", nullable_false = true, check = rate_limits_check(rules.operations) },
    { name = "rate_burst", type = "integer", min = 1, max = 1000 },
    { name = "rate_margin", type = "number", min = 0, max_exclusive = 1 },
    { name = "settle_ms", type = "integer", min = 0, max = 900000 },
    { name = "deadline_ms", type = "integer", min = 1, max = 2147483647 },
    { name = "rate_limit_store", type = "custom", check = ratelimit.check_store },
    { name = "retry", type = "custom", nullable_false = true, check = retry_check },
    { name = "clock", type = "function" },
    { name = "nonce", type = "function" },
    { name = "monotonic", type = "function" },
    { name = "sleep", type = "function" },
    { name = "transport", type = "custom", check = check_transport },
    { name = "on_attempt", type = "function" },
    { name = "cancel", type = "function" },
    { name = "max_rate", type = "number", min = M.MIN_RATE },
    -- (whether the store holding the client's decisions is shared by every decider on its streams:
    -- a call past its window is then sent, renewed; default with `redis` or `shared_dict`:
    -- streamctl.pipeline.decision)
    { name = "decisions_shared", type = "boolean" },
    -- W3C Trace Context (streamctl.base.tracecontext): the trace the client's calls belong to, and
    -- whether each request carries its `traceparent` (default: when a trace is given)
    { name = "trace", type = "custom", check = M.trace_check },
    { name = "traceparent", type = "boolean" },
    { name = "on_span", type = "function" },
    -- (an object that takes spans as records, streamctl.base.spanrecord: streamctl.trace's exporter)
    { name = "tracer", type = "object", methods = { "record" }, optional = { "sampler", "put" } },
    -- (whether an operation in a trace is recorded: `sampler(trace_id, parent) -> boolean`; by
    -- default the parent's choice, or yes at a new trace's root: streamctl.pipeline.spans)
    { name = "sampler", type = "function" },
  }
  -- each store backend's option (streamctl.pipeline.stores: `shared_dict`; `redis`, a config or a
  -- connection object clients may share), its backend loaded only when the option is given
  for _, b in ipairs(stores.BACKENDS) do
    schema[#schema + 1] = { name = b.option, type = "custom", check = stores.RULES[b.option] }
  end
  for _, list in ipairs { rules.options, transport_common.OPTIONS } do
    for _, o in ipairs(list) do schema[#schema + 1] = o end
  end
  return schema
end

--- One option's own check, by name, from `schema`: what `keys.from_options`
-- applies to a value it reads from the environment.
-- @return function(name, value) -> the option's check's returns
function M.check_one(schema)
  local specs = {}
  for _, spec in ipairs(schema) do specs[spec.name] = spec end
  -- (by its type's rule, as options are checked: a custom one's own check, or a string's, ...)
  return function(name, value) return validate.value(specs[name], value, true) end
end

-- The options that cannot go together: the first pair given, as a message.
local function conflict(o, sequenced)
  local transport = o.transport
  if type(transport) == "function" or type(transport) == "table" then
    for _, t in ipairs(transport_common.OPTIONS) do
      if o[t.name] ~= nil then
        return format("option '%s' configures the built-in transport; it cannot be combined with 'transport'", t.name)
      end
    end
  end
  if o.max_rate and o.rate_limits == false then
    return "option 'max_rate' needs pacing; it cannot be combined with rate_limits = false"
  end
  -- (each store backend's option holds the rate-limit state and the Sequences, or those alone
  -- (`decisions`): one of them, or none)
  for i, b in ipairs(stores.BACKENDS) do
    local others = {}
    for k = 1, i - 1 do others[#others + 1] = stores.BACKENDS[k].option end
    if not b.decisions then others[#others + 1] = "rate_limit_store" end
    for _, other in ipairs(others) do
      if o[b.option] and o[other] then
        return format("option '%s' holds the %s; it cannot be combined with '%s'", b.option,
          b.decisions and "decisions and Sequences" or "rate-limit state", other)
      end
    end
  end
  for _, b in ipairs(stores.BACKENDS) do
    if sequenced and o.sequence and o[b.option] then
      return "option '" .. b.option .. "' holds the Sequences; it cannot be combined with 'sequence'"
    end
  end
  return nil
end

--- Checks a client's options against `schema` (from `schema(rules)`) and
-- against each other.
-- @return the options, or nil and the message
function M.check(rules, schema, opts)
  local o, why = validate.options(schema, opts, "streamctl." .. rules.provider .. ".new")
  if not o then return nil, why end
  why = conflict(o, rules.sequenced)
  if why then return nil, why end
  return o
end

return M
