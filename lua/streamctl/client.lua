--- The request pipeline shared by both providers.
--
-- A call flows one way: validate -> build -> sign -> send -> decode -> report.
-- This module owns every step that is the same for both providers; a provider
-- module (streamctl.aliyun, streamctl.zego) hands `define` a table of rules:
--
--   provider     "aliyun" | "zego"
--   defaults     { endpoint = ... }
--   operations   action -> { method = "GET"|"POST", idempotent = bool,
--                            recover = { action, params(p), found(result, p) } (optional:
--                            how to look up whether an attempt took effect) }
--   methods      snake_case name -> { action, fields = schema, check = fn(params, values, self) }
--   batches      snake_case name -> { action, fields, list, param, chunk, stream_key, check }
--   array(name, list) -> name, value          (how the service takes a Lua array)
--   configure(self, opts) -> true | nil, err  (credentials, provider options)
--   complete(self, action, op, params) -> params | nil, why  (optional: fills in what
--                must stay fixed across retries; refuses what the service would)
--   build(self, action, op, params, now, nonce) -> request   (common params, signature)
--   decode(self, action, response) -> result | nil, err
--   nonce(self) -> string                     (the default nonce source)
--   account(self) -> the id the provider's rate limits apply to
--   secrets(self) -> array of strings never to be shown

