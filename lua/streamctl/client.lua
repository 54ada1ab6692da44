--- The request pipeline shared by both providers.
--
-- A call flows one way: validate -> build -> sign -> send -> decode -> report.
-- This module owns every step that is the same for both providers; a provider
-- module (streamctl.aliyun, streamctl.zego) hands `define` a table of rules:
--
--   provider     "aliyun" | "zego"
--   defaults     { endpoint = ... }
--   options      schema of the provider's own options (streamctl.validate)
--   operations   action -> { method = "GET"|"POST", idempotent = bool, cap = n (requests per
--                            second, the published limit; nil: none), recover = { action,
--                            params(p), found(result, p) } (optional: how to look up whether
--                            an attempt took effect), ordered = bool (the service orders
--                            requests itself, e.g. by a Sequence: a late copy cannot undo a
--                            later change; a stream operation with neither waits for an
--                            earlier unknown attempt on its stream to settle) }
--   methods      snake_case name -> { action, fields = schema, check = fn(params, values, self) }
--   batches      snake_case name -> { action, fields, list, param, chunk, check }
--   streams(action, params) -> { key, ... } | nil  (the streams an action changes: their
--                order is kept, and a later change waits for an earlier unknown one to settle)
--   array(name, list) -> name, value          (how the service takes a Lua array)
--   configure(self, values) -> true | nil, err  (credentials and the provider's options)
--   cap(self, action, op) -> n | nil          (optional: the cap for this client, when it is
--                                              not op.cap, e.g. ZEGO's test environment)
--   complete(self, action, op, params, dry) -> params | nil, why  (optional: checks what
--                only the provider can, before anything is sent; for a `dry` run (prepare),
--                also fills in what `commit` would, without committing anything)
--   commit(self, action, op, params) -> true | nil, err  (optional: at the first send of a
--                call, fills in what must be taken at that moment and stay fixed across its
--                retries, in `params` itself: ZEGO's Sequence)
--   build(self, action, op, params, now, nonce) -> request   (common params, signature)
--   decode(self, action, response) -> result | nil, err
--   nonce(self) -> string                     (the default nonce source)
--   nonce_rule(nonce) -> nil | rule broken    (what any nonce source must give)
--   common_params  set of lower-case names the signature owns (refused in params)
--   account(self) -> the id the provider's rate limits apply to
--   secrets(self) -> array of strings never to be shown
--   redact = { query = { names }, headers = { [lower-case name] = "all" | "signature" } }
--                what of a signed request a dry run must not show: query (or form)
--                parameters, whole header values, or the Signature=... part of one
--
-- A request is `{ method, url, headers, body, action, provider }`; a response
-- is `{ status, headers (lower-case names), body }`; a transport failure is
-- `{ code, message, sent }`. A transport is either a blocking
-- `function(request) -> response | nil, failure`, or a table with
-- `start(key, request) -> true | nil, failure`, `poll(timeout_seconds) ->
-- { {key=, res=, err=}, ... }`, and optionally `sleep(seconds)`, `close()`
-- and `check() -> true | nil, why` (whether it can send from here).
-- Unless the caller gives one, a client uses streamctl.transport.auto:
-- cosockets inside nginx (streamctl.transport.ngx), libcurl elsewhere
-- (streamctl.transport.curl, on libcurl's multi interface).
--
-- Calls and batches are carried out by a streamctl.runner engine, which the
-- client hands an explicit interface: its io, how to sign and decode an
-- attempt, how to pace an action, the retry policy and the clock correction.
-- @module streamctl.client

local core = require "streamctl.core"
local errors = require "streamctl.errors"
local validate = require "streamctl.validate"
local runner = require "streamctl.runner"
local retry = require "streamctl.retry"
local ratelimit = require "streamctl.ratelimit"
local curl_transport = require "streamctl.transport.curl"
local auto_transport = require "streamctl.transport.auto"
local shdict = require "streamctl.store.shdict"
local batch = require "streamctl.batch"
local encode = require "streamctl.encode"
local redact = require "streamctl.redact"

local type, pairs, ipairs, error, setmetatable = type, pairs, ipairs, error, setmetatable
local pcall, tostring = pcall, tostring
local min = math.min
local floor, huge = math.floor, math.huge
local tonumber = tonumber
local format, match, lower, find = string.format, string.match, string.lower, string.find

local M = {}

--- The fraction by which pacing stays under every cap (see the README's
-- "Pacing, retries, order"): with 5%, any N + 1 consecutive requests to an
-- action capped at N per second span at least 1.05 s, so up to 50 ms of
-- scheduling and network jitter cannot put N + 1 of them into one second,
-- the strictest way a provider can count.
M.RATE_MARGIN = 0.05

--- How many slots of one action a client reserves ahead at most (see
-- streamctl.runner, "Pacing"): a horizon of this many intervals, and never
-- more than `MAX_HORIZON` seconds. Whatever happens to a shared store, the
-- slots already promised are this few.
M.HORIZON_SLOTS = 4
M.MAX_HORIZON = ratelimit.MAX_HORIZON

--- The lowest `max_rate` (and command-line `--rate`) accepted, in requests
-- per second: one request every 10,000 s (2 h 47 min), slower than any pace
-- anyone asks of a stream switch. Below some rate pacing cannot keep its
-- word: the Redis store caps an interval at a year (a slower rate would run
-- faster than asked), and from about 5e-324 the interval 1/rate is infinite
-- and the slots' arithmetic NaN, which sends unpaced. A clear floor, named
-- in the message, instead of a limit found by accident.
M.MIN_RATE = 0.0001

--- When a rate-limit store fails (an error, not a wait), the client paces
-- in its own process at the rate divided by this, and says so once: the
-- store's other users are unknown, so it keeps to the safe side.
M.FALLBACK_SHARE = 4

--- How long after it was sent an attempt whose outcome is unknown is taken
-- to be able to land, in milliseconds (see streamctl.runner, "Order", and the
-- README): 10 s, ZEGO's Sequence window.
M.SETTLE_MS = 10000

--- The largest clock correction the client makes, in seconds: a response's
-- Date further than a day from the local clock is taken for a broken Date,
-- never for the time (a Date of 9999-12-31 would otherwise sign every later
-- request in that year).
M.MAX_CLOCK_CORRECTION = 24 * 3600

--- Turns a parameter value into the string the service expects (see
-- streamctl.encode).
M.stringify = encode.stringify

--- Parses and checks an endpoint: scheme, host and optional port, no path.
-- @return { url = "https://host[:port]", host = "host[:port]", scheme = ... }, or nil and
--   the rule broken ("must not have a path, query or fragment")
function M.parse_endpoint(url)
  if type(url) ~= "string" then return nil, "must be a string" end
  if #url > 300 then return nil, "must be at most 300 bytes (got " .. #url .. ")" end
  if find(url, "[%z\r\n%s]") then return nil, "must not contain whitespace, CR, LF or NUL" end
  local scheme = match(url, "^(%a[%w+.-]*)://")
  if not scheme then return nil, "must look like https://host[:port]" end
  scheme = lower(scheme)
  if scheme ~= "https" and scheme ~= "http" then
    return nil, "must use https or http (got " .. scheme .. ")"
  end
  local authority, rest = match(url, "^%a[%w+.-]*://([^/?#]+)(.*)$")
  if not authority then return nil, "must look like https://host[:port]" end
  if rest ~= "" and rest ~= "/" then return nil, "must not have a path, query or fragment" end
  if find(authority, "@", 1, true) then return nil, "must not carry user information" end
  local host, port = match(authority, "^([%w.-]+):(%d+)$")
  if not host then
    host = match(authority, "^([%w.-]+)$") or match(authority, "^(%[[%x:.]+%])$")
    if not host then
      host, port = match(authority, "^(%[[%x:.]+%]):(%d+)$")
      if not host then return nil, "must name a valid host" end
    end
  end
  if port and (tonumber(port) < 1 or tonumber(port) > 65535) then
    return nil, "must have a port in 1..65535"
  end
  local base = scheme .. "://" .. lower(authority)
  -- query_url: what a request's query string follows
  return { scheme = scheme, url = base, query_url = base .. "/?", host = lower(authority) }
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

--- The longest credential taken, in bytes: key IDs, AppIds and secrets are
-- tens of bytes; an STS security token can run to a few KiB (MAX_TOKEN).
M.MAX_CREDENTIAL = 256
M.MAX_TOKEN = 16384

--- Checks a value that will reach a header (a key id, a token): the rule
-- broken, or nil when it is fine.
-- @param value the value
-- @param max (optional) the most bytes it may have (default MAX_CREDENTIAL)
function M.header_rule(value, max)
  if type(value) ~= "string" or value == "" then return "must be a non-empty string" end
  max = max or M.MAX_CREDENTIAL
  if #value > max then return format("must be at most %d bytes (got %d)", max, #value) end
  if find(value, "[%z\r\n]") then return "must not contain CR, LF or NUL" end
  if find(value, "[%c\128-\255]") then return "must be printable ASCII" end
  return nil
end

--- Is `v` a streamctl.secret (see streamctl.core)?
function M.is_secret(v)
  return core.is_secret(v)
end

--- Checks a secret: a non-empty string or a streamctl.secret; the rule
-- broken, or nil. (The value itself never goes into a message.)
function M.secret_rule(value)
  if not M.is_secret(value) and type(value) ~= "string" then return "must be a string or a streamctl.secret" end
  if #value == 0 then return "must not be empty" end
  if #value > M.MAX_CREDENTIAL then return format("must be at most %d bytes (got %d)", M.MAX_CREDENTIAL, #value) end
  -- Both providers issue secrets in printable ASCII; anything else (most
  -- often a line break read from a file) would only come back as a refused
  -- signature. (A streamctl.secret's bytes are not looked at.)
  if type(value) == "string" and find(value, "[%c\128-\255]") then
    return "must be printable ASCII (a line break or control character in a secret is usually a copy-and-paste "
      .. "mistake)"
  end
  return nil
end

-- The options every client takes; the provider's own and the transport's
-- are added by `define`.
local TRANSPORT_NAMES = { auto = true, curl = true, ngx = true }
local function check_transport(t)
  if type(t) == "function" then return t end
  if type(t) == "table" and type(t.start) == "function" and type(t.poll) == "function" then return t end
  if TRANSPORT_NAMES[t] then return t end
  return nil, "must be \"auto\", \"curl\", \"ngx\", a function(request) or a table with start and poll"
end

-- The caller's overrides of the caps: every key an action of the provider
-- (or "*"), every value a rate > 0 or false.
local function rate_limits_check(operations)
  local actions = {}
  for a in pairs(operations) do actions[#actions + 1] = a end
  table.sort(actions)
  return function(v)
    if type(v) ~= "table" then return nil, "must be a table of action = requests per second, or false" end
    for k, rate in pairs(v) do
      if k ~= "*" and not operations[k] then
        return nil, format("names '%s', which is not an action%s", tostring(k), validate.hint(tostring(k), actions))
      end
      if rate ~= false and not (type(rate) == "number" and rate > 0 and rate < huge) then
        return nil, format("['%s'] must be a number > 0 (requests per second) or false", k)
      end
    end
    return v
  end
end

local function common_options(rules)
  return {
    { name = "endpoint", type = "custom", check = M.parse_endpoint },
    { name = "concurrency", type = "integer", min = 1, max = 256 },
    { name = "rate_limits", type = "custom", nullable_false = true, check = rate_limits_check(rules.operations) },
    { name = "rate_burst", type = "integer", min = 1, max = 1000 },
    { name = "rate_margin", type = "number", min = 0, max_exclusive = 1 },
    { name = "settle_ms", type = "integer", min = 0, max = 900000 },
    { name = "rate_limit_store", type = "custom", check = ratelimit.check_store },
    { name = "retry", type = "custom", nullable_false = true, check = function(v)
        if type(v) ~= "table" then return nil, "must be a table of retry settings, or false" end
        local ok, why = validate.options(retry.OPTIONS, v, "the retry settings", "retry.")
        if not ok then return nil, why, true end
        return v
      end },
    { name = "clock", type = "function" },
    { name = "nonce", type = "function" },
    { name = "monotonic", type = "function" },
    { name = "sleep", type = "function" },
    { name = "transport", type = "custom", check = check_transport },
    { name = "shared_dict", type = "custom", check = shdict.open },
    -- (the Redis store is loaded only when a client asks for it)
    -- (a config, or a connection object from streamctl.store.redis.connect, which clients may share)
    { name = "redis", type = "custom", check = function(v)
        local redis_store = require "streamctl.store.redis"
        if redis_store.is_connection(v) then return v end
        return redis_store.config(v)
      end },
    { name = "on_attempt", type = "function" },
    { name = "cancel", type = "function" },
    { name = "max_rate", type = "number", min = M.MIN_RATE },
  }
end

--- The longest parameter value `call` and `prepare` send (see streamctl.encode).
M.MAX_PARAM = encode.MAX_PARAM

local Client = {}

-- Checks and encodes service-named params (streamctl.encode); then the
-- provider fills in what must stay fixed across retries (`complete`; `dry`
-- for a prepare, which must commit nothing).
-- @return op, params; or nil, err
function Client:_encode(action, params, level, dry)
  local rules = self._rules
  if type(action) ~= "string" then error("action must be a string", level + 1) end
  if params ~= nil and type(params) ~= "table" then error("params must be a table", level + 1) end
  local op = rules.operations[action]
  if not op then
    return nil, errors.invalid(rules.provider, action, "unknown action '" .. action .. "'")
  end
  local out, err = encode.params(rules, rules._texts, action, params)
  if not out then return nil, err end
  if rules.complete then
    local why
    out, why = rules.complete(self, action, op, out, dry)
    if not out then
      if errors.is(why) then why.action = action return nil, why end
      return nil, errors.invalid(rules.provider, action, why)
    end
  end
  return op, out
end

-- Signs one request: a fresh nonce and time every time.
function Client:_sign(action, params)
  local rules = self._rules
  local nonce = self._nonce()
  local why = self._nonce_given and rules.nonce_rule(nonce) -- (the built-in source is trusted)
  if why then
    return nil, errors.invalid(rules.provider, action, "the nonce source returned " .. (type(nonce) == "string"
      and "a value that" or "a " .. type(nonce) .. ", which") .. " " .. why)
  end
  -- params is the call's own (from _encode): a build may add the common
  -- parameters to it, as every signing sets all of them again.
  return rules.build(self, action, rules.operations[action], params, self:now(), nonce)
end

--- Builds and signs the request for `action` without sending it (and
-- without taking a ZEGO Sequence: the generator is only peeked at).
-- `params` uses the service's own parameter names; a Lua array becomes what
-- the service expects (see the provider's rules).
-- @return request table `{ method, url, headers, body, action, provider }`, or nil, err
function Client:prepare(action, params)
  local op, out = self:_encode(action, params, 2, true)
  if not op then return nil, out end
  return self:_sign(action, out)
end

--- The current time in Unix seconds, as the provider will see it
-- (the injected clock plus any measured skew correction).
function Client:now()
  return self._clock() + self.clock_offset
end

--- The account the provider's limits apply to, which keys the pacing budget
-- (Aliyun: the `account_id` option, else the AccessKeyId; ZEGO: the AppId).
function Client:account()
  return self._rules.account(self)
end

-- The cap on `action` for this client (an override, else the provider's),
-- in requests per second; nil when it is not paced.
local function cap_for(self, action)
  local o = self._rate_limits
  if o == false then return nil end
  local v = o and o[action]
  if v == nil and o then v = o["*"] end
  if v == nil then
    local rules = self._rules
    local op = rules.operations[action]
    v = rules.cap and rules.cap(self, action, op) or op.cap
  end
  local ceiling = self._max_rate
  if ceiling and (not v or v > ceiling) then v = ceiling end
  return v or nil
end

--- The rate at which this client sends `action` (requests per second, with
-- the margin taken off), or nil when it is not paced.
function Client:rate_for(action)
  local cap = cap_for(self, action)
  return cap and cap / (1 + self._rate_margin)
end

-- Makes the job that runs `action` with encoded params.
function Client:_job(action, op, params)
  local rules = self._rules
  return { action = action, params = params, recover = op.recover, done_codes = op.done_codes,
           ordered = op.ordered, streams = rules.streams(action, params) }
end

-- nil, or the error that stops every call from here (an nginx phase in
-- which the transport can neither yield nor block): nothing is paced or sent.
function Client:_here(action)
  local check = self._check
  if not check then return nil end
  local ok, why = check()
  if ok then return nil end
  return errors.new { provider = self._rules.provider, action = action, code = "InvalidRequest",
                      kind = "validation", message = why, sent = false }
end

--- Sends `action` with service-named `params` and decodes the answer, with
-- rate limiting and retries (each attempt signed afresh).
-- @return the decoded response table, or nil, err (`err.attempts` says how many were made)
function Client:call(action, params)
  local op, out = self:_encode(action, params, 2)
  if not op then return nil, out end
  local here = self:_here(action)
  if here then return nil, here end
  local job = self:_run({ self:_job(action, op, out) }, { concurrency = 1 })[1]
  if job.result ~= nil then return job.result end
  return nil, job.err
end

--- Frees the transport's connection (if it has one). Idempotent.
function Client:close()
  local close = self._close
  self._close = nil
  if close then close() end
  if self._redis then self._redis:close() end
end

-- Checks a method's fields and its cross-field rule.
-- @return params, values; or nil, err
function Client:_fields(method_name, spec, fields)
  local provider = self._rules.provider
  local params, values = validate.fields(spec.fields, fields, method_name)
  if not params then return nil, errors.invalid(provider, spec.action, values) end
  if spec.check then
    local why = spec.check(params, values, self)
    if why then return nil, errors.invalid(provider, spec.action, why) end
  end
  return params, values
end

-- Runs jobs on this client's engine (its concurrency unless `opts` says).
function Client:_run(jobs, opts)
  opts = opts or {}
  opts.concurrency = opts.concurrency or self._concurrency
  return self._engine:run(jobs, opts)
end

-- Runs a named method: validate fields, then call.
local function named(rules, name, spec)
  local method_name = rules.provider .. "." .. name
  return function(self, fields)
    local params, err = self:_fields(method_name, spec, fields)
    if not params then return nil, err end
    return self:call(spec.action, params)
  end
end

-- A line for the log: nginx's error log inside nginx, else standard error.
local io_log = require("streamctl.log").warn

-- A uniform number in [0, 1] for backoff jitter.
local function jitter()
  return tonumber(core.random_hex(4), 16) / 4294967295
end

-- The engine's interface onto this client: the only things the runner uses.
local function engine_for(self, io)
  local rules = self._rules
  local provider = rules.provider
  local limiter, burst = self._limiter, self._rate_burst
  local commit = rules.commit
  local on_attempt = self._on_attempt
  return runner.new {
    io = io,
    retry = self._retry,
    settle = self._settle,
    cancel = self._cancel,
    sign = function(attempt)
      local action = attempt.action
      if commit and attempt.role == "call" and attempt.n == 1 and not attempt.job.sequence_taken then
        -- attempt.params is the job's own: what commit fills in stays for the retries.
        local ok, err = commit(self, action, rules.operations[action], attempt.params)
        if not ok then err.action = action return nil, err end
      end
      local req, err = self:_sign(action, attempt.params)
      -- What this request carries that no message may show (its signature,
      -- a token): a server that echoes the request must not put it into an error.
      if req then attempt.hidden = redact.hidden(rules, req) end
      return req, err
    end,
    -- The caller's hook, told of every attempt; an error in it never
    -- affects the call (the first one is kept in client.on_attempt_error).
    observe = on_attempt and function(attempt, result, err, seconds, res)
      local ok, herr = pcall(on_attempt, {
        provider = provider, action = attempt.action, role = attempt.role, attempt = attempt.n,
        retry = attempt.n > 1, ok = result ~= nil, seconds = seconds,
        status = res and res.status, code = err and err.code, kind = err and err.kind,
        throttled = err ~= nil and err.kind == "throttled", sent = err == nil or err.sent ~= false,
        error = err,
      })
      if not ok and self.on_attempt_error == nil then self.on_attempt_error = tostring(herr) end
    end,
    decode = function(attempt, res, terr)
      local action = attempt.action
      local hidden = attempt.hidden or {}
      for _, v in ipairs(rules.secrets(self)) do hidden[#hidden + 1] = v end
      if not res then
        local err = errors.transport(provider, action, terr, rules.operations[action].idempotent)
        err.message = redact.text(err.message, hidden)
        return nil, err
      end
      local result, derr = rules.decode(self, action, res)
      if result == nil and derr then
        derr.server_date = derr.server_date or M.parse_http_date(res.headers and res.headers.date)
        derr.message = redact.text(derr.message, hidden)
      elseif type(result) == "table" and #hidden > 0 then
        redact.answer(result, hidden) -- (an answer that quotes the request shows none of it either)
      end
      return result, derr
    end,
    -- A slot reserved just in time (at most `horizon` ahead); a ZEGO call's
    -- first send takes its Sequence with the slot, in the same round trip,
    -- where the store can (Redis).
    pace = function(action, max_delay, job)
      if not limiter then return 0, true end
      local rate = self:rate_for(action)
      if not rate then return 0, true end
      local key = provider .. ":" .. rules.account(self) .. ":" .. action
      local seq_store = self._sequence_store
      -- A job asking again before its first send gave up its slot (late):
      -- the Sequence taken with it would now leave after later ones; it
      -- takes a new one with its new slot.
      if job and job.sequence_taken and job.attempts == 0 then
        job.params.Sequence, job.sequence_taken = nil, nil
      end
      local ids = seq_store and job and job.next_role == "call" and job.attempts == 0 and not job.sequence_taken
        and rules.sequence_ids and rules.sequence_ids(action, rules.operations[action], job.params)
      if ids then
        local delay, committed, next_delay, value = limiter.store:reserve_sequenced(key, rate, burst, max_delay,
          seq_store, ids)
        if value then job.params.Sequence, job.sequence_taken = value, true end
        return delay, committed, next_delay
      end
      local delay, committed, next_delay = limiter:reserve(key, rate, burst, max_delay)
      if delay ~= nil then return delay, committed, next_delay end
      -- The store failed (not a wait): pace in this process on a share of
      -- the rate, and say so once (never unpaced: the store's other users
      -- are still sending).
      if not self._fallback_limiter then
        self._fallback_limiter = ratelimit.new { clock = self._monotonic }
        io_log(format("streamctl: the rate-limit store failed (%s); pacing in this process at rate / %d "
          .. "until it answers", tostring(committed), M.FALLBACK_SHARE))
      end
      return self._fallback_limiter:reserve(key, rate / M.FALLBACK_SHARE, 1, max_delay)
    end,
    horizon = function(action)
      local rate = self:rate_for(action)
      if not rate then return huge end
      return min(M.HORIZON_SLOTS / rate, M.MAX_HORIZON)
    end,
    -- Only on a clock-skew error (the engine asks), only from a Date, and
    -- only within MAX_CLOCK_CORRECTION; otherwise the error stands.
    -- The cap as "n requests in any second", which the engine holds to by the
    -- actual send times (a request sent late never crowds a second). Pacing
    -- off (or a burst above 1, which trades the margin away) turns it off.
    window = function(action)
      if not limiter or burst > 1 then return nil end
      local cap = cap_for(self, action)
      return cap and floor(cap)
    end,
    correct_clock = function(err)
      local offset = retry.clock_offset(err, self._clock())
      if not offset or offset > M.MAX_CLOCK_CORRECTION or offset < -M.MAX_CLOCK_CORRECTION then
        err.message = (err.message or "") .. "; the clock was not corrected: the response's Date is "
          .. (offset and "more than a day from the local clock" or "missing")
        return false
      end
      self.clock_offset = offset
      return true
    end,
  }
end

--- A copy of a signed request (from `prepare`) that shows no secret,
-- signature or security token: each is replaced by "<redacted>".
function Client:redact(req)
  return redact.request(self._rules, self._rules.secrets(self), req)
end

--- What a method would send for `fields`, without sending anything: the
-- requests signed as they would be now (one per call a batch would make),
-- each with every secret, signature and security token replaced by
-- "<redacted>", so that it can be shown or logged. Fields are checked
-- exactly as the method checks them; no ZEGO Sequence is taken.
-- @tparam string name a named or batch method, e.g. "resume_live_stream"
-- @tparam table fields the method's fields
-- @return array of requests `{ method, url, headers, body, action, provider }`, or nil, err
function Client:dry_run(name, fields)
  local rules = self._rules
  local spec = rules.methods[name] or (rules.batches or {})[name]
  if type(name) ~= "string" or not spec then
    error("bad argument #1 to 'dry_run' (not a method of streamctl." .. rules.provider .. ": " .. tostring(name)
      .. ")", 2)
  end
  local params, values = self:_fields(rules.provider .. "." .. name, spec, fields)
  if not params then return nil, values end
  local jobs
  if spec.list then
    local err
    jobs, err = batch.jobs(self, spec, params, values, true)
    if not jobs then return nil, err end
  else
    local op, out = self:_encode(spec.action, params, 2, true)
    if not op then return nil, out end
    jobs = { { action = spec.action, params = out } }
  end
  local out = {}
  for i, job in ipairs(jobs) do
    local req, err = self:_sign(job.action, job.params)
    if not req then return nil, err end
    out[i] = self:redact(req)
  end
  return out
end

--- Defines a provider's client class from its rules.
function M.define(rules)
  local class = { _rules = rules }
  -- action -> service parameter -> the text field that sets it (for `call`)
  rules._texts = encode.texts(rules)
  for k, v in pairs(Client) do class[k] = v end
  for name, spec in pairs(rules.methods) do class[name] = named(rules, name, spec) end
  for name, spec in pairs(rules.batches or {}) do class[name] = batch.method(rules, name, spec) end
  class.__index = class
  class.__tostring = function(self)
    return format("streamctl.%s client (%s)", rules.provider, self.endpoint.url)
  end

  --- The client's named and batch methods, for tools such as the command
  -- line: an array sorted by name of `{ name, action, fields (the
  -- streamctl.validate schema), list (a batch's list field, or nil) }`.
  function class.methods()
    local out = {}
    for name, spec in pairs(rules.methods) do
      out[#out + 1] = { name = name, action = spec.action, fields = spec.fields }
    end
    for name, spec in pairs(rules.batches or {}) do
      out[#out + 1] = { name = name, action = spec.action, fields = spec.fields, list = spec.list }
    end
    table.sort(out, function(a, b) return a.name < b.name end)
    return out
  end

  --- The provider's actions (for `call`), sorted.
  function class.actions()
    local out = {}
    for action in pairs(rules.operations) do out[#out + 1] = action end
    table.sort(out)
    return out
  end

  local owner = "streamctl." .. rules.provider .. ".new"
  local schema = common_options(rules)
  for _, list in ipairs { rules.options, curl_transport.OPTIONS } do
    for _, o in ipairs(list) do schema[#schema + 1] = o end
  end

  --- Makes a client. See the README for every option.
  -- @return client, or nil, err (bad or unknown option, missing credentials)
  function class.new(opts)
    if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
    local function fail(message, code)
      local e = errors.invalid(rules.provider, nil, message)
      if code then e.code = code end
      return nil, e
    end
    local o, why = validate.options(schema, opts, owner)
    if not o then return fail(why) end
    local transport = o.transport
    if type(transport) == "function" or type(transport) == "table" then
      for _, t in ipairs(curl_transport.OPTIONS) do
        if o[t.name] ~= nil then
          return fail(format("option '%s' configures the built-in transport; it cannot be combined with 'transport'",
            t.name))
        end
      end
    end
    local self = setmetatable({
      endpoint = o.endpoint or M.parse_endpoint(rules.defaults.endpoint),
      clock_offset = 0,
      _rate_limits = o.rate_limits,
      _rate_burst = o.rate_burst or 1,
      _rate_margin = o.rate_margin or M.RATE_MARGIN,
      _concurrency = o.concurrency or 8,
      _settle = (o.settle_ms or M.SETTLE_MS) / 1000,
      _clock = o.clock or core.now,
      _monotonic = o.monotonic or core.monotonic,
      _on_attempt = o.on_attempt,
      _cancel = o.cancel,
      _max_rate = o.max_rate,
    }, class)
    if o.max_rate and o.rate_limits == false then
      return fail("option 'max_rate' needs pacing; it cannot be combined with rate_limits = false")
    end
    if o.shared_dict and o.rate_limit_store then
      return fail("option 'shared_dict' holds the rate-limit state; it cannot be combined with 'rate_limit_store'")
    end
    for _, other in ipairs { "shared_dict", "rate_limit_store" } do
      if o.redis and o[other] then
        return fail(format("option 'redis' holds the rate-limit state; it cannot be combined with '%s'", other))
      end
    end
    -- One Redis connection for the client's rate limits and Sequences (made
    -- on first use: a client made while Redis is down works from its fallback).
    local redis_store = o.redis and require "streamctl.store.redis"
    self._redis = redis_store and (redis_store.is_connection(o.redis) and o.redis or redis_store.connect(o.redis))
    -- Jitter from OpenSSL, so processes never share one math.random sequence.
    local retry_opts = { random = jitter }
    for k, v in pairs(o.retry or {}) do retry_opts[k] = v end
    if o.retry == false then retry_opts.attempts = 1 end
    self._retry = retry.policy(retry_opts)
    if o.rate_limits ~= false then
      local store = o.rate_limit_store
        or (o.shared_dict and shdict.ratelimit_store(o.shared_dict, { clock = self._monotonic }))
        or (redis_store and redis_store.ratelimit_store(self._redis, { monotonic = self._monotonic }))
      self._limiter = ratelimit.new { clock = self._monotonic, store = store }
    end
    self._nonce = o.nonce or function() return rules.nonce(self) end
    self._nonce_given = o.nonce ~= nil
    local ok, err = rules.configure(self, o)
    if not ok then return fail(err.message or err, err.code) end
    if transport == nil or type(transport) == "string" then
      transport = auto_transport.new(o, transport)
    end
    self._close = type(transport) == "table" and transport.close or nil
    self._check = type(transport) == "table" and transport.check or nil
    local sleep = o.sleep or (type(transport) == "table" and transport.sleep)
      or auto_transport.sleep
    local io
    if type(transport) == "function" then
      io = runner.sync_io(transport, self._monotonic, sleep)
    else
      io = { start = transport.start, poll = transport.poll, now = self._monotonic, sleep = sleep }
    end
    self._engine = engine_for(self, io)
    return self
  end

  return class
end

return M
