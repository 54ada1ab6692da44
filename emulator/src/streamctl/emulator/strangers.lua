-- Strangers: calls on a budget (an Aliyun account's or a ZEGO AppId's, for
-- one Action) that another tool sends, as the real services see them when a
-- console, a script or a second tool shares the account. Nobody sends them:
-- the rate limiter counts them (ratelimit.lua) as if they had arrived.
--
-- A stranger is { rate = R (calls/s, > 0, at most MAX_RATE), burst = B (an
-- integer from 1 to MAX_BURST, default 1) } on one limiter key. Its arrivals
-- come in groups: group k is B arrivals at the same instant t0 + k * (B / R)
-- (k = 0, 1, 2, ...), so B = 1 is a steady R/s and a larger B bursts of B
-- every B / R seconds (mean rate R). t0 is when it was set, on the limiter's
-- clock (ratelimit.now()); the times are on a grid of 2^-20 s (GRID below),
-- t0 rounded down to it, so the first group is due at once.
--
-- Replay (M.replay, from ratelimit.take and ratelimit.settle): the groups due
-- in (last replayed, now] are offered to the key's limiter in time order, each
-- arrival at its own time, exactly as a real request (accepted when there is
-- room, refused taking nothing otherwise); a group's arrivals after its first
-- refusal are refused too without being offered (at one instant nothing
-- leaves a window and no token comes back). ratelimit.take then offers the
-- real request.
--
-- The bound: a key idle for long has many groups due at once. When the oldest
-- due group is more than BOUND tails old (tail: the limiter's memory, 1 s, or
-- 1 / qps for a qps below 1, or the stranger's period if longer; so 10 s for
-- every published cap), only the groups in the last tail, (now - tail, now],
-- are offered; the older ones are "skipped" and split between accepted and
-- throttled in the proportion the offered ones gave (rounded half up). Every
-- real arrival and every earlier stranger arrival is then older than the
-- window, so the offered groups start from an empty window (a full bucket):
-- for the sliding window that is at least as strict on the real request that
-- follows as the whole replay would have been (the window can only hold more
-- of the last tail's arrivals, never fewer); the token bucket may be more
-- lenient (it starts full where a stranger above qps would have kept it low).
-- So a replay offers at most BOUND tails of groups, and memory is one record
-- per key.
--
-- Counters: each stranger counts its accepted, throttled and skipped arrivals
-- (skipped ones are in accepted or throttled too); stats.lua counts them per
-- provider and action as stranger_accepted and stranger_throttled, never as
-- the real requests' accepted and throttled. Strangers never reach the
-- request log.
--
-- Pure Lua (no nginx API): config.lua checks the config's strangers with
-- M.check_config outside nginx too.

local stats = require "streamctl.emulator.stats"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local floor = math.floor
local format = string.format
local sort, concat = table.sort, table.concat

local M = {}

-- A stranger's highest rate: each arrival is replayed one by one, and the
-- published caps are at most 200/s.
M.MAX_RATE = 1000
M.MAX_BURST = 1000000
-- Replay in full up to BOUND tails of groups (see the top of this file).
M.BOUND = 10

local by_key = {}

-- Times on a grid of 2^-20 s (about 1 us): a schedule's arrivals 1 s apart
-- are then exactly 1 s apart (a window's edge is exact), where t0 + k * period
-- in floating point can leave one of them a rounding short of it, and a
-- stranger at exactly the cap would find the window full now and then.
local GRID = 2 ^ 20

local function on_grid(t)
  return floor(t * GRID + 0.5) / GRID
end

-- The time of group k.
local function at(s, k)
  return on_grid(s.t0 + k * s.period)
end

-- A value as a message shows it (JSON's null is "null").
local function shown(v)
  if type(v) == "number" then
    return format("%.14g", v)
  elseif type(v) == "string" then
    return format("%q", v)
  end
  return type(v) == "userdata" and "null" or type(v)
end
M.shown = shown

-- Checks a stranger's rate and burst (other fields are the caller's). prefix
-- names the spec in messages ("aliyun.accounts.LTAIx.strangers.ResumeLiveStream."
-- or "strangers: entry 1: "). Returns { rate, burst }, or nil and the message.
function M.check(spec, prefix)
  local rate, burst = spec.rate, spec.burst
  if type(rate) ~= "number" or not (rate > 0 and rate <= M.MAX_RATE) then
    return nil, format("%srate: expected a number > 0 and at most %d (calls per second), got %s",
      prefix, M.MAX_RATE, shown(rate))
  end
  if burst == nil then
    burst = 1
  elseif type(burst) ~= "number" or burst % 1 ~= 0 or burst < 1 or burst > M.MAX_BURST then
    return nil, format("%sburst: expected an integer from 1 to %d (calls at the same instant), got %s",
      prefix, M.MAX_BURST, shown(burst))
  end
  return { rate = rate, burst = burst }
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = tostring(k)
  end
  sort(out)
  return out
end

-- Checks one entry's "strangers" (Action -> {rate, burst}) and returns them
-- checked. has_limit(action): whether the action has a rate limit for it
-- (limits: where those are, for the message).
local function check_map(v, path, has_limit, limits)
  if type(v) ~= "table" then
    error(path .. ": expected an object of Actions, each {\"rate\": calls per second, \"burst\": n}", 0)
  end
  local out = {}
  for _, action in ipairs(sorted_keys(v)) do
    local p = path .. "." .. action
    local spec = v[action]
    if type(spec) ~= "table" then
      error(p .. ": expected an object {\"rate\": calls per second, \"burst\": n}", 0)
    end
    for _, k in ipairs(sorted_keys(spec)) do
      if k ~= "rate" and k ~= "burst" then
        error(format("%s: unknown key %q (a stranger has rate and burst)", p, k), 0)
      end
    end
    if not has_limit(action) then
      error(p .. ": expected an Action with a rate limit (" .. limits .. ")", 0)
    end
    local s, err = M.check(spec, p .. ".")
    if not s then
      error(err, 0)
    end
    out[action] = s
  end
  return out
end

local function spec_text(s)
  if not s then
    return "not given"
  end
  return format("{\"rate\":%.14g,\"burst\":%d}", s.rate, s.burst)
end

-- The keys of one Aliyun account share its budget: they must give the same
-- strangers, each key compared with the first of its account in sorted order.
local function check_agreement(accounts)
  local first = {}
  for _, ak in ipairs(sorted_keys(accounts)) do
    local a = accounts[ak]
    local other_ak = a.account and first[a.account]
    if a.account and not other_ak then
      first[a.account] = ak
    elseif other_ak then
      local mine, theirs = a.strangers or {}, accounts[other_ak].strangers or {}
      local actions = {}
      for action in pairs(mine) do
        actions[action] = true
      end
      for action in pairs(theirs) do
        actions[action] = true
      end
      for _, action in ipairs(sorted_keys(actions)) do
        local m, t = mine[action], theirs[action]
        if spec_text(m) ~= spec_text(t) then
          error(format("aliyun.accounts.%s.strangers.%s: %s here but %s on %s, another key of account %s; "
            .. "the keys of one account share its budget, so they must give the same strangers (or leave "
            .. "them out)", ak, action, spec_text(m), spec_text(t), other_ak, a.account), 0)
        end
      end
    end
  end
end

-- Checks the "strangers" of every Aliyun account entry and ZEGO app of the
-- built settings (config.lua), replacing each with its checked copy. Raises
-- with a message naming the key.
function M.check_config(cfg)
  for _, p in ipairs({ { cfg.aliyun, "accounts", "aliyun", "key" }, { cfg.zego, "apps", "zego", "app" } }) do
    local section, entries = p[1], p[1][p[2]]
    local limits = format("a key of %s.qps or of this %s's qps", p[3], p[4])
    for _, id in ipairs(sorted_keys(entries)) do
      local e = entries[id]
      if e.strangers ~= nil then
        e.strangers = check_map(e.strangers, p[3] .. "." .. p[2] .. "." .. id .. ".strangers", function(action)
          return (e.qps and e.qps[action] ~= nil) or section.qps[action] ~= nil
        end, limits)
      end
    end
  end
  check_agreement(cfg.aliyun.accounts)
end

-- Sets (or replaces) the stranger of limiter key `key`, from `now` on.
-- spec: M.check's; info: { provider, action, source, and the budget's
-- account, account_uid or app_id } as listings show it. Returns the record.
function M.set(key, spec, info, now)
  local s = {
    key = key, rate = spec.rate, burst = spec.burst, period = spec.burst / spec.rate,
    t0 = floor(now * GRID) / GRID, next = 0,  -- on the grid, never after now: its first group is due
    accepted = 0, throttled = 0, skipped = 0,
    provider = info.provider, action = info.action, source = info.source,
    account = info.account, account_uid = info.account_uid, app_id = info.app_id,
  }
  by_key[key] = s
  return s
end

function M.get(key)
  return by_key[key]
end

function M.remove(key)
  local s = by_key[key]
  by_key[key] = nil
  return s
end

-- Every stranger, sorted by provider, budget and action.
function M.all()
  local out = {}
  for _, s in pairs(by_key) do
    out[#out + 1] = s
  end
  local function order(s)
    return concat({ s.provider, s.account or "", s.account_uid or "", s.app_id or "", s.action }, "\0")
  end
  sort(out, function(a, b) return order(a) < order(b) end)
  return out
end

function M.reset()
  by_key = {}
end

-- The last group due at `now` (its time <= now), -1 before the first.
local function last_due(s, now)
  local k = floor((now - s.t0) / s.period)
  if k < -1 then
    k = -1
  end
  while at(s, k + 1) <= now do
    k = k + 1
  end
  while k >= 0 and at(s, k) > now do
    k = k - 1
  end
  return k
end

-- The first group after `edge` (its time > edge).
local function first_after(s, edge)
  local k = floor((edge - s.t0) / s.period) + 1
  if k < 0 then
    k = 0
  end
  while k > 0 and at(s, k - 1) > edge do
    k = k - 1
  end
  while at(s, k) <= edge do
    k = k + 1
  end
  return k
end

-- Offers groups from..last to offer(t) -> accepted; returns accepted, throttled.
local function offer_groups(s, from, last, offer)
  local burst, accepted, throttled = s.burst, 0, 0
  for k = from, last do
    local t = at(s, k)
    for i = 1, burst do
      if not offer(t) then
        throttled = throttled + burst - i + 1
        break
      end
      accepted = accepted + 1
    end
  end
  return accepted, throttled
end

-- Replays the stranger of `key` up to `now` (see the top of this file).
-- offer(t) -> true when the limiter accepts an arrival at t; nil for an
-- unlimited budget (every arrival accepted). tail: the limiter's memory in
-- seconds. Returns the arrivals accepted and throttled by this replay.
function M.replay(key, now, offer, tail)
  local s = by_key[key]
  if not s then
    return 0, 0
  end
  local first, last = s.next, last_due(s, now)
  if last < first then
    return 0, 0
  end
  local accepted, throttled, skipped
  if not offer then
    accepted, throttled, skipped = (last - first + 1) * s.burst, 0, 0
  else
    if tail < s.period then
      tail = s.period
    end
    local from = first
    if now - at(s, first) > M.BOUND * tail then
      from = first_after(s, now - tail)
      if from > last then
        from = last
      end
    end
    accepted, throttled = offer_groups(s, from, last, offer)
    skipped = (from - first) * s.burst
    if skipped > 0 then
      local share = floor(skipped * accepted / (accepted + throttled) + 0.5)
      accepted, throttled = accepted + share, throttled + skipped - share
    end
  end
  s.next = last + 1
  s.accepted, s.throttled, s.skipped = s.accepted + accepted, s.throttled + throttled, s.skipped + skipped
  stats.count_strangers(s.provider, s.action, accepted, throttled)
  return accepted, throttled
end

-- What a listing shows of a stranger.
function M.snapshot(s)
  return {
    provider = s.provider, account = s.account, account_uid = s.account_uid, app_id = s.app_id,
    action = s.action, rate = s.rate, burst = s.burst, source = s.source, set_at = s.t0,
    next_at = at(s, s.next), arrivals = s.accepted + s.throttled,
    accepted = s.accepted, throttled = s.throttled, skipped = s.skipped,
  }
end

return M
