-- The control endpoints of the budgets (control_endpoints.lua routes to
-- them): strangers (strangers.lua) and run-time caps (ratelimit.lua's
-- set_cap), and the config's strangers, set at the start and again by a reset.
--
-- A budget is named as the rate limiter counts it:
--   {"provider": "aliyun", "account": "<AccessKeyId>", "action": "<Action>"}
--     a configured key (or an issued STS key): its account's budget, the
--     UID's when the key has an "account", else the key's own;
--   {"provider": "aliyun", "account_uid": "<UID>", "action": ...}
--     an account by its UID: one its keys give as "account", or a role's
--     (an AccessKeyId and a UID can be the same string, so they are two
--     fields; a listing shows account for a key's own budget, account_uid
--     for a UID's);
--   {"provider": "zego", "app_id": <AppId>, "action": ...}
--     an app's (a number or a string of decimal digits).
-- provider defaults to the port's. action: one with a rate limit (a key of
-- the provider's qps or of the account's or app's own).
--
-- /_emulator/strangers
--   GET     -> {"now": <limiter clock>, "strangers": [...]}
--   POST    a budget with "rate" and optional "burst" (strangers.lua), or an
--           array: sets or replaces each budget's stranger, starting now
--           -> {"set": [...], "strangers": [...]}
--   DELETE  budgets (or an array); empty body: every stranger
--           -> {"removed": [...], "strangers": [...]}
-- /_emulator/qps
--   GET     -> {"qps": [...]}
--   POST    a budget with "qps" (a number >= 0; 0: unlimited), or an array:
--           that budget's cap until DELETE or a reset -> {"set": [...], "qps": [...]}
--   DELETE  budgets (or an array); empty body: every cap; back to the
--           config's -> {"removed": [...], "qps": [...]}
-- A stranger listed: {provider, account | account_uid | app_id, action, rate,
-- burst, source ("config" | "control"), set_at and next_at (the limiter's
-- clock), arrivals, accepted, throttled, skipped, qps and rate_limiter (the
-- budget's now)}. A cap listed: {provider, account | account_uid | app_id,
-- action, qps, config_qps}.
--
-- Every listing, and GET /_emulator/state, first counts the strangers'
-- arrivals up to now; a stranger replaced or removed, and a budget whose cap
-- changes, is counted up to now first (its arrivals so far stay in the
-- window). A body is checked whole before anything changes: a bad entry
-- answers 400 naming the entry, the field and the rule, and changes nothing.

local json = require "streamctl.emulator.json"
local ratelimit = require "streamctl.emulator.ratelimit"
local strangers = require "streamctl.emulator.strangers"
local aliyun_gateway = require "streamctl.emulator.aliyun_gateway"
local zego_gateway = require "streamctl.emulator.zego_gateway"
local request_io = require "streamctl.emulator.request_io"

local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring
local format, match = string.format, string.match
local sort, concat = table.sort, table.concat

local M = {}

local settings

local shown = strangers.shown

-- The key, qps and limiter of a budget named by info { provider, action,
-- account | account_uid | app_id }.
local function resolve(info)
  if info.provider == "zego" then
    return zego_gateway.budget(info.app_id, settings.zego.apps[info.app_id], info.action)
  end
  local uid = info.account_uid
  local entry = uid and settings.aliyun.account_settings[uid] or aliyun_gateway.lookup(info.account)
  return aliyun_gateway.budget(uid, info.account, entry, info.action)
end

-- Counts the stranger of a budget (if any) up to now.
local function settle(info, now)
  local key, qps, limiter = resolve(info)
  ratelimit.settle(key, qps, limiter, now)
end

local function settle_all(now)
  for _, s in ipairs(strangers.all()) do
    settle(s, now)
  end
end

local function known_uid(uid)
  if settings.aliyun.account_settings[uid] then
    return true
  end
  for _, role in pairs(settings.aliyun.roles or {}) do
    if role.account == uid then
      return true
    end
  end
  return false
end

local function has_limit(entry, provider_qps, action)
  return type(action) == "string" and ((entry and entry.qps and entry.qps[action] ~= nil)
    or provider_qps[action] ~= nil)
end

-- An Aliyun budget's info, or nil and the message (what: the entry's prefix).
local function aliyun_info(e, what)
  if e.app_id ~= nil then
    return nil, what .. "app_id: not an Aliyun field (name the budget by account or account_uid)"
  end
  local uid = e.account_uid
  local ak, entry
  if uid ~= nil and e.account ~= nil then
    return nil, what .. "account, account_uid: give one of them, not both"
  elseif uid ~= nil then
    if type(uid) ~= "string" or not known_uid(uid) then
      return nil, what .. "account_uid: expected the UID of an account the config names (a key's "
        .. "\"account\" or a role's), got " .. shown(uid)
    end
    entry = settings.aliyun.account_settings[uid]
  else
    local key = type(e.account) == "string" and aliyun_gateway.lookup(e.account)
    if not key then
      return nil, what .. "account: expected the AccessKeyId of a configured key or of an issued STS key "
        .. "(or account_uid: an account's UID), got " .. shown(e.account)
    end
    if key.account then
      uid, entry = key.account, settings.aliyun.account_settings[key.account]
    else
      ak, entry = e.account, key
    end
  end
  if not has_limit(entry, settings.aliyun.qps, e.action) then
    return nil, what .. "action: expected an Action with a rate limit (a key of aliyun.qps or of the "
      .. "account's qps), got " .. shown(e.action)
  end
  return { provider = "aliyun", action = e.action, account = ak, account_uid = uid }
end

local function app_id_of(v)
  if type(v) == "number" and v >= 0 and v % 1 == 0 and v < 2 ^ 53 then
    return format("%d", v)
  end
  return type(v) == "string" and match(v, "^%d+$") and v or nil
end

-- A ZEGO budget's info, or nil and the message.
local function zego_info(e, what)
  if e.account ~= nil or e.account_uid ~= nil then
    return nil, what .. (e.account ~= nil and "account" or "account_uid")
      .. ": not a ZEGO field (name the budget by app_id)"
  end
  local app_id = app_id_of(e.app_id)
  local app = app_id and settings.zego.apps[app_id]
  if not app then
    return nil, what .. "app_id: expected the AppId of a configured app (decimal digits), got " .. shown(e.app_id)
  end
  if not has_limit(app, settings.zego.qps, e.action) then
    return nil, what .. "action: expected an Action with a rate limit (a key of zego.qps or of the app's "
      .. "qps), got " .. shown(e.action)
  end
  return { provider = "zego", action = e.action, app_id = app_id }
end

-- The fields an entry of each kind may have.
local IDENTITY = { "provider", "account", "account_uid", "app_id", "action" }
local FIELDS = {
  stranger = { "rate", "burst" },
  cap = { "qps" },
  budget = {},
}

-- The budget info an entry names, or nil and the message. kind: FIELDS's.
local function budget_of(e, what, port_provider, kind)
  if type(e) ~= "table" then
    return nil, what .. "expected an object"
  end
  local allowed = {}
  for _, list in ipairs({ IDENTITY, FIELDS[kind] }) do
    for _, f in ipairs(list) do
      allowed[f] = true
    end
  end
  local unknown = {}
  for k in pairs(e) do
    if not allowed[k] then
      unknown[#unknown + 1] = tostring(k)
    end
  end
  if #unknown > 0 then
    sort(unknown)
    local names = concat(IDENTITY, ", ") .. (#FIELDS[kind] > 0 and ", " .. concat(FIELDS[kind], ", ") or "")
    return nil, format("%sunknown field %s (expected %s)", what, shown(unknown[1]), names)
  end
  local provider = e.provider
  if provider == nil then
    provider = port_provider
  end
  if provider == "aliyun" then
    return aliyun_info(e, what)
  elseif provider == "zego" then
    return zego_info(e, what)
  end
  return nil, what .. "provider: expected \"aliyun\" or \"zego\", got " .. shown(provider)
end

-- A body's entries, each checked by check(entry, what) -> value or nil,
-- message. Returns the values, or nil and the first message.
local function checked_entries(value, name, check)
  if type(value) ~= "table" or next(value) == nil then
    return nil, name .. ": expected an object or a non-empty array of objects"
  end
  local list = value[1] ~= nil and value or { value }
  local out = {}
  for i = 1, #list do
    local v, err = check(list[i], name .. ": entry " .. i .. ": ")
    if v == nil then
      return nil, err
    end
    out[i] = v
  end
  return out
end

-- The entries of a POST: each a budget (budget_of's kind) and what
-- check(entry, what) makes of the rest -> { info, value }, or nil and the
-- first message.
local function checked_budgets(value, name, port_provider, kind, check)
  return checked_entries(value, name, function(e, what)
    local info, err = budget_of(e, what, port_provider, kind)
    if not info then
      return nil, err
    end
    local v
    v, err = check(e, what)
    if v == nil then
      return nil, err
    end
    return { info = info, value = v }
  end)
end

local function same_budget(a, b)
  return a.provider == b.provider and a.action == b.action and a.account == b.account
    and a.account_uid == b.account_uid and a.app_id == b.app_id
end

-- Whether a DELETE's budgets (nil: all) name the budget of `info`.
local function named(list, info)
  if list == nil then
    return true
  end
  for _, b in ipairs(list) do
    if same_budget(b, info) then
      return true
    end
  end
  return false
end

local function label(info)
  if info.app_id then
    return format("zego app_id %s %s", info.app_id, info.action)
  end
  return format("aliyun %s %s %s", info.account_uid and "account_uid" or "account",
    info.account_uid or info.account, info.action)
end

-------------------------------------------------------------------------------
-- Strangers

local function stranger_view(s)
  local out = strangers.snapshot(s)
  local key, qps, limiter = resolve(s)
  local cap = ratelimit.cap(key)
  out.qps = cap and cap.qps or qps
  out.rate_limiter = limiter
  return out
end

-- The strangers of one provider (nil: all), counted up to now first.
local function stranger_list(now, provider)
  settle_all(now)
  local out = json.array()
  for _, s in ipairs(strangers.all()) do
    if provider == nil or s.provider == provider then
      out[#out + 1] = stranger_view(s)
    end
  end
  return out
end

function M.list_strangers()
  local now = ratelimit.now()
  return 200, { now = now, strangers = stranger_list(now) }
end

-- A POST: its entries checked (a 400 when one is bad, nothing changed), then
-- each budget counted up to now and set_one(entry, now) -> what answer(set,
-- now) makes the answer of.
local function setting(value, name, port_provider, kind, check, set_one, answer)
  local list, err = checked_budgets(value, name, port_provider, kind, check)
  if not list then
    return 400, { error = err }
  end
  local now = ratelimit.now()
  local set = json.array()
  for i, c in ipairs(list) do
    settle(c.info, now)
    set[i] = set_one(c, now)
  end
  return 200, answer(set, now)
end

function M.set_strangers(value, port_provider)
  return setting(value, "strangers", port_provider, "stranger", strangers.check, function(c, now)
    c.info.source = "control"
    return strangers.set((resolve(c.info)), c.value, c.info, now)
  end, function(set, now)
    local listing = stranger_list(now)  -- their first arrivals counted
    for i, s in ipairs(set) do
      set[i] = stranger_view(s)
    end
    return { set = set, strangers = listing }
  end)
end

-- The budgets a DELETE names (nil: all), each of which must have what
-- has(key) finds; or nil and a message. name: the endpoint's.
local function budgets_to_remove(name, port_provider, has)
  local value, err = request_io.read_json_body(nil)
  if value == nil then
    return nil, err
  end
  return checked_entries(value, name, function(e, what)
    local info, ierr = budget_of(e, what, port_provider, "budget")
    if not info then
      return nil, ierr
    end
    if not has((resolve(info))) then
      return nil, what .. "nothing to remove: no " .. (name == "qps" and "run-time qps" or "stranger")
        .. " on " .. label(info)
    end
    return info
  end)
end

-- A DELETE: its budgets checked (a 400 when one is bad), then
-- remove(list, now) -> the answer.
local function removing(name, port_provider, has, remove)
  local list, err = budgets_to_remove(name, port_provider, has)
  if err then
    return 400, { error = err }
  end
  return 200, remove(list, ratelimit.now())
end

function M.remove_strangers(port_provider)
  return removing("strangers", port_provider, strangers.get, function(list, now)
    settle_all(now)
    local removed = json.array()
    for _, s in ipairs(strangers.all()) do
      if named(list, s) then
        removed[#removed + 1] = stranger_view(s)
        strangers.remove(s.key)
      end
    end
    return { removed = removed, strangers = stranger_list(now) }
  end)
end

-------------------------------------------------------------------------------
-- Run-time caps

local function cap_view(c)
  local info = c.info
  local _, qps = resolve(info)
  return { provider = info.provider, account = info.account, account_uid = info.account_uid,
    app_id = info.app_id, action = info.action, qps = c.qps, config_qps = qps }
end

-- The keys of the run-time caps, sorted.
local function cap_keys()
  local keys = {}
  for key in pairs(ratelimit.caps()) do
    keys[#keys + 1] = key
  end
  sort(keys)
  return keys
end

local function cap_list()
  local out = json.array()
  for i, key in ipairs(cap_keys()) do
    out[i] = cap_view(ratelimit.cap(key))
  end
  return out
end

function M.list_caps()
  return 200, { qps = cap_list() }
end

-- A cap's qps, or nil and the message.
local function check_qps(e, what)
  if type(e.qps) ~= "number" or e.qps < 0 then
    return nil, what .. "qps: expected a number >= 0 (requests per second; 0: unlimited), got " .. shown(e.qps)
  end
  return e.qps
end

function M.set_caps(value, port_provider)
  return setting(value, "qps", port_provider, "cap", check_qps, function(c)
    local key = resolve(c.info)
    ratelimit.set_cap(key, c.value, c.info)
    return cap_view(ratelimit.cap(key))
  end, function(set)
    return { set = set, qps = cap_list() }
  end)
end

function M.remove_caps(port_provider)
  return removing("qps", port_provider, ratelimit.cap, function(list, now)
    local removed = json.array()
    for _, key in ipairs(cap_keys()) do
      local c = ratelimit.cap(key)
      if named(list, c.info) then
        settle(c.info, now)
        removed[#removed + 1] = cap_view(c)
        ratelimit.drop_cap(key)
      end
    end
    return { removed = removed, qps = cap_list() }
  end)
end

-------------------------------------------------------------------------------
-- The config's strangers, the state, the reset

-- Sets the config's strangers, starting at now: each Aliyun account's once
-- (its keys give the same ones), each ZEGO app's.
local function set_config_strangers(now)
  local ids = {}
  for ak in pairs(settings.aliyun.accounts) do
    ids[#ids + 1] = ak
  end
  sort(ids)
  for _, ak in ipairs(ids) do
    local a = settings.aliyun.accounts[ak]
    for action, spec in pairs(a.strangers or {}) do
      local info = { provider = "aliyun", action = action, source = "config",
        account = not a.account and ak or nil, account_uid = a.account }
      strangers.set((resolve(info)), spec, info, now)
    end
  end
  for app_id, app in pairs(settings.zego.apps) do
    for action, spec in pairs(app.strangers or {}) do
      local info = { provider = "zego", action = action, source = "config", app_id = app_id }
      strangers.set((resolve(info)), spec, info, now)
    end
  end
end

function M.init(loaded_settings)
  settings = loaded_settings
  strangers.reset()
  set_config_strangers(ratelimit.now())
end

-- After ratelimit.reset() (which drops the caps): the run-time strangers go,
-- the config's start again now.
function M.reset()
  strangers.reset()
  set_config_strangers(ratelimit.now())
end

-- Counts the strangers up to now, before the state is read.
function M.settle_all()
  settle_all(ratelimit.now())
end

-- Adds each provider's "strangers" and "qps_overrides" to a state.
function M.add_to_state(state)
  local now = ratelimit.now()
  local caps = cap_list()
  for _, provider in ipairs({ "aliyun", "zego" }) do
    local mine = json.array()
    for _, c in ipairs(caps) do
      if c.provider == provider then
        mine[#mine + 1] = c
      end
    end
    state[provider].strangers = stranger_list(now, provider)
    state[provider].qps_overrides = mine
  end
end

return M
