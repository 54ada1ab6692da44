-- Issue 48's goals for a budget shared with strangers, and the table that
-- sets today's figures beside them: bench/strangers.lua records each run's
-- figures (group "strangers", through bench/lib.lua, each with its `run`,
-- `row`, `label` and `figure`), prints each run's misses with this module,
-- and bench/report.lua prints the table (plain and --markdown). The last
-- row, no stranger, is bench/redis.lua's figures (group "redis").
--
-- Figures, never a test: a run that misses a goal is printed and recorded
-- as measured, its misses named in the table.
local format = string.format

local M = {}

--- The goals: streams failed, share of calls throttled, rate as a fraction
-- of the room left, spread of the processes' shares (highest / lowest - 1),
-- seconds until the rate is back to RECOVER_AT of the published cap.
M.FAILED, M.THROTTLED, M.ROOM, M.SHARE, M.RECOVER, M.RECOVER_AT = 0, 0.05, 0.85, 0.10, 10, 0.95

M.ROWS = {
  { "the three runs above: a 2,000-ID ZEGO resume beside a stranger at 5 calls/s on the AppId; 300 Aliyun "
      .. "resumes on an account whose ResumeLiveStream cap is 15/s; three processes through Redis beside the stranger",
    "0 streams failed; throttled at most 5% of calls; at least 0.85 of the room left (15/s in all three)" },
  { "a stranger at 25% and at 50% of the cap, 1, 3 and 10 processes through Redis",
    "the same; all processes within 10% of each other's share" },
  { "the stranger leaves", "back to 0.95 of the published cap within 10 s" },
  { "no stranger", "today's figures kept: 0 throttled, 0.97 of the cap through Redis, 1.00 round trip per request" },
}

--- The runs of a list of figures (bench/lib.lua's records), in the order
-- they came: { key, row, label, room, cap, <figure> = median, reached }.
function M.runs(figures)
  local list, by = {}, {}
  for _, f in ipairs(figures) do
    if f.group == "strangers" and f.run then
      local r = by[f.run]
      if not r then
        r = { key = f.run, row = f.row, label = f.label, room = f.room, cap = f.cap }
        by[f.run] = r
        list[#list + 1] = r
      end
      r[f.figure] = f.median
      if f.reached ~= nil then r.reached = f.reached end
    end
  end
  return list
end

--- What a run misses of its row's goals (an empty list: none).
function M.misses(run)
  local out = {}
  if run.recovery then
    if not run.reached then
      out[#out + 1] = format("not back to %.2f of the cap before the run ended, %.1f s after", M.RECOVER_AT,
        run.recovery)
    elseif run.recovery > M.RECOVER then
      out[#out + 1] = format("%.1f s > %d s", run.recovery, M.RECOVER)
    end
    return out
  end
  if (run.failed or 0) > M.FAILED then out[#out + 1] = format("%d streams failed", run.failed) end
  if run.calls and run.calls > 0 and run.throttled / run.calls > M.THROTTLED then
    out[#out + 1] = format("%.1f%% throttled > %d%%", 100 * run.throttled / run.calls, 100 * M.THROTTLED)
  end
  if run.rate and run.rate < M.ROOM then out[#out + 1] = format("%.2f of the room < %.2f", run.rate, M.ROOM) end
  if run.spread and run.spread > M.SHARE then
    out[#out + 1] = format("shares %.0f%% apart > %d%%", 100 * run.spread, 100 * M.SHARE)
  end
  return out
end

-- One run's figures, as the table's cell shows them.
local function cell(run)
  local misses = M.misses(run)
  local text
  if run.recovery then
    text = run.reached and format("%s: %.1f s", run.label, run.recovery)
      or format("%s: not back before the run ended (%.1f s after)", run.label, run.recovery)
  else
    text = format("%s: %d failed, %d of %d calls throttled (%.1f%%; %d after the first second), %.2f of the room",
      run.label, run.failed or 0, run.throttled or 0, run.calls or 0,
      run.calls and run.calls > 0 and 100 * run.throttled / run.calls or 0, run.late or 0, run.rate or 0)
    if run.spread then text = text .. format(", shares within %.0f%%", 100 * run.spread) end
  end
  if #misses > 0 then text = text .. " (**missed**: " .. table.concat(misses, ", ") .. ")" end
  return text
end

-- The last row's cell: bench/redis.lua's runs through Redis without a
-- stranger (nil when the figures hold none of them).
local function no_stranger(figures)
  local by = {}
  for _, f in ipairs(figures) do
    if f.group == "redis" then by[f.name] = f.median end
  end
  local cells = {}
  for _, n in ipairs { 3, 10 } do
    for _, r in ipairs {
      { format("%d processes x 100 streams, one budget in Redis: ", n), "requests", "request", "Aliyun" },
      { format("ZEGO, %d processes x 500 IDs x 2, Redis on loopback: ", n), "calls", "call", "ZEGO" },
    } do
      local pre = r[1]
      if by[pre .. "accepted per second / cap"] then
        cells[#cells + 1] = format("%s, %d processes: %d throttled, %.2f of the cap, %.2f round trips per %s", r[4], n,
          by[pre .. r[2] .. " throttled"] or 0, by[pre .. "accepted per second / cap"],
          by[pre .. "Redis round trips per " .. r[3]] or 0, r[3])
      end
    end
  end
  return #cells > 0 and "bench/redis.lua: " .. table.concat(cells, "; ") or nil
end

--- The goal table as markdown (run | goal | today's figure), or nil when
-- `figures` holds no run of bench/strangers.lua.
function M.table(figures)
  local runs = M.runs(figures)
  if #runs == 0 then return nil end
  local cells = {}
  for _, run in ipairs(runs) do
    local row = cells[run.row] or {}
    cells[run.row] = row
    row[#row + 1] = cell(run)
  end
  cells[4] = { no_stranger(figures) or "(bench/redis.lua's figures are not in this file)" }
  local lines = {
    "Issue 48's goals against the emulator's sliding window (bench/strangers.lua; the room left is the cap less "
      .. "the stranger; ZEGO counted in calls, 20 IDs a call):",
    "",
    "| run | goal | today's figure |",
    "|---|---|---|",
  }
  for i, row in ipairs(M.ROWS) do
    lines[#lines + 1] = format("| %s | %s | %s |", row[1], row[2], table.concat(cells[i] or { "(not measured)" }, "; "))
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
