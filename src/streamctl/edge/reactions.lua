--- The providers' callbacks at the edge (streamctl.edge.server): checked
-- (streamctl.edge.callbacks: signatures, freshness, each once), counted,
-- audited and answered at once; what they call for done in a timer. A
-- stream that starts publishing while the forbid list holds it is forbidden
-- again; a relay that reports going offline for any reason but a stop asked
-- for is looked up and, when the service confirms it, restarted.
-- @module streamctl.edge.reactions

-- luacheck: globals ngx

local cjson = require "cjson.safe"
local callbacks = require "streamctl.edge.callbacks"
local settings = require "streamctl.edge.settings"
local request_trace = require("streamctl.base.nginx").request_trace
local W = require "streamctl.edge.worker"

local type, ipairs, tostring, tonumber = type, ipairs, tostring, tonumber
local format = string.format

local M = {}

-- Counts a callback and answers it: 200, or 401 (503 when the replay store is full or cannot
-- answer: the provider delivers it again) with the code that refused it.
local function answer_callback(provider, event_name, err, stream, reaction, quiet)
  W.metrics:count("callbacks", { provider = provider, event = event_name, result = err and err.code or "accepted" })
  if not err then
    W.write_audit { provider = provider, command = "callback " .. event_name, outcome = "ok", exit = 200,
                  user = provider .. " callback from " .. tostring(ngx.var.remote_addr),
                  streams = stream and { { stream = stream, action = event_name, outcome = "ok" } } or nil,
                  note = reaction and ("reaction: " .. reaction) or nil }
  end
  if err then
    if not quiet then
      ngx.log(ngx.WARN, "streamctl.edge: ", provider, " callback refused: ", err.code, ": ", err.message)
    end
    local status = (err.kind == "server" or err.code == "NotConfigured") and 503 or 401
    return W.answer_error(status, err.code)
  end
  return W.reply(200, { ok = true })
end

-- Runs `fn(trace, ...)` in a timer (cosockets there), counting its reaction;
-- `target` ({ stream, action }) is what it changes, for the audit log. `trace`
-- is the callback request's (a timer has no request: its calls are put in
-- that trace by hand).
local function react(provider, reaction, target, fn, ...)
  local trace = request_trace()
  local ok, terr = ngx.timer.at(0, function(premature, ...)
    if premature then return end
    -- (its intent first: a reaction the log cannot record is not made)
    local intended, run = W.write_intent({ provider = provider, command = "reaction " .. reaction,
                                         actions = { target.action } }, { target })
    if not intended then
      W.metrics:count("reactions", { provider = provider, reaction = reaction, result = "failed" })
      ngx.log(ngx.ERR, "streamctl.edge: ", reaction, ": not made: the audit log cannot be written")
      return
    end
    local done, why = fn(trace, ...)
    W.metrics:count("reactions", { provider = provider, reaction = reaction, result = done and "ok" or "failed" })
    W.write_audit { record = "outcome", run = run, provider = provider, command = "reaction " .. reaction,
                  actions = { target.action }, outcome = done and "ok" or "failed", exit = done and 0 or 1,
                  streams = { { stream = target.stream, action = target.action, outcome = done and "ok" or "failed" } },
                  note = (not done) and tostring(why) or nil }
    if not done then ngx.log(ngx.ERR, "streamctl.edge: ", reaction, ": ", tostring(why)) end
  end, ...)
  if not ok then
    W.metrics:count("reactions", { provider = provider, reaction = reaction, result = "failed" })
    ngx.log(ngx.ERR, "streamctl.edge: ", reaction, ": no timer: ", tostring(terr))
  end
end

-- One stream forbidden again, in `trace`: true, or nil and why.
local function forbid_again(trace, provider, fields)
  local c, cerr = W.client(provider)
  if not c then return nil, cerr end
  fields.trace = trace
  local res, err
  if provider == "aliyun" then
    res, err = c:forbid_live_stream(fields)
  else
    res, err = c:forbid_rtc_streams(fields)
    if res and res.succeeded ~= res.total then res, err = nil, "not forbidden: " .. cjson.encode(W.report_json(res)) end
  end
  if not res then return nil, err end
  return true
end

-- Whether a stream is on the list; a list that cannot be read is said (the callback is
-- still answered: the next reconcile round puts right what this one could not).
local function listed_or_say(key)
  local yes, err = W.store():has(key)
  if yes == nil then ngx.log(ngx.ERR, "streamctl.edge: the desired state cannot be read: ", tostring(err)) end
  return yes
end

-- Where callbacks seen are kept: Redis, shared by every edge naming it (made once per worker), or
-- the shared dict, every worker of this nginx.
local replay
function M.replay_store()
  local url = W.settings.redis_url
  if not url then return callbacks.shdict_replay(ngx.shared[W.CALLBACKS_DICT]) end
  replay = replay or assert(require("streamctl.store.redis").replay_store(url)) -- (the URL was checked in init)
  return replay
end

