--- A failing schedule made small, and what a failure shows: the trace.
--
-- Shrinking is greedy over the schedule's data: drop a Redis event, a
-- process, an operation (or its nested one), the network's faults or all
-- but one kind of them, the cancel and the clock skews; keep each change
-- while the same invariant still fails; repeat until nothing more can go.
-- @module sim.shrink

local sim = require "sim"
local provider = require "sim.provider"

local format = string.format
local copy = sim.copy

local M = {}

-- Every one-step smaller variant of schedule `s`.
local function candidates(s)
  local out = {}
  for i = 1, #s.redis.events do
    local c = copy(s)
    table.remove(c.redis.events, i)
    out[#out + 1] = c
  end
  if #s.procs > 1 then
    for i = 1, #s.procs do
      local c = copy(s)
      table.remove(c.procs, i)
      c.processes = #c.procs
      out[#out + 1] = c
    end
  end
  for i, p in ipairs(s.procs) do
    for j = 1, #p.ops do
      local c = copy(s)
      local op = c.procs[i].ops[j]
      if op.kind ~= "create" then -- (a stop names its create by position)
        table.remove(c.procs[i].ops, j)
        out[#out + 1] = c
      end
      if op.nested then
        c = copy(s)
        c.procs[i].ops[j].nested = nil
        out[#out + 1] = c
      end
    end
    for _, field in ipairs { "cancel_at", "skew" } do
      if p[field] then
        local c = copy(s)
        c.procs[i][field] = nil
        out[#out + 1] = c
      end
    end
  end
  if s.net.faulty then
    local c = copy(s)
    c.net.faulty = false
    out[#out + 1] = c
    if #s.net.kinds > 1 then
      for _, k in ipairs(s.net.kinds) do
        c = copy(s)
        c.net.kinds = { k }
        out[#out + 1] = c
      end
    end
  end
  return out
end

--- Shrinks `schedule`, which fails `invariant`; `check(s)` returns the failures of a run.
-- @return the smallest schedule found, and how many runs it took
function M.shrink(schedule, invariant, check)
  local best, runs = schedule, 0
  local progress = true
  while progress and runs < 2000 do
    progress = false
    for _, c in ipairs(candidates(best)) do
      runs = runs + 1
      local failures = check(c)
      local same = false
      for _, f in ipairs(failures) do if f.invariant == invariant then same = true end end
      if same then
        best, progress = c, true
        break
      end
    end
  end
  return best, runs
end

--- A schedule as a Lua literal (for a regression spec).
function M.serialize(v, indent)
  indent = indent or ""
  if type(v) == "string" then return format("%q", v) end
  if type(v) == "number" then return format("%.17g", v) end -- (every bit: a replay is exact)
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "number" and "" or (k:match("^[%a_][%w_]*$") and k .. " = " or format("[%q] = ", k))
    parts[#parts + 1] = indent .. "  " .. key .. M.serialize(v[k], indent .. "  ")
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

--- The trace of a run: the schedule in brief, and every request of the
-- stream a failure names (or the first 40 requests), with its fate.
function M.trace(rec, failure)
  local s = rec.schedule
  local lines = {}
  lines[#lines + 1] = format("seed %s: %s, %d process(es), store %s, net base %.1f ms jitter %.1f ms timeout %.2f s, "
    .. "faults %s at %.0f%%: %s", tostring(s.seed), s.provider, s.processes, s.store, s.net.base * 1000,
    s.net.jitter * 1000, s.net.timeout, s.net.faulty and "on" or "off", s.net.fault_rate * 100,
    table.concat(s.net.kinds, " "))
  if s.net.tail then
    lines[#lines + 1] = format("  net tail: up to %.1f ms more, %.0f%% of transits", s.net.tail * 1000,
      s.net.tail_odds * 100)
  end
  for _, e in ipairs(s.redis.events) do
    lines[#lines + 1] = format("  redis %s at %.3f%s", e.kind, e.t, e.duration and format(" for %.3f s", e.duration)
      or "")
  end
  local needle = failure and failure.message:match("([%w%-]+%-s%d%d)")
  local shown = 0
  for _, send in ipairs(rec.sends) do
    if shown >= 60 then break end
    if not needle or send.req.url:find(needle, 1, true) then
      local a = provider.parse(send.req)
      local fates = {}
      for _, ar in ipairs(send.arrivals or {}) do
        fates[#fates + 1] = format("arrived %.3f %s", ar.t, tostring(ar.verdict))
      end
      lines[#lines + 1] = format("  %.3f %s %s %s%s%s -> %s", send.t, send.process, tostring(send.role), a.action,
        a.seq and (" seq " .. a.seq) or "", send.fault and (" [" .. send.fault .. "]") or "",
        #fates > 0 and table.concat(fates, "; ") or "never arrived")
      shown = shown + 1
    end
  end
  if failure then lines[#lines + 1] = "  divergence: " .. failure.message end
  return table.concat(lines, "\n")
end

return M
