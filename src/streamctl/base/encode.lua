--- A call's service parameters as the service takes them: every value a
-- string (or, for an array, what the provider's `array` rule makes of it),
-- checked by the text rule of the field that sets it (else MAX_PARAM bytes
-- of UTF-8), and none of the common parameters the signature owns.
-- @module streamctl.base.encode

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local validate = require "streamctl.base.validate"

local type, pairs, ipairs, setmetatable = type, pairs, ipairs, setmetatable
local floor, huge, math_type = math.floor, math.huge, math.type -- (math.type: Lua 5.3 on, nil under LuaJIT)
local format, find, lower, gsub, sub = string.format, string.find, string.lower, string.gsub, string.sub

local M = {}

--- The longest parameter value `call` and `prepare` send, in bytes: the
-- named methods' fields have their own, shorter rules; this bounds what no
-- rule names (a URL far longer is refused by the providers' gateways).
M.MAX_PARAM = 8192

--- Turns a parameter value into the string the service expects.
-- Integers go as decimal digits (a Lua integer whatever its size, a float
-- below 2^53), booleans as true/false; a number that would need an exponent
-- (1e+20) is refused rather than sent in a form the service does not read
-- as a number.
-- @return the string, or nil and the rule broken
function M.stringify(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then
    if math_type and math_type(v) == "integer" then return format("%d", v) end
    if v ~= v or v == huge or v == -huge then return nil, "must be a finite number" end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return validate.decimal(v) end
    local s = format("%.14g", v)
    if find(s, "e", 1, true) then
      return nil, "must be a number that can be written without an exponent (got " .. s .. ")"
    end
    return s
  end
  return nil, "must be a string, number or boolean (got " .. t .. ")"
end

--- For each action, the text field of a named method or batch that sets
-- each service parameter: `call` keeps that field's rule for it (a single
-- method's field before a batch's: `StreamName`, not `stream_names`).
-- @return action -> parameter -> field
-- (an integer keeps MAX_PARAM's rule here: the service reads its digits,
-- and ZEGO's Sequence has its provider's own, fuller rule)
local RULED = { string = true, strings = true, time = true, yesno = true, custom = true }
function M.texts(rules)
  local out = {}
  for _, group in ipairs { rules.batches or {}, rules.methods } do
    for _, spec in pairs(group) do
      local texts = out[spec.action] or {}
      out[spec.action] = texts
      for _, f in ipairs(spec.fields) do
        if f.param and RULED[f.type] then texts[f.param] = f end
      end
    end
  end
  return out
end

--- What in a parameter's name marks it as carrying a credential: its name
-- in lower case with everything but letters and digits dropped
-- (`Access_Key-Secret` reads `accesskeysecret`) holds one of these. No
-- parameter of ApsaraVideo Live's or ZEGO's actions holds one; a name that
-- does is a secret on its way into a URL, where proxies, logs and a dry
-- run's output would keep it. (A field of the action's own named method is
-- the action's parameter by design, and taken: STS's OIDCToken.)
M.CREDENTIAL_WORDS = { "secret", "password", "passwd", "token", "sign", "accesskey", "authkey", "privatekey",
                       "apikey", "credential" }

--- The published parameters whose names hold a credential's word but
-- carry none: a page's cursor (NextToken, NextPageToken) and an
-- idempotency token (ClientToken), sent as any other parameter.
-- (spec/providers/40 holds every published name with such a word to this
-- list or to a refusal.)
M.NOT_CREDENTIALS = { NextToken = true, NextPageToken = true, ClientToken = true }

--- Does `name` carry a credential (one of `CREDENTIAL_WORDS` in it)?
function M.is_credential_name(name)
  if M.NOT_CREDENTIALS[name] then return false end
  local bare = gsub(lower(name), "[^%l%d]", "")
  for _, word in ipairs(M.CREDENTIAL_WORDS) do
    if find(bare, word, 1, true) then return true end
  end
  return false
end

-- Why `name` cannot be passed, or false: one of the provider's common
-- parameters (in any case, with or without "[]"), or a name that carries a
-- credential. Answers are remembered per provider (a few hundred names at
-- most), since the same names come with every call.
local COMMON = "is a common parameter that streamctl sets itself; it cannot be passed"
local CREDENTIAL = "names a credential (a secret, password, token, signature or key): streamctl never sends "
  .. "one as a parameter (it signs each request with the credentials it was given), and its value is not shown"
local common_memo = setmetatable({}, { __mode = "k" })
local function refused_name(rules, name)
  local memo = common_memo[rules]
  if not memo then
    memo = { names = {}, count = 0 }
    common_memo[rules] = memo
  end
  local v = memo.names[name]
  if v == nil then
    v = rules.common_params[lower((name:gsub("%[%]$", "")))] and COMMON or false
    if not v and M.is_credential_name(name) then v = CREDENTIAL end
    if memo.count < 512 then
      memo.names[name], memo.count = v, memo.count + 1
    end
  end
  return v
end

-- The rule text `s` breaks as the value of field `f`, or nil: a text
-- field's whole rule (length, characters, shape, not empty, one of its
-- values, its URL schemes), an item of a list's text rule, a time's (as
-- the service takes it: Unix seconds where the field sends those, else
-- YYYY-MM-DDThh:mm:ssZ), yes or no, a custom check's.
local text_rule, text_flaws, value_rule = validate.text_rule, core.text_flaws, validate.value
local function field_rule(f, s)
  local t = f.type
  if t == "strings" then return text_rule(f, s) end
  if t == "time" and f.as == "unix" then
    return not find(s, "^%d+$") and "must be whole Unix seconds (decimal digits)" or nil
  end
  if t == "yesno" then -- (sent as it is: the service reads yes or no, never true)
    return s ~= "yes" and s ~= "no" and "must be 'yes' or 'no'" or nil
  end
  local ok, why = value_rule(f, s)
  if ok == nil then return why or "is not a value this field takes" end
  return nil
