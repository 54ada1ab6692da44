-- The control endpoints under /_emulator/: which endpoint and method a
-- request names, its answer (JSON), and the endpoints that read or reset
-- the emulator as a whole (health, state, log, reset, faults, clock,
-- config, imds). Streams published: control_online.lua; identities and
-- credentials: control_credentials.lua; strangers and run-time caps:
-- control_budgets.lua.
--
-- Control endpoints (on every port; JSON in and out; they are not logged and
-- never rate limited):
--   GET    /_emulator/health   {"ok":true,"provider":"aliyun","pid":n,"version":"<v>"}
--                              (<v>: streamctl.version's _VERSION, also server.lua's M._VERSION)
--   GET    /_emulator/state    see "State" below
--   GET    /_emulator/log      ?since=<seq>&provider=aliyun|zego&action=<A>&limit=<n>
--                              -> {"entries":[...],"last_seq":n,"dropped":n}
--   POST   /_emulator/reset    clears streams (and the block list's places), the domains seen, tasks,
--                              online streams, counters, rate-limiter state
--                              (windows, buckets and run-time caps), the run-time strangers (the
--                              config's start again now), nonces, log
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
--                              credentials URI: see control_credentials.lua
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
--   GET    /_emulator/remote_auth  -> {"domains":{domain:{url,timeout_ms,...}},"asked":[...]}
--   POST   /_emulator/remote_auth  {"domain","url"[,"timeout_ms","timeout_action","other_code_action",
--                              "success_codes","fail_codes"]}: a POST to /online then asks that
--                              server first (remote_auth.lua); DELETE removes them all
--   GET    /_emulator/zego_online  -> {"online":{"<AppId>/<StreamId>":{...}}}
--   POST   /_emulator/zego_online  {"app_id","stream_id","room_id","user_id"[,"user_name",
--                              "extra_info","nonce"]} or an array: ZEGO streams published
--                              (stream_create callbacks); forbidden ones are refused
--                              -> {"marked":[...],"refused":[...],"online":{...}}
--   DELETE /_emulator/zego_online  {"app_id","stream_id"[,"type"]} or an array; empty: all
--                              (stream_close callbacks) -> {"removed":[...],"online":{...}}
--   POST   /_emulator/callbacks  {"delivery": id}: that delivery's last request sent once more,
--                              byte for byte, at once (a provider delivering at least once:
--                              callbacks.lua); its log entry has "again": true -> 202
--                              {"delivery":id}; 404 when not kept
--   GET    /_emulator/strangers  -> {"now":<limiter clock>,"strangers":[...]}
--   POST   /_emulator/strangers  {"provider","account"|"account_uid"|"app_id","action","rate"
--                              [,"burst"]} or an array: a stranger's load on that budget,
--                              from now (replaces its stranger) -> {"set":[...],"strangers":[...]}
--   DELETE /_emulator/strangers  the same budgets (without rate, burst); empty: all
--                              -> {"removed":[...],"strangers":[...]}
--   GET    /_emulator/qps      -> {"qps":[...]}: the run-time caps
--   POST   /_emulator/qps      {"provider","account"|"account_uid"|"app_id","action","qps"} or an
--                              array: that budget's cap until DELETE or a reset
--                              -> {"set":[...],"qps":[...]}
--   DELETE /_emulator/qps      the same budgets (without qps); empty: all (back to the
--                              config's) -> {"removed":[...],"qps":[...]}
--                              (strangers and caps: control_budgets.lua, strangers.lua)
-- Errors: 400 {"error":"..."} (bad JSON / spec), 404 unknown endpoint, 405 wrong method.
--
-- State (GET /_emulator/state), stable shape:
--   {
--     "now": <emulator unix time>, "clock": {"now","pinned","offset"},
--     "provider": "<this port's provider>",
--     "aliyun": {
--       "streams": { "<domain>/<app>/<stream>": { "DomainName","AppName","StreamName",
--                    "status": "forbidden"|"normal", "ends_at", "ends_by" (a forbidden one's
--                    end, ISO 8601 UTC, and "resume_time"|"default"), "ResumeTime", "Oneshot",
--                    "forbid_count","resume_count","interrupt_count","updated_at","account" } },
--       "block_list": { "places_in_use", "limit" },   -- every domain's listed streams
--       "tasks": { "<TaskId>": { "TaskId","TaskStatus","TaskInfo":{...},
--                  "created_at","stopped_at","updated_at","restarted_at","restart_count",
--                  "account" } },                -- tasks past their EndTime are deleted
--       "task_order": ["<TaskId>", ...],
--       "online": { "<domain>/<app>/<stream>": { "DomainName","AppName","StreamName",
--                   "PublishTime","ClientIp" } },
--       "counters": { "<Action>": { "accepted","throttled","faulted",
--                     "per_second": { "<unix second>": {"accepted","throttled"} },
--                     "stranger_accepted","stranger_throttled" } },  -- the last two: strangers'
--       "strangers": [ ... ], "qps_overrides": [ ... ],  -- as /_emulator/strangers and /qps list them
--       "rate_limiter": "sliding_window"|"token_bucket",   -- the provider's default
--       "rate_limiters": { "<AccessKeyId>": "<the limiter it uses>" },
--       "account_uids": { "<AccessKeyId>": "<its account's UID>" }   -- keys with an "account"
--     },
--     "zego": {
--       "streams": { "<AppId>": { "<StreamId>": { "rtc": "normal"|"forbidden",
--                    "cdn": "normal"|"forbidden", "cdn_resume_time", "last_sequence",
--                    "last_sequence_at", "forbid_count", "resume_count", "updated_at" } } },
--       "counters": { same shape as aliyun }, "strangers": [...], "qps_overrides": [...],
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

local version = require "streamctl.version"
local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local faults = require "streamctl.emulator.faults"
local ratelimit = require "streamctl.emulator.ratelimit"
local stats = require "streamctl.emulator.stats"
local requestlog = require "streamctl.emulator.requestlog"
local aliyun = require "streamctl.emulator.aliyun"
local zego = require "streamctl.emulator.zego"
local imds = require "streamctl.emulator.imds"
local callbacks = require "streamctl.emulator.callbacks"
local task_events = require "streamctl.emulator.task_events"
local request_io = require "streamctl.emulator.request_io"
local online = require "streamctl.emulator.control_online"
local credentials = require "streamctl.emulator.control_credentials"
local budgets = require "streamctl.emulator.control_budgets"

local ngx = ngx
local ngx_req, ngx_header = ngx.req, ngx.header

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local sort, concat = table.sort, table.concat

local M = {}

local settings
local options = {}

-- The emulator's settings (config.lua's) and the launcher's options
-- ({ config_file, dir, ports, imds_listen }), as the server loaded them.
function M.init(loaded_settings, launcher_options)
  settings, options = loaded_settings, launcher_options
  budgets.init(settings)
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
  budgets.reset()
end

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
      block_list_limit = settings.aliyun.block_list_limit,
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
    local value, err = request_io.read_json_body({})
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
    return 200, { ok = true, provider = provider, pid = ngx.worker.pid(), version = version._VERSION }
  end,
}

CONTROL.state = {
  GET = function(provider)
    budgets.settle_all()
    local now = clock.now()
    local state = {
      now = now,
      clock = clock.snapshot(),
      provider = provider,
      aliyun = aliyun.snapshot(now),
      zego = zego.snapshot(now),
      imds = imds.served() and imds.snapshot(now) or nil,
      faults = fault_lists(),
      callbacks = callbacks.snapshot(),
    }
    budgets.add_to_state(state)
    return 200, state
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
    request_io.read_body()
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

CONTROL.online = {
  GET = online.list_live,
  POST = with_json_body(online.mark_live_online),
  DELETE = online.mark_live_offline,
}

CONTROL.remote_auth = {
  GET = online.remote_auth_get,
  POST = with_json_body(online.remote_auth_set),
  DELETE = online.remote_auth_delete,
}

CONTROL.zego_online = {
  GET = online.list_zego,
  POST = with_json_body(online.publish_zego),
  DELETE = online.stop_zego,
}

CONTROL.callbacks = {
  POST = with_json_body(function(spec)
    local id = type(spec) == "table" and spec.delivery
    if not (type(id) == "number" and id >= 1 and id % 1 == 0) then
      return 400, { error = "callbacks: expected {\"delivery\": <the id of a delivery sent>}" }
    end
    return callbacks.again(id)
  end),
}

CONTROL.strangers = {
  GET = budgets.list_strangers,
  POST = with_json_body(budgets.set_strangers),
  DELETE = budgets.remove_strangers,
}

CONTROL.qps = {
  GET = budgets.list_caps,
  POST = with_json_body(budgets.set_caps),
  DELETE = budgets.remove_caps,
}

CONTROL.config = {
  GET = function()
    return 200, public_config()
  end,
}

CONTROL.credentials = {
  GET = function()
    return credentials.show(settings)
  end,
}

CONTROL.oidc_token = {
  POST = with_json_body(function(spec)
    return credentials.issue_oidc_token(settings, spec)
  end),
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

-- Answers the request in progress on the control endpoint `name` (the path
-- after /_emulator/) of a port of `provider`.
function M.serve(provider, name)
  local endpoint = CONTROL[name]
  if not endpoint then
    return request_io.send_json(404, { error = "unknown endpoint /_emulator/" .. tostring(name) })
  end
  local method = ngx_req.get_method()
  local handler = endpoint[method]
  if not handler then
    ngx_header["Allow"] = allowed_methods(endpoint)
    return request_io.send_json(405, { error = method .. " is not allowed on /_emulator/" .. name })
  end
  return request_io.send_json(handler(provider))
end

return M
