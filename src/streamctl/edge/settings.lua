--- The edge's settings (streamctl.edge.server): one table, each key checked
-- by its rule when nginx starts, so a typo stops nginx with the key named
-- instead of answering 500 at the door (which Alibaba Cloud's remote
-- authentication takes as a pass by default).
--
--   local settings = require "streamctl.edge.settings"
--   local s = assert(settings.check(settings.from_env()))   -- what the `env` directives pass
--   local s = assert(settings.check { token = "...", redis_url = "redis://10.0.0.5/0" })
--
-- `from_env` reads each key from its environment variable (KEYS below:
-- nginx passes a worker only the variables its `env` directives name); a
-- message about a key read from the environment names the variable, one
-- about a key given in a table names the key. An unknown key is refused
-- with the closest known one. The credentials the clients sign with come
-- from the providers' own variables (ALIBABA_CLOUD_ACCESS_KEY_ID and its
-- neighbours; ZEGO_APP_ID, ZEGO_SERVER_SECRET), as for every client.
-- @module streamctl.edge.settings

local validate = require "streamctl.base.validate"

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local format = string.format
local sort = table.sort

local M = {}

-- A whole number in decimal digits (tonumber would take 0x100, 1e3 or 200.0 for a count).
local function count(v)
  v = tostring(v)
  if not (v:find("^%d+$") and #v <= 15) then return nil, "must be a whole number >= 0 in decimal digits" end
  return tonumber(v)
end

-- Seconds: a decimal number in [min, max].
local function seconds(min, max)
  return function(v)
    local s = tostring(v)
    local n = s:find("^%d+%.?%d*$") and tonumber(s)
    if not n or n < min or n > max then
      return nil, format("must be a number of seconds from %s to %s", tostring(min), tostring(max))
    end
    return n
  end
end

local function text(v)
  if type(v) ~= "string" or v == "" or v:find("[%z\r\n]") then return nil, "must be a non-empty line of text" end
  return v
end

-- A key, or "new,old" during a rotation: a list then.
local function keys(v)
  if type(v) == "table" then
    if #v < 1 or #v > 2 then return nil, "must be a key, or \"new,old\" during a rotation" end
    v = table.concat(v, ",")
  end
  if type(v) ~= "string" or not (v:find("^[^,%s]+$") or v:find("^[^,%s]+,[^,%s]+$")) then
    return nil, "must be a key, or \"new,old\" during a rotation: no empty part, no space, at most two"
  end
  if not v:find(",", 1, true) then return v end
  local list = {}
  for k in v:gmatch("[^,]+") do list[#list + 1] = k end
  return list
end

local function one_of(...)
  local allowed = { ... }
  return function(v)
    for _, a in ipairs(allowed) do if v == a then return v end end
    return nil, "must be \"" .. table.concat(allowed, "\" or \"") .. "\""
  end
end

local function url(v)
  if type(v) ~= "string" or not v:find("^https?://[^%s]+$") then return nil, "must be an http:// or https:// URL" end
  return v
end

--- The keys, their environment variables, rules and defaults, in the order they are checked.
M.KEYS = {
  { "token", "STREAMCTL_EDGE_TOKEN", text, required = "every /streams request would be refused",
    doc = "the moderation API's Bearer token (/streams)" },
  { "issuer_token", "STREAMCTL_EDGE_ISSUER_TOKEN", text, doc = "/tokens/zego's Bearer token (off when unset)" },
  { "redis_url", "STREAMCTL_REDIS_URL", text, doc = "one budget, Sequence and forbid list for every edge" },
  { "forbids", "STREAMCTL_EDGE_FORBIDS", text, doc = "the forbid list's seed file (JSON)" },
  { "adopt", "STREAMCTL_EDGE_ADOPT", one_of("aliyun"), doc = "\"aliyun\": adopt its block lists when no seed" },
  { "reconcile_s", "STREAMCTL_EDGE_RECONCILE_S", seconds(1, 86400), default = 60, doc = "seconds between rounds" },
  { "max_forbid", "STREAMCTL_EDGE_MAX_FORBID", count, doc = "streams a forbid takes without confirm (100)" },
  { "max_resume", "STREAMCTL_EDGE_MAX_RESUME", count, doc = "streams a resume takes without confirm (100)" },
  { "audit_log", "STREAMCTL_EDGE_AUDIT_LOG", text, doc = "the audit log (logs/audit.jsonl under nginx's prefix)" },
  { "admit_on_list_error", "STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR", one_of("deny", "allow"), default = "deny",
    doc = "the door's answer when the list cannot be read" },
  { "list_grace_s", "STREAMCTL_EDGE_LIST_GRACE_S", seconds(0, 300), default = 10,
    doc = "how long the door answers from the last list read whole" },
  { "rtmp_control", "STREAMCTL_EDGE_RTMP_CONTROL", url,
    doc = "nginx-rtmp's control URL: a forbid drops the publisher" },
  { "callback_token", "STREAMCTL_EDGE_CALLBACK_TOKEN", text, doc = "the relay callbacks' path token" },
  { "task_region", "STREAMCTL_EDGE_TASK_REGION", text, doc = "the relay tasks' region" },
  { "ca_file", "STREAMCTL_CA_FILE", text, doc = "the CA the clients trust" },
  { "aliyun_endpoint", "STREAMCTL_ALIYUN_ENDPOINT", url, doc = "Alibaba Cloud's endpoint" },
  { "aliyun_auth_key", "STREAMCTL_ALIYUN_AUTH_KEY", keys, doc = "signed URLs' key(s) at the door" },
  { "aliyun_notify_key", "STREAMCTL_ALIYUN_NOTIFY_KEY", keys, doc = "callbacks' key(s)" },
  { "aliyun_notify_domain", "STREAMCTL_ALIYUN_NOTIFY_DOMAIN", text, doc = "the callbacks' ingest domain" },
  { "zego_endpoint", "STREAMCTL_ZEGO_ENDPOINT", url, doc = "ZEGO's endpoint" },
  { "zego_app_id", "ZEGO_APP_ID", function(v)
      local s = tostring(v)
      if not (s:find("^%d+$") and #s <= 10) then return nil, "must be the AppId in decimal digits" end
      return tonumber(s)
    end, doc = "the AppId (the door verifies tokens with it)" },
  { "zego_server_secret", "ZEGO_SERVER_SECRET", function(v)
      if type(v) ~= "string" or #v ~= 32 then
        return nil, "must be the ServerSecret's 32 characters (got " .. (type(v) == "string" and #v or 0) .. ")"
      end
      return v
    end, doc = "the ServerSecret" },
  { "zego_callback_secret", "ZEGO_CALLBACK_SECRET", keys, doc = "callbacks' secret(s)" },
  { "zego_token_form", "STREAMCTL_EDGE_ZEGO_TOKEN_FORM", one_of("gcm", "cbc"), default = "gcm",
    doc = "the Token04 form /tokens/zego issues (and the door reads)" },
}

local BY_KEY, NAMES = {}, {}
for _, k in ipairs(M.KEYS) do BY_KEY[k[1]], NAMES[#NAMES + 1] = k, k[1] end

--- The settings from the environment (`getenv`, default os.getenv): each
-- key its variable's value, an empty one as unset; `where` says the
-- variable each came from, for `check`'s messages.
function M.from_env(getenv)
  getenv = getenv or os.getenv
  local out = { [M] = "env" } -- (a mark `check` reads: this table came from the environment)
  for _, k in ipairs(M.KEYS) do
    local v = getenv(k[2])
    if v ~= nil and v ~= "" then out[k[1]] = v end
  end
  return out
end

--- How a message names `key` of settings `s`: its variable when read from
-- the environment, else "settings.KEY".
function M.name(s, key)
  if s and s[M] == "env" then return BY_KEY[key][2] end
  return "settings." .. key
end

--- The settings checked, each by its rule, with defaults: a new table (keys
-- parsed: numbers, key lists); or nil and a message naming the first key
-- that breaks its rule and why. Misuse (not a table) raises.
function M.check(s)
  if type(s) ~= "table" then error("bad argument #1 to 'check' (table expected)", 2) end
  local unknown = {}
  for k in pairs(s) do
    if k ~= M and not BY_KEY[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    sort(unknown)
    return nil, format("settings.%s: no such setting%s", unknown[1], validate.hint(unknown[1], NAMES))
  end
  local out = { [M] = s[M] }
  for _, k in ipairs(M.KEYS) do
    local v = s[k[1]]
    if v == nil then
      if k.required then return nil, format("%s is not set: %s", M.name(s, k[1]), k.required) end
      out[k[1]] = k.default
    else
      local value, why = k[3](v)
      if value == nil then
        local shown = (k[3] == keys or k[1]:find("secret") or k[1]:find("token")) and "" or
          format(" (got %s)", tostring(v))
        return nil, format("%s %s%s", M.name(s, k[1]), why, shown)
      end
      out[k[1]] = value
    end
  end
  -- (settings that go together, or must differ)
  if out.issuer_token and out.issuer_token == out.token then
    return nil, format("%s must differ from %s: who may issue ZEGO tokens may not forbid and resume streams",
      M.name(s, "issuer_token"), M.name(s, "token"))
  end
  if (out.zego_app_id == nil) ~= (out.zego_server_secret == nil) then
    local given = out.zego_app_id and "zego_app_id" or "zego_server_secret"
    return nil, format("%s and %s go together (only %s is set): without both the door could not verify ZEGO's "
      .. "tokens", M.name(s, "zego_app_id"), M.name(s, "zego_server_secret"), M.name(s, given))
  end
  if (out.aliyun_notify_key == nil) ~= (out.aliyun_notify_domain == nil) then
    local given = out.aliyun_notify_key and "aliyun_notify_key" or "aliyun_notify_domain"
    return nil, format("%s and %s go together (only %s is set): Alibaba Cloud's callbacks are signed for the "
      .. "domain", M.name(s, "aliyun_notify_key"), M.name(s, "aliyun_notify_domain"), M.name(s, given))
  end
  return out
end

return M
