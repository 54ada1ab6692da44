--- Counters, gauges and histograms per provider and action, fed by a
-- client's `on_attempt` hook, written out in the Prometheus text format.
--
--   local metrics = require("streamctl.operator.metrics").new { dict = ngx.shared.streamctl_metrics }
--   local client = streamctl.aliyun.new { on_attempt = metrics.on_attempt, ... }
--   ngx.print(metrics:render())      -- in a `GET /metrics` handler
--
-- With `dict` (an `ngx.shared` dict) every nginx worker adds to the same
-- numbers (`incr` is atomic; a gauge holds the last value any worker `set`)
-- and any worker renders them all; without it the numbers live in this Lua
-- state (a script, a test).
--
-- Series (labels `provider` and `action`; an attempt is one request sent, a
-- retry or a look-up included):
--
--   streamctl_requests_total              attempts
--   streamctl_retries_total               attempts after the first of a call
--   streamctl_throttled_total             attempts the provider throttled
--   streamctl_failures_total              attempts that failed, throttled ones included
--   streamctl_outcome_unknown_total       attempts that ended with their outcome unknown (sent, no
--                                         answer to trust: a timeout, a connection lost, a 5xx)
--   streamctl_request_duration_seconds    histogram of the time from send to answer
--                                         (or to the failure) of every attempt
--   streamctl_throttled_by_code_total{provider,action,code}  attempts the provider
--                                         throttled, by their code
--   streamctl_retries_by_code_total{provider,action,code}  attempts sent after a
--                                         failure (a retry or a look-up), by the code
--                                         of the failure they came after (`after_code`)
--   streamctl_room_requests_per_second    gauge: the action's learned room (its cap
--                                         times the fraction of it the provider's
--                                         throttles left), as the last attempt saw it
--   streamctl_cap_requests_per_second     gauge: the action's cap, beside it
--                                         (paced actions only, both)
--   streamctl_slot_wait_seconds           histogram of the time each attempt waited
--                                         for its rate-limit slot and window (`waited`)
--
-- A code is the provider's as it sent it: Aliyun's text ("Throttling.User"),
-- ZEGO's number in decimal ("30002").
--
-- And the edge's own events, counted with `count(name, labels)`:
--
--   streamctl_callbacks_total{provider,event,result}   callbacks received: `result` is
--                                         "accepted" or the code that refused it
--   streamctl_reactions_total{provider,reaction,result}  what the edge did about one
--                                         ("forbid_again", "restart_relay"; "ok" or "failed")
--   streamctl_drift_total{provider,state}  the reconciler's differences: "found", "fixed",
--                                         "failed", "extra" (listed nowhere, left alone)
--   streamctl_admissions_total{provider,verdict,code}  admission decisions ("allow" or
--                                         "deny", and the verdict's code: streamctl.edge.admission)
--   streamctl_tokens_total{provider,result}  ZEGO tokens issued ("issued", or the refusal's code)
--   streamctl_stale_admissions_total{provider,result}  decisions made while the forbid list could
--                                 not be read: from the list last read whole ("answered"), or past
--                                 its grace ("expired")
--   streamctl_list_reads_total{result}  the whole forbid list read for that ("whole", "failed")
--   streamctl_spans_total{result}         the tracing exporter's spans (streamctl.trace.exporter):
--                                         "exported", or dropped: "queue_full" (its bounded queue
--                                         was full), "export_failed" (the collector refused, was
--                                         down or too slow)
--
-- by `admission_time(provider, seconds)`:
--
--   streamctl_admission_duration_seconds{provider,action="admission"}  histogram of the
--                                         decisions' time
--
-- and by `places_left(provider, n or places)`:
--
--   streamctl_blocklist_places_left{provider}  gauge: the places left on the account's
--                                         block list (Alibaba Cloud's 10,000,
--                                         streamctl.aliyun.places), as the last run
--                                         left them (streamctl.aliyun.places.after)
-- @module streamctl.operator.metrics

local pairs, ipairs, tostring, tonumber, setmetatable, type, error = pairs, ipairs, tostring, tonumber,
  setmetatable, type, error
local format, gsub, match, gmatch, find, sub = string.format, string.gsub, string.match, string.gmatch,
  string.find, string.sub
local concat, sort = table.concat, table.sort
local floor, huge = math.floor, math.huge

local validate = require "streamctl.base.validate"
local decimal = validate.decimal

local M = {}

-- The latency histogram's upper bounds in seconds (Prometheus' defaults).
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

-- The slot wait's upper bounds in seconds. 1 ms: sent when it was due (the
-- loop's own latency). 5 ms to 0.25 s: within a slot or a few, the interval
-- of a published cap running from 5 ms (200/s) to 200 ms (5/s), and a
-- provider's retry-after holding the budget up to 1 s. Past that, a queue:
-- a batch's calls in flight wait about concurrency x interval each (8 at
-- 30/s: 0.27 s; 256 at 5/s: 51 s), longer still behind a room the
-- throttles cut (to 5% of the cap at the least), so the bounds go on past
-- Prometheus' 10 s to 30 and 60 s.
local WAIT_BUCKETS = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 }

