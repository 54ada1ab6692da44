--- Counters and a latency histogram per provider and action, fed by a
-- client's `on_attempt` hook, written out in the Prometheus text format.
--
--   local metrics = require("streamctl.operator.metrics").new { dict = ngx.shared.streamctl_metrics }
--   local client = streamctl.aliyun.new { on_attempt = metrics.on_attempt, ... }
--   ngx.print(metrics:render())      -- in a `GET /metrics` handler
--
-- With `dict` (an `ngx.shared` dict) every nginx worker adds to the same
-- numbers (`incr` is atomic) and any worker renders them all; without it the
-- numbers live in this Lua state (a script, a test).
--
-- Series (labels `provider` and `action`; an attempt is one request sent, a
-- retry or a look-up included):
--
--   streamctl_requests_total              attempts
--   streamctl_retries_total               attempts after the first of a call
--   streamctl_throttled_total             attempts the provider throttled
--   streamctl_failures_total              attempts that failed, throttled ones included
--   streamctl_request_duration_seconds    histogram of the time from send to answer
--                                         (or to the failure) of every attempt
--
-- And the edge's own events, counted with `count(name, labels)`:
--
--   streamctl_callbacks_total{provider,event,result}   callbacks received: `result` is
--                                         "accepted" or the code that refused it
--   streamctl_reactions_total{provider,reaction,result}  what the edge did about one
--                                         ("forbid_again", "restart_relay"; "ok" or "failed")
--   streamctl_drift_total{provider,state}  the reconciler's differences: "found", "fixed",
--                                         "failed", "extra" (listed nowhere, left alone)
-- @module streamctl.operator.metrics

local pairs, ipairs, tostring, setmetatable, type, error = pairs, ipairs, tostring, setmetatable, type, error
local format, gsub, match, gmatch, find, sub = string.format, string.gsub, string.match, string.gmatch,
  string.find, string.sub
local concat, sort = table.concat, table.sort

local validate = require "streamctl.base.validate"
local decimal = validate.decimal

local M = {}

-- The histogram's upper bounds in seconds (Prometheus' defaults).
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local COUNTERS = {
  { "requests", "Requests sent to the provider: every attempt, retries and look-ups included." },
  { "retries", "Attempts after the first of a call." },
  { "throttled", "Attempts the provider throttled." },
  { "failures", "Attempts that failed (throttled ones included)." },
}
local HISTOGRAM = "streamctl_request_duration_seconds"

-- The event counters `count` adds to: name -> { help, label names in order }.
local EVENTS = {
  { "callbacks", "Provider callbacks received, by event and result (accepted, or the code that refused it).",
    { "provider", "event", "result" } },
  { "reactions", "What the edge did about a callback, and whether it worked.", { "provider", "reaction", "result" } },
  { "drift", "Differences the reconciler found between the desired state and the provider's, and what became of them.",
    { "provider", "state" } },
}
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

local Metrics = {}
Metrics.__index = Metrics

local OPTIONS = {
  -- (the calls of ngx.shared.DICT that are used)
  { name = "dict", type = "object", methods = { "incr", "get", "get_keys" } },
}

--- Makes a set of metrics.
-- @tparam[opt] table opts `{ dict = an ngx.shared dict }` (default: in this Lua state)
-- @return metrics; or nil, err (an InvalidParameter error object naming the
--   option) for a bad or unknown option. Options that are not a table raise.
function M.new(opts)
  local o, why = validate.construct(OPTIONS, opts, "streamctl.operator.metrics.new", "new")
  if not o then return nil, why end
  local self = setmetatable({ dict = o.dict or memory_dict() }, Metrics)
  -- A plain function, to pass as a client's on_attempt.
  self.on_attempt = function(info) return self:observe(info) end
  return self
end

