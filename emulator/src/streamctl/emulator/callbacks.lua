-- The callbacks (webhooks) the emulator sends, as the providers do: the
-- delivery of each one, its retries, its request-log entries and the pending
-- list. What is sent is built elsewhere (aliyun_notify.lua: stream ingest
-- callbacks; task_events.lua: pull-to-push task callbacks; zego_streams.lua:
-- ZEGO stream callbacks); the signatures are here, over nginx-lua's own
-- primitives (ngx.md5, ngx.sha1_bin).
--
-- A delivery (M.enqueue) is one event to one URL:
--   { provider = "aliyun"|"zego", event = "publish"|..., method = "GET"|"POST",
--     url = "<the whole URL>", delays = { s, ... } (the wait before each retry:
--     #delays retries at most; {} none), timeout_ms,
--     success = function(status) -> bool,
--     prepare = function(now, attempt) -> { headers = {{name, value}, ...},
--       body = "...", log_headers = {...}, log_payload = {...} },
--     subject = { ... } (what the event is about, for the log and the state) }
-- prepare runs before each attempt, with the emulator time of that send, so
-- each send carries its own timestamp (and, ZEGO, its own nonce and
-- signature). Attempts run in ngx.timer.at timers, each over a fresh
-- connection (callback_http.lua); at most MAX_INFLIGHT at once, the others
-- wait for a free one (the ticker, server.lua, also starts waiting ones).
-- A retry is due `delays[n]` seconds (real time) after attempt n ended.
--
-- Each attempt appends one request-log entry:
--   { "provider", "kind": "callback", "action": "callback:<event>", "event",
--     "delivery": id, "attempt": n, "max_attempts": n, "method", "url",
--     "time" (emulator time of the send), "real_time", "duration_ms",
--     "status" (the HTTP status of the reply, when one came) | "error",
--     "verdict": "ok" | "failed", "retry_in_ms" (a retry follows) | "final": true
--     (given up), "headers" / "payload" (what was sent, signatures as "***"),
--     and the subject's fields ("stream", "task_id", "stream_id", ...) }
-- No key or secret enters it (the signatures derived from them neither).
--
-- Pending deliveries (GET /_emulator/state "callbacks"): those neither
-- delivered nor given up. POST /_emulator/reset drops them: a send under way
-- ends, is not logged and is not retried.
--
-- A delivery sent again (M.again, POST /_emulator/callbacks): the strictest
-- reading of "at least once", which neither provider's page rules out: the
-- request of a delivery's last attempt, byte for byte (its timestamp,
-- nonce and signature as they were), sent once more, at any time after.
-- The last KEPT deliveries' requests are kept for it; the attempt is logged
-- as the others, with "again": true.

local requestlog = require "streamctl.emulator.requestlog"
local clock = require "streamctl.emulator.clock"
local http = require "streamctl.emulator.callback_http"
local encoding = require "streamctl.emulator.encoding"
local json = require "streamctl.emulator.json"

local ngx = ngx
local ngx_md5, ngx_sha1_bin, timer_at, ngx_log, ngx_ERR = ngx.md5, ngx.sha1_bin, ngx.timer.at, ngx.log, ngx.ERR

local pairs, ipairs, pcall, tostring = pairs, ipairs, pcall, tostring
local floor, random = math.floor, math.random
local sort, concat, remove = table.sort, table.concat, table.remove
local format = string.format

local M = {}

-- At most this many deliveries pending (more are dropped, and logged), and
-- this many connections open at once.
M.MAX_PENDING = 1000
M.MAX_INFLIGHT = 16

local pending = {}      -- id -> delivery
local sent = {}         -- id -> the last attempt's request, for M.again (the last KEPT deliveries)
local sent_order = {}   -- their ids, oldest first
M.KEPT = 100
local waiting = {}      -- deliveries due, waiting for a free connection (FIFO)
local next_id = 1
local generation = 1
local inflight = 0
local counters

local function new_counters()
  return {
    aliyun = { attempts = 0, delivered = 0, failed = 0, dropped = 0 },
    zego = { attempts = 0, delivered = 0, failed = 0, dropped = 0 },
  }
end
counters = new_counters()

-------------------------------------------------------------------------------
-- Signatures

-- Alibaba Cloud's ALI-LIVE-SIGNATURE: lowercase hex MD5 of
-- "<domain>|<timestamp>|<NotifyAuthKey>" (the ingest domain the callback is
-- configured on, the ALI-LIVE-TIMESTAMP value as sent).
function M.aliyun_signature(domain, timestamp, key)
  return ngx_md5(domain .. "|" .. timestamp .. "|" .. key)
end

-- ZEGO's signature: lowercase hex SHA-1 of the callback secret, the
-- timestamp and the nonce (as sent), sorted as strings and concatenated.
function M.zego_signature(secret, timestamp, nonce)
  local parts = { secret, timestamp, nonce }
  sort(parts)
  return encoding.hex(ngx_sha1_bin(concat(parts)))
end

-- A random nonce of decimal digits (ZEGO's "random number").
function M.digits_nonce()
  return format("%d", random(100000000, 999999999))
end

-------------------------------------------------------------------------------
-- Delivery

local function log_entry(d, attempt, now, real, fields)
  local entry = {
    provider = d.provider, kind = "callback", action = "callback:" .. d.event, event = d.event,
    delivery = d.id, attempt = attempt, max_attempts = #d.delays + 1,
    method = d.method, url = d.url, time = now, real_time = real,
  }
  for k, v in pairs(d.subject or {}) do
    entry[k] = v
  end
  for k, v in pairs(fields) do
    entry[k] = v
  end
  requestlog.append(entry)
end

local run

-- Schedules d's next attempt in `delay` seconds; false when no timer could be made.
local function schedule(d, delay)
  d.next_at = clock.real_now() + delay
  local ok, err = timer_at(delay, run, d)
  if not ok then
    ngx_log(ngx_ERR, "emulator: callback ", d.id, ": cannot schedule: ", tostring(err))
    pending[d.id] = nil
    counters[d.provider].dropped = counters[d.provider].dropped + 1
    log_entry(d, d.attempts + 1, clock.now(), clock.real_now(), {
      verdict = "failed", final = true, error = "not scheduled: " .. tostring(err),
    })
    return false
  end
  return true
end

-- One attempt of d (in a timer).
local function attempt(d)
  d.attempts = d.attempts + 1
  local n = d.attempts
  local now, real = clock.now(), clock.real_now()
  d.state = "sending"
  local url, perr = http.parse_url(d.url)
  local req = d.prepare(now, n)
  local status, err
  if url then
    status, err = http.request({ method = d.method, url = url, headers = req.headers, body = req.body },
      d.timeout_ms)
  else
    err = "bad URL: " .. perr
  end
  if d.generation ~= generation then
    return -- reset while sending: dropped, not logged
  end
  local ok = status ~= nil and d.success(status)
  local c = counters[d.provider]
  c.attempts = c.attempts + 1
  local fields = {
    status = status, error = err, verdict = ok and "ok" or "failed",
    duration_ms = floor((clock.real_now() - real) * 1000 + 0.5),
    headers = req.log_headers, payload = req.log_payload,
  }
  d.last_status, d.last_error = status, err
  if url and not sent[d.id] then
    sent_order[#sent_order + 1] = d.id
    if #sent_order > M.KEPT then sent[remove(sent_order, 1)] = nil end
  end
  if url then sent[d.id] = { d = d, url = url, req = req } end
  if ok then
    pending[d.id] = nil
    c.delivered = c.delivered + 1
  elseif n <= #d.delays then
    fields.retry_in_ms = floor(d.delays[n] * 1000 + 0.5)
    d.state = "retry"
  else
    fields.final = true
    pending[d.id] = nil
    c.failed = c.failed + 1
  end
  log_entry(d, n, now, real, fields)
  if fields.retry_in_ms then
    schedule(d, d.delays[n])
  end
end

-- Starts one waiting delivery's attempt, if a connection is free.
local function start_waiting()
  while inflight < M.MAX_INFLIGHT and #waiting > 0 do
    local d = remove(waiting, 1)
    if d.generation == generation and pending[d.id] then
      schedule(d, 0)
      return
    end
  end
end

run = function(premature, d)
  if premature or d.generation ~= generation or not pending[d.id] then
    return
  end
  if inflight >= M.MAX_INFLIGHT then
    d.state = "waiting"
    waiting[#waiting + 1] = d
    return
  end
  inflight = inflight + 1
  local ok, err = pcall(attempt, d)
  inflight = inflight - 1
  if not ok then
    ngx_log(ngx_ERR, "emulator: callback ", d.id, " failed: ", tostring(err))
    if d.generation == generation then
      pending[d.id] = nil
    end
  end
  start_waiting()
end

local function pending_count()
  local n = 0
  for _ in pairs(pending) do
    n = n + 1
  end
  return n
end

-- Queues a delivery (see the top of this file) and starts its first attempt.
-- Returns its id, or nil when too many are pending (the drop is logged).
function M.enqueue(spec)
  local d = {
    id = next_id, generation = generation, provider = spec.provider, event = spec.event,
    method = spec.method or "POST", url = spec.url, delays = spec.delays or {},
    timeout_ms = spec.timeout_ms or 5000, success = spec.success, prepare = spec.prepare,
    subject = spec.subject, attempts = 0, state = "queued", created_at = clock.now(),
  }
  next_id = next_id + 1
  if pending_count() >= M.MAX_PENDING then
    counters[d.provider].dropped = counters[d.provider].dropped + 1
    log_entry(d, 1, clock.now(), clock.real_now(), {
      verdict = "failed", final = true, error = "dropped: " .. M.MAX_PENDING .. " deliveries pending",
    })
    return nil
  end
  pending[d.id] = d
  if not schedule(d, 0) then
    return nil
  end
  return d.id
end

-- The send of M.again (in a timer): logged as the delivery's attempts are.
local function send_again(premature, k, gen)
  if premature or gen ~= generation then return end
  local d, req = k.d, k.req
  local now, real = clock.now(), clock.real_now()
  local status, err = http.request({ method = d.method, url = k.url, headers = req.headers, body = req.body },
    d.timeout_ms)
  if gen ~= generation then return end -- (reset while sending: not logged)
  log_entry(d, d.attempts, now, real, { again = true, status = status, error = err,
    verdict = (status ~= nil and d.success(status)) and "ok" or "failed",
    duration_ms = floor((clock.real_now() - real) * 1000 + 0.5), headers = req.log_headers,
    payload = req.log_payload, final = true })
end

--- Sends delivery `id`'s last request once more, byte for byte (see the top
-- of this file), in a timer; the send is logged (`"again": true`): 202 and
-- { delivery }; 404 when no such delivery was sent (or it is no longer
-- kept); 503 when no timer could be made.
function M.again(id)
  local k = sent[id]
  if not k then return 404, { error = "callbacks: no delivery " .. tostring(id) .. " was sent (the last "
    .. M.KEPT .. " are kept)" } end
  local ok, err = timer_at(0, send_again, k, generation)
  if not ok then return 503, { error = "callbacks: cannot schedule: " .. tostring(err) } end
  return 202, { delivery = id }
end

-- Called by the ticker: starts deliveries waiting for a connection.
function M.tick()
  start_waiting()
end

-- The pending deliveries (oldest first) and the counters, for the state.
function M.snapshot()
  local ids = {}
  for id in pairs(pending) do
    ids[#ids + 1] = id
  end
  sort(ids)
  local list = json.array()
  local real = clock.real_now()
  for _, id in ipairs(ids) do
    local d = pending[id]
    local v = {
      id = d.id, provider = d.provider, event = d.event, action = "callback:" .. d.event, url = d.url,
      state = d.state, attempts = d.attempts, max_attempts = #d.delays + 1, created_at = d.created_at,
      last_status = d.last_status, last_error = d.last_error,
      next_attempt_in_ms = d.state ~= "sending" and d.next_at
        and math.max(0, floor((d.next_at - real) * 1000 + 0.5)) or nil,
    }
    for k, x in pairs(d.subject or {}) do
      v[k] = x
    end
    list[#list + 1] = v
  end
  return { pending = list, counters = counters, inflight = inflight }
end

-- Drops every pending delivery (a send under way finishes unlogged).
function M.reset()
  generation = generation + 1
  pending, waiting, sent, sent_order = {}, {}, {}, {}
  counters = new_counters()
end

return M
