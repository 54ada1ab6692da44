--- Counters and a latency histogram per provider and action, fed by a
-- client's `on_attempt` hook, written out in the Prometheus text format.
--
--   local metrics = require("streamctl.metrics").new { dict = ngx.shared.streamctl_metrics }
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
-- @module streamctl.metrics

local pairs, ipairs, tostring, setmetatable = pairs, ipairs, tostring, setmetatable
local format, gsub, match = string.format, string.gsub, string.match
local concat, sort = table.concat, table.sort

local validate = require "streamctl.validate"
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
  local o, why = validate.construct(OPTIONS, opts, "streamctl.metrics.new", "new")
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
  return concat(out, "\n") .. "\n"
end

return M