end

-- A parameter value as text, or nil and the rule it breaks: the rule of
-- `f` (the field a named method sets it from), else MAX_PARAM bytes of
-- UTF-8.
local function param_text(v, f, checked)
  local s = v
  if type(v) ~= "string" then -- (strings, the usual case, skip stringify)
    local why
    s, why = M.stringify(v)
    if not s then return nil, why end
  end
  if f then
    if checked then return s end -- (its field's rule held already: a named method's)
    local why = field_rule(f, s)
    if why then return nil, why end
    return s
  end
  if #s > M.MAX_PARAM then return nil, format("must be at most %d bytes (got %d)", M.MAX_PARAM, #s) end
  if text_flaws(s) >= 4 then return nil, "must be valid UTF-8" end -- (validate.is_utf8, without a call)
  return s
end

local NOT_ARRAY = "must be an array (a table with keys 1..n) or a single value"

--- Whether `v` is an array: a table whose keys are 1..n, each holding a value.
function M.is_array(v)
  if type(v) ~= "table" then return false end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  if count ~= n then return false end
  for i = 1, n do
    if v[i] == nil then return false end -- (n keys, but not 1..n)
  end
  return true
end

-- An array parameter's items as text: the list, or nil and the rule broken.
local function array_text(v, f, checked)
  if not M.is_array(v) then return nil, NOT_ARRAY end
  local n = #v
  if n == 0 then return nil, "must not be an empty array" end
  local list = {}
  for i = 1, n do
    local item = v[i]
    local s, why = param_text(item, f, checked)
    if not s then return nil, format("item %d %s", i, why) end
    list[i] = s
  end
  return list
end

-- Two parameters sent under one name (ZEGO's `StreamId`, an array, and
-- `StreamId[]`): one would silently replace the other. The first of the
-- two by name and why it is refused, naming the other (found again: this
-- happens once, at a refusal).
local function clash(rules, params, name, key)
  for other, v in pairs(params) do
    if other ~= name and type(other) == "string"
        and (type(v) == "table" and (rules.array(other, { "" })) or other) == key then
      local first, second = name, other
      if second < first then first, second = second, first end
      return first, format("and parameter '%s' are both sent as '%s': give the values under one name", second, key)
    end
  end
  return name, format("is sent as '%s', which another parameter sets too", key)
end

--- Checks and encodes `params` (service names) for `action` of `rules`.
-- Every parameter is checked; the first bad one by name is reported, so a
-- message does not depend on a table's order.
-- @param rules the provider's rules (streamctl.pipeline.client)
-- @param texts `M.texts(rules)`
-- @param action the service action
-- @param params the caller's service-named parameters (nil: none)
-- @param checked true when a named method made `params` from fields it
--   checked by their rules (validate.fields): each field's rule is not
--   checked again (a parameter no field sets still is)
-- @return the encoded params, or nil and an error object
function M.params(rules, texts, action, params, checked)
  local provider = rules.provider
  local fields = texts[action]
  -- (the first bad one by name: kept in two locals, not a closure, which
  -- LuaJIT cannot compile and would make every call leave its trace)
  local bad_name, bad_why
  local out = {}
  for name, v in pairs(params or {}) do
    if type(name) ~= "string" or name == "" then
      return nil, errors.invalid(provider, action, "parameter names must be non-empty strings")
    end
    -- (`Key[]`, ZEGO's way to write an array, keeps the rule of `Key`'s field)
    local f = fields and (fields[name] or (sub(name, -2) == "[]" and fields[sub(name, 1, -3)]) or nil)
    -- The common parameters belong to the signature: one given here could
    -- change what is signed or sent (Action, AppId, Timestamp, ...); a
    -- credential is never a parameter, unless the action's own named method
    -- sends it as one (STS's AssumeRoleWithOIDC, its OIDCToken).
    local why, who = refused_name(rules, name), name
    if why == CREDENTIAL and f then why = false end
    if why then -- luacheck: ignore 542 (said below, by name)
    elseif type(v) == "table" then
      local list
      list, why = array_text(v, f, checked)
      if list then
        local k, value = rules.array(name, list)
        if out[k] == nil then out[k] = value else who, why = clash(rules, params, name, k) end
      end
    else
      local s
      s, why = param_text(v, f, checked)
      if s then
        if out[name] == nil then out[name] = s else who, why = clash(rules, params, name, name) end
      end
    end
    if why and (not bad_name or who < bad_name) then bad_name, bad_why = who, why end
  end
  if bad_name then
    return nil, errors.invalid(provider, action, format("parameter '%s' %s", bad_name, bad_why))
  end
  return out
end

--- A timestamp's text, made once per second rather than per request (both
-- providers sign the time to the second): `stamp(now)` is `text(floor(now))`
-- from the last call in the same second.
function M.per_second(text)
  local second, cached
  return function(now)
    local s = floor(now)
    if s ~= second then second, cached = s, text(s) end
    return cached
  end
end

return M