-- A request is `{ method, url, headers, body, action, provider }`; a response
-- is `{ status, headers (lower-case names), body }`; a transport failure is
-- `{ code, message, sent }`. A transport is either a blocking
-- `function(request) -> response | nil, failure`, or a table with
-- `start(key, request) -> true | nil, failure`, `poll(timeout_seconds) ->
-- { {key=, res=, err=}, ... }`, and optionally `sleep(seconds)` and `close()`
-- (streamctl.transport.curl is one, on libcurl's multi interface).
-- @module streamctl.client

local core = require "streamctl.core"
local errors = require "streamctl.errors"
local validate = require "streamctl.validate"
local runner = require "streamctl.runner"
local retry = require "streamctl.retry"
local ratelimit = require "streamctl.ratelimit"

local type, pairs, ipairs, error, setmetatable = type, pairs, ipairs, error, setmetatable
local pcall, tostring = pcall, tostring
local min = math.min
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

--- Checks a value that will reach a header (a key id, a token).
-- @return true, or nil and a message naming `what`
function M.check_header_safe(value, what)
  if type(value) ~= "string" or value == "" then return nil, what .. " must be a non-empty string" end
  if find(value, "[%z\r\n]") then return nil, what .. " must not contain CR, LF or NUL" end
  return true
end

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
  if rules.complete then
    local why
    out, why = rules.complete(self, action, op, out)
    if not out then
      if errors.is(why) then why.action = action return nil, why end
      return nil, errors.invalid(rules.provider, action, why)
    end
  end
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

-- Decodes one attempt's outcome: a transport failure or a response.
function Client:_decode(action, op, res, terr)
  local rules = self._rules
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

-- The io the runner drives: the transport's own start/poll when it has them
-- (concurrent transfers), else the blocking function wrapped.
function Client:_io()
  local t = self._transport
  if type(t) == "function" then return runner.sync_io(t, self._monotonic, self._sleep) end
  return { start = t.start, poll = t.poll, now = self._monotonic, sleep = self._sleep }
end

--- The account the provider's limits apply to (Aliyun AccessKeyId, ZEGO AppId).
function Client:account()
  return self._rules.account(self)
end

--- Sends `action` with service-named `params` and decodes the answer, with
-- rate limiting and retries (each attempt signed afresh).
-- @return the decoded response table, or nil, err (`err.attempts` says how many were made)
function Client:call(action, params)
  local op, out = self:_encode(action, params, 2)
  if not op then return nil, out end
  local job = runner.run(self, { { action = action, op = op, params = out } })[1]
  if job.result ~= nil then return job.result end
  job.err.attempts = job.attempts
  return nil, job.err
end

--- Frees the transport's connection (if it has one). Idempotent.
function Client:close()
  local close = self._close
  self._close = nil
  if close then close() end
end

-- Checks a method's fields and its cross-field rule.
-- @return params, values; or nil, err
local function check_fields(self, rules, method_name, spec, fields)
  local params, values = validate.fields(spec.fields, fields, method_name)
  if not params then return nil, errors.invalid(rules.provider, spec.action, values) end
  if spec.check then
    local why = spec.check(params, values, self)
    if why then return nil, errors.invalid(rules.provider, spec.action, why) end
  end
  return params, values
end

-- Runs a named method: validate fields, then call.
local function named(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  return function(self, fields)
    local params, err = check_fields(self, rules, method_name, spec, fields)
    if not params then return nil, err end
    return self:call(spec.action, params)
  end
end

-- Runs a batch method: validate the fields once, split the list into calls
-- (`chunk` items each), encode them in submission order (so ZEGO Sequences
-- follow it), run them, and report on every item.
local function batch(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  return function(self, fields)
    local params, values = check_fields(self, rules, method_name, spec, fields)
    if not params then return nil, values end
    local items, seen, duplicates = {}, {}, 0
    for _, item in ipairs(values[spec.list]) do
      if seen[item] then duplicates = duplicates + 1 else seen[item] = true; items[#items + 1] = item end
    end
    local size = spec.chunk or 1
    local jobs, entries = {}, {}
    for i = 1, #items, size do
      local chunk, keys = {}, {}
      for j = i, min(#items, i + size - 1) do
        chunk[#chunk + 1] = items[j]
        keys[#keys + 1] = spec.stream_key(params, items[j])
      end
      local p = {}
      for k, v in pairs(params) do p[k] = v end
      p[spec.param] = size == 1 and chunk[1] or chunk
      local op, out = self:_encode(spec.action, p, 2)
      if not op then return nil, out end
      jobs[#jobs + 1] = { action = spec.action, op = op, params = out, streams = keys, items = chunk }
    end
    local report = { action = spec.action, total = #items, succeeded = 0, failed = 0, calls = #jobs,
                     duplicates = duplicates, results = entries }
    local on_progress, done = values.on_progress, 0
    local started = self._monotonic()
    runner.run(self, jobs, {
      concurrency = values.concurrency or self.concurrency,
      on_progress = function(_, _, job)
        local first = #entries + 1
        for _, item in ipairs(job.items) do
          local entry = { stream = item, ok = job.result ~= nil, attempts = job.attempts }
          if entry.ok then
            entry.result, entry.request_id = job.result, job.result.RequestId
            report.succeeded = report.succeeded + 1
          else
            entry.error = job.err
            report.failed = report.failed + 1
          end
          entries[#entries + 1] = entry
        end
        -- The caller's callback runs after the report holds the whole call:
        -- an error in it is kept (report.progress_error), never a lost stream.
        for i = first, #entries do
          done = done + 1
          if on_progress and not report.progress_error then
            local ok, perr = pcall(on_progress, done, #items, entries[i])
            if not ok then report.progress_error = tostring(perr) end
          end
        end
      end,
    })
    report.elapsed = self._monotonic() - started
    -- Report in the order the items were given.
    local position = {}
    for i, item in ipairs(items) do position[item] = i end
    table.sort(entries, function(a, b) return position[a.stream] < position[b.stream] end)
    return report
  end
end

-- A uniform number in [0, 1] for backoff jitter.
local function jitter()
  return tonumber(core.random_hex(4), 16) / 4294967295
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
  for name, spec in pairs(rules.batches or {}) do class[name] = batch(rules, name, spec) end
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
    for _, k in ipairs { "clock", "nonce", "monotonic", "sleep" } do
      if opts[k] ~= nil and type(opts[k]) ~= "function" then
        return fail(format("option '%s' must be a function", k))
      end
    end
    local t = opts.transport
    if t ~= nil and type(t) ~= "function" and
       not (type(t) == "table" and type(t.start) == "function" and type(t.poll) == "function") then
      return fail("option 'transport' must be a function(request) or a table with start and poll")
    end
    if opts.rate_limits ~= nil and opts.rate_limits ~= false and type(opts.rate_limits) ~= "table" then
      return fail("option 'rate_limits' must be a table of action = requests per second, or false")
    end
    if opts.concurrency ~= nil and (type(opts.concurrency) ~= "number" or opts.concurrency < 1
        or opts.concurrency % 1 ~= 0) then
      return fail("option 'concurrency' must be a whole number >= 1")
    end
    if opts.retry ~= nil and opts.retry ~= false and type(opts.retry) ~= "table" then
      return fail("option 'retry' must be a table of retry settings, or false")
    end
    local endpoint, why = M.parse_endpoint(opts.endpoint or rules.defaults.endpoint)
    if not endpoint then return fail("option 'endpoint': " .. why) end
    local self = setmetatable({
      endpoint = endpoint,
      clock_offset = 0,
      rate_limits = opts.rate_limits,
      rate_burst = opts.rate_burst or 1,
      concurrency = opts.concurrency or 8,
      _clock = opts.clock or core.now,
      _monotonic = opts.monotonic or core.monotonic,
    }, class)
    -- Jitter from OpenSSL, so processes never share one math.random sequence.
    local retry_opts = { random = jitter }
    for k, v in pairs(opts.retry or {}) do retry_opts[k] = v end
    if opts.retry == false then retry_opts.attempts = 1 end
    local pok, policy = pcall(retry.policy, retry_opts)
    if not pok then return fail("option 'retry': " .. tostring(policy)) end
    self._retry = policy
    if opts.rate_limits ~= false then
      self._limiter = ratelimit.new { clock = self._monotonic, store = opts.rate_limit_store }
    end
    self._nonce = opts.nonce or function() return rules.nonce(self) end
    local ok, err = rules.configure(self, opts)
    if not ok then return fail(err.message or err, err.code) end
    if t then
      self._transport = t
      self._close = type(t) == "table" and t.close or nil
    else
      local ct, terr = default_transport {
        timeout_ms = opts.timeout_ms, connect_timeout_ms = opts.connect_timeout_ms,
        ca_file = opts.ca_file, proxy = opts.proxy, max_connections = opts.max_connections,
      }
      if not ct then return fail(terr) end
      self._transport = ct
      self._close = ct.close
    end
    self._sleep = opts.sleep or (type(self._transport) == "table" and self._transport.sleep)
      or function(seconds) return require("streamctl.transport.curl").sleep(seconds) end
    return self
  end

  return class
end

return M
