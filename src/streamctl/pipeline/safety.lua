--- What a batch's safety options ask before its first call and after its
-- last, in this order: the blast-radius guard (`guard`:
-- streamctl.pipeline.guard, over the list's distinct streams), the
-- provider's own check (its batch spec's `preflight`: Alibaba Cloud's
-- block-list places), and the audit log (`audit`: an object with
-- `intent(info)` and `refused(info, err)`, such as streamctl.operator.audit's
-- `log`; this module only calls it, and never names the operator's
-- module). A refusal sends nothing and is written to the audit log too;
-- each stream's end goes to the audit run (streamctl.pipeline.batch's
-- reporter), then its outcome. See docs/clients.md "Safety options".
-- @module streamctl.pipeline.safety

local errors = require "streamctl.base.errors"
local guard = require "streamctl.pipeline.guard"

local ipairs, tostring = ipairs, tostring
local format = string.format

local M = {}

--- The list's distinct items, in the order given, and how many repeats
-- were dropped (streamctl.pipeline.batch's too: one rule for what a
-- batch counts and what it sends).
function M.distinct(list)
  local out, seen, duplicates = {}, {}, 0
  for _, item in ipairs(list) do
    if seen[item] then duplicates = duplicates + 1 else seen[item] = true; out[#out + 1] = item end
  end
  return out, duplicates
end

-- "field 'F' needs 'LIST' as a table": an option that must count the list
-- before sending, given one read as it goes.
local function needs_table(client, spec, field)
  return errors.invalid(client._rules.provider, spec.action, format("field '%s' needs '%s' as a table: a list read "
    .. "as it goes cannot be counted before sending", field, spec.list))
end

--- What the batch's options ask before its first call: `safe` (`run`: the
-- audit run, `key_of(item)`: a stream's name as the audit log writes it,
-- given, `places`: what the preflight found), or nil and the refusal,
-- nothing sent. An option a list read as it goes cannot honour (a count
-- first) is refused as a field's rule is, before the rest.
function M.before(client, spec, values, list, key_of, method_name)
  local log, rules = values.audit, client._rules
  if list then
    if values.guard then return nil, needs_table(client, spec, "guard") end
    if spec.preflight and values[spec.preflight.field] then
      return nil, needs_table(client, spec, spec.preflight.field)
    end
  end
  local safe = { key_of = key_of }
  local info = log and { client = client, provider = rules.provider, method = method_name, action = spec.action,
                         streamed = list ~= nil, trace_id = values._trace and values._trace.trace_id }
  local items
  if not list and (values.guard or log) then
    -- (kept for the run: the list is made distinct once, M.distinct)
    items, safe.duplicates = M.distinct(values[spec.list])
    safe.items = items
  end
  if info and items then
    info.streams = {}
    for i, item in ipairs(items) do info.streams[i] = safe.key_of(item) end
  end
  local function refused(err)
    if log then
      local ok, why = log:refused(info, err)
      if not ok then err.audit_error = tostring(why) end
    end
    return nil, err
  end
  if values.guard then
    local ok, decision = guard.batch((rules.operations[spec.action] or {}).effect, #items, values.guard)
    if not ok then
      decision.provider, decision.action = rules.provider, spec.action
      return refused(decision)
    end
    if info then info.guard = decision end
  end
  local pre = spec.preflight
  if pre and values[pre.field] then
    local found, err = pre.check(client, values)
    if not found then return refused(err) end
    safe.places, safe.preflight = found, pre
    if info then info.places = found end
  end
  if log then
    local audit_run, why = log:intent(info)
    if not audit_run then
      return nil, errors.new { provider = rules.provider, action = spec.action, code = "AuditLogFailed",
        kind = "audit", sent = false, message = "the audit log cannot be written (" .. tostring(why)
          .. "): nothing was sent" }
    end
    safe.run = audit_run
  end
  return safe
end

--- After the last call: the places as the check found them before the run
-- (`report.places`) and as the run left them (`report.places_after`, when
-- the provider's preflight can tell: streamctl.aliyun.places.after); the
-- audit run's outcome (one that cannot be written is said in
-- `report.audit_error`; the report stands).
function M.after(safe, report)
  if safe.places then
    report.places = safe.places
    if safe.preflight.after then report.places_after = safe.preflight.after(safe.places, report) end
  end
  if not safe.run then return end
  local ok, why = safe.run:outcome(report)
  if not ok and not report.audit_error then report.audit_error = tostring(why) end
end

return M