local COUNTERS = {
  { "requests", "Requests sent to the provider: every attempt, retries and look-ups included." },
  { "retries", "Attempts after the first of a call." },
  { "throttled", "Attempts the provider throttled." },
  { "failures", "Attempts that failed (throttled ones included)." },
  { "outcome_unknown", "Attempts that ended with their outcome unknown (sent, then no answer to trust): "
    .. "looked up or sent again; a report counts a stream it could not settle as unknown." },
}

-- The histograms: key prefix, name, help, bounds.
local LATENCY = { "h|", "streamctl_request_duration_seconds",
  "Time from sending an attempt to its answer or failure.", BUCKETS }
local WAIT = { "w|", "streamctl_slot_wait_seconds",
  "Time an attempt waited for its rate-limit slot and window, from when it was due to when it was sent.",
  WAIT_BUCKETS }
-- (an admission decision: a shared dict's read, or Redis's round trip)
local ADMIT = { "a|", "streamctl_admission_duration_seconds",
  "Time an admission decision took (action \"admission\").",
  { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 } }

-- The counters by code: key prefix, name, help.
local BY_CODE = {
  { "b|throttled|", "streamctl_throttled_by_code_total", "Attempts the provider throttled, by their code." },
  { "b|retries|", "streamctl_retries_by_code_total",
    "Attempts sent after a failure (a retry or a look-up), by the code of the failure they came after." },
}

-- The gauges: key prefix, name, help.
local GAUGES = {
  { "g|room|", "streamctl_room_requests_per_second",
    "The action's learned room: its cap times the fraction of it the provider's throttles left, "
      .. "as the last attempt saw it." },
  { "g|cap|", "streamctl_cap_requests_per_second", "The action's cap, as the last attempt saw it." },
}

-- The event counters `count` adds to: name -> { help, label names in order }.
local EVENTS = {
  { "callbacks", "Provider callbacks received, by event and result (accepted, or the code that refused it).",
    { "provider", "event", "result" } },
  { "reactions", "What the edge did about a callback, and whether it worked.", { "provider", "reaction", "result" } },
  { "drift", "Differences the reconciler found between the desired state and the provider's, and what became of them.",
    { "provider", "state" } },
  { "admissions", "Admission decisions at the door (streamctl.edge.admission), by verdict and its code.",
    { "provider", "verdict", "code" } },
  { "tokens", "ZEGO tokens the edge issued, or refused to (the code that refused it).", { "provider", "result" } },
  { "stale_admissions", "Admission decisions made while the forbid list could not be read: answered from the list "
    .. "last read whole (answered), or past its grace (expired).", { "provider", "result" } },
  { "list_reads", "Reads of the whole forbid list the door keeps for a failover (each worker's, every second, with "
    .. "Redis): read whole, or failed.", { "result" } },
  { "spans", "Spans the tracing exporter exported, or dropped (queue_full: its queue was full; export_failed: "
    .. "the collector refused, was down or too slow).", { "result" } },
}

-- The block list's gauge (one value per provider): key prefix, name, help.
local PLACES = { "p|", "streamctl_blocklist_places_left",
  "Places left on the account's block list, as the last run left them (its places check's count, less what "
    .. "the run may have taken)." }
local EVENT_LABELS = {}
for _, e in ipairs(EVENTS) do EVENT_LABELS[e[1]] = e[3] end

