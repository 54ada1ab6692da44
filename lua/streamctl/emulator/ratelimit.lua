-- Per-account, per-action rate limiting: one token bucket per key.
--
-- Algorithm (token bucket, real time, never the pinned emulator clock):
--   * a bucket is created full: tokens = capacity = qps;
--   * before each request it refills: tokens = min(capacity, tokens + elapsed * qps),
--     elapsed being the real seconds since the bucket was last looked at;
--   * a request that finds tokens >= 1 takes one token and is accepted;
--   * otherwise it is throttled and takes nothing; the answer carries
--     retry_after_ms = ceil((1 - tokens) / qps * 1000), the time until one token
--     is back.
-- So a client that paces itself at `qps` requests per second is never throttled,
-- a burst of up to `qps` requests after an idle second is accepted at once, and a
-- calendar second can therefore show up to about 2 * qps accepted requests (the
-- burst plus the refill) in the per-second counters.
--
-- Keys are built by the callers: "<account>\0<action>" (Aliyun) and
-- "<AppId>\0<action>" (ZEGO). State lives in this module (single worker).

local ceil = math.ceil
local min = math.min

local _M = {}

local buckets = {}

-- Returns true when the request may proceed; false and retry_after_ms otherwise.
-- qps <= 0 or nil means unlimited.
function _M.take(key, qps, now)
    if not qps or qps <= 0 then
        return true
    end
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

function _M.reset()
    buckets = {}
end

return _M
