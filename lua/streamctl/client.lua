--- The request pipeline shared by both providers.
--
-- A call flows one way: validate -> build -> sign -> send -> decode -> report.
-- This module owns every step that is the same for both providers; a provider
-- module (streamctl.aliyun, streamctl.zego) hands `define` a table of rules:
--
--   provider     "aliyun" | "zego"
--   defaults     { endpoint = ... }
--   operations   action -> { method = "GET"|"POST", idempotent = bool,
--                            array = function(name, list) -> name, value }
--   methods      snake_case name -> { action = ..., fields = schema, check = fn }
--   configure(self, opts)  -> true | nil, err   (credentials, provider options)
--   build(self, action, params, now, nonce) -> request   (adds common params, signs)
--   decode(self, action, response) -> result | nil, err
--   nonce(self) -> string                     (default nonce source)
--   secrets(self) -> array of strings never to be shown
--
-- A request is `{ method, url, headers, body, action, provider }`; a transport
-- is `function(request) -> response | nil, err` with response
-- `{ status, headers (lower-case names), body }`.
-- @module streamctl.client

local core = require "streamctl.core"
local errors = require "streamctl.errors"
local validate = require "streamctl.validate"

local type, pairs, ipairs, error, setmetatable = type, pairs, ipairs, error, setmetatable
local floor, huge = math.floor, math.huge
local tonumber = tonumber
local format, match, lower, find = string.format, string.match, string.lower, string.find

local M = {}