-- A store in this Lua state, with the calls of ngx.shared that are used.
local function memory_dict()
  local values = {}
  local d = {}
  function d:incr(key, by, init) -- luacheck: ignore 212/self
    values[key] = (values[key] or init or 0) + by
    return values[key]
  end
  function d:set(key, value) -- luacheck: ignore 212/self
    values[key] = value
    return true
  end
  function d:get(key) return values[key] end -- luacheck: ignore 212/self
  function d:get_keys() -- luacheck: ignore 212/self
    local keys = {}
    for k in pairs(values) do keys[#keys + 1] = k end
    return keys
  end
  return d
end

-- Label values as the text format wants them: \, " and newlines escaped.
local function label(v)
  return (gsub(gsub(gsub(tostring(v), "\\", "\\\\"), "\"", "\\\""), "\n", "\\n"))
end

-- A gauge's value: at most 6 decimals, none trailing ("12", "22.5").
local function real(v)
  local s = format("%.6f", v)
  if find(s, ".", 1, true) then s = gsub(gsub(s, "0+$", ""), "%.$", "") end
  return s == "-0" and "0" or s
end

-- A code as a label value: a string as it is, a number in decimal (exact,
-- never "3e+04" nor "30002.0"; a fraction with all its digits).
local function code_text(code)
  if type(code) ~= "number" then return code end
  if code == floor(code) and code > -2 ^ 53 and code < 2 ^ 53 then return decimal(code) end
  return format("%.17g", code)
end

local Metrics = {}
Metrics.__index = Metrics

local OPTIONS = {
  -- (the calls of ngx.shared.DICT that are used)
  { name = "dict", type = "object", methods = { "incr", "set", "get", "get_keys" } },
}

--- Makes a set of metrics.
-- @tparam[opt] table opts `{ dict = an ngx.shared dict }` (default: in this Lua state)
-- @return metrics; or nil, err (an InvalidParameter error object naming the
--   option) for a bad or unknown option. Options that are not a table raise.
function M.new(opts)
  local o, why = validate.construct(OPTIONS, opts, "streamctl.operator.metrics.new", "new")
  if not o then return nil, why end
  local self = setmetatable({ dict = o.dict or memory_dict(), keys = {} }, Metrics)
  -- A plain function, to pass as a client's on_attempt.
  self.on_attempt = function(info) return self:observe(info) end
  return self
end

-- Misuse of observe: the info's field `name` breaks its rule.
local function bad_info(name, rule)
  error(format("bad argument #1 to 'observe' (info.%s must be %s)", name, rule), 4) -- (observe's caller)
end

-- The fields on_attempt's info carries since the room (issue 48), checked
-- before anything is recorded: a number of seconds or requests per second
-- (finite, not negative) or nil; a code a string, a number or nil.
local function check_info(info)
  for _, name in ipairs { "waited", "room", "cap" } do
    local v = info[name]
    if v ~= nil and (type(v) ~= "number" or not (v >= 0 and v < huge)) then
      bad_info(name, "a finite number >= 0 or nil")
    end
  end
  for _, name in ipairs { "code", "after_code" } do
    local v = info[name]
    if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then bad_info(name, "a string, a number or nil") end
  end
end

-- Adds `value` to histogram `h` of `id`.
local function record(d, h, id, value)
  for i, bound in ipairs(h[4]) do
    if value <= bound then
      d:incr(h[1] .. i .. "|" .. id, 1, 0)
      break
    end
  end
  d:incr(h[1] .. "count|" .. id, 1, 0)
  d:incr(h[1] .. "sum|" .. id, value, 0)
end

-- A by-code counter's key: the code's length first, so that neither a code
-- nor an action with a | in it can be read as the other.
local function by_code_key(prefix, code, id)
  local text = code_text(code)
  return prefix .. #text .. ":" .. text .. id
end

--- Records one attempt (the table a client's on_attempt receives). A
-- `waited`, `room`, `cap`, `code` or `after_code` of the wrong type raises,
-- nothing of the attempt recorded.
function Metrics:observe(info)
  check_info(info)
  local d = self.dict
  local id = info.provider .. "|" .. info.action
  d:incr("c|requests|" .. id, 1, 0)
  if info.retry then d:incr("c|retries|" .. id, 1, 0) end
  if info.throttled then
    d:incr("c|throttled|" .. id, 1, 0)
    if info.code ~= nil then d:incr(by_code_key("b|throttled|", info.code, id), 1, 0) end
  end
  if not info.ok then d:incr("c|failures|" .. id, 1, 0) end
  if type(info.error) == "table" and info.error.outcome_unknown then d:incr("c|outcome_unknown|" .. id, 1, 0) end
  if info.after_code ~= nil then d:incr(by_code_key("b|retries|", info.after_code, id), 1, 0) end
  record(d, LATENCY, id, info.seconds or 0)
  if info.waited then record(d, WAIT, id, info.waited) end
  if info.room then d:set("g|room|" .. id, info.room) end
  if info.cap then d:set("g|cap|" .. id, info.cap) end
end

--- Adds `n` (default 1) to an event counter (see above): `name` is
-- "callbacks", "reactions", "drift", "admissions", "stale_admissions", "list_reads", "tokens" or "spans",
-- `labels` a table with exactly its label names (strings). Misuse raises.
function Metrics:count(name, labels, n)
  -- (each key made once: a walk of the keys made, by name and then each label's value in order. A
  -- counter's values are bounded, which is what makes it a metric, so this holds no more keys than
  -- the dict does; and the door counts every decision it makes)
  local node, names = self.keys[name], EVENT_LABELS[name]
  if node and type(labels) == "table" then
    for i = 1, #names do
      node = node[labels[names[i]]]
      if node == nil then break end
    end
    if type(node) == "string" then
      self.dict:incr(node, n or 1, 0)
      return
    end
  end
  if not names then error("bad argument #1 to 'count' (not an event counter: " .. tostring(name) .. ")", 2) end
  local parts = {}
  for i, l in ipairs(names) do
    local v = type(labels) == "table" and labels[l]
    if type(v) ~= "string" or v == "" or find(v, "[|\n]") then
      error(format("bad argument #2 to 'count' (label '%s' must be a non-empty string without | or newline)", l), 2)
    end
    parts[i] = v
  end
  local key = "e|" .. name .. "|" .. concat(parts, "|")
  node = self.keys[name] or {}
  self.keys[name] = node
  for i = 1, #parts - 1 do
    node[parts[i]] = node[parts[i]] or {}
    node = node[parts[i]]
  end
  node[parts[#parts]] = key
  self.dict:incr(key, n or 1, 0)
end

--- Records how long one admission decision of `provider` took (seconds).
function Metrics:admission_time(provider, seconds)
  if type(provider) ~= "string" or find(provider, "|", 1, true) or find(provider, "\n", 1, true)
    or type(seconds) ~= "number" or seconds ~= seconds
    or seconds < 0 then
    error("bad argument to 'admission_time' (a provider and seconds >= 0)", 2)
  end
  record(self.dict, ADMIT, provider .. "|admission", seconds)
end

--- Sets the places left on `provider`'s block list (the gauge
-- streamctl_blocklist_places_left). `n` is a whole number (such as
-- `aliyun.places.LIMIT - aliyun.places.in_use(client).used`), or the `places` a
-- places check reports: a forbid batch's `report.places` with `check_places`,
-- its refusal's `err.places` (BlockListFull), `{ used, limit, ... }`, of which
-- `limit - used` is taken. Below 0 when more are in use than a `places_limit`
-- allows. A check that counted nothing (`used` nil: a oneshot batch takes no
-- place) sets nothing.
-- @treturn boolean whether the gauge was set. Misuse raises.
function Metrics:places_left(provider, n)
  if type(provider) ~= "string" or provider == "" or find(provider, "[|\n]") then
    error("bad argument #1 to 'places_left' (provider must be a non-empty string without | or newline)", 2)
  end
  if type(n) == "table" then
    if n.used == nil then return false end
    if type(n.used) ~= "number" or type(n.limit) ~= "number" then
      error("bad argument #2 to 'places_left' (places.used and places.limit must be numbers)", 2)
    end
    n = n.limit - n.used
  end
  if type(n) ~= "number" or n ~= floor(n) or n == huge or n == -huge then
    error("bad argument #2 to 'places_left' (n must be a whole number or a places check's places)", 2)
  end
  self.dict:set(PLACES[1] .. provider, n)
  return true
end

-- `{provider="...",action="..."` and `extra`, `}`, for `id`.
local function labels(id, extra)
  local provider, action = match(id, "^([^|]*)|(.*)$")
  return format('{provider="%s",action="%s"%s}', label(provider), label(action), extra or "")
end

-- The HELP and TYPE lines of a family.
local function head(out, name, help, kind)
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " " .. kind
end

-- The ids (provider|action) of the keys that begin with `prefix`, in order.
local function ids_of(keys, prefix)
  local ids, seen = {}, {}
  for _, k in ipairs(keys) do
    if sub(k, 1, #prefix) == prefix then
      local id = sub(k, #prefix + 1)
      if not seen[id] then seen[id] = true ids[#ids + 1] = id end
    end
  end
  sort(ids)
  return ids
end

-- Histogram `h`'s lines.
local function render_histogram(d, keys, h, out)
  local prefix, name = h[1], h[2]
  head(out, name, h[3], "histogram")
  for _, id in ipairs(ids_of(keys, prefix .. "count|")) do
    local cumulative = 0
    for i, bound in ipairs(h[4]) do
      cumulative = cumulative + (d:get(prefix .. i .. "|" .. id) or 0)
      out[#out + 1] = name .. "_bucket" .. labels(id, format(',le="%s"', format("%g", bound)))
        .. " " .. decimal(cumulative)
    end
    local count = d:get(prefix .. "count|" .. id) or 0
    out[#out + 1] = name .. "_bucket" .. labels(id, ',le="+Inf"') .. " " .. decimal(count)
    out[#out + 1] = name .. "_sum" .. labels(id) .. " " .. format("%.6f", d:get(prefix .. "sum|" .. id) or 0)
    out[#out + 1] = name .. "_count" .. labels(id) .. " " .. decimal(count)
  end
end

-- A counter family whose labels are in its keys: HELP, TYPE, and a line for
-- each key that begins with `prefix`, its labels `labels_of(the rest of the
-- key)`, in order.
local function render_keyed(d, keys, out, prefix, name, help, labels_of)
  head(out, name, help, "counter")
  local lines = {}
  for _, k in ipairs(keys) do
    if sub(k, 1, #prefix) == prefix then
      lines[#lines + 1] = name .. labels_of(sub(k, #prefix + 1)) .. " " .. decimal(d:get(k) or 0)
    end
  end
  sort(lines)
  for _, line in ipairs(lines) do out[#out + 1] = line end
end

-- The labels of a by-code key's rest (see by_code_key).
local function code_labels(rest)
  local n, body = match(rest, "^(%d+):(.*)$")
  n = tonumber(n)
  return labels(sub(body, n + 1), format(',code="%s"', label(sub(body, 1, n))))
end

local function render_gauges(d, keys, out)
  for _, g in ipairs(GAUGES) do
    head(out, g[2], g[3], "gauge")
    for _, id in ipairs(ids_of(keys, g[1])) do
      local v = d:get(g[1] .. id)
      if v then out[#out + 1] = g[2] .. labels(id) .. " " .. real(v) end
    end
  end
end

-- The event counters' lines.
local function render_events(d, keys, out)
  for _, e in ipairs(EVENTS) do
    render_keyed(d, keys, out, "e|" .. e[1] .. "|", "streamctl_" .. e[1] .. "_total", e[2], function(rest)
      local values, i, l = {}, 0, {}
      for v in gmatch(rest, "[^|]+") do i = i + 1; values[i] = v end
      for j, label_name in ipairs(e[3]) do l[j] = format('%s="%s"', label_name, label(values[j] or "")) end
      return "{" .. concat(l, ",") .. "}"
    end)
  end
end

--- The text format (version 0.0.4) of every series recorded so far.
function Metrics:render()
  local d = self.dict
  local keys = d:get_keys(0)
  local ids = ids_of(keys, LATENCY[1] .. "count|")
  local out = {}
  for _, c in ipairs(COUNTERS) do
    local name = "streamctl_" .. c[1] .. "_total"
    head(out, name, c[2], "counter")
    for _, id in ipairs(ids) do
      out[#out + 1] = name .. labels(id) .. " " .. decimal(d:get("c|" .. c[1] .. "|" .. id) or 0)
    end
  end
  render_histogram(d, keys, LATENCY, out)
  for _, c in ipairs(BY_CODE) do render_keyed(d, keys, out, c[1], c[2], c[3], code_labels) end
  render_gauges(d, keys, out)
  render_histogram(d, keys, WAIT, out)
  render_histogram(d, keys, ADMIT, out)
  render_events(d, keys, out)
  head(out, PLACES[2], PLACES[3], "gauge")
  for _, provider in ipairs(ids_of(keys, PLACES[1])) do
    out[#out + 1] = PLACES[2] .. format('{provider="%s"}', label(provider)) .. " " .. real(d:get(PLACES[1] .. provider))
  end
  return concat(out, "\n") .. "\n"
end

return M
