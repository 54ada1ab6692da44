-- The emulator's settings: built-in defaults, optionally overridden by a JSON file.
--
-- File format (every key optional; objects are merged over the defaults):
--
--   {
--     "aliyun": {
--       "accounts": {                      -- AccessKeyId -> secret, or an object, or false
--         "LTAIemulatorKey": "emulator-secret",
--         "STS.example": { "secret": "s", "security_token": "tok" },  -- STS: token required
--         "LTAInoLive": { "secret": "s", "live_service": false },     -- LiveServiceNotFound
--         "LTAInoDomain": { "secret": "s", "has_live_domain": false }, -- CodeInvalidAliUid
--         "LTAIslow": { "secret": "s", "qps": { "ResumeLiveStream": 2 } },  -- per-account QPS
--         "LTAIbusy": { "secret": "s", "strangers": { "ResumeLiveStream": { "rate": 5, "burst": 1 } } },
--                                          -- another tool's load on its account (strangers.lua)
--         "LTAIlax": { "secret": "s", "rate_limiter": "token_bucket" },     -- per-account limiter
--         "LTAIram1": { "secret": "s", "account": "1234567890123456" },   -- two keys of one
--         "LTAIram2": { "secret": "t", "account": "1234567890123456" },   -- account: one budget
--         "LTAIops": { "secret": "s", "actions": ["live:ResumeLiveStream", "live:Describe*"] },
--                                          -- its RAM policy: any other action is Forbidden.RAM
--                                          -- ("sts:AssumeRole" for AssumeRole: NoPermission)
--         "LTAIalice": { "secret": "s", "account": "1234567890123456", "user": "alice" },
--                                          -- a RAM user's key (identity.lua)
--         "LTAIroot": { "secret": "s", "account": "1234567890123456", "root": true },
--                                          -- the account's own key: no AssumeRole
--         "testid": "testsecret"
--       },                                 -- (a value of false removes a default account)
--       "roles": { "acs:ram::1234567890123456:role/streamctl": {      -- RAM roles (STS)
--         "max_session_duration": 3600, "trusted_accounts": ["1234567890123456"],
--         "trusted_oidc_providers": [], "external_id": "x", "actions": ["live:*"] } },
--       "oidc_providers": { "acs:ram::1234567890123456:oidc-provider/ack": {
--         "issuer": "https://oidc.emulator.invalid/ack", "client_ids": ["sts.aliyuncs.com"],
--         "tokens": [] } },
--       "imds": { "role": "acs:ram::1234567890123456:role/streamctl",  -- ECS metadata service
--         "credential_lifetime_s": 21600, "rotation_lead_s": 300, "hardened": false },
--       "credentials_uri": { "role": "acs:ram::1234567890123456:role/streamctl",
--         "credential_lifetime_s": 3600, "rotation_lead_s": 300 },
--                                          -- (identity.lua says what each key means)
--       "qps": { "ResumeLiveStream": 30 },  -- per account and action; 0 = unlimited (STS's
--                                          -- AssumeRole, AssumeRoleWithOIDC, GetCallerIdentity too)
--       "rate_limiter": "sliding_window",   -- or "sliding_window_closed", "token_bucket" (ratelimit.lua)
--       "timestamp_tolerance_s": 900,       -- InvalidTimeStamp.Expired beyond this skew
--       "nonce_ttl_s": 900,                 -- how long a SignatureNonce stays "used"
--       "domains": [],                      -- non-empty: other DomainNames -> InvalidDomain.NotFound
--       "max_pull_to_push_tasks": 1000,     -- tasks beyond this -> CodeNotEnoughResource
--       "block_list_limit": 10000,          -- places on the block list (every domain), a whole
--                                          -- number >= 0: one more -> BlockList.LimitExceeded
--       "host_id": "live.aliyuncs.com",     -- HostId in error bodies
--       "notify": { "live.example.com": { "url": "http://127.0.0.1:9000/ali", "auth_key": "k" } },
--                                          -- stream ingest callbacks preset per ingest domain
--                                          -- (as SetLiveStreamsNotifyUrlConfig; aliyun_notify.lua)
--       "pull_to_push_event": "LivePullToPushRuning"  -- or "LivePullToPushRunning": the Event
--                                          -- of the task callbacks (task_events.lua)
--     },
--     "zego": {
--       "apps": {                           -- AppId (decimal string) -> ServerSecret, or an object, or false
--         "1234567890": "0123456789abcdef0123456789abcdef",
--         "12345": { "secret": "...", "test_env": true, "cdn_types": ["ws"], "cdn_resume_enabled": true,
--                    "qps": { "ForbidRTCStream": 2 }, "rate_limiter": "token_bucket",
--                    "strangers": { "ForbidRTCStream": { "rate": 5 } },
--                    "callback_url": "http://127.0.0.1:9000/zego", "callback_secret": "s" }
--       },                                 -- (callback_url and callback_secret go together:
--                                          -- stream callbacks, zego_streams.lua)
--       "qps": { "ForbidRTCStream": 20 },   -- per AppId and action
--       "rate_limiter": "sliding_window",   -- or "sliding_window_closed", "token_bucket"
--       "test_env_qps": 5,                  -- RTC forbid/resume limit for test_env apps
--       "timestamp_tolerance_s": 600,       -- 100000004 beyond this skew
--       "sequence_window_s": 10,            -- the Sequence ordering window
--       "callback_retry_scale": 1           -- multiplies the callback retry delays 2..32 s
--     },
--     "log_limit": 10000                    -- request log entries kept (oldest dropped)
--   }
--
-- rate_limiter: the provider's default is "sliding_window", the strictest
-- reading of "N per second" (the providers do not say how they count, and where
-- a document is silent the emulator is strict); an account's or app's own
-- rate_limiter overrides it. Any other value stops the start with a message
-- naming the key ("aliyun.accounts.LTAIx.rate_limiter: expected ...").
-- The default caps follow each operation's page; ForbidLiveStream is 20/s (its
-- page of June 2026; an older QPS table said 200).
--
-- account: Alibaba Cloud counts an API's QPS per account (the UID), over all
-- its RAM users' AccessKeys and STS sessions, so keys given the same
-- "account" share one budget (one window per UID and action); a key without
-- one is an account of its own. The UID is a string of 1 to 32 decimal digits
-- (a real one has 16, more than a JSON number is sure to keep exactly). The
-- keys of one account must give the same qps, rate_limiter and strangers (or none): a
-- budget has one size and one way of counting, and picking one key's over
-- another's would hide a mistake, so a config where they differ is refused,
-- naming both keys.

