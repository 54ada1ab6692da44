--- Temporary credentials that renew themselves before they expire: one
-- holder per credential source (a role assumed through STS, the ECS
-- instance's role, a credentials URI), which every attempt asks for the
-- credentials current when it is signed.
--
-- When, as the official SDKs do (`@alicloud/credentials` and
-- credentials-python: STALE_TIME): credentials with more than `stale_s`
-- (900 s) left are used as they are; with less, the next `get` renews
-- them first, and while that fails the current ones are used until they
-- expire. Credentials that live less than 45 minutes are renewed once a
-- third of their life is left instead (the SDKs' rule would renew
-- 15-minute STS credentials at every call), and an answer that is no newer
-- than the current ones (a metadata service that has not rotated them yet)
-- counts as a failed renewal. A failed renewal is tried again after a
-- backoff with full jitter (1 s doubling to 60 s, each wait a random
-- fraction of its bound), never at every call, so a metadata service or STS
-- that is down is not stormed.
-- Once the credentials have expired and none could be had, `get` fails with
-- an `auth` error naming the source, the expiry and the last failure, until
-- a renewal succeeds.
--
-- One at a time: `get` never starts a second renewal while one is under
-- way in this process; a caller in another coroutine (an nginx request)
-- waits for it through `wait` when it has nothing valid to use, or uses the
-- current credentials. Across processes (nginx workers) the holder takes a
-- `shared` store (streamctl.store.shdict's credential cache: the current
-- credentials and a lock), so one machine renews once.
--
-- Nothing here does I/O: `fetch` does (streamctl.credentials.sources).
-- @module streamctl.credentials.refresh

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local jitter = require "streamctl.base.jitter"

local type, tostring, setmetatable, error, pcall = type, tostring, setmetatable, error, pcall
local format, floor, min = string.format, math.floor, math.min

local M = {}

--- Renew when this many seconds or fewer are left (the official SDKs' 15 minutes).
M.STALE_S = 900
--- The first wait after a failed renewal, and the most it doubles to (seconds).
M.RETRY_MIN_S = 1
M.RETRY_MAX_S = 60
--- How long a caller with nothing valid waits for another's renewal (seconds).
M.WAIT_S = 10
--- The clock's uncertainty (seconds): credentials that arrive with less than
-- this left (already expired, or this machine's clock ahead of the
-- source's) count as a failed renewal, tried again after the backoff; never
-- taken, never fetched again at every call. Five seconds: clocks kept by
-- NTP agree within far less, and the shortest credentials a source hands
-- out (STS: 15 minutes; the emulator's tests: seconds) stay usable.
M.UNCERTAINTY_S = 5

local Holder = {}
Holder.__index = Holder
function Holder.__tostring(h) return "streamctl credentials from " .. h.source end

local function check_credentials(c)
  if type(c) ~= "table" or type(c.access_key_id) ~= "string" or c.access_key_id == ""
      or c.access_key_secret == nil or type(c.expiration) ~= "number" then
    return "fetch returned something that is not credentials (access_key_id, access_key_secret, expiration)"
  end
  return nil
end

--- Makes a holder.
-- @tparam table opts `{ source =, fetch =, account_id =, clock =, random =, sleep =, stale_s =, shared = }`:
--   `source` names it in messages ("the ECS instance's RAM role edge"); `fetch()`
--   returns `{ access_key_id, access_key_secret, security_token, expiration }`
--   (expiration in Unix seconds) or nil and an error; `account_id`, the
--   account UID when the source says it (a role's ARN); `clock` (default
--   core.now), `random` (default OpenSSL), `sleep(s)` (to wait for another's
--   renewal; default none: no waiting), `stale_s` (default STALE_S),
--   `shared` (a store with `get()`, `set(creds)`, `lock()` (true: held, or renew alone; false:
--   another renews; nil and why: fail now), `unlock()`; `lazy`: read only when the credentials
--   held are stale or gone, as streamctl.credentials.cache's files are)
function M.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'new' (opts must be a table)", 2) end
  if type(opts.source) ~= "string" or type(opts.fetch) ~= "function" then
    error("bad argument #1 to 'new' (opts.source must be a string and opts.fetch a function)", 2)
  end
  return setmetatable({
    source = opts.source, account_id = opts.account_id, _fetch = opts.fetch, _clock = opts.clock or core.now,
    _random = opts.random or jitter.unit,
    _sleep = opts.sleep, _stale = opts.stale_s or M.STALE_S, _shared = opts.shared,
    _current = nil, _busy = false, _failures = 0, _next_try = nil, _last_error = nil,
    fetches = 0, -- (how many times fetch was called: for tests and metrics)
  }, Holder)
end

-- The error for "no valid credentials": what the last renewal here met, or
-- (none tried here yet) that another caller's renewal has not ended.
local function no_credentials(self, now)
  local c = self._current
  local what = c and format("expired at %s", core.utc_timestamp(floor(c.expiration)))
    or "could not be had"
  local why = self._last_error and tostring(self._last_error)
    or format("a renewal by another %s is under way and gave none yet", self._shared and "worker" or "caller")
  local message = format("credentials from %s %s: %s", self.source, what, why)
  if self._next_try and self._next_try > now then
    message = message .. format(" (next try in %.1f s)", self._next_try - now)
  end
  return errors.new { provider = "aliyun", code = "CredentialsUnavailable", kind = "auth", message = message,
                      retryable = false }
end

-- One renewal, by this caller: updates the holder; true, or nil (the failure kept).
-- Whether `c` can still sign at `now` (a margin of a second: a request
-- signed in its last second may arrive after it).
local function valid(c, now)
  return c ~= nil and now < c.expiration - 1
end

-- Takes `c` as the current credentials, at `now`: they are renewed once a
-- third of their lifetime or `stale_s`, whichever is less, is left (so
-- credentials that live 15 minutes, STS's shortest, are not renewed at
-- every call).
local function take(self, c, now)
  self._current = c
  -- (a third of their whole life: from when they were had, which a shared store keeps, else from now)
  self._renew_at = c.expiration - min(self._stale, (c.expiration - (c.issued or now)) / 3)
  self._from_cache = c.from_cache == true
end

local function renew(self, now)
  self._busy = true
  self.fetches = self.fetches + 1
  local ok, creds, err = pcall(self._fetch)
  self._busy = false
  if ok and creds then
    local why = check_credentials(creds)
    local current = self._current
    if not why and creds.expiration - now < M.UNCERTAINTY_S then
      -- arrived expired, or too close to it for the clock's uncertainty: a failed renewal (backoff)
      why = format("the source gave credentials that %s at %s (this machine's clock says %s; less than %d s "
        .. "left is taken as none)", creds.expiration <= now and "expired" or "expire",
        core.utc_timestamp(floor(creds.expiration)), core.utc_timestamp(floor(now)), M.UNCERTAINTY_S)
    elseif not why and current and creds.expiration <= current.expiration and valid(current, now) then
      -- the source has not renewed them yet (the metadata service rotates on its own schedule): try again later
      why = "the source gave no newer credentials yet"
    end
    if not why then
      creds.issued = creds.issued or now
      -- the shared store keeps the text (other workers need it); this holder, a streamctl.secret
      if self._shared then self._shared.set(creds) end
      if type(creds.access_key_secret) == "string" then
        creds = { access_key_id = creds.access_key_id, access_key_secret = core.secret(creds.access_key_secret),
                  security_token = creds.security_token, expiration = creds.expiration, issued = creds.issued }
      end
      take(self, creds, now)
      self._failures, self._next_try, self._last_error = 0, nil, nil
      return true
    end
    err = why
  elseif not ok then
    err = creds
  end
  self._failures = self._failures + 1
  local bound = min(M.RETRY_MAX_S, M.RETRY_MIN_S * 2 ^ (self._failures - 1))
  self._next_try = now + bound * self._random()
  self._last_error = err
  return nil
end


--- The credentials to sign with now: `{ access_key_id, access_key_secret,
-- security_token, expiration }` (one table, never changed: id, secret and
-- token always from the same renewal), or nil and an `auth` error.
function Holder:get()
  local now = self._clock()
  local shared = self._shared
  -- (a `lazy` store, a file, is read only when the credentials held here are stale or gone: not at every call)
  if shared and not (shared.lazy and valid(self._current, now) and now < self._renew_at) then
    local c = shared.get()
    if c and (not self._current or c.expiration > self._current.expiration) then take(self, c, now) end
  end
  local c = self._current
  if valid(c, now) and now < self._renew_at then return c end
  -- stale or gone: renew, unless another renewal is under way or the backoff says wait
  if not self._busy and not (self._next_try and self._next_try > now) then
    -- (lock(): true, held or to renew alone; false, another renews: wait below; nil and why, it cannot
    -- be waited for, a wait Ctrl-C interrupted: nothing fetched)
    local locked, why = true, nil
    if shared then locked, why = shared.lock() end
    if locked == nil then
      return nil, errors.new { provider = "aliyun", code = "CredentialsUnavailable", kind = "auth", retryable = false,
                               message = format("credentials from %s could not be had: %s", self.source,
                                 tostring(why)) }
    end
    if locked then
      -- (another process may have renewed while this one waited for the lock)
      local fresh = shared and shared.get()
      if fresh and valid(fresh, now) and (not self._current or fresh.expiration > self._current.expiration) then
        take(self, fresh, now)
      else
        renew(self, now)
      end
      if shared then shared.unlock() end
      c = self._current
      if valid(c, now) then return c end
      return nil, no_credentials(self, now)
    end
  end
  if valid(c, now) then return c end
  -- nothing valid: wait for the renewal under way (here or in another process), within WAIT_S
  if self._sleep and (self._busy or shared) then
    local waited = 0
    while waited < M.WAIT_S do
      self._sleep(0.05)
      waited = waited + 0.05
      now = self._clock()
      if shared then
        local s = shared.get()
        if s and valid(s, now) and (not self._current or s.expiration > self._current.expiration) then
          take(self, s, now)
        end
      end
      if valid(self._current, now) then return self._current end
      if not self._busy and not shared then break end
    end
  end
  return nil, no_credentials(self, now)
end

--- What the holder knows, for `whoami` and metrics (never a secret).
function Holder:state()
  local c = self._current
  return { source = self.source, access_key_id = c and c.access_key_id, expiration = c and c.expiration,
           fetches = self.fetches, failures = self._failures, next_try = self._next_try,
           last_error = self._last_error and tostring(self._last_error) or nil,
           from_cache = c and self._from_cache or nil, cache = self._shared and self._shared.path or nil }
end

return M
