-- Per-account, per-action rate limiting, with two algorithms to choose from
-- (config.lua: "rate_limiter" per provider, account and app).
--
-- The providers publish "N per second" and never say how they count, and the
-- project's rule is that where a document is silent the emulator is strict and
-- the client must pass anyway. So the default is the strictest reading:
--
-- "sliding_window" (default):
--   * at most N requests are ACCEPTED within any window of 1 s: a request
--     arriving at time t is refused when N accepted requests arrived in
--     (t - 1 s, t] (an arrival exactly 1 s old has left the window);
--   * a refused request takes nothing (it does not enter the window);
--   * its retry_after_ms is the time until the oldest accepted arrival in the
--     window leaves it: ceil((oldest + 1 s - t) * 1000), at least 1;
--   * memory: a ring of at most N arrival times per key (entries are only
--     added by accepted requests, and the ring never grows past N).
--   N is floor(qps). A qps below 1 cannot mean "0 per second": it allows one
--   request per 1 / qps seconds (N = 1, window 1 / qps). A non-integer qps
--   above 1 (2.5) allows floor(qps) (2) in any second, the strict reading.
--
-- "sliding_window_closed": the same, the window closed at both ends, the
--   strictest reading of all: a request at t is refused when N accepted
--   requests arrived in [t - 1 s, t] (an arrival exactly 1 s old still
--   counts: on a clock of nanoseconds, a client must keep N + 1 requests
--   more than a second apart, never exactly one); its retry_after_ms is at
--   least the time until the oldest has left, plus 1 ms.
--
-- "token_bucket" (the emulator's earlier, more lenient model):
--   * a bucket is created full: tokens = capacity = qps;
--   * before each request it refills: tokens = min(capacity, tokens + elapsed * qps);
--   * a request that finds tokens >= 1 takes one token and is accepted;
--   * otherwise it is throttled and takes nothing; the answer carries
--     retry_after_ms = ceil((1 - tokens) / qps * 1000), the time until one token
--     is back.
--   A client pacing at exactly qps is never throttled, but a burst of qps after
--   an idle second plus the refill lets about 2 * qps through within one second,
--   which a sliding window refuses.
--
-- Time: both run on the limiter's own clock, M.now(), read afresh when each
-- request reaches the limiter (never nginx's cached event-loop time, never the
-- pinnable emulator clock): clock_gettime(CLOCK_MONOTONIC) through LuaJIT's FFI,
-- nanosecond resolution, elapsed real time that wall-clock steps cannot move
-- backwards (which would freeze or free a window). ngx.now() only has
-- millisecond resolution, and two arrivals 0.9996 s apart could then read
-- exactly 1 s apart and both pass; it is the fallback when the FFI is missing
-- (ngx.update_time() first, so the time is still fresh). Reading the time at
-- the limiter rather than at nginx's request start keeps the arrivals of one
-- key in order (one worker runs requests one at a time between yields), which
-- the ring relies on.
--
-- M.now() counts from its first reading (the emulator's start: the config's
-- strangers are set then), so its values stay small (JSON keeps 14 digits):
-- the request log's rate_limit_time and the strangers' set_at are on this
-- clock.
--
-- Strangers (strangers.lua): a key may have a stranger, calls nobody sends
-- that the limiter counts. take() first replays the stranger's arrivals due
-- up to now, each at its own time and through the same algorithm, then takes
-- the real request; settle() replays without one (the control endpoints, so
-- the counters they show are current).
--
-- Run-time caps: set_cap(key, qps) replaces the qps the caller gives for that
-- key (POST /_emulator/qps: an account whose real cap is below the page's);
-- reset() drops them. A window whose size changes keeps its newest arrivals
-- (up to the new size): only the N-th newest decides the next refusal, so a
-- cap lowered mid-run counts what was already accepted.
--
-- Keys are built by the callers: one per budget and action. Aliyun's budget
-- is the account's ("uid\0<UID>\0<action>" for a key configured with an
-- account UID, shared by every key of that UID; "key\0<AccessKeyId>\0<action>"
-- for a key that is an account of its own: aliyun_gateway.lua); ZEGO's is the app's
-- ("<AppId>\0<action>"). State lives in this module (single worker).
-- This module needs no nginx API at load time, so config.lua can use
-- ALGORITHMS outside nginx too.

local strangers = require "streamctl.emulator.strangers"

local ceil, floor, min = math.ceil, math.floor, math.min
local pcall, require, tonumber, tostring, error = pcall, require, tonumber, tostring, error

local M = {}

M.DEFAULT = "sliding_window"

local CLOCK_MONOTONIC = 1 -- Linux

-- The limiter clock: seconds (arbitrary origin), as precise as the host allows.
local precise_now
do
  local has_ffi, ffi = pcall(require, "ffi")
  if has_ffi then
    -- A private type and name (bound to the libc symbol with __asm__), so no
    -- other module's declaration of struct timespec or clock_gettime clashes.
    local declared = pcall(ffi.cdef, [[
      typedef struct { long tv_sec; long tv_nsec; } streamctl_emulator_timespec;
      int streamctl_emulator_clock_gettime(int clk_id, streamctl_emulator_timespec *tp)
        __asm__("clock_gettime");
    ]])
    if declared then
      local ts = ffi.new("streamctl_emulator_timespec")
      local C = ffi.C
      local ok, rc = pcall(function() return C.streamctl_emulator_clock_gettime(CLOCK_MONOTONIC, ts) end)
      if ok and rc == 0 then
        precise_now = function()
          C.streamctl_emulator_clock_gettime(CLOCK_MONOTONIC, ts)
          return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
        end
        M.CLOCK = "clock_gettime(CLOCK_MONOTONIC)"
      end
    end
  end
end

if not precise_now then
  M.CLOCK = "ngx.now"
  precise_now = function()
    local ngx = ngx
    ngx.update_time()
    return ngx.now()
  end
end

-- The origin: the first reading (read lazily: outside nginx, without the
-- FFI, there is no clock to read at load time).
local origin

function M.now()
  local t = precise_now()
  if not origin then
    origin = t
  end
  return t - origin
end

local buckets = {}
local windows = {}
local caps = {}

local function token_bucket(key, qps, now)
  local b = buckets[key]
  if not b then
    b = { tokens = qps, last = now }
    buckets[key] = b
  else
    local elapsed = now - b.last
    if elapsed > 0 then
      b.tokens = min(qps, b.tokens + elapsed * qps)
    end
    b.last = now
  end
  if b.tokens >= 1 then
    b.tokens = b.tokens - 1
    return true
  end
  return false, ceil((1 - b.tokens) / qps * 1000)
end

-- The ring of a key: w[1..size] hold arrival times, w.head the oldest's slot,
-- w.count how many are in use (oldest to newest, wrapping around). A ring of
-- another size or span (the qps changed) holds the newest arrivals of `w`
-- (nil: none) that fit.
local function resized(w, size, span)
  local out = { size = size, span = span, head = 1, count = 0 }
  if w then
    local keep = min(w.count, size)
    for i = w.count - keep + 1, w.count do
      out.count = out.count + 1
      out[out.count] = w[(w.head + i - 2) % w.size + 1]
    end
  end
  return out
end

local function sliding(key, qps, now, closed)
  local size, span = floor(qps), 1
  if size < 1 then
    size, span = 1, 1 / qps
  end
  local w = windows[key]
  if not w or w.size ~= size or w.span ~= span then
    w = resized(w, size, span)
    windows[key] = w
  end
  local head, count = w.head, w.count
  -- Arrivals at or before now - span have left (now - span, now]; closed,
  -- only those before it ([now - span, now]).
  local edge = now - span
  while count > 0 and (w[head] < edge or not closed and w[head] == edge) do
    head = head % size + 1
    count = count - 1
  end
  w.head = head
  if count < size then
    w[(head + count - 1) % size + 1] = now
    w.count = count + 1
    return true
  end
  w.count = count
  local wait = ceil((w[head] + span - now) * 1000)
  if closed and wait == (w[head] + span - now) * 1000 then
    wait = wait + 1 -- (at exactly oldest + span it still counts)
  end
  if wait < 1 then
    wait = 1
  end
  return false, wait
end

-- The algorithms by the names the config uses.
M.ALGORITHMS = {
  sliding_window = function(key, qps, now) return sliding(key, qps, now, false) end,
  sliding_window_closed = function(key, qps, now) return sliding(key, qps, now, true) end,
  token_bucket = token_bucket,
}

-- How far back an arrival can matter to a limiter of qps: its window's span.
local function memory(qps)
  if qps < 1 then
    return 1 / qps
  end
  return 1
end

local function algorithm_named(algorithm)
  local take = M.ALGORITHMS[algorithm or M.DEFAULT]
  if not take then
    error("unknown rate limiter " .. tostring(algorithm), 4)  -- take's or settle's caller
  end
  return take
end

-- Replays the stranger of `key` up to now, if it has one. take: the algorithm
-- (nil with qps: unlimited, every arrival accepted).
local function replay(key, qps, take, now)
  if not strangers.get(key) then
    return
  end
  if not take then
    strangers.replay(key, now, nil, 1)
    return
  end
  strangers.replay(key, now, function(t)
    return (take(key, qps, t))
  end, memory(qps))
end

-- The qps a key is limited to: its run-time cap, else the caller's.
local function qps_of(key, qps)
  local cap = caps[key]
  if cap then
    return cap.qps
  end
  return qps
end

-- Counts the stranger of `key` up to now; returns the key's qps (its
-- run-time cap, else the caller's) and its algorithm (nil: unlimited).
local function settled(key, qps, algorithm, now)
  qps = qps_of(key, qps)
  local take = qps and qps > 0 and algorithm_named(algorithm) or nil
  replay(key, qps, take, now)
  return qps, take
end

-- Returns true when the request may proceed; false and retry_after_ms
-- otherwise. qps <= 0 or nil means unlimited (a run-time cap of the key
-- replaces it). algorithm: a name from ALGORITHMS (nil: DEFAULT). now: the
-- limiter clock (default M.now()); the key's stranger's arrivals up to now
-- are counted first.
function M.take(key, qps, algorithm, now)
  now = now or M.now()
  local take
  qps, take = settled(key, qps, algorithm, now)
  if not take then
    return true
  end
  return take(key, qps, now)
end

-- Counts the stranger of `key` up to now (default M.now()) without a request.
function M.settle(key, qps, algorithm, now)
  settled(key, qps, algorithm, now or M.now())
end

-- Run-time caps: set_cap(key, qps, info) (info: what a listing shows of the
-- budget), cap(key) -> { qps, info } or nil, drop_cap(key), caps() -> key -> cap.
function M.set_cap(key, qps, info)
  caps[key] = { qps = qps, info = info }
end

function M.cap(key)
  return caps[key]
end

function M.drop_cap(key)
  local c = caps[key]
  caps[key] = nil
  return c
end

function M.caps()
  return caps
end

-- Drops every window, bucket and run-time cap (strangers are strangers.lua's).
function M.reset()
  buckets = {}
  windows = {}
  caps = {}
end

return M
