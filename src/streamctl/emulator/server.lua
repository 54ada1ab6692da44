-- streamctl emulator: the nginx-lua entry points (init, request handler, Date
-- header), the control endpoints under /_emulator/, fault injection and the
-- request log. One nginx worker; all state lives in Lua module tables.
--
-- Provider ports (set $emu_provider in nginx.conf): "aliyun" ports answer as
-- ApsaraVideo Live and STS (aliyun.lua, sts.lua) and serve the credentials
-- URI (credentials_uri.lua), "zego" ports as ZEGOCLOUD Server API v2
-- (zego.lua), and the "imds" port, when the launcher is given one, as the ECS
-- instance metadata service (imds.lua). The HTTP and HTTPS port of a provider
-- share one state. Providers listed in the state, the faults and the log
-- filter: aliyun and zego, and imds only when it is served.
--
-- Control endpoints (on every port; JSON in and out; they are not logged and
-- never rate limited):
--   GET    /_emulator/health   {"ok":true,"provider":"aliyun","pid":n,"version":"<v>"}
--                              (<v>: streamctl.version's _VERSION, also M._VERSION)
--   GET    /_emulator/state    see "State" below
--   GET    /_emulator/log      ?since=<seq>&provider=aliyun|zego&action=<A>&limit=<n>
--                              -> {"entries":[...],"last_seq":n,"dropped":n}
--   POST   /_emulator/reset    clears streams, tasks, online streams, counters, rate-limiter state
--                              (windows and buckets), nonces, log
--                              (seq restarts at 1), faults and the clock -> {"ok":true}
--   GET    /_emulator/faults   -> {"faults":{"aliyun":[...],"zego":[...]}}
--   POST   /_emulator/faults   a fault spec or an array of them (see faults.lua);
--                              provider defaults to this port's -> {"added":[...],"faults":{...}}
--   DELETE /_emulator/faults   drops every pending fault -> {"faults":{...}}
--   GET    /_emulator/clock    -> {"now":unix,"pinned":bool,"offset":s}
--   POST   /_emulator/clock    {"now":unix} pins, {"offset":s} shifts, {} real time
--   GET    /_emulator/config   the settings without secrets (with each provider's
--                              rate_limiter and the limiter's clock, rate_limit_clock)
--   GET    /_emulator/credentials  identities, roles, OIDC providers, issued STS
--                              sessions (no secrets), the metadata service and the
--                              credentials URI: see credentials_view below
--   POST   /_emulator/oidc_token   {"provider"?,"subject"?,"audience"?,"lifetime_s"?,
--                              "issued_at"?} -> {"token","claims","provider"}: a token
--                              AssumeRoleWithOIDC accepts (oidc.lua); lifetime_s <= 0
--                              makes an expired one
--   GET    /_emulator/imds     the metadata service (imds.lua's snapshot)
--   POST   /_emulator/imds     {"hardened": true|false}: security hardening mode on/off
--                              (reset returns to the config's)
--   GET    /_emulator/online   -> {"online":{"<domain>/<app>/<stream>":{...}}}
--   POST   /_emulator/online   {"domain","app","stream"[,"client_ip","publish_time"]} or an
--                              array: marks streams published (DescribeLiveStreamsOnlineList);
--                              blocked ones are refused -> {"marked":[...],"refused":[...],"online":{...}}
--   DELETE /_emulator/online   the same body takes those offline; empty: all -> {"removed":[...],"online":{...}}
--                              (publish / publish_done callbacks: aliyun_notify.lua)
--   GET    /_emulator/zego_online  -> {"online":{"<AppId>/<StreamId>":{...}}}
--   POST   /_emulator/zego_online  {"app_id","stream_id","room_id","user_id"[,"user_name",
--                              "extra_info","nonce"]} or an array: ZEGO streams published
--                              (stream_create callbacks); forbidden ones are refused
--                              -> {"marked":[...],"refused":[...],"online":{...}}
--   DELETE /_emulator/zego_online  {"app_id","stream_id"[,"type"]} or an array; empty: all
--                              (stream_close callbacks) -> {"removed":[...],"online":{...}}
-- Callbacks (callbacks.lua): each attempt is a log entry (kind "callback",
-- action "callback:<event>"), pending ones are the state's "callbacks", a
-- reset drops them. A ticker (TICK_S, 200 ms) brings the pull-to-push tasks
-- up to the emulator clock (task_events.lua) and starts waiting attempts.
-- Errors: 400 {"error":"..."} (bad JSON / spec), 404 unknown endpoint, 405 wrong method.
--
-- State (GET /_emulator/state), stable shape:
--   {
--     "now": <emulator unix time>, "clock": {"now","pinned","offset"},
--     "provider": "<this port's provider>",
--     "aliyun": {
--       "streams": { "<domain>/<app>/<stream>": { "DomainName","AppName","StreamName",
--                    "status": "forbidden"|"normal", "ResumeTime", "Oneshot",
--                    "forbid_count","resume_count","interrupt_count","updated_at","account" } },
--       "tasks": { "<TaskId>": { "TaskId","TaskStatus","TaskInfo":{...},
--                  "created_at","stopped_at","updated_at","restarted_at","restart_count",
--                  "account" } },                -- tasks past their EndTime are deleted
--       "task_order": ["<TaskId>", ...],
--       "online": { "<domain>/<app>/<stream>": { "DomainName","AppName","StreamName",
--                   "PublishTime","ClientIp" } },
--       "counters": { "<Action>": { "accepted","throttled","faulted",
--                     "per_second": { "<unix second>": {"accepted","throttled"} } } },
--       "rate_limiter": "sliding_window"|"token_bucket",   -- the provider's default
--       "rate_limiters": { "<AccessKeyId>": "<the limiter it uses>" },
--       "account_uids": { "<AccessKeyId>": "<its account's UID>" }   -- keys with an "account"
--     },
--     "zego": {
--       "streams": { "<AppId>": { "<StreamId>": { "rtc": "normal"|"forbidden",
--                    "cdn": "normal"|"forbidden", "cdn_resume_time", "last_sequence",
--                    "last_sequence_at", "forbid_count", "resume_count", "updated_at" } } },
--       "counters": { same shape as aliyun },
--       "rate_limiter": ..., "rate_limiters": { "<AppId>": ... }   -- as aliyun
--     },
--     "imds": { see imds.lua's snapshot: "served", "listen", "role", "hardened",
--               "credential_lifetime_s", "rotation_lead_s", "tokens", "current",
--               "rotations", "counters" },         -- only when the metadata service is served
--     "faults": { "aliyun": [...], "zego": [...] [, "imds": [...]] },
--     "callbacks": { "pending": [...], "counters": {...}, "inflight": n }   -- callbacks.lua
--   }
--   (aliyun also has "notify" and "source_faults", each task a "health";
--   zego an "online" list: docs/emulator.md, "State")
--
-- Request log entry (GET /_emulator/log), one per provider request:
--   { "seq": n, "provider": "aliyun"|"zego", "time": <emulator unix time at receipt>,
--     "real_time": <unix>, "duration_ms": n, "method", "scheme", "port",
--     "action", "account" (AccessKeyId / AppId), "account_uid" (Aliyun: the UID
--     of the key's account, when the config gives it one; its budget's owner),
--     "params" (secrets as "***"),
--     "headers" (V3: x-acs-*, host, content-type, authorization; secrets "***"),
--     "signature_version", "request_id",
--     "verdict": "ok" | "rejected" (gateway/signature checks) | "error" (operation
--                rules) | "throttled" | "stale" (ZEGO sequence: nothing applied)
--                | "fault" (an injected fault answered)
--                | "crash" (the emulator raised; answered as fault http500),
--     "code": "OK" / Aliyun code / ZEGO numeric Code, "message", "status" (HTTP),
--     "applied": bool (the operation ran against the state),
--     "sequence" (ZEGO), "streams", "applied_streams", "stale_streams" (ZEGO),
--     "stream_ids" (ZEGO, every entry: the StreamIds the request named, as sent),
--     "detail" (what changed), "canonical_request" (V3),
--     "fault": kind, "fault_id": n (when a fault touched the request),
--     "retry_after_ms", "rate_limiter" (throttled: the wait and the algorithm) }
-- Secrets never appear: Signature, AccessKeySecret, SecurityToken,
-- x-acs-security-token and Authorization values are replaced by "***".
--
-- Every response carries a Date header from the emulator clock (shifted by a
-- "skew" fault when one applies).

local version = require "streamctl.version"
local config = require "streamctl.emulator.config"
local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local encoding = require "streamctl.emulator.encoding"
local faults = require "streamctl.emulator.faults"
local ratelimit = require "streamctl.emulator.ratelimit"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local aliyun = require "streamctl.emulator.aliyun"
local zego = require "streamctl.emulator.zego"
local imds = require "streamctl.emulator.imds"
local sessions = require "streamctl.emulator.sessions"
local oidc = require "streamctl.emulator.oidc"
local ram = require "streamctl.emulator.ram"
local credentials_uri = require "streamctl.emulator.credentials_uri"
local callbacks = require "streamctl.emulator.callbacks"
local task_events = require "streamctl.emulator.task_events"

local ngx = ngx
local ngx_var, ngx_req, ngx_header, ngx_print, ngx_flush = ngx.var, ngx.req, ngx.header, ngx.print, ngx.flush
local ngx_exit, ngx_sleep, ngx_log, ngx_ERR, ngx_http_time = ngx.exit, ngx.sleep, ngx.log, ngx.ERR, ngx.http_time

local type, pairs, ipairs, pcall, tostring, tonumber = type, pairs, ipairs, pcall, tostring, tonumber
local floor, randomseed = math.floor, math.randomseed
local sort = table.sort
local lower, sub, find, match = string.lower, string.sub, string.find, string.match
local concat = table.concat
local io_open = io.open

-- The version is written once, in streamctl.version (pure Lua, on the same
-- lua_package_path as the emulator's modules).
local M = { _VERSION = version._VERSION }

local settings
local options = {}

local PROVIDERS = { aliyun = aliyun, zego = zego, imds = imds }

-- Fault kinds that replace the answer (the others only delay or skew it).
local REPLACING = {
  http500 = true, http503 = true, throttle = true, drop = true, malformed = true, truncated = true, code = true,
}

-- Called from init_by_lua with { config_file = path|nil, dir = DIR, ports = {...},
-- imds_listen = "addr:port"|nil }.
function M.init(opts)
  options = opts or {}
  settings = config.load(options.config_file)
  aliyun.init(settings)
  zego.init(settings)
  imds.init(settings, options.imds_listen)
  faults.set_providers(imds.served() and { "imds" } or nil)
  requestlog.set_limit(settings.log_limit)
end

-- The ticker: every TICK_S seconds (real time) it brings the pull-to-push
-- tasks up to the emulator clock (their health transitions and callbacks go
-- out without a request) and starts callbacks waiting for a connection.
local TICK_S = 0.2

local function tick(premature)
  if premature then
    return
  end
  local ok, err = pcall(function()
    aliyun.tick(clock.now())
    callbacks.tick()
  end)
  if not ok then
    ngx_log(ngx_ERR, "emulator: tick failed: ", tostring(err))
  end
end

-- Called from init_worker_by_lua.
function M.init_worker()
  randomseed(floor(clock.real_now() * 1000) % 2147483647 + ngx.worker.pid())
  local ok, err = ngx.timer.every(TICK_S, tick)
  if not ok then
    ngx_log(ngx_ERR, "emulator: cannot start the ticker: ", tostring(err))
  end
end

local function reset_all()
  callbacks.reset()
  aliyun.reset()
  zego.reset()
  imds.reset()
  ratelimit.reset()
  stats.reset()
  requestlog.reset()
  faults.reset()
  clock.reset()
end

-------------------------------------------------------------------------------
-- Request collection

local function read_body()
  ngx_req.read_body()
  local body = ngx_req.get_body_data()
  if body then
    return body
  end
  local file = ngx_req.get_body_file()
  if not file then
    return ""
  end
  local f = io_open(file, "rb")
  if not f then
    return ""
  end
  body = f:read("*a") or ""
  f:close()
  return body
end

local function collect()
  local body = read_body()
  local headers = {}
  for k, v in pairs(ngx_req.get_headers(200)) do
    if type(v) == "table" then
      v = concat(v, ",")
    end
    headers[lower(k)] = v
  end
  local query = ngx_var.args or ""
  local query_list = encoding.parse_query(query, {}, {})
  local list, map = encoding.parse_query(query, {}, {})
  local ctype = lower(headers["content-type"] or "")
  if find(ctype, "^application/x%-www%-form%-urlencoded") then
    encoding.parse_query(body, list, map)
  end
  local path = match(ngx_var.request_uri or "/", "^[^?]*")
  if path == "" then
    path = "/"
  end
  return {
    method = ngx_req.get_method(),
    path = path,
    query = query,
    query_list = query_list,
    param_list = list,
    params = map,
    headers = headers,
    body = body,
    scheme = ngx_var.scheme,
    port = tonumber(ngx_var.server_port),
  }
end

-------------------------------------------------------------------------------
-- Sending

local function send(res)
  if res.drop then
    return ngx_exit(444)
  end
  ngx.status = res.status
  for k, v in pairs(res.headers or {}) do
    ngx_header[k] = v
  end
  local body = res.body or ""
  ngx_header["Content-Length"] = #body
  if res.truncate then
    ngx_print(sub(body, 1, floor(#body / 2)))
    ngx_flush(true)
    return ngx_exit(444)
  end
  ngx_print(body)
end

local function send_json(status, value)
  return send({
    status = status,
    headers = { ["Content-Type"] = "application/json" },
    body = json.encode(value),
  })
end

-------------------------------------------------------------------------------
-- Faults

local FAULT_CODES = {
  aliyun = { http500 = "InternalError", http503 = "ServiceUnavailable", throttle = "Throttling.User" },
  zego = { http500 = 30003, http503 = 100000015, throttle = 30002 },
  imds = { http500 = "InternalError", http503 = "ServiceUnavailable" },
}

-- The minimal log of a request that a fault answered before any processing.
local function unprocessed_log(provider, req, action)
  local p = req.params
  return {
    action = action,
    account = provider == "aliyun" and p.AccessKeyId or p.AppId,
    account_uid = provider == "aliyun" and aliyun.account_uid(p.AccessKeyId) or nil,
    params = requestlog.redact(p),
    sequence = provider == "zego" and p.Sequence or nil,
    stream_ids = provider == "zego" and zego.request_stream_ids(req) or nil,
    applied = false,
  }
end

-- Builds the faulted answer. processed: the real result when after_apply.
local function fault_result(provider, mod, fault, req, action, processed)
  local kind = fault.kind
  local log = processed and processed.log or unprocessed_log(provider, req, action)
  local res
  if kind == "http500" or kind == "http503" or kind == "throttle" or kind == "code" then
    res = mod.fault_response(kind, fault, req)
    log.code = kind == "code" and fault.code or FAULT_CODES[provider][kind]
    log.status = res.status
  elseif kind == "drop" then
    res = { drop = true }
    log.status = nil
  else
    local base = processed or {
      status = 200,
      headers = { ["Content-Type"] = "application/json" },
      body = mod.placeholder_body(req),
    }
    res = { status = base.status, headers = base.headers, body = base.body }
    if kind == "malformed" then
      res.body = sub(base.body, 1, floor(#base.body / 2)) .. "<!-- emulator fault: malformed -->"
    else
      res.truncate = true
    end
    log.status = res.status
  end
  log.verdict = "fault"
  log.applied = processed ~= nil and processed.applied == true
  res.log = log
  return res
end

-------------------------------------------------------------------------------
-- Provider requests

local function serve_provider(provider)
  local mod = PROVIDERS[provider]
  local received = clock.now()
  local real_start = clock.real_now()
  local req = collect()
  local action = mod.peek_action(req)
  local fault = faults.take(provider, action, received)
  if fault and fault.kind == "delay" then
    ngx_sleep(fault.delay_ms / 1000)
  elseif fault and fault.kind == "skew" then
    ngx.ctx.date_skew = fault.skew_s
  end

  local res
  local ok, err = pcall(function()
    if fault and REPLACING[fault.kind] and not fault.after_apply then
      stats.count(provider, action, "faulted", clock.real_now())
      res = fault_result(provider, mod, fault, req, action, nil)
    else
      res = mod.process(req)
      if fault and REPLACING[fault.kind] then
        res = fault_result(provider, mod, fault, req, action, res)
      end
    end
  end)
  if not ok then
    ngx_log(ngx_ERR, "emulator: ", provider, " request failed: ", tostring(err))
    res = mod.fault_response("http500", fault or {}, req)
    res.log = unprocessed_log(provider, req, action)
    res.log.verdict = "crash"
    res.log.code = FAULT_CODES[provider].http500
    res.log.status = res.status
    res.log.message = tostring(err)
  end

  local entry = res.log
  entry.provider = provider
  entry.time = received
  entry.real_time = real_start
  entry.duration_ms = floor((clock.real_now() - real_start) * 1000 + 0.5)
  entry.method = req.method
  entry.scheme = req.scheme
  entry.port = req.port
  if fault then
    entry.fault = fault.kind
    entry.fault_id = fault.id
  end
  -- A message quoting a string to sign, or the canonical request, holds the
  -- request's security token: the log shows "***" there as everywhere.
  requestlog.append(requestlog.scrub(entry, req))
  return send(res)
end

-------------------------------------------------------------------------------
-- Control endpoints

local function fault_lists()
  local all = faults.list(clock.now())
  local out = {}
  for provider, list in pairs(all) do
    local copy = json.array()
    for i, f in ipairs(list) do
      copy[i] = f
    end
    out[provider] = copy
  end
  return out
end

local function read_json_body()
  local body = read_body()
  if body == "" then
    return {}
  end
  local v, err = json.decode(body)
  if v == nil then
    return nil, "body is not valid JSON: " .. tostring(err)
  end
  return v
end

local function public_config()
  local a, z = {}, {}
  for id in pairs(settings.aliyun.accounts) do
    a[#a + 1] = id
  end
  for id in pairs(settings.zego.apps) do
    z[#z + 1] = id
  end
  sort(a)
  sort(z)
  return {
    aliyun = {
      accounts = json.array(a), qps = settings.aliyun.qps,
      rate_limiter = settings.aliyun.rate_limiter,
      timestamp_tolerance_s = settings.aliyun.timestamp_tolerance_s,
      nonce_ttl_s = settings.aliyun.nonce_ttl_s,
      domains = json.array(settings.aliyun.domains),
      max_pull_to_push_tasks = settings.aliyun.max_pull_to_push_tasks,
    },
    zego = {
      apps = json.array(z), qps = settings.zego.qps, test_env_qps = settings.zego.test_env_qps,
      rate_limiter = settings.zego.rate_limiter,
      timestamp_tolerance_s = settings.zego.timestamp_tolerance_s,
      sequence_window_s = settings.zego.sequence_window_s,
    },
    log_limit = settings.log_limit,
    rate_limit_clock = ratelimit.CLOCK,
    ports = options.ports,
    imds_listen = options.imds_listen,
    dir = options.dir,
    config_file = options.config_file,
  }
end

-- A POST handler that takes the request's JSON body (an empty body reads as
-- {}); a body that is not JSON answers 400.
local function with_json_body(handler)
  return function(provider)
    local value, err = read_json_body()
    if value == nil then
      return 400, { error = err }
    end
    return handler(value, provider)
  end
end

-- The control endpoints: name -> { METHOD = handler(provider) -> status, value }.
-- A method not listed answers 405 with an Allow header listing those that are.
local CONTROL = {}

CONTROL.health = {
  GET = function(provider)
    return 200, { ok = true, provider = provider, pid = ngx.worker.pid(), version = M._VERSION }
  end,
}

CONTROL.state = {
  GET = function(provider)
    local now = clock.now()
    return 200, {
      now = now,
      clock = clock.snapshot(),
      provider = provider,
      aliyun = aliyun.snapshot(now),
      zego = zego.snapshot(now),
      imds = imds.served() and imds.snapshot(now) or nil,
      faults = fault_lists(),
      callbacks = callbacks.snapshot(),
    }
  end,
}

CONTROL.log = {
  GET = function()
    local args = ngx_req.get_uri_args()
    local provider = args.provider
    local served = provider == "aliyun" or provider == "zego" or (provider == "imds" and imds.served())
    if provider ~= nil and not served then
      return 400, { error = "provider must be aliyun or zego" .. (imds.served() and " or imds" or "") }
    end
    local entries, last, dropped = requestlog.query(args.since, provider, args.action, args.limit)
    return 200, { entries = json.array(entries), last_seq = last, dropped = dropped }
  end,
}

CONTROL.reset = {
  POST = function()
    read_body()
    reset_all()
    return 200, { ok = true }
  end,
}

CONTROL.faults = {
  GET = function()
    return 200, { faults = fault_lists() }
  end,
  POST = with_json_body(function(spec, provider)
    local specs = spec
    if type(spec) ~= "table" or spec.kind ~= nil or #spec == 0 then
      specs = { spec }
    end
    local added = json.array()
    for _, s in ipairs(specs) do
      local now = clock.now()
      local f, ferr = faults.add(provider, s, now)
      if not f then
        return 400, { error = ferr, added = added }
      end
      if f.kind == "source_down" then
        -- the tasks as they were until now, then their source goes down
        aliyun.tick(now)
        task_events.add_source_fault(f, now)
      end
      added[#added + 1] = f
    end
    return 200, { added = added, faults = fault_lists() }
  end),
  DELETE = function()
    local now = clock.now()
    aliyun.tick(now)
    faults.reset()
    task_events.end_source_faults(now)
    return 200, { faults = fault_lists() }
  end,
}

CONTROL.clock = {
  GET = function()
    return 200, clock.snapshot()
  end,
  POST = with_json_body(function(spec)
    local ok, cerr = clock.set(spec)
    if not ok then
      return 400, { error = cerr }
    end
    return 200, clock.snapshot()
  end),
}

-- Streams being published, for DescribeLiveStreamsOnlineList (the emulator has
-- no publishers). POST marks streams online: one {"domain","app","stream"} or an
-- array of them (optional "client_ip", "publish_time" in Unix seconds); a
-- stream that is blocked now is refused, not marked. DELETE takes the streams
-- in the body offline, or every stream when the body is empty.
local function online_specs(value)
  if type(value) ~= "table" then
    return nil, "online: expected an object or an array of objects"
  end
  if value.domain ~= nil or value.app ~= nil or value.stream ~= nil then
    return { value }
  end
  return value
end

CONTROL.online = {
  GET = function()
    return 200, { online = aliyun.online_snapshot(clock.now()) }
  end,
  POST = with_json_body(function(value)
    local specs, err = online_specs(value)
    if not specs then
      return 400, { error = err }
    end
    local now = clock.now()
    local marked, refused = aliyun.mark_online(specs, now)
    if not marked then
      return 400, { error = refused }
    end
    return 200, { marked = marked, refused = refused, online = aliyun.online_snapshot(now) }
  end),
  DELETE = function()
    local body = read_body()
    local specs, err
    if body ~= "" then
      local value, derr = json.decode(body)
      if value == nil then
        return 400, { error = "body is not valid JSON: " .. tostring(derr) }
      end
      specs, err = online_specs(value)
      if not specs then
        return 400, { error = err }
      end
    end
    local removed
    removed, err = aliyun.mark_offline(specs, clock.now())
    if not removed then
      return 400, { error = err }
    end
    return 200, { removed = removed, online = aliyun.online_snapshot(clock.now()) }
  end,
}

-- ZEGO streams being published (zego_streams.lua): POST publishes one
-- {"app_id","stream_id","room_id","user_id",...} or an array (stream_create
-- callbacks; a forbidden stream is refused), DELETE stops those of the body
-- ({"app_id","stream_id"[,"type"]}) or, without a body, all (stream_close).
local function zego_specs(value)
  if type(value) ~= "table" then
    return nil, "zego_online: expected an object or an array of objects"
  end
  if value.app_id ~= nil or value.stream_id ~= nil then
    return { value }
  end
  return value
end

CONTROL.zego_online = {
  GET = function()
    return 200, { online = zego.online_snapshot() }
  end,
  POST = with_json_body(function(value)
    local specs, err = zego_specs(value)
    if not specs then
      return 400, { error = err }
    end
    local marked, refused = zego.publish(specs, clock.now())
    if not marked then
      return 400, { error = refused }
    end
    return 200, { marked = marked, refused = refused, online = zego.online_snapshot() }
  end),
  DELETE = function()
    local body = read_body()
    local specs, err
    if body ~= "" then
      local value, derr = json.decode(body)
      if value == nil then
        return 400, { error = "body is not valid JSON: " .. tostring(derr) }
      end
      specs, err = zego_specs(value)
      if not specs then
        return 400, { error = err }
      end
    end
    local removed
    removed, err = zego.stop(specs)
    if not removed then
      return 400, { error = err }
    end
    return 200, { removed = removed, online = zego.online_snapshot() }
  end,
}

CONTROL.config = {
  GET = function()
    return 200, public_config()
  end,
}

local function list_copy(t)
  local out = json.array()
  for i, v in ipairs(t or {}) do
    out[i] = v
  end
  return out
end

-- GET /_emulator/credentials, no secrets (no key secret, security token,
-- OIDC token or MAC key):
--   { "principals": { "<AK>": { "type": "Account"|"RAMUser", "account", "user", "user_id" } },
--     "roles": { "<ARN>": { "account", "name", "role_id", "max_session_duration",
--                "trusted_accounts", "trusted_oidc_providers", "external_id", "actions" } },
--     "oidc_providers": { "<ARN>": { "account", "name", "issuer", "client_ids", "tokens": n } },
--     "sessions": { "<STS.AK>": { "source", "role", "account", "session_name", "issued_at",
--                   "expires_at", "Expiration", "expired" } },
--     "issued": { "AssumeRole": n, "AssumeRoleWithOIDC": n, "imds": n, "credentials-uri": n },
--     "imds": <GET /_emulator/imds>,
--     "credentials_uri": { "path", "role", "credential_lifetime_s", "rotation_lead_s",
--                          "current": {"AccessKeyId","Expiration","LastUpdated"}, "rotations" } }
-- ("issued" counts every session since the last reset, by what issued it;
-- "sessions" lists those still kept, expired ones too.)
local function credentials_view(now)
  local a = settings.aliyun
  local principals, roles, providers = {}, {}, {}
  for ak, entry in pairs(a.accounts) do
    local id = entry.identity
    principals[ak] = { type = id.type, account = id.account, user = id.name, user_id = id.user_id }
  end
  for arn, r in pairs(a.roles) do
    roles[arn] = {
      account = r.account, name = r.name, role_id = r.role_id, max_session_duration = r.max_session_duration,
      trusted_accounts = list_copy(r.trusted_accounts), trusted_oidc_providers = list_copy(r.trusted_oidc_providers),
      external_id = r.external_id, actions = r.actions and list_copy(r.actions) or nil,
    }
  end
  for arn, pr in pairs(a.oidc_providers) do
    providers[arn] = { account = pr.account, name = pr.name, issuer = pr.issuer,
                       client_ids = list_copy(pr.client_ids), tokens = #pr.tokens }
  end
  local list, issued = sessions.snapshot(now)
  local current, rotations = sessions.rotating("credentials-uri")
  local uri = a.credentials_uri
  return {
    principals = principals, roles = roles, oidc_providers = providers,
    sessions = list, issued = issued,
    imds = imds.snapshot(now),
    credentials_uri = {
      path = credentials_uri.PATH, role = uri.role,
      credential_lifetime_s = uri.credential_lifetime_s, rotation_lead_s = uri.rotation_lead_s,
      current = sessions.summary(current),
      rotations = rotations,
    },
  }
end

CONTROL.credentials = {
  GET = function()
    return 200, credentials_view(clock.now())
  end,
}

-- POST /_emulator/oidc_token: a token of the emulator's for an OIDC provider
-- of the config. Body (every key optional): "provider" (its ARN; needed when
-- the config has more than one), "subject" (default
-- "system:serviceaccount:default:streamctl"), "audience" (a string or an array
-- of them; default the provider's first client id), "issued_at" (emulator
-- time, default now), "lifetime_s" (default 3600; 0 or less: already expired).
local function oidc_token(spec)
  if type(spec) ~= "table" then
    return 400, { error = "oidc_token: expected a JSON object" }
  end
  local all = settings.aliyun.oidc_providers
  local arn = spec.provider
  if arn == nil then
    local only, n = nil, 0
    for k in pairs(all) do
      only, n = k, n + 1
    end
    if n ~= 1 then
      return 400, { error = "oidc_token: provider is required (the ARN of one of aliyun.oidc_providers; "
        .. n .. " are configured)" }
    end
    arn = only
  end
  local provider = type(arn) == "string" and all[arn]
  if not provider then
    return 400, { error = "oidc_token: provider " .. tostring(arn) .. " is not one of aliyun.oidc_providers" }
  end
  local subject = spec.subject
  if subject == nil then
    subject = "system:serviceaccount:default:streamctl"
  end
  if type(subject) ~= "string" or subject == "" then
    return 400, { error = "oidc_token: subject must be a non-empty string" }
  end
  local audience = spec.audience
  if audience == nil then
    audience = provider.client_ids[1]
  end
  if not ram.string_list(audience) then
    return 400, { error = "oidc_token: audience must be a non-empty string or a non-empty array of them" }
  end
  local issued_at, lifetime = spec.issued_at, spec.lifetime_s
  if issued_at == nil then
    issued_at = clock.now()
  end
  if lifetime == nil then
    lifetime = 3600
  end
  if type(issued_at) ~= "number" or type(lifetime) ~= "number" then
    return 400, { error = "oidc_token: issued_at and lifetime_s must be numbers of seconds" }
  end
  local token, claims = oidc.issue({
    provider = provider, subject = subject, audience = audience,
    issued_at = issued_at, expires_at = issued_at + lifetime,
  })
  return 200, { token = token, claims = claims, provider = provider.arn }
end

CONTROL.oidc_token = {
  POST = with_json_body(oidc_token),
}

CONTROL.imds = {
  GET = function()
    return 200, imds.snapshot(clock.now())
  end,
  POST = with_json_body(function(spec)
    if type(spec) ~= "table" or type(spec.hardened) ~= "boolean" then
      return 400, { error = "imds: expected {\"hardened\": true|false}" }
    end
    imds.set_hardened(spec.hardened)
    return 200, imds.snapshot(clock.now())
  end),
}

-- The methods an endpoint allows, for the Allow header of a 405.
local function allowed_methods(endpoint)
  local out = {}
  for _, m in ipairs({ "GET", "POST", "DELETE" }) do
    if endpoint[m] then
      out[#out + 1] = m
    end
  end
  return concat(out, ", ")
end

local function serve_control(provider, name)
  local endpoint = CONTROL[name]
  if not endpoint then
    return send_json(404, { error = "unknown endpoint /_emulator/" .. tostring(name) })
  end
  local method = ngx_req.get_method()
  local handler = endpoint[method]
  if not handler then
    ngx_header["Allow"] = allowed_methods(endpoint)
    return send_json(405, { error = method .. " is not allowed on /_emulator/" .. name })
  end
  return send_json(handler(provider))
end

-------------------------------------------------------------------------------
-- nginx entry points

-- content_by_lua: every request on a provider port.
function M.handle()
  local provider = ngx_var.emu_provider
  local uri = ngx_var.uri or "/"
  local name = match(uri, "^/_emulator/([%w_]*)/?$")
  if name or uri == "/_emulator" then
    return serve_control(provider, name or "")
  end
  return serve_provider(provider)
end

-- header_filter_by_lua: the Date header from the emulator clock.
function M.header_filter()
  local skew = ngx.ctx.date_skew or 0
  ngx_header["Date"] = ngx_http_time(floor(clock.now() + skew))
end

return M