local json = require "streamctl.emulator.json"
local DEFAULT = require "streamctl.emulator.defaults"
local ratelimit = require "streamctl.emulator.ratelimit"
local identity = require "streamctl.emulator.identity"
local strangers = require "streamctl.emulator.strangers"
local caps = require "streamctl.emulator.caps"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, find = string.format, string.find
local sort = table.sort
local io_open = io.open

local M = {}

local function defaults()
  return {
    aliyun = {
      accounts = {
        [DEFAULT.ALIYUN.access_key_id] = { secret = DEFAULT.ALIYUN.access_key_secret },
      },
      qps = caps.aliyun(),
      rate_limiter = ratelimit.DEFAULT,
      timestamp_tolerance_s = 900,
      nonce_ttl_s = 900,
      domains = {},
      max_pull_to_push_tasks = 1000,
      -- ForbidLiveStream's page: "You can disable up to 10,000 live streams."
      block_list_limit = 10000,
      host_id = "live.aliyuncs.com",
      notify = {},
      pull_to_push_event = "LivePullToPushRuning",
    },
    zego = {
      apps = {
        [DEFAULT.ZEGO.app_id] = { secret = DEFAULT.ZEGO.server_secret },
      },
      qps = caps.zego(),
      rate_limiter = ratelimit.DEFAULT,
      test_env_qps = 5,
      timestamp_tolerance_s = 600,
      sequence_window_s = 10,
      callback_retry_scale = 1,
    },
    log_limit = 10000,
  }
