--- OpenTelemetry's built-in samplers, by the names `OTEL_TRACES_SAMPLER`
-- gives them (the SDK configuration's environment variables): each a
-- function `(trace_id, parent) -> boolean`, a client's `sampler` option
-- (streamctl.pipeline.spans asks it once per operation; `parent` is the
-- incoming context, `{ sampled, ... }`, or nil at a new trace's root).
--
--   always_on, always_off          every operation, none
--   traceidratio                   a share of the traces: `arg` (0 to 1) of them,
--                                  the same answer for a trace id everywhere
--   parentbased_always_on          the parent's choice; at a root, yes (the default)
--   parentbased_always_off         the parent's choice; at a root, no
--   parentbased_traceidratio       the parent's choice; at a root, by the ratio
--
-- The ratio's decision reads the trace id's last 13 hex digits (52 bits:
-- exact in a double, so Lua 5.4 and LuaJIT agree; W3C Trace Context level 2
-- makes the last 7 bytes the random ones) as a fraction of 2^52.
-- @module streamctl.trace.sampler

local tracecontext = require "streamctl.base.tracecontext"

local tonumber, type, tostring = tonumber, type, tostring
local sub, format = string.sub, string.format

local M = {}

M.NAMES = { "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio" }

local TWO52 = 2 ^ 52

local function ratio_sampler(ratio)
  local below = ratio * TWO52
  return function(trace_id) return tonumber(sub(trace_id, 20, 32), 16) < below end
end

local function root_sampler(kind, ratio)
  if kind == "always_on" then return function() return true end end
  if kind == "always_off" then return function() return false end end
  return ratio_sampler(ratio)
end

--- The sampler `name` with its argument `arg` (a ratio, for the
-- traceidratio ones; default 1), or nil and why (naming the rule broken).
function M.new(name, arg)
  local ratio = 1
  if arg ~= nil then
    ratio = tonumber(arg)
    if type(ratio) ~= "number" or ratio ~= ratio or ratio < 0 or ratio > 1 then
      return nil, format("sampler argument '%s' must be a ratio from 0 to 1", tostring(arg))
    end
  end
  local parentbased, kind = name:match("^(parentbased_)(.*)$")
  kind = kind or name
  if kind ~= "always_on" and kind ~= "always_off" and kind ~= "traceidratio" then
    return nil, format("sampler '%s' is not one of %s", name, table.concat(M.NAMES, ", "))
  end
  if not parentbased then return root_sampler(kind, ratio) end
  -- (each kind's function whole, its root's decision inline: asked once per operation)
  if kind == "always_on" then
    return tracecontext.parentbased_always_on -- (a client decides as it does without a call: the default)
  elseif kind == "always_off" then
    return function(_, parent) return parent ~= nil and parent.sampled == true end
  end
  local root = ratio_sampler(ratio)
  return function(trace_id, parent)
    if parent then return parent.sampled == true end
    return root(trace_id)
  end
end

return M