--- Records one attempt (the table a client's on_attempt receives).
function Metrics:observe(info)
  local d = self.dict
  local id = info.provider .. "|" .. info.action
  d:incr("c|requests|" .. id, 1, 0)
  if info.retry then d:incr("c|retries|" .. id, 1, 0) end
  if info.throttled then d:incr("c|throttled|" .. id, 1, 0) end
  if not info.ok then d:incr("c|failures|" .. id, 1, 0) end
  local s = info.seconds or 0
  for i, bound in ipairs(BUCKETS) do
    if s <= bound then
      d:incr("h|" .. i .. "|" .. id, 1, 0)
      break
    end
  end
  d:incr("h|count|" .. id, 1, 0)
  d:incr("h|sum|" .. id, s, 0)
end

--- Adds `n` (default 1) to an event counter (see above): `name` is
-- "callbacks", "reactions" or "drift", `labels` a table with exactly its
-- label names (strings). Misuse raises.
function Metrics:count(name, labels, n)
  local names = EVENT_LABELS[name]
  if not names then error("bad argument #1 to 'count' (not an event counter: " .. tostring(name) .. ")", 2) end
  local parts = {}
  for i, l in ipairs(names) do
    local v = type(labels) == "table" and labels[l]
    if type(v) ~= "string" or v == "" or find(v, "[|\n]") then
      error(format("bad argument #2 to 'count' (label '%s' must be a non-empty string without | or newline)", l), 2)
    end
    parts[i] = v
  end
  self.dict:incr("e|" .. name .. "|" .. concat(parts, "|"), n or 1, 0)
end

-- The event counters' lines.
local function render_events(d, keys, out)
  for _, e in ipairs(EVENTS) do
    local name, prefix, lines = "streamctl_" .. e[1] .. "_total", "e|" .. e[1] .. "|", {}
    out[#out + 1] = "# HELP " .. name .. " " .. e[2]
    out[#out + 1] = "# TYPE " .. name .. " counter"
    for _, k in ipairs(keys) do
      if sub(k, 1, #prefix) == prefix then
        local values, i, l = {}, 0, {}
        for v in gmatch(sub(k, #prefix + 1), "[^|]+") do i = i + 1; values[i] = v end
        for j, label_name in ipairs(e[3]) do l[j] = format('%s="%s"', label_name, label(values[j] or "")) end
        lines[#lines + 1] = name .. "{" .. concat(l, ",") .. "} " .. decimal(d:get(k) or 0)
      end
    end
    sort(lines)
    for _, line in ipairs(lines) do out[#out + 1] = line end
  end
end

--- The text format (version 0.0.4) of every series recorded so far.
function Metrics:render()
  local d = self.dict
  local keys = d:get_keys(0)
  local ids, seen = {}, {}
  for _, k in ipairs(keys) do
    local id = match(k, "^h|count|(.*)$")
    if id and not seen[id] then seen[id] = true ids[#ids + 1] = id end
  end
  sort(ids)
  local out = {}
  local function labels(id, extra)
    local provider, action = match(id, "^([^|]*)|(.*)$")
    return format('{provider="%s",action="%s"%s}', label(provider), label(action), extra or "")
  end
  for _, c in ipairs(COUNTERS) do
    local name = "streamctl_" .. c[1] .. "_total"
    out[#out + 1] = "# HELP " .. name .. " " .. c[2]
    out[#out + 1] = "# TYPE " .. name .. " counter"
    for _, id in ipairs(ids) do
      out[#out + 1] = name .. labels(id) .. " " .. decimal(d:get("c|" .. c[1] .. "|" .. id) or 0)
    end
  end
  out[#out + 1] = "# HELP " .. HISTOGRAM .. " Time from sending an attempt to its answer or failure."
  out[#out + 1] = "# TYPE " .. HISTOGRAM .. " histogram"
  for _, id in ipairs(ids) do
    local cumulative = 0
    for i, bound in ipairs(BUCKETS) do
      cumulative = cumulative + (d:get("h|" .. i .. "|" .. id) or 0)
      out[#out + 1] = HISTOGRAM .. "_bucket" .. labels(id, format(',le="%s"', format("%g", bound)))
        .. " " .. decimal(cumulative)
    end
    local count = d:get("h|count|" .. id) or 0
    out[#out + 1] = HISTOGRAM .. "_bucket" .. labels(id, ',le="+Inf"') .. " " .. decimal(count)
    out[#out + 1] = HISTOGRAM .. "_sum" .. labels(id) .. " " .. format("%.6f", d:get("h|sum|" .. id) or 0)
    out[#out + 1] = HISTOGRAM .. "_count" .. labels(id) .. " " .. decimal(count)
  end
  render_events(d, keys, out)
  return concat(out, "\n") .. "\n"
end

return M