-- An error for callbacks whose settings are missing: 503, said in the error log (every time: the
-- provider retries, and an operator must see why).
local function not_configured(...)
  local names = {}
  for i, key in ipairs { ... } do names[i] = settings.name(W.settings, key) end
  return { code = "NotConfigured", message = table.concat(names, " and ") .. (#names > 1 and " are" or " is")
    .. " not set" }
end

--- content_by_lua for GET /callbacks/aliyun: a stream started or stopped publishing.
function M.aliyun()
  local key, domain = W.settings.aliyun_notify_key, W.settings.aliyun_notify_domain
  if not key or not domain then
    return answer_callback("aliyun", "unverified",
      not_configured("aliyun_notify_key", "aliyun_notify_domain"))
  end
  local event, err = callbacks.aliyun.check_nginx { key = key, domain = domain, replay = M.replay_store() }
  local reaction
  if event and event.action == "publish" then
    -- `app` is the ingest domain (the streaming domain where no ingest domain is bound)
    local fields = { domain_name = event.app, app_name = event.appname, stream_name = event.id }
    if listed_or_say(W.desired_key("aliyun", fields, event.id)) then
      reaction = "forbid_again"
      react("aliyun", reaction, { stream = event.app .. "/" .. event.appname .. "/" .. event.id,
                                  action = "ForbidLiveStream" }, forbid_again, "aliyun", fields)
    end
  end
  return answer_callback("aliyun", event and event.action or "unverified", err, event and event.stream, reaction)
end

--- content_by_lua for POST /callbacks/zego: a stream was created or closed.
function M.zego()
  local secret = W.settings.zego_callback_secret
  if not secret then return answer_callback("zego", "unverified", not_configured("zego_callback_secret")) end
  local event, err = callbacks.zego.check_nginx { secret = secret, replay = M.replay_store() }
  local reaction
  local stream = event and type(event.stream_id) == "string" and event.stream_id or nil
  local listed = stream and listed_or_say(W.desired_key("zego", nil, stream))
  if event and event.event == "stream_create" and listed then
    reaction = "forbid_again"
    react("zego", reaction, { stream = stream, action = "ForbidRTCStreams" }, forbid_again, "zego",
      { stream_ids = { stream } })
  end
  return answer_callback("zego", event and type(event.event) == "string" and event.event or "unverified", err, stream,
    reaction)
end

-- A relay reported offline: looked up (a callback carries no signature: it is a hint,
-- never a command), and restarted when the service says it is offline.
local function restart_relay(trace, task_id, region)
  if not region then return nil, "relay " .. task_id .. " is offline; STREAMCTL_EDGE_TASK_REGION is not set" end
  local c, cerr = W.client("aliyun")
  if not c then return nil, cerr end
  local task, err = c:describe_live_pull_to_push { region = region, task_id = task_id, trace = trace }
  if not task then return nil, err end
  if tonumber(task.TaskStatus) ~= 3 then return true end -- (running, abnormal or not started: nothing to do)
  local ok, rerr = c:restart_live_pull_to_push { region = region, task_id = task_id, trace = trace }
  if not ok then return nil, rerr end
  return true
end

--- content_by_lua for POST /callbacks/relay/<token>: a pull-to-push task's status.
function M.relay(token)
  local expected = W.settings.callback_token
  if not expected or not W.same_secret(token or "", expected) then
    W.metrics:count("callbacks", { provider = "aliyun", event = "relay", result = "InvalidToken" })
    return W.answer_error(404, "not found")
  end
  -- (nothing is written to the error log while this request runs: nginx would add its request
  -- line, the token with it; the location has no access log for the same reason)
  ngx.req.read_body()
  local event = cjson.decode(ngx.req.get_body_data() or "")
  if type(event) ~= "table" or type(event.TaskId) ~= "string" or not event.TaskId:find("^[%w-]+$") then
    return answer_callback("aliyun", "relay", { code = "MalformedCallback", message = "not a task's JSON" }, nil, nil,
      true)
  end
  -- Fresh and once: EventTime within the callbacks' window, each (task, time, status) once (the
  -- token is all that says the sender is the service: a copy sent later does nothing).
  local at, now = tonumber(event.EventTime), ngx.now()
  if not at or math.abs(now - at) > callbacks.WINDOW_S then
    return answer_callback("aliyun", "relay", { code = "StaleCallback", message = "EventTime outside the window" }, nil,
      nil, true)
  end
  local status = tonumber(event.TaskStatus)
  -- (its window began WINDOW_S before its EventTime: a store that forgot since then refuses it)
  local fresh, why, code = M.replay_store():add(format("relay:%s:%s:%s", event.TaskId, tostring(event.EventTime),
    tostring(status)), 2 * callbacks.WINDOW_S, now, now - at + callbacks.WINDOW_S)
  if fresh ~= true then
    return answer_callback("aliyun", "relay", fresh == false and { code = "ReplayedCallback", message = "seen before" }
      or { code = code or "ReplayStoreFull", kind = "server", message = tostring(why) }, nil, nil, true)
  end
  local region = W.settings.task_region
  local reaction
  if status == 3 and event.TaskInvalidReason ~= "TriggerByUser" then
    reaction = "restart_relay" -- (without STREAMCTL_EDGE_TASK_REGION it fails, and says why)
    react("aliyun", reaction, { stream = "task " .. event.TaskId, action = "RestartLivePullToPush" }, restart_relay,
      event.TaskId, region)
  end
  return answer_callback("aliyun", "relay", nil, "task " .. event.TaskId, reaction)
end


return M
