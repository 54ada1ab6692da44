--- streamctl at the edge: the handlers examples/openresty/nginx.conf routes to.
--
--   POST /streams/aliyun/resume   {"domain_name": "...", "app_name": "...", "stream_name": "..."}
--   POST /streams/aliyun/forbid   ... or "stream_names": [...]; forbid also takes "resume_time",
--                                 "oneshot", "region_id"
--   POST /streams/zego/resume     {"stream_id": "..."} or {"stream_ids": [...]} (RTC streams)
--   POST /streams/zego/forbid
--   GET  /metrics                 Prometheus text: requests, retries, throttles, failures, latency,
--                                 the learned room and the cap, slot waits, throttles and retries
--                                 by code, callbacks, reactions, drift, the block list's places left
--                                 (after a forbid whose body says "check_places": true)
--   GET  /callbacks/aliyun        Alibaba Cloud's stream ingest callbacks (publish, publish_done),
--                                 signed with $STREAMCTL_ALIYUN_NOTIFY_KEY for the ingest domain
--                                 $STREAMCTL_ALIYUN_NOTIFY_DOMAIN ("new,old" during a rotation)
--   POST /callbacks/zego          ZEGO's stream callbacks, signed with $ZEGO_CALLBACK_SECRET ("new,old"
--                                 during a rotation); callbacks seen are kept in Redis with
--                                 STREAMCTL_REDIS_URL (a replay to another edge refused), else
--                                 in the shared dict
--   POST /callbacks/relay/<token> pull-to-push task status (unsigned: the path's token,
--                                 $STREAMCTL_EDGE_CALLBACK_TOKEN, is all that says it is ours)
--   GET  /admission/aliyun        Alibaba Cloud Live's remote authentication: ?domain=&app=&stream=
--                                 [&ip=][&auth_key=]: 200 admitted, 403 refused (streamctl.edge.admission:
--                                 the forbid list; the auth_key too with $STREAMCTL_ALIYUN_AUTH_KEY)
--   POST /tokens/zego             (Bearer $STREAMCTL_EDGE_ISSUER_TOKEN, apart from the moderation API's)
--                                 {"user_id", "room_id", "login", "publish", "stream_ids", "ttl"}: a
--                                 Token04, issued only when every stream it grants is admitted (403
--                                 naming the one that is not); Bearer token as /streams
--
-- The forbid list is a desired state (streamctl.operator.desired), kept in the
-- shared dict streamctl_desired, or in Redis with STREAMCTL_REDIS_URL (every
-- edge naming it keeps one list): a forbid adds its streams, a resume takes
-- them out. A
-- stream that starts publishing while it is on the list (its callback says
-- so) is forbidden again at once; a relay that reports going offline for
-- any reason but a stop asked for (TriggerByUser) is looked up and, when
-- the service confirms it is offline, restarted. Each reaction and each
-- callback is counted in /metrics. Callbacks are answered at once; the
-- reactions run in timers.
--
-- Every /streams request needs `Authorization: Bearer <STREAMCTL_EDGE_TOKEN>`
-- (401 otherwise; compared in constant time). The answer is the per-stream
-- report as JSON: 200 when every stream succeeded, 502 when any failed or
-- its outcome is unknown (the report says which), 400 naming the field when
-- the body is not valid (nothing is sent then).
--
-- A forbid of more than $STREAMCTL_EDGE_MAX_FORBID streams (100), or a
-- resume of more than $STREAMCTL_EDGE_MAX_RESUME (100), in one request needs
-- "confirm": true in its body (streamctl.operator.audit.guard: 400
-- TooManyStreams, nothing sent, otherwise). Every /streams request
-- (refusals too), every verified callback and reaction, and every reconcile
-- round that found a difference is in the audit log,
-- $STREAMCTL_EDGE_AUDIT_LOG (default logs/audit.jsonl under nginx's prefix,
-- mode 0600): a change's intent (who, what, which streams) before anything
-- is sent, its outcome (each stream's, the request IDs) after, sharing a run
-- id (docs/reconcile.md "In nginx"). A /streams request sends nothing (500)
-- while its intent cannot be written.
--
-- The desired state starts from the JSON file $STREAMCTL_EDGE_FORBIDS, when
-- set, and a timer on worker 0 reconciles it every
-- $STREAMCTL_EDGE_RECONCILE_S seconds (60) with the providers' view
-- (streamctl.operator.reconcile: Aliyun's block list; ZEGO's, which cannot be read,
-- as last applied), sending only the difference; what it found, fixed and
-- failed is counted in /metrics (streamctl_drift_total):
--   {"aliyun": [{"domain_name": "...", "app_name": "...", "stream_names": ["..."]}],
--    "zego": ["stream-id", ...]}
--
-- Credentials come from the providers' environment variables
-- (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/_SECURITY_TOKEN, ZEGO_APP_ID,
-- ZEGO_SERVER_SECRET); STREAMCTL_ALIYUN_ENDPOINT, STREAMCTL_ZEGO_ENDPOINT and
-- STREAMCTL_CA_FILE point the clients elsewhere (the emulator). With
-- STREAMCTL_REDIS_URL (redis://[[user]:password@]host[:port][/db][?nodes=N&prefix=P&timeout_ms=MS], or
-- redis+sentinel://[[user]:password@]host1:port1,host2:port2/NAME[/db][?sentinel_password=...]) the rate limits
-- and ZEGO Sequences live in that Redis, one budget for every nginx on every
-- machine that uses it (over cosockets, lua-nginx-redis); without it, in the
-- shared dict, one budget per nginx. nginx passes a worker only the variables
-- its `env` directives name.
--
-- Traces (docs/tracing.md): with OTEL_EXPORTER_OTLP_ENDPOINT (and the other
-- OTEL_* variables nginx.conf names), each worker exports its calls' spans
-- by OTLP/HTTP from one timer; a call made for a request is in the request's
-- trace (its `traceparent` header), and so is a callback's reaction, though
-- it runs in a timer.

-- nginx's master reads LUA_PATH and LUA_CPATH from the shell that starts it,
-- and puts them where nginx.conf's `;;` (or no lua_package_*path) says: a
-- shell set up for Lua 5.4 then has LuaJIT load Lua 5.4's C modules (cjson:
-- "undefined symbol: lua_newuserdatauv"). Refused here, before any require,
-- naming the variable (docs/openresty.md, "Lua 5.4's paths").
if _VERSION == "Lua 5.1" and package.searchpath then
  for _, m in ipairs { { "cjson", "cpath", "LUA_CPATH" }, { "streamctl.core", "cpath", "LUA_CPATH" },
                       { "streamctl", "path", "LUA_PATH" } } do
    local file = package.searchpath(m[1], package[m[2]])
    if file and (file:find("lua/5%.4") or file:find("lua5%.4")) then
      local from = os.getenv(m[3]) and m[3] .. " in nginx's environment (" .. os.getenv(m[3]) .. ")"
        or "lua_package_" .. m[2] .. " in nginx.conf"
      error(string.format("streamctl_edge.lua: require %q would load %s, Lua 5.4's, into LuaJIT: %s names a "
        .. "Lua 5.4 tree. Start nginx without it (env -u LUA_PATH -u LUA_CPATH nginx ...), and give Lua 5.4 "
        .. "its paths in LUA_PATH_5_4 and LUA_CPATH_5_4", m[1], file, from), 0)
    end
  end
end

local cjson = require "cjson.safe"
local streamctl = require "streamctl"
local callbacks = require "streamctl.edge.callbacks"
local tracing = require "streamctl.trace"
local request_trace = require("streamctl.base.nginx").request_trace
local core = require "streamctl.core"
local metrics_mod = require "streamctl.operator.metrics"
local audit = require "streamctl.operator.audit"
local reconcile = require "streamctl.operator.reconcile"
local aliyun_places = require "streamctl.aliyun.places"
local desired_store = require "streamctl.operator.desired"
local admission = require "streamctl.edge.admission"
local ingest = require "streamctl.edge.ingest"

local ngx = ngx
local type, pairs, ipairs, tostring, tonumber, getenv = type, pairs, ipairs, tostring, tonumber, os.getenv
local byte, format = string.byte, string.format

local M = {}

local SHARED_DICT = "streamctl"          -- rate limits and ZEGO Sequences, one budget per nginx
local METRICS_DICT = "streamctl_metrics" -- the counters every worker adds to
local CALLBACKS_DICT = "streamctl_callbacks" -- callbacks seen (replays refused), for every worker
local DESIRED_DICT = "streamctl_desired" -- the forbid list: "aliyun|domain|app|stream", "zego|stream_id"

local metrics -- made in init_worker, over the shared dict
local clients = {} -- per worker, made on first use
local audit_write, audit_why -- the audit log's writer, made in init_worker (and why the last write failed)
local host -- this machine's name, for the audit lines
local tracer -- this worker's span exporter (streamctl.trace), when OTEL_* asks for one
local max_forbid, follow -- (defined below)


-- The settings read from the environment (workers see what `env` names).
local function setting(name, default)
  local v = getenv(name)
  if v == nil or v == "" then return default end
  return v
end

-- The desired state: in Redis with STREAMCTL_REDIS_URL (every edge naming it agrees), else in
-- the shared dict (this nginx). One per worker, made on first use.
local desired_state
local function store()
  if not desired_state then
    local redis = setting("STREAMCTL_REDIS_URL")
    if redis then
      desired_state = assert(desired_store.redis(redis)) -- (the URL was checked in init)
    else
      desired_state = desired_store.shdict(ngx.shared[DESIRED_DICT])
    end
  end
  return desired_state
end

--- init_by_lua: checks what the workers will need, so a mistake stops nginx
-- at start instead of failing requests.
function M.init()
  if not setting("STREAMCTL_EDGE_TOKEN") then
    error("streamctl_edge: STREAMCTL_EDGE_TOKEN is not set (and named by an 'env' directive): "
      .. "every /streams request would be refused")
  end
  local redis = setting("STREAMCTL_REDIS_URL")
  if redis then
    local ok, why = require("streamctl.store.redis").config(redis)
    if not ok then error("streamctl_edge: STREAMCTL_REDIS_URL " .. why) end
  end
  local _, why = tracing.from_env { service_name = "streamctl-edge" }
  if why then error("streamctl_edge: " .. why) end
  for _, dict in ipairs { SHARED_DICT, METRICS_DICT, CALLBACKS_DICT, DESIRED_DICT } do
    if not ngx.shared[dict] then error("streamctl_edge: nginx.conf needs 'lua_shared_dict " .. dict .. " ...;'") end
  end
  -- (the callbacks' dict began when nginx did: a callback whose window began before cannot have been
  -- seen by it; a reload keeps the dict and its first mark)
  assert(callbacks.shdict_started(ngx.shared[CALLBACKS_DICT], ngx.now()))
  for _, name in ipairs { "STREAMCTL_EDGE_MAX_FORBID", "STREAMCTL_EDGE_MAX_RESUME" } do
    local max = setting(name)
    -- (decimal digits only: tonumber would take 0x100, 1e3 or 200.0 for a count)
    if max and not (max:find("^%d+$") and #max <= 15) then
      error("streamctl_edge: " .. name .. " must be a whole number >= 0 in decimal digits (got " .. max .. ")")
    end
  end
  -- (a typo in a setting the door reads stops nginx here, named: at the door it would answer 500,
  -- which Alibaba Cloud's remote authentication takes as a pass by default)
  if setting("STREAMCTL_EDGE_ISSUER_TOKEN") == setting("STREAMCTL_EDGE_TOKEN") then
    error("streamctl_edge: STREAMCTL_EDGE_ISSUER_TOKEN must differ from STREAMCTL_EDGE_TOKEN: who may issue ZEGO "
      .. "tokens may not forbid and resume streams")
  end
  local on_error = setting("STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR")
  if on_error and on_error ~= "deny" and on_error ~= "allow" then
    error("streamctl_edge: STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR must be \"deny\" or \"allow\" (got " .. on_error .. ")")
  end
  for _, name in ipairs { "STREAMCTL_ALIYUN_AUTH_KEY", "STREAMCTL_ALIYUN_NOTIFY_KEY", "ZEGO_CALLBACK_SECRET" } do
    local text = setting(name)
    if text and not (text:find("^[^,%s]+$") or text:find("^[^,%s]+,[^,%s]+$")) then
      error("streamctl_edge: " .. name .. " must be a key, or \"new,old\" during a rotation: no empty part, no "
        .. "space, at most two")
    end
  end
  local secret, app_id = setting("ZEGO_SERVER_SECRET"), setting("ZEGO_APP_ID")
  if app_id and not (app_id:find("^%d+$") and #app_id <= 10) then
    error("streamctl_edge: ZEGO_APP_ID must be the AppId in decimal digits (got " .. app_id .. ")")
  end
  if (app_id == nil) ~= (secret == nil) then
    error("streamctl_edge: ZEGO_APP_ID and ZEGO_SERVER_SECRET go together (only " .. (app_id and "ZEGO_APP_ID"
      or "ZEGO_SERVER_SECRET") .. " is set): without both the door could not verify ZEGO's tokens")
  end
  if secret and #secret ~= 32 then
    error("streamctl_edge: ZEGO_SERVER_SECRET must be the ServerSecret's 32 characters (got " .. #secret .. "): "
      .. "without it the door could not verify ZEGO's tokens")
  end
  local adopt = setting("STREAMCTL_EDGE_ADOPT")
  if adopt and adopt ~= "aliyun" then
    error("streamctl_edge: STREAMCTL_EDGE_ADOPT must be \"aliyun\" (adopt Alibaba Cloud's block lists when the "
      .. "forbid list may have forgotten and there is no seed) or unset (got " .. adopt .. ")")
  end
end

-- The client for `provider`, made on first use in this worker.
local function client(provider)
  local c = clients[provider]
  if c then return c end
  local err
  local redis = setting("STREAMCTL_REDIS_URL")
  local opts = {
    redis = redis,                            -- one budget for every nginx using this Redis,
    shared_dict = not redis and SHARED_DICT or nil, -- else for every worker of this nginx
    on_attempt = metrics.on_attempt,
    tracer = tracer,                          -- with OTEL_EXPORTER_OTLP_ENDPOINT: spans exported
    ca_file = setting("STREAMCTL_CA_FILE"),   -- must be the CA lua_ssl_trusted_certificate names
    timeout_ms = 10000,
  }
  if provider == "aliyun" then
    opts.endpoint = setting("STREAMCTL_ALIYUN_ENDPOINT")
    c, err = streamctl.aliyun.new(opts)
  else
    opts.endpoint = setting("STREAMCTL_ZEGO_ENDPOINT")
    c, err = streamctl.zego.new(opts)
  end
  if not c then return nil, err end
  clients[provider] = c
  return c
end

local function reply(status, value)
  ngx.status = status
  ngx.header.content_type = "application/json"
  ngx.header.cache_control = "no-store"
  ngx.print(cjson.encode(value))
  return ngx.exit(status)
end

local function answer_error(status, message)
  return reply(status, { error = message })
end

-- Equal strings, compared in time that depends on neither: both are hashed
-- first, so even their lengths do not show.
local function same_secret(a, b)
  local x, y = core.sha256_hex(a), core.sha256_hex(b)
  local diff = 0
  for i = 1, #x do
    if byte(x, i) ~= byte(y, i) then diff = diff + 1 end
  end
  return diff == 0
end

local function authorized(name)
  local header = ngx.var.http_authorization
  local token = type(header) == "string" and header:match("^[Bb]earer +(%S+)%s*$")
  if not token then return false end
  return same_secret(token, setting(name, ""))
end

-- A POST with the token of setting `name` (default STREAMCTL_EDGE_TOKEN, the moderation API's), or
-- the answer already given by `refuse(status, message)` (405, 401): true when refused.
local function refused_at_door(refuse, name)
  if ngx.req.get_method() ~= "POST" then
    ngx.header.allow = "POST"
    refuse(405, "use POST")
    return true
  end
  if not authorized(name or "STREAMCTL_EDGE_TOKEN") then
    ngx.header.www_authenticate = 'Bearer realm="streamctl"'
    refuse(401, "a valid 'Authorization: Bearer <token>' header is required")
    return true
  end
  return false
end

-- One audit line (streamctl.operator.audit.record's fields). Who: `fields.user`, else the
-- client of this request (a timer has none: it is the edge's own doing). A line that
-- cannot be written is said, and /streams requests are refused until one can be.
local function write_audit(fields)
  if not audit_write then return false end
  local c = clients[fields.provider]
  if not fields.user then
    local timer = ngx.get_phase() == "timer"
    fields.user = timer and "the edge (timer)" or ("edge token from " .. tostring(ngx.var.remote_addr))
  end
  fields.host = host
  fields.credential = c and (c.access_key_id or (c.app_id and tostring(c.app_id))) or nil
  local ok, why = audit_write(audit.record(fields))
  if not ok then
    audit_why = why
    ngx.log(ngx.ERR, "streamctl_edge: the audit log: ", why)
    return false
  end
  audit_why = nil
  return true
end

-- The intent of a change about to be sent (the audit log as a write-ahead
-- log: docs/reconcile.md): a new run id, the streams (each when at most 100,
-- always their count and digest). True and the run id, or false: nothing
-- may be sent. (write(2) under a lock, no fdatasync: that would block the
-- worker; a worker that crashes keeps it, a power loss may not.)
local function write_intent(fields, streams)
  local run = audit.run_id()
  fields.run = run
  return write_audit(audit.intent(fields, streams)), run
end

-- When a forbid ends by itself (an entry's `ends`, Unix seconds), as UTC text.
local function ends_text(r)
  return r.ends and core.utc_timestamp(math.floor(r.ends)) or nil
end

-- A report's streams as audit entries, and its outcome in one word.
local function audit_streams(report)
  local out = {}
  for i, r in ipairs(report.results) do
    out[i] = audit.entry(r, r.stream, r.action or report.action) -- (a reconcile's entries name their own)
  end
  return out
end
local function report_outcome(report)
  if report.unknown > 0 then return "unknown" end
  return report.failed == 0 and "ok" or "failed"
end

-- A stream's key in the desired state.
local function desired_key(provider, fields, name)
  if provider == "aliyun" then
    return desired_store.key("aliyun", { domain_name = fields.domain_name, app_name = fields.app_name,
      stream_name = name })
  end
  return desired_store.key("zego", name)
end

-- The guard's limits (STREAMCTL_EDGE_MAX_FORBID and _MAX_RESUME, checked at start), or nil: the defaults.
function max_forbid()
  return tonumber(setting("STREAMCTL_EDGE_MAX_FORBID"))
end
local function max_resume()
  return tonumber(setting("STREAMCTL_EDGE_MAX_RESUME"))
end

-- Makes the desired state follow a request: a forbid adds its streams, a resume takes
-- them out (an Aliyun resume of app "*" every app's). A full dict evicts nothing
-- (safe_set): true, or nil and why some were not kept. ZEGO streams changed here are
-- looked at again by the next reconcile (its record of what it applied may no longer hold).
function follow(provider, operation, fields, names)
  local st = store()
  local keys = {}
  for i, name in ipairs(names) do keys[i] = desired_key(provider, fields, name) end
  local ok, err
  if operation == "forbid" then
    ok, err = st:add(keys)
  elseif provider == "aliyun" and fields.app_name == "*" then
    -- (every app's: what the list holds of this domain and these streams)
    local all, merr = st:members()
    ok, err = all ~= nil, merr
    if all then
      local prefix, wanted, gone = desired_key("aliyun", { domain_name = fields.domain_name, app_name = "" }, "")
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
    local c = clients.zego
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
  for i, name in ipairs(names) do keys[i] = desired_key(provider, fields, name) end
  if #keys == 0 then return end
  local ok, err
  if settle then ok, err = store():settled(keys, id) else ok, err = store():pending(keys, id, PENDING_TTL) end
  if not ok then
    ngx.log(ngx.ERR, "streamctl_edge: the forbid's streams could not be marked ", settle and "settled" or "pending",
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

-- The report as JSON: one entry per stream, in the order given.
local function report_json(report)
  local results = {}
  for i, r in ipairs(report.results) do
    local e = r.error
    results[i] = {
      stream = r.stream, ok = r.ok, attempts = r.attempts, request_id = r.request_id or (e and e.request_id),
      lookup_request_id = r.lookup_request_id or (e and e.lookup_request_id),
      code = e and e.code, message = e and e.message, outcome_unknown = r.outcome_unknown or nil,
      superseded_by = r.superseded_by, -- (a later call's decision on the stream stands: not on the list)
      ends = ends_text(r), ends_by = r.ends_by, -- (when a forbid ends by itself: docs/clients.md)
    }
  end
  return {
    action = report.action, total = report.total, succeeded = report.succeeded, failed = report.failed,
    unknown = report.unknown, calls = report.calls, duplicates = report.duplicates, results = results,
  }
end

--- content_by_lua for POST /streams/<provider>/<operation>.
function M.streams(provider, operation)
  local route = ROUTES[provider]
  local command = "POST /streams/" .. provider .. "/" .. operation
  -- every refusal is audited too (a wrong token included)
  local function refuse(status, message)
    write_audit { provider = provider, command = command, outcome = "refused", exit = status, note = message }
    return reply(status, { error = message })
  end
  if refused_at_door(refuse) then return end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    return refuse(400, ngx.req.get_body_file() and "body: too large (client_body_buffer_size)" or "body: missing")
  end
  local fields = cjson.decode(body)
  if type(fields) ~= "table" or not body:find("^%s*{") then return refuse(400, "body: must be a JSON object") end
  for k, v in pairs(fields) do
    if v == cjson.null then return refuse(400, format("field '%s' must not be null", tostring(k))) end
  end
  local one = fields[route.one]
  if one ~= nil then
    if fields[route.list] ~= nil then
      return refuse(400, format("fields '%s' and '%s': give one of them", route.one, route.list))
    end
    if type(one) ~= "string" then return refuse(400, format("field '%s' must be a string", route.one)) end
    fields[route.list], fields[route.one] = { one }, nil
  end
  if fields.on_progress ~= nil then return refuse(400, "field 'on_progress' is not a field of this request") end
  local confirm = fields.confirm
  if confirm ~= nil and type(confirm) ~= "boolean" then return refuse(400, "field 'confirm' must be true or false") end
  fields.confirm = nil
  if not audit_write or audit_why then
    -- (nothing is sent that the log cannot record; this refusal is the next try at writing it)
    if not write_audit { provider = provider, command = command, outcome = "refused", exit = 500 } then
      return reply(500, { error = "the audit log cannot be written: " .. tostring(audit_why) })
    end
  end
  local c, cerr = client(provider)
  if not c then return refuse(500, "the " .. provider .. " client cannot be made: " .. tostring(cerr)) end
  -- (every field checked as the method checks it before the intent: an intent is only ever written by a
  -- request about to send)
  local valid, verr = c:check(route[operation].method, fields)
  if not valid then return refuse(400, verr.message) end
  if operation == "forbid" then
    -- (each stream by the list's own rule, as its seed is read: a name the list cannot hold, app "*"
    -- among them, is refused before anything is sent or kept)
    local items = {}
    for i, name in ipairs(type(fields[route.list]) == "table" and fields[route.list] or {}) do
      items[i] = provider == "aliyun" and { domain_name = fields.domain_name, app_name = fields.app_name,
        stream_name = name } or { stream_id = name }
    end
    local ok, lerr = reconcile.check(provider, items)
    if not ok then return refuse(400, "the forbid list cannot hold it: " .. lerr.message) end
  end
  local guard
  if type(fields[route.list]) == "table" then
    -- (a resume is a blast radius too: an un-ban of every stream forbidden for moderation)
    local n, seen = 0, {}
    for _, name in ipairs(fields[route.list]) do
      if not seen[name] then seen[name], n = true, n + 1 end
    end
    local ok, decision
    if operation == "forbid" then
      ok, decision = audit.guard(n, { max_forbid = max_forbid(), confirm = confirm })
    else
      ok, decision = audit.guard(0, { resumes = n, max_resume = max_resume(), confirm = confirm })
    end
    if not ok then
      write_audit { provider = provider, command = command, guard = decision.guard, outcome = "refused", exit = 400,
                    note = decision.message }
      return reply(400, { error = decision.message, code = decision.code, guard = decision.guard })
    end
    guard = decision
  end
  local planned = {}
  for i, name in ipairs(type(fields[route.list]) == "table" and fields[route.list] or {}) do
    planned[i] = { stream = tostring(name), action = route[operation].action } -- (named as its outcome names it)
  end
  local intended, run = write_intent({ provider = provider, command = command,
    actions = { route[operation].action }, guard = guard }, planned)
  if not intended then
    return reply(500, { error = "the audit log cannot be written: " .. tostring(audit_why) .. "; nothing was sent" })
  end
  local names = {}
  for i, p in ipairs(planned) do names[i] = p.stream end
  if operation == "forbid" then marks(provider, fields, names, run) end
  local report, err = c[route[operation].method](c, fields)
  -- (a body's "check_places": the places left as the check counted them, its refusal's or its report's)
  local places = report and report.places or err and err.places
  if places then metrics:places_left(provider, places) end
  if not report then
    if operation == "forbid" then marks(provider, fields, names, run, true) end
    -- (a body's "check_places": true, and the block list has no room for it: a 409, its places said)
    local full = err.code == "BlockListFull"
    write_audit { record = "outcome", run = run, provider = provider, command = command,
                  outcome = full and "refused" or "failed", places = err.places,
                  exit = err.code == "InvalidParameter" and 400 or full and 409 or 500,
                  note = "nothing was sent: " .. err.message }
    if err.code == "InvalidParameter" then return refuse(400, err.message) end
    if full then return reply(409, { error = err.message, code = err.code, places = err.places }) end
    return refuse(500, tostring(err))
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
  local answer = report_json(report)
  if not kept then
    -- (the calls were made, as the results say; the list did not follow them: a 500 that says both)
    ngx.log(ngx.ERR, "streamctl_edge: the desired state: ", why)
    status = 500
    answer.error = "the calls were sent (see results), but the forbid list could not follow them: " .. tostring(why)
  end
  write_audit { record = "outcome", run = run, provider = provider, command = command, actions = { report.action },
                guard = guard, outcome = report_outcome(report), exit = status, calls = report.calls,
                streams = audit_streams(report), note = not kept and answer.error or nil }
  return reply(status, answer)
end

-- --------------------------------------------------------------------
-- Callbacks: checked, counted, answered at once; what they call for, done in a timer.

-- Counts a callback and answers it: 200, or 401 (503 when the replay store is full or cannot
-- answer: the provider delivers it again) with the code that refused it.
local function answer_callback(provider, event_name, err, stream, reaction, quiet)
  metrics:count("callbacks", { provider = provider, event = event_name, result = err and err.code or "accepted" })
  if not err then
    write_audit { provider = provider, command = "callback " .. event_name, outcome = "ok", exit = 200,
                  user = provider .. " callback from " .. tostring(ngx.var.remote_addr),
                  streams = stream and { { stream = stream, action = event_name, outcome = "ok" } } or nil,
                  note = reaction and ("reaction: " .. reaction) or nil }
  end
  if err then
    if not quiet then
      ngx.log(ngx.WARN, "streamctl_edge: ", provider, " callback refused: ", err.code, ": ", err.message)
    end
    local status = (err.kind == "server" or err.code == "NotConfigured") and 503 or 401
    return answer_error(status, err.code)
  end
  return reply(200, { ok = true })
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
    local intended, run = write_intent({ provider = provider, command = "reaction " .. reaction,
                                         actions = { target.action } }, { target })
    if not intended then
      metrics:count("reactions", { provider = provider, reaction = reaction, result = "failed" })
      ngx.log(ngx.ERR, "streamctl_edge: ", reaction, ": not made: the audit log cannot be written")
      return
    end
    local done, why = fn(trace, ...)
    metrics:count("reactions", { provider = provider, reaction = reaction, result = done and "ok" or "failed" })
    write_audit { record = "outcome", run = run, provider = provider, command = "reaction " .. reaction,
                  actions = { target.action }, outcome = done and "ok" or "failed", exit = done and 0 or 1,
                  streams = { { stream = target.stream, action = target.action, outcome = done and "ok" or "failed" } },
                  note = (not done) and tostring(why) or nil }
    if not done then ngx.log(ngx.ERR, "streamctl_edge: ", reaction, ": ", tostring(why)) end
  end, ...)
  if not ok then
    metrics:count("reactions", { provider = provider, reaction = reaction, result = "failed" })
    ngx.log(ngx.ERR, "streamctl_edge: ", reaction, ": no timer: ", tostring(terr))
  end
end

-- One stream forbidden again, in `trace`: true, or nil and why.
local function forbid_again(trace, provider, fields)
  local c, cerr = client(provider)
  if not c then return nil, cerr end
  fields.trace = trace
  local res, err
  if provider == "aliyun" then
    res, err = c:forbid_live_stream(fields)
  else
    res, err = c:forbid_rtc_streams(fields)
    if res and res.succeeded ~= res.total then res, err = nil, "not forbidden: " .. cjson.encode(report_json(res)) end
  end
  if not res then return nil, err end
  return true
end

-- Whether a stream is on the list; a list that cannot be read is said (the callback is
-- still answered: the next reconcile round puts right what this one could not).
local function listed_or_say(key)
  local yes, err = store():has(key)
  if yes == nil then ngx.log(ngx.ERR, "streamctl_edge: the desired state cannot be read: ", tostring(err)) end
  return yes
end

-- Where callbacks seen are kept: Redis, shared by every edge naming it (made once per worker), or
-- the shared dict, every worker of this nginx.
local replay
local function replay_store()
  local url = setting("STREAMCTL_REDIS_URL")
  if not url then return callbacks.shdict_replay(ngx.shared[CALLBACKS_DICT]) end
  replay = replay or assert(require("streamctl.store.redis").replay_store(url)) -- (the URL was checked in init)
  return replay
end

-- A key setting as verify takes it: "new,old" during a rotation is a list.
local function keys_of(text)
  if not text:find(",", 1, true) then return text end
  local list = {}
  for k in text:gmatch("[^,]+") do list[#list + 1] = k end
  return list
end

-- Admission at the door (streamctl.edge.admission): the forbid list (the desired state, this
-- edge's or every edge's in Redis), ZEGO's tokens with the server API's AppId and secret, and
-- Alibaba Cloud's signed URLs with $STREAMCTL_ALIYUN_AUTH_KEY ("new,old" during a rotation) when
-- set. A list that cannot be read refuses, unless $STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR is "allow".
-- One per worker, made on first use.
local the_door
local function door()
  if not the_door then
    local app_id, secret, keys = tonumber(setting("ZEGO_APP_ID")), setting("ZEGO_SERVER_SECRET"),
      setting("STREAMCTL_ALIYUN_AUTH_KEY")
    local key_list = keys and keys_of(keys) or nil
    the_door = assert(admission.new {
      forbidden = store(), metrics = metrics,
      zego = app_id and secret and { app_id = app_id, secret = secret } or nil, -- (its length checked in init)
      aliyun = key_list and { keys = type(key_list) == "table" and key_list or { key_list } } or nil,
      on_list_error = setting("STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR", "deny"),
    })
  end
  return the_door
end

-- An error for callbacks whose settings are missing: 503, said in the error log (every time: the
-- provider retries, and an operator must see why).
local function not_configured(names)
  return { code = "NotConfigured", message = names .. " not set (and named by an 'env' directive)" }
end

--- content_by_lua for GET /callbacks/aliyun: a stream started or stopped publishing.
function M.aliyun_callback()
  local key, domain = setting("STREAMCTL_ALIYUN_NOTIFY_KEY"), setting("STREAMCTL_ALIYUN_NOTIFY_DOMAIN")
  if not key or not domain then
    return answer_callback("aliyun", "unverified",
      not_configured("STREAMCTL_ALIYUN_NOTIFY_KEY and STREAMCTL_ALIYUN_NOTIFY_DOMAIN are"))
  end
  local event, err = callbacks.aliyun.check_nginx { key = keys_of(key), domain = domain, replay = replay_store() }
  local reaction
  if event and event.action == "publish" then
    -- `app` is the ingest domain (the streaming domain where no ingest domain is bound)
    local fields = { domain_name = event.app, app_name = event.appname, stream_name = event.id }
    if listed_or_say(desired_key("aliyun", fields, event.id)) then
      reaction = "forbid_again"
      react("aliyun", reaction, { stream = event.app .. "/" .. event.appname .. "/" .. event.id,
                                  action = "ForbidLiveStream" }, forbid_again, "aliyun", fields)
    end
  end
  return answer_callback("aliyun", event and event.action or "unverified", err, event and event.stream, reaction)
end

--- content_by_lua for POST /callbacks/zego: a stream was created or closed.
function M.zego_callback()
  local secret = setting("ZEGO_CALLBACK_SECRET")
  if not secret then return answer_callback("zego", "unverified", not_configured("ZEGO_CALLBACK_SECRET is")) end
  local event, err = callbacks.zego.check_nginx { secret = keys_of(secret), replay = replay_store() }
  local reaction
  local stream = event and type(event.stream_id) == "string" and event.stream_id or nil
  local listed = stream and listed_or_say(desired_key("zego", nil, stream))
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
  local c, cerr = client("aliyun")
  if not c then return nil, cerr end
  local task, err = c:describe_live_pull_to_push { region = region, task_id = task_id, trace = trace }
  if not task then return nil, err end
  if tonumber(task.TaskStatus) ~= 3 then return true end -- (running, abnormal or not started: nothing to do)
  local ok, rerr = c:restart_live_pull_to_push { region = region, task_id = task_id, trace = trace }
  if not ok then return nil, rerr end
  return true
end

--- content_by_lua for POST /callbacks/relay/<token>: a pull-to-push task's status.
function M.relay_callback(token)
  local expected = setting("STREAMCTL_EDGE_CALLBACK_TOKEN")
  if not expected or not same_secret(token or "", expected) then
    metrics:count("callbacks", { provider = "aliyun", event = "relay", result = "InvalidToken" })
    return answer_error(404, "not found")
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
  local fresh, why, code = replay_store():add(format("relay:%s:%s:%s", event.TaskId, tostring(event.EventTime),
    tostring(status)), 2 * callbacks.WINDOW_S, now, now - at + callbacks.WINDOW_S)
  if fresh ~= true then
    return answer_callback("aliyun", "relay", fresh == false and { code = "ReplayedCallback", message = "seen before" }
      or { code = code or "ReplayStoreFull", kind = "server", message = tostring(why) }, nil, nil, true)
  end
  local region = setting("STREAMCTL_EDGE_TASK_REGION")
  local reaction
  if status == 3 and event.TaskInvalidReason ~= "TriggerByUser" then
    reaction = "restart_relay" -- (without STREAMCTL_EDGE_TASK_REGION it fails, and says why)
    react("aliyun", reaction, { stream = "task " .. event.TaskId, action = "RestartLivePullToPush" }, restart_relay,
      event.TaskId, region)
  end
  return answer_callback("aliyun", "relay", nil, "task " .. event.TaskId, reaction)
end

--- content_by_lua for GET /admission/aliyun: Alibaba Cloud Live's remote authentication asks
-- before an ingest (set the domain's remote authentication to pass domain, app, stream and ip:
-- docs/admission.md). 200 admitted, 403 refused; the answer names the verdict's code and reason.
function M.aliyun_admission()
  -- (every argument read, each named at most once: what the door decides on is what the caller sent)
  local args, truncated = ngx.req.get_uri_args(100)
  local bad = truncated and "more than 100 query arguments"
  for _, name in ipairs { "domain", "app", "stream", "auth_key", "ip" } do
    if type(args[name]) == "table" then bad = bad or format("query argument '%s' given more than once", name) end
  end
  if bad then
    ngx.log(ngx.INFO, "streamctl_edge: admission refused: InvalidRequest: ", bad)
    return reply(403, { code = "InvalidRequest", reason = bad })
  end
  local function one(name) local v = args[name] return type(v) == "string" and v or nil end
  local verdict = door():decide { provider = "aliyun", domain_name = one("domain"), app_name = one("app"),
    stream_name = one("stream"), auth_key = one("auth_key"), client_ip = one("ip") }
  if not verdict.allow then
    ngx.log(ngx.INFO, "streamctl_edge: admission refused: ", verdict.code, ": ", verdict.reason)
  end
  return reply(verdict.allow and 200 or 403, { code = verdict.code, reason = verdict.reason })
end

--- content_by_lua for /admission: the door every ingest server asks (nginx-rtmp, SRS, MediaMTX,
-- Alibaba Cloud), each answered as it reads answers (streamctl.edge.ingest).
function M.admission()
  local args, truncated = ngx.req.get_uri_args(100)
  local body
  if ngx.req.get_method() == "POST" then
    ngx.req.read_body()
    body = ngx.req.get_body_data()
    -- (a body larger than the buffer nginx keeps in memory: refused, never read in part)
    if not body and ngx.req.get_body_file() then body = string.rep(" ", ingest.MAX_BODY + 1) end
  end
  local req, v, dialect = ingest.read { method = ngx.req.get_method(), content_type = ngx.var.content_type,
    body = body, query = args, truncated = truncated == "truncated" }
  if req then dialect, v = v, door():decide(req) end
  if not v.allow then
    ngx.log(ngx.INFO, "streamctl_edge: admission refused (", tostring(dialect), "): ", v.code, ": ", v.reason)
  end
  local status, text, ctype = ingest.answer(dialect, v)
  ngx.status = status
  ngx.header.content_type = ctype
  ngx.header.cache_control = "no-store"
  ngx.print(text)
  return ngx.exit(status)
end

--- content_by_lua for POST /tokens/zego: a client's Token04 for the streams the door admits.
function M.zego_token()
  -- (its own Bearer: the app servers that hand clients their tokens hold no key to the moderation API)
  if not setting("STREAMCTL_EDGE_ISSUER_TOKEN") then
    return answer_error(503, "STREAMCTL_EDGE_ISSUER_TOKEN is not set: /tokens/zego is off (its Bearer is apart "
      .. "from STREAMCTL_EDGE_TOKEN's, the moderation API's)")
  end
  if refused_at_door(answer_error, "STREAMCTL_EDGE_ISSUER_TOKEN") then return end
  if not (tonumber(setting("ZEGO_APP_ID")) and #setting("ZEGO_SERVER_SECRET", "") == 32) then
    return answer_error(503, "ZEGO_APP_ID and ZEGO_SERVER_SECRET (32 bytes) are not set")
  end
  ngx.req.read_body()
  local body = cjson.decode(ngx.req.get_body_data() or "")
  if type(body) ~= "table" then return answer_error(400, "body: a JSON object expected") end
  local ids = body.stream_ids ~= nil and body.stream_ids ~= cjson.null and body.stream_ids or nil
  local token, refusal = door():issue_token { user_id = body.user_id, room_id = body.room_id,
    login = body.login, publish = body.publish, stream_ids = ids, ttl = body.ttl,
    client_ip = ngx.var.remote_addr }
  if not token then
    return reply(refusal.code == "InvalidParameter" and 400 or 403, { error = refusal.code, reason = refusal.reason })
  end
  return reply(200, { token = token })
end

--- content_by_lua for GET /metrics.
function M.metrics()
  ngx.header.content_type = "text/plain; version=0.0.4"
  ngx.print(metrics:render())
end

-- The desired state from the list file (worker 0, when the list may have forgotten): added to what the
-- store holds.
local function load_list(path)
  -- (absent, unreadable or not a file: said, never taken for an empty list)
  local text, ferr = require("streamctl.core").read_file(path)
  if not text then return nil, ferr end
  -- The file is read whole and valid, or not at all: an entry skipped, or a name no forbid could take kept in
  -- the store, would be streams never forbidden, unsaid (or a store every later round refuses).
  local list = cjson.decode(text)
  if type(list) ~= "table" then return nil, path .. " is not a JSON object" end
  local flaw = require("streamctl.base.json").strict_flaw(text) -- (a key twice, a NUL: cjson shows neither)
  if flaw then return nil, path .. " " .. flaw end
  local function is_list(t) -- (positions 1..n only: {"0": ...} or a single object is not a list)
    if type(t) ~= "table" then return false end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == #t
  end
  for k in pairs(list) do
    if k ~= "aliyun" and k ~= "zego" then
      return nil, format("%s: unknown key %q (it holds \"aliyun\" and \"zego\")", path, tostring(k))
    end
    if not is_list(list[k]) then return nil, format("%s: %s must be a list", path, k) end
  end
  local keys = {}
  -- (each stream by its provider's field rules, as a reconcile round would read it; `where` names it in the file)
  local function add(provider, item, where)
    local ok, err = reconcile.check(provider, { item })
    if not ok then return nil, format("%s: %s: %s", path, where, (err.message:gsub("^desired%[1%] ", ""))) end
    keys[#keys + 1] = desired_key(provider, item, item.stream_name or item.stream_id)
    return true
  end
  for i, entry in ipairs(list.aliyun or {}) do
    if type(entry) ~= "table" or not is_list(entry.stream_names) then
      return nil, format("%s: aliyun[%d] must be {domain_name, app_name, stream_names: [...]}", path, i)
    end
    for j, name in ipairs(entry.stream_names) do
      local ok, err = add("aliyun", { domain_name = entry.domain_name, app_name = entry.app_name, stream_name = name },
        format("aliyun[%d].stream_names[%d]", i, j))
      if not ok then return nil, err end
    end
  end
  for i, id in ipairs(list.zego or {}) do
    local ok, err = add("zego", { stream_id = id, kind = "rtc" }, format("zego[%d]", i))
    if not ok then return nil, err end
  end
  if #keys == 0 then return true end
  return store():add(keys)
end

-- The desired state as the reconcilers take it; or nil and why it cannot be read.
local function desired_lists()
  local keys, err = store():members()
  if not keys then return nil, err end
  local aliyun, zego = {}, {}
  for _, key in ipairs(keys) do
    local d, a, st = key:match("^aliyun|([^|]+)|([^|]+)|(.+)$")
    local id = not d and key:match("^zego|(.+)$")
    if d then
      aliyun[#aliyun + 1] = { domain_name = d, app_name = a, stream_name = st }
    elseif id then
      zego[#zego + 1] = { stream_id = id, kind = "rtc" }
    else
      -- (read whole and valid, or not at all: a key dropped would be a stream left unforbidden unsaid; each
      -- item is then checked by the providers' field rules in the reconcilers)
      return nil, format("the desired store holds %q, which is neither aliyun|DOMAIN|APP|STREAM nor zego|ID: "
        .. "nothing was reconciled", key)
    end
  end
  return aliyun, zego
end

-- One provider's round: true, or nil and why (logged by the caller).
local function reconcile_provider(provider, desired)
  local c, cerr = client(provider)
  if not c then return nil, "no client: " .. tostring(cerr) end
  -- (confirm: the list was built by requests the guard passed, or by the operator's file)
  local opts = { confirm = true }
  if provider == "zego" then opts.state = store() end
  -- the difference, as the round's intent, before any of it is sent
  local run
  opts.before_send = function(plan)
    local streams = {}
    for _, key in ipairs(plan.missing) do streams[#streams + 1] = { stream = key, action = "forbid" } end
    for _, key in ipairs(plan.extra) do streams[#streams + 1] = { stream = key, action = "resume" } end
    local ok
    ok, run = write_intent({ provider = provider, command = "reconcile", guard = plan.guard }, streams)
    return ok, not ok and "the audit log cannot be written" or nil
  end
  local report, err = reconcile[provider](c, desired, opts)
  if not report then
    metrics:count("drift", { provider = provider, state = "unreadable" })
    return nil, err
  end
  local found = #report.found.missing
  metrics:count("drift", { provider = provider, state = "found" }, found)
  metrics:count("drift", { provider = provider, state = "fixed" }, report.fixed)
  metrics:count("drift", { provider = provider, state = "failed" }, #report.failed)
  metrics:count("drift", { provider = provider, state = "extra" }, #report.found.extra)
  if found > 0 or #report.failed > 0 then
    ngx.log(ngx.WARN, "streamctl_edge: reconciled (", provider, "): ", found, " missing, ", report.fixed,
      " fixed, ", #report.failed, " failed, ", #report.found.extra, " extra left alone")
    write_audit { record = run and "outcome" or nil, run = run, provider = provider, command = "reconcile",
                  outcome = report.in_sync and "ok" or "failed", exit = report.in_sync and 0 or 1,
                  calls = report.calls, streams = audit_streams(report) }
  end
  return true
end

-- Adds every stream Alibaba Cloud's block lists hold (every domain of the account) to the forbid list
-- `st`: how many, and of how many domains; or nil, nil and why (nothing is taken from a list read in part).
local function adopt_block_lists(st)
  local c, cerr = client("aliyun")
  if not c then return nil, nil, "the client cannot be made: " .. tostring(cerr) end
  local domains, derr = aliyun_places.account_domains(c)
  if not domains then return nil, nil, derr end
  local keys = {}
  for _, d in ipairs(domains) do
    local list, lerr = aliyun_places.block_list(c, d)
    if not list then return nil, nil, lerr end
    for _, entry in ipairs(list) do
      local domain, app, name = entry:match("^([^/]+)/([^/]+)/(.+)$")
      if domain then keys[#keys + 1] = desired_key("aliyun", { domain_name = domain, app_name = app }, name) end
    end
  end
  if #keys > 0 then
    local ok, err = st:add(keys)
    if not ok then return nil, nil, err end
  end
  return #keys, #domains
end

-- The forbid list made whole when it may have forgotten (its first use, nginx started anew, Redis
-- restarted or failed over: streamctl.operator.desired): its seed file loaded again, else (asked)
-- Alibaba Cloud's block lists adopted, and the rest taken as it stands, said. Until then the door answers
-- ListUnavailable (on_list_error) and no round runs.
local function make_whole()
  local st = store()
  local whole, why = st:whole()
  if whole == nil then return nil, "the forbid list cannot be read: " .. tostring(why) end
  if whole then return true end
  local path = setting("STREAMCTL_EDGE_FORBIDS")
  if path then
    local done, lerr = load_list(path)
    if not done then
      return nil, "STREAMCTL_EDGE_FORBIDS: " .. tostring(lerr) .. " (the forbid list may have forgotten streams, "
        .. why .. ": the door answers ListUnavailable until the file loads)"
    end
    ngx.log(ngx.WARN, "streamctl_edge: the forbid list may have forgotten streams (", why, "): loaded again from ",
      "STREAMCTL_EDGE_FORBIDS (", path, ")")
    return st:made_whole("the seed " .. path)
  end
  -- (no seed: with STREAMCTL_EDGE_ADOPT=aliyun, Alibaba Cloud's own block lists, every domain of the
  -- account, are adopted; ZEGO's API cannot say which streams it forbids, so that part is taken as it
  -- stands, said)
  if setting("STREAMCTL_EDGE_ADOPT") ~= "aliyun" then
    ngx.log(ngx.WARN, "streamctl_edge: the forbid list may have forgotten streams (", why, "): taken as it ",
      "stands, there being no STREAMCTL_EDGE_FORBIDS: a stream forbidden before and lost is admitted at the door ",
      "until forbidden again (the provider's ban stands): give STREAMCTL_EDGE_FORBIDS a seed file, or ",
      "STREAMCTL_EDGE_ADOPT=aliyun to adopt Alibaba Cloud's block lists (docs/openresty.md)")
    return st:made_whole("as it stood: no seed")
  end
  local n, domains, aerr = adopt_block_lists(st)
  if not n then
    return nil, "the forbid list may have forgotten streams (" .. why .. "), and Alibaba Cloud's block lists "
      .. "cannot be adopted: " .. tostring(aerr)
  end
  local adopted = format("Alibaba Cloud's block lists adopted (%d streams, %d domains)", n, domains)
  ngx.log(ngx.WARN, "streamctl_edge: the forbid list may have forgotten streams (", why, "): ", adopted, "; ZEGO's ",
    "part taken as it stands, there being no STREAMCTL_EDGE_FORBIDS: a ZEGO stream forbidden before and lost is ",
    "admitted at the door until forbidden again (ZEGO's ban stands): give STREAMCTL_EDGE_FORBIDS a seed file ",
    "(docs/openresty.md)")
  return st:made_whole(adopted .. "; ZEGO's as it stood: no seed")
end

-- Makes each provider's view hold the desired state, sending only the difference;
-- counts the drift and writes one audit line per provider that had any. Each
-- provider on its own: one that cannot be reached does not hold up the other.
-- One reconciler for every edge on one list: the list's lease (streamctl.operator.desired), held by
-- this nginx (its host and master's pid: a reload keeps it) for two rounds' time and renewed at each;
-- another edge's worker 0 runs no round while it is held, and takes over once it lapses.
local reconcile_every -- (s, set in init_worker)
local lease_said -- (the holder last said, so a change is said once)
local function lease_held()
  local master = require("ngx.process").get_master_pid()
  local owner = tostring(host) .. ":" .. tostring(master or ngx.worker.pid())
  local held, holder = store():lease("reconciler", owner, math.min(2 * reconcile_every, 86400))
  if held == nil then
    ngx.log(ngx.ERR, "streamctl_edge: the reconciler's lease cannot be read: ", tostring(holder), "; no round")
    return false
  end
  local now = held and owner or holder
  if now ~= lease_said then
    lease_said = now
    if held then ngx.log(ngx.NOTICE, "streamctl_edge: this edge reconciles the list (", owner, " holds the lease)")
    else ngx.log(ngx.NOTICE, "streamctl_edge: another edge reconciles the list (", tostring(holder), " holds the ",
      "lease): no round here while it does") end
  end
  return held
end

local reconciling = false
local function reconcile_now(premature)
  if premature or reconciling then return end
  reconciling = true
  -- (Redis needs this timer's cosockets)
  local lok, lheld = pcall(lease_held)
  if not (lok and lheld) then
    if not lok then ngx.log(ngx.ERR, "streamctl_edge: the reconciler's lease: ", tostring(lheld)) end
    reconciling = false
    return
  end
  local made, whole, lost = pcall(make_whole)
  if not (made and whole) then
    ngx.log(ngx.ERR, "streamctl_edge: ", tostring(made and lost or whole))
    reconciling = false
    return
  end
  local aliyun, zego = desired_lists()
  if not aliyun then
    ngx.log(ngx.ERR, "streamctl_edge: reconciling: the desired state cannot be read: ", tostring(zego))
    reconciling = false
    return
  end
  for _, job in ipairs { { "aliyun", aliyun }, { "zego", zego } } do
    local provider, desired = job[1], job[2]
    -- (an empty list sends nothing and has no extras to report unless the provider is in use)
    if #desired > 0 or clients[provider] then
      local ok, done, why = pcall(reconcile_provider, provider, desired)
      if not ok or not done then
        ngx.log(ngx.ERR, "streamctl_edge: reconciling (", provider, "): ", tostring(ok and why or done))
      end
    end
  end
  reconciling = false
end

--- init_worker_by_lua: the metrics and the audit log, and on worker 0 the
-- desired state from the list file and the timer that reconciles it. (No
-- call is made here: init_worker has no cosockets; the timer's callbacks do.)
function M.init_worker()
  metrics = assert(metrics_mod.new { dict = ngx.shared[METRICS_DICT] }) -- (nil, err only for a bad option)
  -- (nil when none is asked for; a bad variable was refused in init)
  tracer = tracing.from_env { service_name = "streamctl-edge", metrics = metrics }
  host = audit.who().host
  audit_write, audit_why = audit.writer(setting("STREAMCTL_EDGE_AUDIT_LOG", ngx.config.prefix() .. "logs/audit.jsonl"),
    { warn = function(text) ngx.log(ngx.WARN, "streamctl_edge: ", text) end }) -- (a torn tail, said once)
  if not audit_write then ngx.log(ngx.ERR, "streamctl_edge: the audit log: ", audit_why) end
  if ngx.worker.id() ~= 0 then return end
  local every = tonumber(setting("STREAMCTL_EDGE_RECONCILE_S", "60"))
  if not every or every <= 0 then
    ngx.log(ngx.ERR, "streamctl_edge: STREAMCTL_EDGE_RECONCILE_S must be a number of seconds > 0")
    return
  end
  reconcile_every = every
  assert(ngx.timer.at(0, reconcile_now))
  assert(ngx.timer.every(every, reconcile_now))
end

return M
