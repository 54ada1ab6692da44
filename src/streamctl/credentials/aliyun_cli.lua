--- aliyun-cli's config.json (~/.aliyun/config.json), the third part of
-- Alibaba Cloud's credential chain (streamctl.credentials.aliyun): a
-- profile by name, or the file's current one, read whole and checked (its
-- keys, its mode, its numbers and switches, a source profile's chain) into
-- a source, never a guess.
-- @module streamctl.credentials.aliyun_cli

local cjson = require "cjson.safe"
local validate = require "streamctl.base.validate"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local format, match, lower = string.format, string.match, string.lower
local concat = table.concat

local M = {}

-- A profile's text value, or nil when it is absent or empty.
local function nonempty(v)
  if type(v) ~= "string" or v == "" then return nil end
  return v
end

-- Checks that `t` has every key in `keys` as non-empty text: the first
-- missing, as "WHERE has no KEY", or nil.
local function lacks(t, keys, where)
  for _, k in ipairs(keys) do
    if not nonempty(t[k]) then return format("%s has no %s", where, k) end
  end
  return nil
end

--- The keys of aliyun-cli's config.json: at the top, and in a profile
-- (every field aliyun-cli 3.x writes, `read_timeout` of older versions and
-- `retry_timeout` of newer, and those the official SDKs read: policy,
-- enable_vpc, duration_seconds, sts_endpoint). A profile streamctl uses (the
-- one named or current, and a chain's source profiles) holding another key
-- is refused naming the file, the line and the nearest key: a typo in
-- `policy` or `sts_endpoint` would otherwise widen a session or move STS
-- without a word.
M.TOP_KEYS = { "current", "profiles", "meta_path" }
M.PROFILE_KEYS = { "name", "mode", "access_key_id", "access_key_secret", "sts_token", "sts_region",
  "ram_role_name", "ram_role_arn", "ram_session_name", "external_id", "source_profile", "private_key",
  "key_pair_name", "expired_seconds", "verified", "region_id", "output_format", "language", "site",
  "read_timeout", "retry_timeout", "connect_timeout", "retry_count", "process_command", "credentials_uri",
  "oidc_provider_arn", "oidc_token_file", "cloud_sso_sign_in_url", "access_token", "cloud_sso_access_token_expire",
  "sts_expiration", "cloud_sso_access_config", "cloud_sso_account_id", "oauth_access_token", "oauth_refresh_token",
  "oauth_access_token_expire", "oauth_refresh_token_expire", "oauth_site_type", "endpoint_type", "endpoint",
  "external_account_type", "auto_plugin_install", "auto_plugin_install_enable_pre", "bearer_token",
  "bearer_token_header_key", "policy", "enable_vpc", "duration_seconds", "sts_endpoint" }

-- The line of `text` at byte `at`.
local function line_at(text, at)
  local line = 1
  for _ in text:sub(1, at):gmatch("\n") do line = line + 1 end
  return line
end

-- "PATH:LINE: " for key `k` of a JSON text: the line of its first
-- occurrence (a key is found by its quoted name before a colon).
local function json_at(text, path, k)
  -- (the key is the user's: its pattern characters escaped, "foo[" or "meta-path" found as written)
  local pattern = '"' .. string.gsub(k, "%p", "%%%0") .. '"%s*:'
  return format("%s:%d: ", path, line_at(text, string.find(text, pattern, 1) or 1))
end

-- A key given twice in one object of JSON `text` (valid JSON: cjson read
-- it), as "PATH:LINE: 'k' is given twice in one object (first at line N)",
-- or nil. JSON readers keep the last of the two without a word (cjson, and
-- Go's encoding/json, aliyun-cli's), so the file would say two things and
-- one would be used; the INI files' rule (streamctl.credentials.ini) holds here too.
local function twice_in_json(text, path)
  local stack, i = {}, 1
  while true do
    local at, c = string.match(text, '()([{}%[%]"])', i)
    if not at then return nil end
    i = at + 1
    if c == "{" or c == "[" then
      stack[#stack + 1] = c == "{" and {} or false
    elseif c == "}" or c == "]" then
      stack[#stack] = nil
    else
      local stop = at + 1
      while true do -- (the string's closing quote: an escape's next character skipped)
        local e, q = string.match(text, '()([\\"])', stop)
        if not e then return nil end -- (cannot be: cjson read the text whole)
        if q == '"' then stop = e break end
        stop = e + 2
      end
      i = stop + 1
      local keys = stack[#stack]
      if keys and string.find(text, "^%s*:", i) then
        local k = tostring(cjson.decode(text:sub(at, stop)))
        if keys[k] then
          return format("%s:%d: '%s' is given twice in one object (first at line %d)", path, line_at(text, at), k,
            line_at(text, keys[k]))
        end
        keys[k] = at
      end
    end
  end
end

-- Two profiles of one name in `config.profiles`: "PATH:LINE: ...", or nil
-- (which one a reader takes is its own choice: neither is guessed).
local function named_twice(config, text, path)
  local seen = {}
  for i, p in ipairs(config.profiles) do
    local name = type(p) == "table" and nonempty(p.name)
    if name and seen[name] then
      local pattern = '"name"%s*:%s*"' .. string.gsub(name, "%p", "%%%0") .. '"'
      local first = string.find(text, pattern)
      local second = first and string.find(text, pattern, first + 1)
      return format("%s:%s profiles[%d] and profiles[%d] are both named '%s'", path,
        second and line_at(text, second) .. ":" or "", seen[name], i, name)
    end
    if name then seen[name] = i end
  end
  return nil
end

-- The first key of `t` not in `list`, as "PATH:LINE: WHAT has an unknown key 'k' (did you mean ...)", or nil.
local function unknown_json_key(t, list, text, path, what)
  local set, bad = {}, {}
  for _, k in ipairs(list) do set[k] = true end
  for k in pairs(t) do
    if not set[k] then bad[#bad + 1] = tostring(k) end
  end
  if #bad == 0 then return nil end
  table.sort(bad)
  local k = bad[1]
  return format("%s%s has an unknown key '%s'%s", json_at(text, path, k), what, k, validate.hint(k, list))
end

-- A profile's count of seconds (expired_seconds, duration_seconds): a
-- whole JSON number >= 1 or its decimal digits; nil when absent; else nil and the rule.
local function profile_seconds(p, key)
  local v = p[key]
  if v == nil or v == 0 or v == "" then return nil end -- (older aliyun-cli writes 0 for "not set")
  if type(v) == "string" and match(v, "^%d+$") then v = tonumber(v) end
  if type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2 ^ 53 then return v end
  return nil, "must be a whole number of seconds >= 1 (decimal digits)"
end

-- A profile's switch (enable_vpc): true, false, or "true"/"false" in any
-- case; false when absent; else nil and the rule.
local function profile_switch(p, key)
  local v = p[key]
  if v == nil or v == "" or type(v) == "boolean" then return v == true end
  if type(v) == "string" and (lower(v) == "true" or lower(v) == "false") then return lower(v) == "true" end
  return nil, "must be true or false"
end

-- The role fields aliyun-cli's RamRoleArn-like modes share.
-- (the values were checked by `from_cli_config`: profile_seconds, profile_switch)
local function cli_role_fields(p, s)
  s.role_arn, s.role_session_name = p.ram_role_arn, nonempty(p.ram_session_name)
  s.duration_seconds = profile_seconds(p, "expired_seconds")
  s.policy, s.external_id = nonempty(p.policy), nonempty(p.external_id)
  s.sts_region, s.sts_endpoint = nonempty(p.sts_region), nonempty(p.sts_endpoint)
  s.enable_vpc = profile_switch(p, "enable_vpc")
  return s
end

-- The modes of aliyun-cli's profiles: for each, the fields it needs and
-- the source it makes (`resolve` finds a source profile, for chains).
local CLI_MODES = {
  AK = { keys = { "access_key_id", "access_key_secret" }, make = function(p, from)
    return { type = "access_key", from = from, access_key_id = p.access_key_id,
             access_key_secret = p.access_key_secret }
  end },
  StsToken = { keys = { "access_key_id", "access_key_secret", "sts_token" }, make = function(p, from)
    return { type = "sts", from = from, access_key_id = p.access_key_id, access_key_secret = p.access_key_secret,
             security_token = p.sts_token }
  end },
  RamRoleArn = { keys = { "access_key_id", "access_key_secret", "ram_role_arn" }, make = function(p, from)
    local keys = { type = nonempty(p.sts_token) and "sts" or "access_key", from = from,
                   access_key_id = p.access_key_id, access_key_secret = p.access_key_secret,
                   security_token = nonempty(p.sts_token) }
    return cli_role_fields(p, { type = "ram_role_arn", from = from, source = keys })
  end },
  ChainableRamRoleArn = { keys = { "source_profile", "ram_role_arn" }, make = function(p, from, resolve)
    local source, err = resolve(p.source_profile)
    if not source then return nil, err end
    return cli_role_fields(p, { type = "ram_role_arn", from = from, source = source })
  end },
  EcsRamRole = { keys = {}, make = function(p, from)
    return { type = "ecs_ram_role", from = from, role_name = nonempty(p.ram_role_name) }
  end },
  OIDC = { keys = { "oidc_provider_arn", "oidc_token_file", "ram_role_arn" }, make = function(p, from)
    local s = cli_role_fields(p, { type = "oidc_role_arn", from = from, oidc_provider_arn = p.oidc_provider_arn,
                                   oidc_token_file = p.oidc_token_file })
    -- (the official package takes duration_seconds over expired_seconds here)
    s.duration_seconds = profile_seconds(p, "duration_seconds") or s.duration_seconds
    return s
  end },
}
M.MODES = {}
for mode in pairs(CLI_MODES) do M.MODES[#M.MODES + 1] = mode end
table.sort(M.MODES)

-- 3. aliyun-cli's config.json: a source, nil (no file, no such profile), or nil and an error.
local function from_cli_config(read, path, profile, explicit)
  local text, err = read(path)
  if not text then return nil, err end
  local config, jerr = cjson.decode(text)
  if type(config) ~= "table" then
    local at = tonumber(match(tostring(jerr), "character (%d+)")) or 1
    return nil, format("%s:%d: not valid JSON (%s)", path, line_at(text, at), tostring(jerr))
  end
  local bad = twice_in_json(text, path) or unknown_json_key(config, M.TOP_KEYS, text, path, "the file")
  if bad then return nil, bad end
  local by_current = not explicit and nonempty(config.current)
  if by_current then profile = config.current end
  if type(config.profiles) ~= "table" then return nil, path .. ": has no \"profiles\" list" end
  bad = named_twice(config, text, path)
  if bad then return nil, bad end
  local seen = {}
  local function resolve(name, chain)
    for i, p in ipairs(config.profiles) do
      if type(p) == "table" and p.name == name then
        local where = format("%s: profile '%s' (profiles[%d])", path, name, i)
        if seen[name] then
          return nil, format("%s: source_profile goes round in a circle (%s)", where, concat(chain, " -> "))
        end
        seen[name] = true
        local mode = CLI_MODES[p.mode]
        if not mode then
          return nil, format("%s has mode '%s', which streamctl does not serve (it serves %s)", where,
            tostring(p.mode), concat(M.MODES, ", "))
        end
        local why = unknown_json_key(p, M.PROFILE_KEYS, text, path, format("profile '%s' (profiles[%d])", name, i))
          or lacks(p, mode.keys, where)
        if why then return nil, why end
        for _, check in ipairs { { profile_seconds, "expired_seconds" }, { profile_seconds, "duration_seconds" },
                                 { profile_switch, "enable_vpc" } } do
          local v, rule = check[1](p, check[2])
          if v == nil and rule then
            return nil, format("%sprofile '%s' (profiles[%d]): %s %s", json_at(text, path, check[2]), name, i,
              check[2], rule)
          end
        end
        return mode.make(p, format("%s [%s]", path, name), function(source)
          chain[#chain + 1] = source
          local s, serr = resolve(source, chain)
          if not s and not serr then serr = format("%s: its source_profile '%s' is not in the file", where, source) end
          return s, serr
        end)
      end
    end
    return nil
  end
  local found, ferr = resolve(profile, { profile })
  if not found and not ferr and by_current then
    -- (the file names it: its own current profile missing is an error, never a fall-through)
    return nil, format("%s: its current profile '%s' is not in its \"profiles\" list", path, profile)
  end
  return found, ferr
end

M.nonempty, M.lacks, M.read = nonempty, lacks, from_cli_config

return M
