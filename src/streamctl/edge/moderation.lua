--- The moderation API at the edge (streamctl.edge.server): POST
-- /streams/<provider>/<operation>, a forbid or resume of one provider's
-- streams, checked whole before anything is sent, guarded (more than
-- max_forbid or max_resume streams need "confirm": true), its intent
-- audited before it is sent and its outcome after, the forbid list made to
-- follow it (a forbid's streams refused at the door from when it is
-- decided: pending marks), answered with the per-stream report.
-- @module streamctl.edge.moderation

-- luacheck: globals ngx

local cjson = require "cjson.safe"
local audit = require "streamctl.operator.audit"
local reconcile = require "streamctl.operator.reconcile"
local W = require "streamctl.edge.worker"

local type, pairs, ipairs, next, tostring, assert = type, pairs, ipairs, next, tostring, assert
local format = string.format

local M = {}

-- A report's outcome in one word.
local function report_outcome(report)
  if report.unknown > 0 then return "unknown" end
  return report.failed == 0 and "ok" or "failed"
end

-- Makes the desired state follow a request: a forbid adds its streams, a resume takes
-- them out (an Aliyun resume of app "*" every app's). A full dict evicts nothing
-- (safe_set): true, or nil and why some were not kept. ZEGO streams changed here are
-- looked at again by the next reconcile (its record of what it applied may no longer hold).
local function follow(provider, operation, fields, names)
  local st = W.store()
  local keys = {}
  for i, name in ipairs(names) do keys[i] = W.desired_key(provider, fields, name) end
  local ok, err
  if operation == "forbid" then
    ok, err = st:add(keys)
  elseif provider == "aliyun" and fields.app_name == "*" then
    -- (every app's: what the list holds of this domain and these streams)
    local all, merr = st:members()
    ok, err = all ~= nil, merr
    if all then
      local prefix, wanted, gone = W.desired_key("aliyun", { domain_name = fields.domain_name, app_name = "" }, "")
        :sub(1, -2), {}, {} -- ("aliyun|DOMAIN|", the domain as the list holds it)
      for _, name in ipairs(names) do wanted[name] = true end
      for _, key in ipairs(all) do
        if key:sub(1, #prefix) == prefix and wanted[key:match("|([^|]*)$")] then gone[#gone + 1] = key end
      end
      if #gone > 0 then ok, err = st:remove(gone) end
    end
  else
    ok, err = st:remove(keys)
  end
  if ok and provider == "zego" then
    local c = W.clients.zego
    local items = {}
    for i, id in ipairs(names) do items[i] = { stream_id = id, kind = "rtc" } end
    ok, err = reconcile.zego_forget(st, "streamctl:reconcile:zego:" .. tostring(c and c.app_id), items)
  end
  if not ok then return nil, tostring(err) end
  return true
end

-- A ban counts from when it is decided: a forbid's streams are marked pending on the list
-- before it is sent (the door refuses them from then: streamctl.operator.desired), and the
-- marks taken away once it ended and the list followed it. A mark that cannot be made is said,
-- and the forbid still sent: the list follows it at its end as before.
local PENDING_TTL = 900 -- (s: a worker that dies mid-call leaves its marks this long)
local function marks(provider, fields, names, id, settle)
  local keys = {}
  for i, name in ipairs(names) do keys[i] = W.desired_key(provider, fields, name) end
  if #keys == 0 then return end
  local ok, err
  if settle then ok, err = W.store():settled(keys, id) else ok, err = W.store():pending(keys, id, PENDING_TTL) end
  if not ok then
    ngx.log(ngx.ERR, "streamctl.edge: the forbid's streams could not be marked ", settle and "settled" or "pending",
      " on the list: ", tostring(err))
  end
end

-- What a body may hold, per provider and operation: the batch method's
-- fields, plus the one-stream form of its list.
local ROUTES = {
  aliyun = {
    list = "stream_names", one = "stream_name",
    resume = { method = "resume_live_streams", action = "ResumeLiveStream" },
    forbid = { method = "forbid_live_streams", action = "ForbidLiveStream" },
  },
  zego = {
    list = "stream_ids", one = "stream_id",
    resume = { method = "resume_rtc_streams", action = "ResumeRTCStreams" },
    forbid = { method = "forbid_rtc_streams", action = "ForbidRTCStreams" },
  },
}

-- One provider's part of a request, checked whole as its method checks it (and, for a forbid,
-- each stream by the forbid list's own rule: a name the list cannot hold, app "*" among them):
-- the part ready to send ({ provider, fields, names, client }), or nil and the refusal's
-- status and message. `where` prefixes a field's name ("zego." in a request for both).
local function checked_part(provider, operation, fields, where)
  local route = ROUTES[provider]
  if type(fields) ~= "table" or (next(fields) ~= nil and fields[1] ~= nil) then
    return nil, 400, format("field '%s' must be a JSON object", where:sub(1, -2))
  end
  for k, v in pairs(fields) do
    if v == cjson.null then return nil, 400, format("field '%s%s' must not be null", where, tostring(k)) end
  end
  local one = fields[route.one]
  if one ~= nil then
    if fields[route.list] ~= nil then
      return nil, 400, format("fields '%s%s' and '%s%s': give one of them", where, route.one, where, route.list)
    end
    if type(one) ~= "string" then return nil, 400, format("field '%s%s' must be a string", where, route.one) end
    fields[route.list], fields[route.one] = { one }, nil
  end
  for _, name in ipairs { "on_progress", "confirm" } do
    if fields[name] ~= nil then return nil, 400, format("field '%s%s' is not a field of this request", where, name) end
  end
  local c, cerr = W.client(provider)
  if not c then return nil, 500, "the " .. provider .. " client cannot be made: " .. tostring(cerr) end
  -- (before the intent: an intent is only ever written by a request about to send)
  local said = where == "" and "" or where:sub(1, -2) .. ": " -- ("zego: " before a part's messages)
  local valid, verr = c:check(route[operation].method, fields)
  if not valid then return nil, 400, said .. verr.message end
  local names, items = {}, {}
  for i, name in ipairs(type(fields[route.list]) == "table" and fields[route.list] or {}) do
    names[i] = tostring(name)
    items[i] = provider == "aliyun" and { domain_name = fields.domain_name, app_name = fields.app_name,
      stream_name = name } or { stream_id = name }
  end
  if operation == "forbid" then
    local ok, lerr = reconcile.check(provider, items)
    if not ok then return nil, 400, said .. "the forbid list cannot hold it: " .. lerr.message end
  end
  return { provider = provider, fields = fields, names = names, client = c }
end

-- The guard's decision on `n` distinct streams (a resume is a blast radius too: an un-ban of
-- every stream forbidden for moderation): true and the decision, or false and the refusal.
local function guarded(operation, n, confirm)
  if operation == "forbid" then return audit.guard(n, { max_forbid = W.settings.max_forbid, confirm = confirm }) end
  return audit.guard(0, { resumes = n, max_resume = W.settings.max_resume, confirm = confirm })
end

-- A ban that also stops what is live: with rtmp_control set, the publishers of an Aliyun forbid's
-- streams (by app and name) are dropped from nginx-rtmp now, once the door refuses them (the
-- pending marks), before the provider's call, which may wait out a throttle. `{ dropped = { name
-- = n }, errors = { name = why } }` (errors nil when none), or nil when there is no control URL.
local function drop_publishers(app, names)
  local base = W.settings.rtmp_control
  if not base or #names == 0 then return nil end
  local transport = require("streamctl.transport.ngx").new { timeout_ms = 3000 }
  local each = require("streamctl.edge.rtmp").drop_publishers(transport, base, app, names)
  transport.close()
  local out = { dropped = {} }
  for name, d in pairs(each) do
    if d.error then
      out.errors = out.errors or {}
      out.errors[name] = d.error
      ngx.log(ngx.ERR, "streamctl.edge: nginx-rtmp could not drop ", app, "/", name, "'s publisher: ", d.error)
    else
      out.dropped[name] = d.dropped
    end
  end
  return out
end

-- A part sent (its report, or nil and the error that sent nothing): its outcome, see send_part.
local function settled(part, operation, command, run, guard, report, err)
  local provider, fields, names = part.provider, part.fields, part.names
  -- (a body's "check_places": the places left as the run left them, its report's; or as the check
  -- counted them, its refusal's)
  local places = report and (report.places_after or report.places) or err and err.places
  if places then W.metrics:places_left(provider, places) end
  if not report then
    if operation == "forbid" then marks(provider, fields, names, run, true) end
    -- (a body's "check_places": true, and the block list has no room for it: a 409, its places said)
    local full = err.code == "BlockListFull"
    local status = err.code == "InvalidParameter" and 400 or full and 409 or 500
    W.write_audit { record = "outcome", run = run, provider = provider, command = command,
                    outcome = full and "refused" or "failed", places = err.places, exit = status,
                    note = "nothing was sent: " .. err.message }
    return { error = status == 500 and tostring(err) or err.message, code = err.code, places = err.places }, status
  end
  -- the desired state follows the request, whatever became of each stream (the reconciler fixes the
  -- rest), but for a stream a later call decided on (superseded): the decision made last stands there
  local followed = {}
  for _, r in ipairs(report.results) do
    if not r.superseded_by then followed[#followed + 1] = r.stream end
  end
  local kept, why = follow(provider, operation, fields, followed)
  if operation == "forbid" then marks(provider, fields, names, run, true) end
  local status = (report.failed == 0 and report.unknown == 0) and 200 or 502
  local answer = W.report_json(report)
  if not kept then
    -- (the calls were made, as the results say; the list did not follow them: a 500 that says both)
    ngx.log(ngx.ERR, "streamctl.edge: the desired state: ", why)
    status = 500
    answer.error = "the calls were sent (see results), but the forbid list could not follow them: " .. tostring(why)
  end
  W.write_audit { record = "outcome", run = run, provider = provider, command = command, actions = { report.action },
                  guard = guard, outcome = report_outcome(report), exit = status, calls = report.calls,
                  streams = W.audit_streams(report), note = not kept and answer.error or nil }
  return answer, status
end

-- Sends a checked part whose intent (`run`) is written, makes the list follow it, and writes its
-- outcome: the part's answer (the report as JSON, or `{ error, code }` when nothing was sent) and
-- its status (200, 502 when a stream failed or its outcome is unknown, 500 when the list could
-- not follow what was sent; 400, 409 or 500 when nothing was sent).
local function send_part(part, operation, command, run, guard)
  local provider, fields, names, c = part.provider, part.fields, part.names, part.client
  local route = ROUTES[provider]
  if operation == "forbid" then marks(provider, fields, names, run) end
  local drops = operation == "forbid" and provider == "aliyun" and drop_publishers(fields.app_name, names)
  local answer, status = settled(part, operation, command, run, guard, c[route[operation].method](c, fields))
  if drops then answer.dropped, answer.drop_errors = drops.dropped, drops.errors end
  return answer, status
end


-- The request's body as a JSON object, its "confirm"; or nil and the refusal's status and message.
local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    return nil, 400, ngx.req.get_body_file() and "body: too large (client_body_buffer_size)" or "body: missing"
  end
  local fields = cjson.decode(body)
  if type(fields) ~= "table" or not body:find("^%s*{") then return nil, 400, "body: must be a JSON object" end
  local flaw = require("streamctl.base.json").strict_flaw(body) -- (a key twice: cjson keeps the last, unsaid)
  if flaw then return nil, 400, "body: " .. flaw end
  local confirm = fields.confirm
  if confirm ~= nil and type(confirm) ~= "boolean" then return nil, 400, "field 'confirm' must be true or false" end
  fields.confirm = nil
  return fields, confirm
end

-- A request's door: its method and Bearer, its body, and the audit log (nothing is sent that the
-- log cannot record). The body and its confirm, or nil (answered: `refuse`, audited).
local function admitted(provider, command, refuse)
  if W.refused_at_door(refuse) then return nil end
  local fields, confirm, why = read_body()
  if not fields then
    refuse(confirm, why)
    return nil
  end
  if not W.audit_write or W.audit_why then
    -- (this refusal is the next try at writing it)
    if not W.write_audit { provider = provider, command = command, outcome = "refused", exit = 500 } then
      W.reply(500, { error = "the audit log cannot be written: " .. tostring(W.audit_why) })
      return nil
    end
  end
  return fields, confirm
end

--- content_by_lua for POST /streams/<provider>/<operation>.
function M.streams(provider, operation)
  local command = "POST /streams/" .. provider .. "/" .. operation
  -- every refusal is audited too (a wrong token included)
  local function refuse(status, message)
    W.write_audit { provider = provider, command = command, outcome = "refused", exit = status, note = message }
    return W.reply(status, { error = message })
  end
  local fields, confirm = admitted(provider, command, refuse)
  if not fields then return end
  local part, status, message = checked_part(provider, operation, fields, "")
  if not part then return refuse(status, message) end
  local seen, n = {}, 0
  for _, name in ipairs(part.names) do
    if not seen[name] then seen[name], n = true, n + 1 end
  end
  local ok, guard = guarded(operation, n, confirm)
  if not ok then
    W.write_audit { provider = provider, command = command, guard = guard.guard, outcome = "refused", exit = 400,
                    note = guard.message }
    return W.reply(400, { error = guard.message, code = guard.code, guard = guard.guard })
  end
  local planned = {}
  for i, name in ipairs(part.names) do
    planned[i] = { stream = name, action = ROUTES[provider][operation].action } -- (named as its outcome names it)
  end
  local intended, run = W.write_intent({ provider = provider, command = command,
    actions = { ROUTES[provider][operation].action }, guard = guard }, planned)
  if not intended then
    return W.reply(500, { error = "the audit log cannot be written: " .. tostring(W.audit_why)
      .. "; nothing was sent" })
  end
  local answer, astatus = send_part(part, operation, command, run, guard)
  if astatus == 400 or (astatus == 500 and not answer.results) then
    -- (nothing was sent: as the refusals before it)
    return W.reply(astatus, { error = answer.error, dropped = answer.dropped, drop_errors = answer.drop_errors })
  end
  return W.reply(astatus, answer)
end

--- content_by_lua for POST /streams/<operation>: one request for both providers,
-- `{"aliyun": {...}, "zego": {...}, "confirm": ...}` (each part as its provider's request; either
-- may be left out, not both). Every part is checked, and the guard counts every stream, before
-- anything is sent; each part's intent is written, then both are sent at once. The answer holds
-- each part's answer under its provider, and the status of the worst (200 only when every stream
-- of both succeeded).
function M.both(operation)
  local command = "POST /streams/" .. operation
  local function refuse(status, message)
    W.write_audit { provider = "both", command = command, outcome = "refused", exit = status, note = message }
    return W.reply(status, { error = message })
  end
  local body, confirm = admitted("both", command, refuse)
  if not body then return end
  local parts, n = {}, 0
  for k in pairs(body) do
    if not ROUTES[k] then
      return refuse(400, format("field '%s' is not a field of this request (it holds \"aliyun\", \"zego\" and "
        .. "\"confirm\")", tostring(k)))
    end
  end
  for _, provider in ipairs { "aliyun", "zego" } do
    if body[provider] ~= nil then
      local part, status, message = checked_part(provider, operation, body[provider], provider .. ".")
      if not part then return refuse(status, message) end
      local seen = {}
      for _, name in ipairs(part.names) do
        if not seen[name] then seen[name], n = true, n + 1 end
      end
      parts[#parts + 1] = part
    end
  end
  if #parts == 0 then return refuse(400, "body: give \"aliyun\", \"zego\" or both") end
  local ok, guard = guarded(operation, n, confirm)
  if not ok then
    W.write_audit { provider = "both", command = command, guard = guard.guard, outcome = "refused", exit = 400,
                    note = guard.message }
    return W.reply(400, { error = guard.message, code = guard.code, guard = guard.guard })
  end
  -- (every intent before anything is sent: one that cannot be written sends nothing)
  local runs = {}
  for i, part in ipairs(parts) do
    local action = ROUTES[part.provider][operation].action
    local planned = {}
    for j, name in ipairs(part.names) do planned[j] = { stream = name, action = action } end
    local intended, run = W.write_intent({ provider = part.provider, command = command, actions = { action },
      guard = guard }, planned)
    if not intended then
      return W.reply(500, { error = "the audit log cannot be written: " .. tostring(W.audit_why)
        .. "; nothing was sent" })
    end
    runs[i] = run
  end
  local threads = {}
  for i, part in ipairs(parts) do
    threads[i] = assert(ngx.thread.spawn(send_part, part, operation, command, runs[i], guard))
  end
  local answer, worst = {}, 200
  local RANK = { [200] = 0, [502] = 1, [409] = 2, [400] = 2, [500] = 3 }
  for i, part in ipairs(parts) do
    local done, part_answer, status = ngx.thread.wait(threads[i])
    if not done then part_answer, status = { error = "failed: " .. tostring(part_answer) }, 500 end
    answer[part.provider] = part_answer
    -- (a part that sent nothing beside one that sent: the request as a whole is partly done, a 502)
    if status ~= 200 and #parts > 1 and not part_answer.results then status = 502 end
    if RANK[status] > RANK[worst] then worst = status end
  end
  return W.reply(worst, answer)
end

return M