end

-- Checks a rate_limiter value; key is its full name for the message.
local function check_limiter(value, key)
  if type(value) == "string" and ratelimit.ALGORITHMS[value] then
    return value
  end
  local got = type(value) == "string" and format("%q", value) or type(value)
  error(key .. ": expected \"sliding_window\", \"sliding_window_closed\" or \"token_bucket\", got " .. got, 0)
end

local function merge_numbers(into, from, what)
  if from == nil then
    return
  end
  if type(from) ~= "table" then
    error(what .. ": expected an object", 0)
  end
  for k, v in pairs(from) do
    if type(v) ~= "number" then
      error(what .. "." .. tostring(k) .. ": expected a number", 0)
    end
    into[k] = v
  end
end

-- A RAM policy's actions: an array of RAM action names ("live:ResumeLiveStream",
-- "*" for any run of characters: "live:Describe*", "live:*"). Raises naming key.
local function check_actions(v, key)
  if type(v) ~= "table" then
    error(key .. ": expected an array of RAM actions such as \"live:ResumeLiveStream\"", 0)
  end
  local n = 0
  for _ in pairs(v) do
    n = n + 1
  end
  for i = 1, n do
    local a = v[i]
    if type(a) ~= "string" or not (a == "*" or a:find("^[%w]+:[%w%*]+$")) then
      error(format("%s[%d]: expected a RAM action such as \"live:ResumeLiveStream\" or \"live:Describe*\", "
        .. "got %s", key, i, type(a) == "string" and ("\"" .. a .. "\"") or type(a)), 0)
    end
  end
end

-- Normalizes one account / app entry: a string is the secret. path names the
-- entry in errors ("aliyun.accounts.LTAIx").
local function credential(v, what, id, path)
  if type(v) == "string" then
    return { secret = v }
  end
  if type(v) == "table" and type(v.secret) == "string" then
    local c = {}
    for k, x in pairs(v) do
      c[k] = x
    end
    if c.rate_limiter ~= nil then
      check_limiter(c.rate_limiter, path .. ".rate_limiter")
    end
    if c.actions ~= nil then
      check_actions(c.actions, path .. ".actions")
    end
    if c.qps ~= nil then
      -- checked here as the provider's are: a qps that is not an object
      -- of numbers would only fail later, on a request
      local qps = {}
      merge_numbers(qps, c.qps, path .. ".qps")
      c.qps = qps
    end
    return c
  end
  error(what .. " " .. tostring(id) .. ": expected a secret string or {\"secret\": ...}", 0)
end

local function merge_credentials(into, from, what, path)
  if from == nil then
    return
  end
  if type(from) ~= "table" then
    error(what .. "s: expected an object", 0)
  end
  for id, v in pairs(from) do
    id = tostring(id)
    if v == false then
      into[id] = nil
    else
      into[id] = credential(v, what, id, path .. "." .. id)
    end
  end
end

local function merge_scalar(into, from, key, kind)
  local v = from[key]
  if v == nil then
    return
  end
  if type(v) ~= kind then
    error(key .. ": expected a " .. kind, 0)
  end
  into[key] = v
end

-- An account UID: decimal digits, as a string. Returns it, or raises naming key.
local MAX_UID = 32
local function check_uid(value, key)
  if type(value) == "string" and #value >= 1 and #value <= MAX_UID and not find(value, "%D") then
    return value
  end
  local got = type(value) == "string" and format("%q", value) or type(value)
  error(format("%s: expected a string of 1 to %d decimal digits (the account's UID), got %s", key, MAX_UID, got), 0)
end

