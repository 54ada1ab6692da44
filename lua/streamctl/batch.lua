--- Batch methods: one method call over a list of streams, made into calls
-- of `chunk` items (repeats dropped), run together, and reported item by
-- item, in the order given.
--
-- A client's batch method is `batch.method(rules, name, spec)`; what it
-- needs of the client are the client's own steps: `_fields` (check a
-- method's fields), `_here` (can it send from here), `_encode` and `_job`
-- (a call's parameters and its job), `_run` (the engine) and `_monotonic`.
-- @module streamctl.batch

local ipairs, pairs, pcall, tostring = ipairs, pairs, pcall, tostring
local min = math.min

local M = {}

--- A batch's calls: its list without repeats, split into calls of
-- `spec.chunk` items (default 1), each encoded (for a `dry` run, as
-- `prepare` does).
-- @return jobs, items, duplicates; or nil, err
function M.jobs(client, spec, params, values, dry)
  local items, seen, duplicates = {}, {}, 0
  for _, item in ipairs(values[spec.list]) do
    if seen[item] then duplicates = duplicates + 1 else seen[item] = true; items[#items + 1] = item end
  end
  local size = spec.chunk or 1
  local jobs = {}
  for i = 1, #items, size do
    local chunk = {}
    for j = i, min(#items, i + size - 1) do chunk[#chunk + 1] = items[j] end
    local p = {}
    for k, v in pairs(params) do p[k] = v end
    p[spec.param] = size == 1 and chunk[1] or chunk
    local op, out = client:_encode(spec.action, p, 3, dry)
    if not op then return nil, out end
    local job = client:_job(spec.action, op, out)
    job.items = chunk
    jobs[#jobs + 1] = job
  end
  return jobs, items, duplicates
end

-- The report's entry for one item of a finished call.
local function entry_for(report, job, item)
  local entry = { stream = item, ok = job.result ~= nil, attempts = job.attempts }
  if entry.ok then
    entry.result, entry.request_id = job.result, job.result.RequestId
    report.succeeded = report.succeeded + 1
  elseif job.err.outcome_unknown then
    -- Not a failure: an attempt may have applied it (see streamctl.runner).
    entry.error, entry.outcome_unknown = job.err, true
    report.unknown = report.unknown + 1
  else
    entry.error = job.err
    report.failed = report.failed + 1
  end
  return entry
end

--- A batch method: checks the fields once, splits the list into calls,
-- runs them (calls on one stream in submission order, so ZEGO Sequences,
-- taken at each call's first send, follow it), and reports every item.
function M.method(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  return function(self, fields)
    local params, values = self:_fields(method_name, spec, fields)
    if not params then return nil, values end
    local here = self:_here(spec.action)
    if here then return nil, here end
    local jobs, items, duplicates = M.jobs(self, spec, params, values)
    if not jobs then return nil, items end
    local entries = {}
    local report = { action = spec.action, total = #items, succeeded = 0, failed = 0, unknown = 0, calls = 0,
                     planned = #jobs, duplicates = duplicates, results = entries }
    local on_progress, done = values.on_progress, 0
    local started = self._monotonic()
    self:_run(jobs, {
      concurrency = values.concurrency,
      on_progress = function(_, _, job)
        local first = #entries + 1
        for _, item in ipairs(job.items) do entries[#entries + 1] = entry_for(report, job, item) end
        -- The caller's callback runs after the report holds the whole call:
        -- an error in it is kept (report.progress_error), never a lost stream.
        for i = first, #entries do
          done = done + 1
          if on_progress and not report.progress_error then
            local ok, perr = pcall(on_progress, done, #items, entries[i])
            if not ok then report.progress_error = tostring(perr) end
          end
        end
      end,
    })
    report.elapsed = self._monotonic() - started
    -- the requests that left, retries included (an interrupted run sent fewer than it planned)
    for _, job in ipairs(jobs) do report.calls = report.calls + job.sent end
    -- Report in the order the items were given (each item is in the list
    -- once: its entry goes to its place, no sort).
    local position = {}
    for i, item in ipairs(items) do position[item] = i end
    local ordered = {}
    for _, e in ipairs(entries) do ordered[position[e.stream]] = e end
    report.results = ordered
    return report
  end
end

return M
