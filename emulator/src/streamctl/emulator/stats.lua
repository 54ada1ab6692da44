-- Per-provider, per-action request counters for /_emulator/state.
--
--   counters[action] = {
--     accepted  = n,  -- passed the rate limiter (whatever the operation answered)
--     throttled = n,  -- refused by the rate limiter (Throttling.User / 30002)
--     faulted   = n,  -- answered by an injected fault instead of the operation
--     per_second = { ["<unix second>"] = { accepted = n, throttled = n } },
--     stranger_accepted = n, stranger_throttled = n,  -- a stranger's arrivals
--   }                                                 -- (strangers.lua), once one came
--
-- The providers are aliyun, zego and imds (the ECS metadata service). The
-- endpoints that have no rate limiter (the metadata service's, the
-- credentials URI: aliyun.counters["credentials-uri"]) count "accepted" for
-- an answer of 200 and "refused" for any other, a kind that appears only
-- once counted.
--
-- Seconds are real time (integer part of ngx.now()); only the last
-- KEEP_SECONDS seconds are kept. They are calendar seconds for reading, not
-- the limiter's rule: the default sliding window (ratelimit.lua) caps accepted
-- requests in every 1 s window on its own monotonic clock, so no calendar
-- second shows more than the cap either, while a token bucket can show up to
-- about twice the cap in one.

local floor = math.floor
local pairs, tostring, tonumber = pairs, tostring, tonumber

local KEEP_SECONDS = 600

local M = {}

local function empty()
  return { aliyun = {}, zego = {}, imds = {} }
end

local counters = empty()

local function entry(provider, action)
  local by_action = counters[provider]
  local c = by_action[action]
  if not c then
    c = { accepted = 0, throttled = 0, faulted = 0, per_second = {} }
    by_action[action] = c
  end
  return c
end

local function prune(per_second, now_s)
  for k in pairs(per_second) do
    if tonumber(k) < now_s - KEEP_SECONDS then
      per_second[k] = nil
    end
  end
end

-- kind: "accepted", "throttled", "faulted" (or "refused", see above).
function M.count(provider, action, kind, real_now)
  if not action or action == "" then
    action = "(none)"
  end
  local c = entry(provider, action)
  c[kind] = (c[kind] or 0) + 1
  if kind ~= "accepted" and kind ~= "throttled" then
    return
  end
  local s = floor(real_now)
  local key = tostring(s)
  local ps = c.per_second[key]
  if not ps then
    ps = { accepted = 0, throttled = 0 }
    c.per_second[key] = ps
    prune(c.per_second, s)
  end
  ps[kind] = ps[kind] + 1
end

-- A stranger's arrivals of one replay (strangers.lua): never the real
-- requests' accepted and throttled, and no per_second (they are counted when
-- replayed, not when due).
function M.count_strangers(provider, action, accepted, throttled)
  local c = entry(provider, action)
  c.stranger_accepted = (c.stranger_accepted or 0) + accepted
  c.stranger_throttled = (c.stranger_throttled or 0) + throttled
end

function M.snapshot(provider)
  return counters[provider]
end

function M.reset(provider)
  if provider then
    counters[provider] = {}
  else
    counters = empty()
  end
end

return M