--- Turns a parameter value into the string the service expects.
-- Integers go as decimal digits, booleans as true/false.
function M.stringify(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then return nil, "must be a finite number" end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%.0f", v) end
    return format("%.14g", v)
  end
  return nil, "must be a string, number or boolean (got " .. t .. ")"
end

--- Parses and checks an endpoint: scheme, host and optional port, no path.
-- @return { url = "https://host[:port]", host = "host[:port]", scheme = ... } or nil, message
function M.parse_endpoint(url)
  if type(url) ~= "string" then return nil, "endpoint must be a string" end
  if find(url, "[%z\r\n%s]") then return nil, "endpoint must not contain whitespace, CR, LF or NUL" end
  local scheme = match(url, "^(%a[%w+.-]*)://")
  if not scheme then return nil, "endpoint must look like https://host[:port]" end
  scheme = lower(scheme)
  if scheme ~= "https" and scheme ~= "http" then
    return nil, "endpoint scheme must be https or http (got " .. scheme .. ")"
  end
  local authority, rest = match(url, "^%a[%w+.-]*://([^/?#]+)(.*)$")
  if not authority then return nil, "endpoint must look like https://host[:port]" end
  if rest ~= "" and rest ~= "/" then return nil, "endpoint must not have a path, query or fragment" end
  if find(authority, "@", 1, true) then return nil, "endpoint must not carry user information" end
  local host, port = match(authority, "^([%w.-]+):(%d+)$")
  if not host then
    host = match(authority, "^([%w.-]+)$") or match(authority, "^(%[[%x:.]+%])$")
    if not host then
      host, port = match(authority, "^(%[[%x:.]+%]):(%d+)$")
      if not host then return nil, "endpoint host is not valid" end
    end
  end
  if port and (tonumber(port) < 1 or tonumber(port) > 65535) then
    return nil, "endpoint port must be in 1..65535"
  end
  return { scheme = scheme, url = scheme .. "://" .. lower(authority), host = lower(authority) }
end

-- Parses an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT") into Unix seconds.
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
function M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, hh, mm, ss = match(s, "^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return core.parse_utc_timestamp(format("%s-%02d-%sT%s:%s:%sZ", y, MONTHS[mon], d, hh, mm, ss))
end

local function check_header_safe(name, value, what)
  if type(value) ~= "string" or value == "" then return nil, what .. " must be a non-empty string" end
  if find(value, "[%z\r\n]") then return nil, what .. " must not contain CR, LF or NUL" end
  return name
end
M.check_header_safe = check_header_safe

local Client = {}

-- Checks and encodes service-named params: every value becomes a string or,
-- for arrays, what the provider's `array` rule makes of it; then the provider
-- fills in what must stay fixed across retries (`complete`).
-- @return op, params; or nil, err
function Client:_encode(action, params, level)
  local rules = self._rules
  if type(action) ~= "string" then error("action must be a string", level + 1) end
  if params ~= nil and type(params) ~= "table" then error("params must be a table", level + 1) end
  local op = rules.operations[action]
  if not op then
    return nil, errors.invalid(rules.provider, action, "unknown action '" .. action .. "'")
  end
  local out = {}
  for name, v in pairs(params or {}) do
    if type(name) ~= "string" or name == "" then
      return nil, errors.invalid(rules.provider, action, "parameter names must be non-empty strings")
    end
    if type(v) == "table" then
      local list = {}
      for i = 1, #v do
        local s, why = M.stringify(v[i])
        if not s then
          return nil, errors.invalid(rules.provider, action, format("parameter '%s' item %d %s", name, i, why))
        end
        list[i] = s
      end
      local k, value = rules.array(name, list)
      out[k] = value
    else
      local s, why = M.stringify(v)
      if not s then return nil, errors.invalid(rules.provider, action, format("parameter '%s' %s", name, why)) end
      out[name] = s
    end
  end
  if rules.complete then out = rules.complete(self, action, op, out) end
  return op, out
end

-- Signs one attempt: a fresh nonce and time every time.
function Client:_sign(action, op, params)
  local copy = {}
  for k, v in pairs(params) do copy[k] = v end
  return self._rules.build(self, action, op, copy, self:now(), self._nonce())
end

--- Builds and signs the request for `action` without sending it.
-- `params` uses the service's own parameter names; a Lua array becomes what
-- the service expects (see the provider's rules).
-- @return request table `{ method, url, headers, body, action, provider }`, or nil, err
function Client:prepare(action, params)
  local op, out = self:_encode(action, params, 2)
  if not op then return nil, out end
  return self:_sign(action, op, out)
end

--- The current time in Unix seconds, as the provider will see it
-- (the injected clock plus any measured skew correction).
function Client:now()
  return self._clock() + self.clock_offset
end

-- One attempt: sign, send, decode.
function Client:_attempt(action, op, params)
  local rules = self._rules
  local req = self:_sign(action, op, params)
  local res, terr = self._transport(req)
  if not res then
    return nil, errors.transport(rules.provider, action, terr, op.idempotent)
  end
  local result, derr = rules.decode(self, action, res)
  if result == nil and derr then
    derr.server_date = derr.server_date or M.parse_http_date(res.headers and res.headers.date)
    derr.message = errors.redact(derr.message, rules.secrets(self), core.percent_encode)
  end
  return result, derr
end

--- Sends `action` with service-named `params` and decodes the answer.
-- @return the decoded response table, or nil, err
function Client:call(action, params)
  local op, out = self:_encode(action, params, 2)
  if not op then return nil, out end
  return self:_attempt(action, op, out)
end

--- Frees the transport's connection (if it has one). Idempotent.
function Client:close()
  local close = self._close
  self._close = nil
  if close then close() end
end

-- Runs a named method: validate fields, then call.
local function named(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  return function(self, fields)
    local params, values = validate.fields(spec.fields, fields, method_name)
    if not params then return nil, errors.invalid(rules.provider, spec.action, values) end
    if spec.check then
      local why = spec.check(params, values, self)
      if why then return nil, errors.invalid(rules.provider, spec.action, why) end
    end
    return self:call(spec.action, params)
  end
end

local function default_transport(opts)
  local curl_transport = require "streamctl.transport.curl"
  return curl_transport.new(opts)
end

--- Defines a provider's client class from its rules.
function M.define(rules)
  local class = { _rules = rules }
  for k, v in pairs(Client) do class[k] = v end
  for name, spec in pairs(rules.methods) do class[name] = named(rules, name, spec) end
  class.__index = class
  class.__tostring = function(self)
    return format("streamctl.%s client (%s)", rules.provider, self.endpoint.url)
  end

  --- Makes a client. See the README for every option.
  -- @return client, or nil, err (bad option, missing credentials)
  function class.new(opts)
    if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
    opts = opts or {}
    local function fail(message, code)
      local e = errors.invalid(rules.provider, nil, message)
      if code then e.code = code end
      return nil, e
    end
    for _, k in ipairs { "clock", "nonce", "transport" } do
      if opts[k] ~= nil and type(opts[k]) ~= "function" then
        return fail(format("option '%s' must be a function", k))
      end
    end
    local endpoint, why = M.parse_endpoint(opts.endpoint or rules.defaults.endpoint)
    if not endpoint then return fail("option 'endpoint': " .. why) end
    local self = setmetatable({
      endpoint = endpoint,
      clock_offset = 0,
      _clock = opts.clock or core.now,
    }, class)
    self._nonce = opts.nonce or function() return rules.nonce(self) end
    local ok, err = rules.configure(self, opts)
    if not ok then return fail(err.message or err, err.code) end
    if opts.transport then
      self._transport = opts.transport
    else
      local t, terr = default_transport {
        timeout_ms = opts.timeout_ms, connect_timeout_ms = opts.connect_timeout_ms,
        ca_file = opts.ca_file, proxy = opts.proxy,
      }
      if not t then return fail(terr) end
      self._transport = t.send
      self._close = t.close
    end
    return self
  end

  return class
end

return M