-- A qps or rate_limiter as a message shows it.
local function shown(v)
  if v == nil then
    return "not given"
  elseif type(v) == "number" then
    return format("%.14g", v)
  end
  return format("%q", tostring(v))
end

-- Checks the "account" of every Aliyun key, and that the keys of one account
-- agree on its budget (see the top of this file). Keys are taken in sorted
-- order, so the same file always gets the same message: each key is compared
-- with the first key of its account.
local function check_accounts(accounts)
  local ids = {}
  for id in pairs(accounts) do
    ids[#ids + 1] = id
  end
  sort(ids)
  local first = {}
  for _, id in ipairs(ids) do
    local a = accounts[id]
    local path = "aliyun.accounts." .. id
    if a.account ~= nil then
      check_uid(a.account, path .. ".account")
      local other_id = first[a.account]
      if not other_id then
        first[a.account] = id
      else
        local other = accounts[other_id]
        local function differ(what, mine, theirs)
          error(format("%s%s: %s here but %s on %s, another key of account %s; the keys of one "
            .. "account share its budget, so they must give the same qps and rate_limiter (or "
            .. "leave them out)", path, what, shown(mine), shown(theirs), other_id, a.account), 0)
        end
        if a.rate_limiter ~= other.rate_limiter then
          differ(".rate_limiter", a.rate_limiter, other.rate_limiter)
        end
        local actions, seen = {}, {}
        for _, qps in ipairs({ a.qps or {}, other.qps or {} }) do
          for action in pairs(qps) do
            if not seen[action] then
              seen[action] = true
              actions[#actions + 1] = action
            end
          end
        end
        sort(actions)
        for _, action in ipairs(actions) do
          local mine, theirs = a.qps and a.qps[action], other.qps and other.qps[action]
          if mine ~= theirs then
            differ(".qps." .. action, mine, theirs)
          end
        end
      end
    end
  end
end

-- Merges the override's provider section `name` over cfg[name]: its
-- credentials map `ids` (named `what` in errors), its qps map, its
-- rate_limiter and the scalar settings listed in `scalars` ({ {key, type},
-- ... }, checked in that order).
-- Returns the section, or nil when the override has none.
local function merge_section(cfg, override, name, ids, what, scalars)
  local from = override[name]
  if from == nil then
    return nil
  end
  if type(from) ~= "table" then
    error(name .. ": expected an object", 0)
  end
  local into = cfg[name]
  merge_credentials(into[ids], from[ids], what, name .. "." .. ids)
  merge_numbers(into.qps, from.qps, name .. ".qps")
  if from.rate_limiter ~= nil then
    into.rate_limiter = check_limiter(from.rate_limiter, name .. ".rate_limiter")
  end
  for _, s in ipairs(scalars) do
    merge_scalar(into, from, s[1], s[2])
  end
  return from
end

local function http_url(v)
  return type(v) == "string" and (find(v, "^[hH][tT][tT][pP]://[^/?#]") or find(v, "^[hH][tT][tT][pP][sS]://[^/?#]"))
end

-- aliyun.notify: ingest domain -> { url, auth_key (optional) }.
local function check_notify(v)
  if type(v) ~= "table" then
    error("aliyun.notify: expected an object of ingest domains", 0)
  end
  local out = {}
  for domain, n in pairs(v) do
    local path = "aliyun.notify." .. tostring(domain)
    if type(n) ~= "table" then
      error(path .. ": expected an object {\"url\": ..., \"auth_key\": ...}", 0)
    end
    if not http_url(n.url) then
      error(path .. ".url: expected an http:// or https:// URL", 0)
    end
    if n.auth_key ~= nil and (type(n.auth_key) ~= "string" or n.auth_key == "") then
      error(path .. ".auth_key: expected a non-empty string", 0)
    end
    out[tostring(domain)] = { url = n.url, auth_key = n.auth_key }
  end
  return out
end

-- The ZEGO apps' callback settings: callback_url and callback_secret together.
local function check_zego_callbacks(apps)
  for id, app in pairs(apps) do
    local path = "zego.apps." .. id
    if app.callback_url ~= nil and not http_url(app.callback_url) then
      error(path .. ".callback_url: expected an http:// or https:// URL", 0)
    end
    if app.callback_secret ~= nil and (type(app.callback_secret) ~= "string" or app.callback_secret == "") then
      error(path .. ".callback_secret: expected a non-empty string", 0)
    end
    if (app.callback_url == nil) ~= (app.callback_secret == nil) then
      error(path .. ": callback_url and callback_secret go together (the secret signs the callbacks)", 0)
    end
  end
end

-- Builds the settings from the defaults and an optional decoded override table.
function M.build(override)
  local cfg = defaults()
  if override == nil then
    identity.build(cfg.aliyun, nil, check_actions)
    return cfg
  end
  if type(override) ~= "table" then
    error("config: expected a JSON object", 0)
  end
  local a = merge_section(cfg, override, "aliyun", "accounts", "aliyun account", {
    { "timestamp_tolerance_s", "number" }, { "nonce_ttl_s", "number" },
    { "max_pull_to_push_tasks", "number" }, { "host_id", "string" },
  })
  check_accounts(cfg.aliyun.accounts)
  identity.build(cfg.aliyun, a, check_actions)
  if a and a.domains ~= nil then
    if type(a.domains) ~= "table" then
      error("aliyun.domains: expected an array of strings", 0)
    end
    cfg.aliyun.domains = {}
    for _, d in ipairs(a.domains) do
      cfg.aliyun.domains[#cfg.aliyun.domains + 1] = tostring(d)
    end
  end
  if a and a.notify ~= nil then
    cfg.aliyun.notify = check_notify(a.notify)
  end
  if a and a.block_list_limit ~= nil then
    local n = a.block_list_limit
    if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
      error("aliyun.block_list_limit: expected a whole number >= 0 (the places on the block list), got "
        .. (type(n) == "number" and format("%.14g", n) or type(n)), 0)
    end
    cfg.aliyun.block_list_limit = n
  end
  if a and a.pull_to_push_event ~= nil then
    local e = a.pull_to_push_event
    if e ~= "LivePullToPushRuning" and e ~= "LivePullToPushRunning" then
      error("aliyun.pull_to_push_event: expected \"LivePullToPushRuning\" or \"LivePullToPushRunning\"", 0)
    end
    cfg.aliyun.pull_to_push_event = e
  end
  local z = merge_section(cfg, override, "zego", "apps", "zego app", {
    { "test_env_qps", "number" }, { "timestamp_tolerance_s", "number" }, { "sequence_window_s", "number" },
    { "callback_retry_scale", "number" },
  })
  if z and z.callback_retry_scale ~= nil and z.callback_retry_scale < 0 then
    error("callback_retry_scale: expected a number >= 0", 0)
  end
  check_zego_callbacks(cfg.zego.apps)
  strangers.check_config(cfg)
  merge_scalar(cfg, override, "log_limit", "number")
  return cfg
end

-- Reads and builds the settings from a JSON file; path nil gives the defaults.
-- Raises with a readable message on any problem (nginx then fails to start and
-- the launcher shows the message from error.log).
function M.load(path)
  if not path or path == "" then
    return M.build(nil)
  end
  local f, err = io_open(path, "rb")
  if not f then
    error("cannot read config file: " .. tostring(err), 0)
  end
  local text = f:read("*a")
  f:close()
  local decoded, derr = json.decode(text)
  if decoded == nil then
    error("config file " .. path .. " is not valid JSON: " .. tostring(derr), 0)
  end
  local ok, cfg = pcall(M.build, decoded)
  if not ok then
    error("config file " .. path .. ": " .. tostring(cfg), 0)
  end
  return cfg
end

return M
