-- RAM authorization as the emulator evaluates it: a principal's action list
-- (a configured key's "actions", or the role's behind an STS session), and an
-- STS session's own policy (AssumeRole's and AssumeRoleWithOIDC's Policy
-- parameter, which can only narrow the role's permissions).
--
-- Actions are RAM action names, "<product>:<Operation>" ("live:ResumeLiveStream",
-- "sts:AssumeRole"), where "*" matches any run of characters ("live:Describe*",
-- "live:*", "*"), compared without regard to case as RAM compares them.
--
-- A session policy is RAM policy JSON:
--   {"Version":"1","Statement":[{"Effect":"Allow"|"Deny","Action":<a>|[...],
--                                "Resource":<r>|[...][,"Condition":{...}]}]}
-- Its size is counted in bytes, 1..2048 (InvalidParameter.PolicySize); any
-- other shape is InvalidParameter.PolicyGrammar. The emulator knows no
-- resources and evaluates no conditions, so it reads a policy the strictest
-- way (the documents do not say how the service would answer here): an Allow
-- statement counts only when one of its Resources is "*" and it has no
-- Condition; a Deny statement applies whatever its Resource and Condition.
-- An action is allowed when some Allow statement names it and no Deny does.

local json = require "streamctl.emulator.json"

local type, ipairs, pairs, setmetatable = type, ipairs, pairs, setmetatable
local gsub, lower, match = string.gsub, string.lower, string.match

local M = {}

M.MAX_POLICY_BYTES = 2048

-- A RAM action as a Lua pattern, made once per action text.
local patterns = setmetatable({}, {
  __index = function(cache, action)
    local p = "^" .. gsub(gsub(lower(action), "[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"), "%*", ".*") .. "$"
    cache[action] = p
    return p
  end,
})

-- Does one of the RAM actions in `list` name `action` ("live:ResumeLiveStream")?
function M.matches(list, action)
  local name = lower(action)
  for _, a in ipairs(list) do
    if match(name, patterns[a]) then
      return true
    end
  end
  return false
end

-- May `principal` (a key's config entry, or an STS session) call `action`?
-- Its "actions" (absent: every action), then its session policy.
function M.allows(principal, action)
  if principal.actions and not M.matches(principal.actions, action) then
    return false
  end
  local policy = principal.session_policy
  if policy then
    if M.matches(policy.deny, action) then
      return false
    end
    return M.matches(policy.allow, action)
  end
  return true
end

-- A decoded JSON value that is a non-empty string or a non-empty array of
-- them, as a list; nil when it is anything else (a policy's Action and
-- Resource, a JWT's aud).
function M.string_list(v)
  if type(v) == "string" and v ~= "" then
    return { v }
  end
  if type(v) ~= "table" or #v == 0 then
    return nil
  end
  local n = 0
  for _ in pairs(v) do
    n = n + 1
  end
  if n ~= #v then
    return nil
  end
  for _, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then
      return nil
    end
  end
  return v
end

local function action_name(s)
  return s == "*" or match(s, "^[%w]+:[%w%*]+$") ~= nil
end

-- Parses a session policy. Returns { allow = {actions}, deny = {actions} },
-- or nil and the error code.
function M.parse_policy(text)
  if #text < 1 or #text > M.MAX_POLICY_BYTES then
    return nil, "InvalidParameter.PolicySize"
  end
  local doc = json.decode(text)
  if type(doc) ~= "table" or doc.Version ~= "1" or type(doc.Statement) ~= "table" or #doc.Statement == 0 then
    return nil, "InvalidParameter.PolicyGrammar"
  end
  local allow, deny = {}, {}
  for _, st in ipairs(doc.Statement) do
    if type(st) ~= "table" or (st.Effect ~= "Allow" and st.Effect ~= "Deny") then
      return nil, "InvalidParameter.PolicyGrammar"
    end
    local actions, resources = M.string_list(st.Action), M.string_list(st.Resource)
    if not actions or not resources or (st.Condition ~= nil and type(st.Condition) ~= "table") then
      return nil, "InvalidParameter.PolicyGrammar"
    end
    for _, a in ipairs(actions) do
      if not action_name(a) then
        return nil, "InvalidParameter.PolicyGrammar"
      end
    end
    local any_resource = false
    for _, r in ipairs(resources) do
      if r == "*" then
        any_resource = true
      end
    end
    local into
    if st.Effect == "Deny" then
      into = deny
    elseif any_resource and st.Condition == nil then
      into = allow
    end
    if into then
      for _, a in ipairs(actions) do
        into[#into + 1] = a
      end
    end
  end
  return { allow = allow, deny = deny }
end

return M
