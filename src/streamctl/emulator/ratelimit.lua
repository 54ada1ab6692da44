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
-- Keys are built by the callers: one per budget and action. Aliyun's budget
-- is the account's ("uid\0<UID>\0<action>" for a key configured with an
-- account UID, shared by every key of that UID; "key\0<AccessKeyId>\0<action>"
-- for a key that is an account of its own: aliyun_gateway.lua); ZEGO's is the app's
-- ("<AppId>\0<action>"). State lives in this module (single worker).
-- This module needs no nginx API at load time, so config.lua can use
-- ALGORITHMS outside nginx too.

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

if precise_now then
  M.now = precise_now
else
  M.CLOCK = "ngx.now"
  function M.now()
    local ngx = ngx
    ngx.update_time()
    return ngx.now()
  end
end

local buckets = {}
local windows = {}

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
-- w.count how many are in use (oldest to newest, wrapping around).
local function sliding_window(key, qps, now)
  local size, span = floor(qps), 1
  if size < 1 then
    size, span = 1, 1 / qps
  end
  local w = windows[key]
  if not w or w.size ~= size or w.span ~= span then
    w = { size = size, span = span, head = 1, count = 0 }
    windows[key] = w
  end
  local head, count = w.head, w.count
  -- Arrivals at or before now - span have left (now - span, now].
  local edge = now - span
  while count > 0 and w[head] <= edge do
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
  if wait < 1 then
    wait = 1
  end
  return false, wait
end

-- The algorithms by the names the config uses.
M.ALGORITHMS = {
  sliding_window = sliding_window,
  token_bucket = token_bucket,
}

-- Returns true when the request may proceed; false and retry_after_ms
-- otherwise. qps <= 0 or nil means unlimited. algorithm: a name from
-- ALGORITHMS (nil: DEFAULT). now: the limiter clock (default M.now()).
function M.take(key, qps, algorithm, now)
  if not qps or qps <= 0 then
    return true
  end
  local take = M.ALGORITHMS[algorithm or M.DEFAULT]
  if not take then
    error("unknown rate limiter " .. tostring(algorithm), 2)
  end
  return take(key, qps, now or M.now())
end

function M.reset()
  buckets = {}
  windows = {}
end

return M
