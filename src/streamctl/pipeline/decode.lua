--- The decode step of a call, the same for both providers: an attempt's
-- answer read by its provider's `decode` (or its transport failure made an
-- error object), with nothing the request carried that is secret shown; and
-- the clock corrected from the answer's Date when the provider said the
-- request's time was wrong (streamctl.pipeline.client hands both to the
-- engine).
-- @module streamctl.pipeline.decode

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local redact = require "streamctl.base.redact"
local retry = require "streamctl.engine.retry"
local spans = require "streamctl.pipeline.spans"

local type, ipairs, pairs, pcall, tostring = type, ipairs, pairs, pcall, tostring
local format, match = string.format, string.match
local floor = math.floor

local M = {}

--- The largest clock correction the client makes, in seconds: a response's
-- Date further than a day from the local clock is taken for a broken Date,
-- never for the time (a Date of 9999-12-31 would otherwise sign every later
-- request in that year).
M.MAX_CLOCK_CORRECTION = 24 * 3600

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Parses an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT") into Unix seconds;
-- nil for anything else.
function M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, hh, mm, ss = match(s, "^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return core.parse_utc_timestamp(format("%s-%02d-%sT%s:%s:%sZ", y, MONTHS[mon], d, hh, mm, ss))
end

--- Reads `attempt`'s answer `res` for `client`, or wraps its transport
-- failure `terr`: the result, or nil and the error object; nothing it
-- returns shows a secret (the client's, or what the signed request hid).
function M.attempt(client, attempt, res, terr)
  local rules, action = client._rules, attempt.action
  local hidden = attempt.hidden or {}
  for _, v in ipairs(rules.secrets(client)) do hidden[#hidden + 1] = v end
  if not res then
    local err = errors.transport(rules.provider, action, terr, rules.operations[action].idempotent)
    err.message = redact.text(err.message, hidden)
    return nil, err
  end
  if rules.measure_skew then
    -- (the provider's clock, whole seconds, against this one's: within a day, else a broken Date, never kept)
    local date = M.parse_http_date(res.headers and res.headers.date)
    local skew = date and date - client._clock()
    if skew and skew < M.MAX_CLOCK_CORRECTION and skew > -M.MAX_CLOCK_CORRECTION then
      client.server_skew = floor(skew + 0.5)
    end
  end
  local result, derr = rules.decode(client, action, res)
  -- (a look-up's answer its rule cannot prove anything from, e.g. a listing not seen whole: a failed
  -- look-up, said, the call's outcome left unknown and never sent again on it; `recover.unproven`)
  local recover = result ~= nil and attempt.role == "lookup" and attempt.job and attempt.job.recover
  if recover and recover.unproven then
    local uerr = recover.unproven(result, attempt.job.params)
    if uerr then result, derr = nil, uerr end
  end
  if result == nil and derr then
    derr.server_date = derr.server_date or M.parse_http_date(res.headers and res.headers.date)
    derr.message = redact.text(derr.message, hidden)
  elseif type(result) == "table" and #hidden > 0 then
    redact.answer(result, hidden, res.body) -- (an answer that quotes the request shows none of it either)
  end
  return result, derr
end

--- Corrects `client`'s clock from a clock-skew error `err` (the engine asks
-- on such an error only): from the answer's Date, and only within
-- MAX_CLOCK_CORRECTION; otherwise the error stands, saying why. Returns
-- whether the clock was corrected.
function M.correct_clock(client, err)
  local offset = retry.clock_offset(err, client._clock())
  if not offset or offset > M.MAX_CLOCK_CORRECTION or offset < -M.MAX_CLOCK_CORRECTION then
    err.message = (err.message or "") .. "; the clock was not corrected: the response's Date is "
      .. (offset and "more than a day from the local clock" or "missing")
    return false
  end
  client.clock_offset = offset
  return true
end

--- The engine's `observe` for client `self`, whose caller's `on_attempt`
-- hook is told of every attempt (docs/clients.md, "Watching attempts"),
-- each also made a span when the client hands spans over
-- (streamctl.pipeline.spans' observer); an error in the hook never
-- affects the call (the first one is kept in client.on_attempt_error).
function M.observer(self)
  local span = self._spans and spans.observer(self)
  return function(attempt, result, err, seconds, res)
    if span then span(attempt, result, err, seconds, res) end
    local action = attempt.action
    local throttled = err ~= nil and retry.is_throttle(err)
    local cap, room = self._pacer:cap_room(action)
    -- The request as sent and the answer as received, every secret, signature and token redacted: made
    -- when asked (a `--debug`), not for every attempt a metric counts.
    local function wire()
      local req = attempt.req and self:redact(attempt.req)
      local hidden = attempt.hidden or {}
      local answer = res and { status = res.status, headers = {}, body = res.body and redact.text(res.body, hidden) }
      for k, v in pairs(answer and res.headers or {}) do answer.headers[k] = redact.text(tostring(v), hidden) end
      return req, answer
    end
    local ok, herr = pcall(self._on_attempt, {
      provider = self._rules.provider, action = action, role = attempt.role, attempt = attempt.n,
      retry = attempt.n > 1, ok = result ~= nil, seconds = seconds,
      status = res and res.status, code = err and err.code, kind = err and err.kind,
      throttled = throttled, sent = err == nil or err.sent ~= false,
      error = err,
      -- (in a trace: the attempt's span, as its traceparent named it)
      trace_id = attempt.trace and attempt.trace.trace_id, span_id = attempt.span_id,
      -- (the failure this attempt came after, the time it waited for its slot, the room it leaves)
      after_code = attempt.after_code, waited = attempt.waited,
      cap = cap, room = room, wire = wire,
    })
    if not ok and self.on_attempt_error == nil then self.on_attempt_error = tostring(herr) end
  end
end

return M
