--- The callback replay stores of streamctl.edge.callbacks that need no
-- server: one in this process's memory (`memory`), one in an nginx
-- lua_shared_dict (`shdict`), shared by every worker. (Redis' is
-- streamctl.store.redisreplay.) A store's `add(key, ttl, now, begun)`
-- answers true when the key is new (remembered for `ttl` seconds), false
-- when it was seen within its window, or nil, why and a code
-- (ReplayStoreFull, ReplayStoreUnavailable) when it cannot say; `begun`
-- (default `ttl`) is how long ago the callback's window began.
-- @module streamctl.store.replay

local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local floor, format, date = math.floor, string.format, os.date

local M = {}

--- A store in this process's memory: at most `max` callbacks (`opts.max`,
-- else `default_max`) remembered each for its window; when that many are
-- still within theirs, new ones are refused (ReplayStoreFull) rather than
-- forgetting one that could then be replayed. It forgets everything when
-- its process ends: a process's memory is one process's.
function M.memory(opts, default_max)
  local max = (opts and opts.max) or default_max
  if type(max) ~= "number" or max < 1 or max ~= floor(max) then
    error("bad argument #1 to 'memory_replay' (max must be a positive integer)", 3)
  end
  local until_of, queue, head, tail, count = {}, {}, 1, 0, 0
  local store = {}
  function store.add(_, key, ttl, now)
    -- forget what has left its window (oldest first)
    while head <= tail do
      local k = queue[head]
      local t = until_of[k]
      if t and t > now then break end
      if t then until_of[k], count = nil, count - 1 end
      queue[head], head = nil, head + 1
    end
    local t = until_of[key]
    if t and t > now then return false end
    if count >= max then return nil, "the replay store holds " .. max .. " callbacks still within their window" end
    until_of[key], count = now + ttl, count + 1
    tail = tail + 1
    queue[tail] = key
    return true
  end
  return store
end

-- Each dict's memory as this process last saw it: dict -> since.
local seen = setmetatable({}, { __mode = "k" })
local SINCE = "streamctl:cb:@"

local function utc(t) return date("!%Y-%m-%dT%H:%M:%SZ", floor(t)) end

local START = "streamctl:cb:start"

-- A time read from the dict by its rule (a number, 0 to now + 1), or nil.
local function time_in(dict, key, now)
  local t = dict:get(key)
  if type(t) == "number" and t == t and t >= 0 and t <= now + 1 then return t end
  return nil, t
end

--- Marks the moment `dict` began (`now`, seconds of the clock `add` is
-- given: nginx's, ngx.now()), once: call it from init_by_lua, which nginx
-- runs at its start and at every reload; a dict a reload keeps keeps its
-- first mark (`add` never replaces it). The store's memory never begins
-- before it: a callback whose window began before nginx started cannot
-- have been seen by this dict.
function M.shdict_started(dict, now)
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("bad argument #1 to 'shdict_started' (an ngx.shared dict expected)", 2)
  end
  if type(now) ~= "number" or now ~= now or now < 0 then
    error("bad argument #2 to 'shdict_started' (now must be a time in seconds)", 2)
  end
  local ok, err = dict:safe_add(START, now)
  if not ok and err ~= "exists" then return nil, "shared dict: " .. tostring(err) end
  return true
end

-- Since when (seconds of `now`'s clock) `dict` remembers every callback
-- given to it: its entry SINCE (no expiry), checked by its rule (a number,
-- 0 to now + 1). Missing where this process had seen it (evicted by
-- another user of the dict, or deleted), or broken: its memory began now,
-- said by the process that found it. Missing where this process had not:
-- nginx started (a new dict: `nginx -s reload` keeps it) and nothing was
-- given to it yet: its memory began at nginx's start (`shdict_started`),
-- never earlier; or now, said once, when nothing marked the start.
local function since_of(dict, now, log)
  local since, held = time_in(dict, SINCE, now)
  if since then
    seen[dict] = since
    return since
  end
  local lost = held ~= nil or seen[dict] ~= nil
  local v = not lost and time_in(dict, START, now) or now
  local ok, err = dict:safe_set(SINCE, v)
  if not ok then return nil, "shared dict: " .. tostring(err) end
  if lost then
    log(format("streamctl: the shared dict of callbacks seen %s; a callback whose window began before %s is "
      .. "refused (ReplayStoreUnavailable: the provider delivers it again), for at most a window's length after",
      held ~= nil and "held a value that cannot be right (" .. tostring(held):sub(1, 40) .. ")"
      or "lost its memory (evicted by another user of the dict, or deleted)", utc(now)))
  elseif v == now then
    log(format("streamctl: the shared dict of callbacks seen holds no mark of nginx's start "
      .. "(streamctl.edge.callbacks.shdict_started(dict, ngx.now()) in init_by_lua): its memory is taken to "
      .. "begin now, and a callback whose window began before %s is refused (ReplayStoreUnavailable: the "
      .. "provider delivers it again), for at most a window's length after", utc(now)))
  end
  seen[dict] = v
  return v
end

--- A store in a lua_shared_dict (`dict`: ngx.shared.NAME), shared by every
-- worker: `safe_add` with the window as its expiry, so that a full dict
-- refuses (ReplayStoreFull) instead of evicting a remembered callback. A
-- callback whose window began before the dict's memory did (see
-- `since_of`) may have been seen and forgotten: refused
-- (ReplayStoreUnavailable). `opts.log`: where a loss is said (default:
-- nginx's error log, or standard error).
function M.shdict(dict, opts)
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("bad argument #1 to 'shdict_replay' (an ngx.shared dict expected)", 2)
  end
  local log = opts and opts.log or require("streamctl.base.log").warn
  local store = {}
  function store.add(_, key, ttl, now, begun)
    local since, why = since_of(dict, now, log)
    if not since then return nil, why end
    if now - (begun or ttl) < since then
      return nil, format("the shared dict may have forgotten the callbacks seen before %s: this one's window began "
        .. "before then", utc(since)), "ReplayStoreUnavailable"
    end
    local ok, err = dict:safe_add("streamctl:cb:" .. key, true, ttl)
    if ok then return true end
    if err == "exists" then return false end
    return nil, "shared dict: " .. tostring(err)
  end
  return store
end

return M
