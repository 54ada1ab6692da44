--- `call`'s Key=Value arguments: read into the service's parameters (a
-- key given twice an array only where the parameter takes a list), the
-- streams they name, and checked before anything is written or sent, as
-- the call and its action's named command check them.
-- @module streamctl.cli.callargs

local cli_output = require "streamctl.cli.output"
local encode_params = require "streamctl.base.encode"
local api = require "streamctl.pipeline.api"

local type, pairs, ipairs, tostring, format = type, pairs, ipairs, tostring, string.format
local match, sub, concat, find, gsub, tonumber = string.match, string.sub, table.concat, string.find, string.gsub,
  tonumber
local as_flags, stream_of = cli_output.as_flags, cli_output.stream_of
local STREAM_FIELDS = cli_output.STREAM_FIELDS

local M = {}

-- The named method of `action` (its single one before its batch: both name
-- a stream the same way, and the single one's fields are one call's), or
-- nil for an action no named command sends.
local function method_of(client, action)
  local chosen
  for _, m in ipairs(client.methods()) do
    if m.action == action and (not chosen or (chosen.list and not m.list)) then chosen = m end
  end
  return chosen
end

-- The entry of `list` whose `field` names parameter `key` (`Key[]` is
-- `Key`, written either way), or nil.
local function entry_for(list, field, key)
  local written, other = api.spellings(key)
  for _, e in ipairs(list or {}) do
    if e[field] == written or e[field] == other then return e end
  end
  return nil
end

-- The field of `m` that parameter `key` sets, or nil.
local function field_of(m, key)
  return entry_for(m and m.fields, "param", key)
end

-- The value `params` gives parameter `name`, under its name, `name[]`, or
-- its bare name where it is written `name[]` (ZEGO's StreamId[]).
local function param_value(params, name)
  local written, other = api.spellings(name)
  local v = params[written]
  if v == nil then v = params[other] end
  return v
end

-- The published parameter `key` names, or nil; `published`: the action's
-- published method (streamctl.pipeline.api).
local function published_param(published, key)
  return entry_for(published and published.params, "name", key)
end

-- Parses `Key=Value` arguments into service parameters: one written
-- `Key[]` is an array (of one or more); a key given twice is an array only
-- where its field (the action's named method's: `m`) or the published
-- parameter (`published`) takes a list (ZEGO's StreamId of
-- ForbidRTCStreams, SourceUrls, Aliyun's ResourceId.N); any other key given
-- twice is refused naming it, never one of its values dropped nor an array
-- made of a parameter that takes one. (A key the published method does not
-- take is kept for the check, which refuses it by name.)
local function call_params(list, m, published)
  local params = {}
  for i, kv in ipairs(list or {}) do
    local k, v = match(kv, "^([^=]+)=(.*)$")
    if not k then
      -- (one that holds a word of a credential's name is never echoed: its value may be a secret)
      if encode_params.is_credential_name(kv) then
        return nil, format("parameter %d must be Key=Value (not shown: it may hold a credential)", i)
      end
      return nil, format("parameter '%s' must be Key=Value", kv)
    end
    local p = published_param(published, k)
    local many = sub(k, -2) == "[]" or (field_of(m, k) or {}).type == "strings"
      or (p and (p.type == "list" or p.type == "json")) or (published and not p)
    if params[k] == nil then
      params[k] = sub(k, -2) == "[]" and { v } or v
    elseif not many then
      -- (a credential's name is refused by check_call, its value unshown; here only its name is said)
      return nil, format("parameter '%s' given twice: %s", k, (field_of(m, k) or p)
        and format("%s takes one value", m and m.action or published.action)
        or format("write %s[]=VALUE for each value of an array", k))
    elseif type(params[k]) == "table" then
      params[k][#params[k] + 1] = v
    else
      params[k] = { params[k], v }
    end
  end
  return params
end

-- The streams a `call` names, as the named command of its action names
-- them (streamctl.cli.output's stream_of: domain/app/stream, a stream ID,
-- a task ID...), each once: one per item of a list (ZEGO's StreamId[]);
-- the action itself when its parameters name none.
local function call_streams(client, action, params)
  local chosen = method_of(client, action)
  if not chosen then return { action } end
  local fields, key = {}, nil
  for _, f in ipairs(chosen.fields) do
    local v = f.param and param_value(params, f.param)
    if v ~= nil then fields[f.name] = v end
  end
  -- (a batch's list names one stream an item: stream_names, stream_ids)
  if chosen.list and fields[chosen.list] ~= nil then
    key = sub(chosen.list, 1, -2)
    fields[key], fields[chosen.list] = fields[chosen.list], nil
  else
    for _, name in ipairs(STREAM_FIELDS) do
      if fields[name] ~= nil then key = name break end
    end
  end
  if not key then return { stream_of(chosen, fields) } end
  -- (any other list, a domain given twice, shown as the values it holds)
  for name, v in pairs(fields) do
    if name ~= key and type(v) == "table" then fields[name] = concat(v, ",") end
  end
  local items = fields[key]
  if type(items) ~= "table" then items = { items } end
  local streams, seen = {}, {}
  for _, item in ipairs(items) do
    fields[key] = item
    local name = stream_of(chosen, fields)
    if not seen[name] then
      seen[name] = true
      streams[#streams + 1] = name
    end
  end
  return streams
end

-- The fields of named method `m` that `params` set (each as the command
-- line's flag would give it: a time or a count in digits a number, a
-- list's single value a list of one), and each field's parameter by name.
local function fields_of_params(m, params)
  local fields, param_of = {}, {}
  for _, f in ipairs(m.fields) do
    if f.param then
      param_of[f.name] = f.param
      local v = param_value(params, f.param)
      if f.type == "strings" and type(v) == "string" then v = { v } end
      if type(v) == "string" and find(v, "^%d+$") and (f.type == "time" or f.type == "integer" or f.type == "number")
      then
        v = tonumber(v)
      end
      fields[f.name] = v
    end
  end
  return fields, param_of
end

-- A `call` of an action a named command sends is checked as that command
-- checks its flags (its method's fields and its rule across them: a
-- ResumeTime in the future, ZEGO's 30 days, a parameter it requires), the
-- message naming the parameters. The fields, or nil and the message.
local function named_check(client, m, params)
  local fields, param_of = fields_of_params(m, params)
  local ok, err = client:check(m.name, fields)
  if ok then return fields end
  return nil, (gsub(tostring(err.message), "field '([%w_]+)'", function(name)
    return "parameter '" .. (param_of[name] or name) .. "'"
  end))
end

--- `call`'s parameters, checked as the call will check them (each by the
-- rule of the field that sets it, a credential's name refused) and as its
-- named command checks them (named_check), before anything is written to
-- the audit log or sent; kept in `args._checked` as `{ params, streams,
-- method, fields }` for the intent (guard.plan_of), the named command's
-- preflight and the call. True, or false after saying why.
function M.check_call(out, client, args)
  local m = method_of(client, args.action)
  local params, perr = call_params(args.params, m, client.published_method(args.action))
  if not params then out:warn(perr) return false end
  local sent, err = client:check_call(args.action, params)
  if not sent then out:warn(as_flags(tostring(err.message))) return false end
  local fields
  if m then
    fields, err = named_check(client, m, params)
    if not fields then out:warn(err) return false end
  end
  args._checked = { params = params, streams = call_streams(client, args.action, params), method = m,
                    fields = fields }
  return true
end

return M
