--- Temporary credentials and identities shared by the short-lived
-- processes of one user (cron jobs, scripts, the command): files in a
-- directory of the user's own, so that N processes started together make
-- one STS (or metadata, or OIDC) request, and the runs after them none
-- until the credentials' renewal point.
--
-- Where: `dir`, else $STREAMCTL_CREDENTIALS_CACHE, else $XDG_CACHE_HOME
-- (absolute) or ~/.cache, under streamctl/credentials; none without HOME.
-- The directory is made 0700 (and made so when it is not: streamctl.core's
-- private_dir, a symbolic link refused); one another user owns is not used
-- at all (its owner could move one entry over another): said once, and the
-- run fetches its own credentials. Each entry is a file named by the
-- SHA-256 of its key (everything that decides the credentials: the
-- source's kind, role ARN, session name, policy, duration, endpoint and the
-- source's own identity, its secret as a digest, never itself), written
-- whole (a temporary file 0600, fsync, rename: streamctl.core's
-- replace_file) under a lock file beside it (flock: streamctl.core's
-- lock_file) that spans the read, the renewal and the write. The entry
-- records that SHA-256 too, and is served only to its own key: one moved or
-- copied over another's answers nobody.
--
-- A file that is a symbolic link, another user's, writable by others,
-- unreadable, cut short, another key's or not JSON of the right form is not
-- trusted: a miss (the credentials are fetched again and the file
-- replaced), said once through `warn`, never an error that stops a run,
-- never credentials. A lock another process holds past LOCK_WAIT_MS (one
-- stopped with Ctrl-Z, say) leaves the cache out of this run: it fetches
-- its own credentials and writes nothing, said once, naming the holder.
--
-- Expiry by the provider's clock: each entry keeps the skew its writer
-- measured between the provider's clock (an answer's Date header) and its
-- own, and the reader judges the remaining life with it (streamctl.credentials.refresh's
-- `skew`), so a machine whose clock is off neither uses credentials past
-- their expiry nor renews at every run.
--
-- Blocking (a local disk): never used inside nginx, whose workers share
-- their credentials through a lua_shared_dict instead. See docs/credentials.md.
-- @module streamctl.credentials.cache

local core = require "streamctl.core"
local signal = require "streamctl.signal"
local errors = require "streamctl.base.errors"
local json = require "streamctl.base.json"
local xdg = require "streamctl.base.xdg"

local type, tostring, setmetatable, error = type, tostring, setmetatable, error
local format, floor = string.format, math.floor

local M = {}

--- How long a process waits for another's renewal under the lock (ms).
M.LOCK_WAIT_MS = 15000
-- (the wait's slice: how late a Ctrl-C that lands between two of its sleeps is seen)
local LOCK_SLICE_MS = 100
--- The entries' form: 2 records the key it answers (1, before it, is read as a miss).
M.VERSION = 2
--- The most bytes an entry may hold.
M.MAX_BYTES = 16384
--- How far ahead of now an expiry may lie (a day: no source gives longer).
M.MAX_AHEAD = 86400

--- The directory entries go in, from `dir` or the environment; nil when
-- there is none (no HOME).
function M.dir_of(dir, getenv)
  if dir then return dir end
  return xdg.path(getenv or os.getenv, "STREAMCTL_CREDENTIALS_CACHE", "XDG_CACHE_HOME", ".cache",
    "streamctl/credentials")
end

local Cache = {}
Cache.__index = Cache

--- A cache in `opts.dir` (see `dir_of`): made now (0700), or nil and why.
-- @tparam[opt] table opts `dir`, `getenv`, `warn(text)` (said once per file and kind of flaw),
--   `clock` (Unix seconds), `deadline_ms` (the run's: a wait for another's renewal ends with it,
--   counted from now)
function M.new(opts)
  opts = opts or {}
  local dir = M.dir_of(opts.dir, opts.getenv)
  if not dir then return nil, "no directory for the credentials cache (HOME is not set)" end
  -- (the directory is looked at before anything is made in it: one another user owns is left untouched)
  local ok, why, kind = core.private_dir(dir)
  if not ok and kind == "absent" then
    ok, why = core.private_file(dir .. "/.lock") -- (makes the directories, 0700, as an audit log's)
    if ok then ok, why = core.private_dir(dir) end
  end
  if not ok then return nil, why end
  return setmetatable({ dir = dir, warn = opts.warn or function() end, clock = opts.clock or core.now, said = {},
                        links = {}, until_at = opts.deadline_ms and core.monotonic() + opts.deadline_ms / 1000 },
    Cache)
end

-- Says `what` happened to the cache at `path`, and what the run does about it (`then_`: by default
-- an entry ignored, fetched again: its write says if it fails), once per file and finding.
function Cache:_say(path, what, then_)
  local k = path .. "\0" .. what
  if self.said[k] then return end
  self.said[k] = true
  self.warn(format("the credentials cache %s: %s", what, then_ or "ignored, fetched again"))
end

-- The file of `key` (named by its SHA-256), its lock's, and that SHA-256.
function Cache:_paths(key)
  local name = core.sha256_hex(key)
  return self.dir .. "/" .. name .. ".json", self.dir .. "/" .. name .. ".lock", name
end

-- `lock()` and `unlock()` of the lock file `path` (flock, waited for at most LOCK_WAIT_MS, and no
-- longer than the run's deadline), for `store`: a lock that cannot be had (another process holds it
-- all the while, or the file cannot be locked) leaves the cache out for the rest of this run
-- (`store.bypass`: its get() finds nothing, its set() writes nothing), said once; lock() is then
-- true: the run renews on its own. A wait a signal interrupted (Ctrl-C): nil and why, the run
-- being stopped fetches nothing.
function Cache:_locker(path, store)
  local held
  local function lock()
    if store.bypass then return true end
    local wait = M.LOCK_WAIT_MS
    if self.until_at then wait = math.max(0, math.min(wait, floor((self.until_at - core.monotonic()) * 1000))) end
    -- (waited for in slices, the run's Ctrl-C looked at between them: one that lands outside the wait's
    -- sleep, which alone a signal interrupts, would otherwise be seen only when the whole wait ended)
    local lk, why, kind
    local ends = core.monotonic() + wait / 1000
    repeat
      if signal.caught() then return nil, "the wait for the lock on " .. path .. " was interrupted" end
      local left = math.max(0, floor((ends - core.monotonic()) * 1000))
      lk, why, kind = core.lock_file(path, math.min(LOCK_SLICE_MS, left))
    until lk or kind ~= "busy" or left <= LOCK_SLICE_MS
    if not lk and kind == "interrupted" then return nil, tostring(why) end
    -- (a busy lock's message says the last slice's wait: the whole one is the run's)
    if not lk and kind == "busy" then why = tostring(why):gsub("%(waited %d+ ms%)", "(waited " .. wait .. " ms)") end
    if not lk then
      store.bypass = true
      self:_say(path, tostring(why), "not used by this run, which fetches its own credentials and writes none")
      return true
    end
    held = lk
    return true
  end
  local function unlock()
    if held then held:unlock() end
    held = nil
  end
  return lock, unlock
end

-- An entry's table, or nil (absent, not trusted: said; or `store` left out of this run). `id`: the
-- SHA-256 of the key it must answer (its file's name).
function Cache:_read(store, path, id)
  if store.bypass then return nil end
  local text, why, kind = core.read_file(path, M.MAX_BYTES + 1, true)
  if not text then
    if kind ~= "absent" then self:_say(path, why) end
    if kind == "untrusted" and why:find("is a symbolic link$") then self.links[path] = true end
    return nil
  end
  local v = #text <= M.MAX_BYTES and json.decode(text)
  if type(v) ~= "table" or (v.v ~= 1 and v.v ~= M.VERSION) then
    self:_say(path, path .. " is not an entry (cut short, or not streamctl's)")
    return nil
  end
  if v.v ~= M.VERSION then
    self:_say(path, path .. " was written by an older streamctl (it names no key of its own)")
    return nil
  end
  if v.key ~= id then
    self:_say(path, path .. " holds the entry of another key (moved or copied there)")
    return nil
  end
  return v
end

-- Writes `text` whole as the entry at `path` of `store` (nothing while `store` is left out of this
-- run): true, or nil and why (said, with what the next run does, `next_`: a cache that cannot be
-- written is a miss for the next process, never a failed run).
function Cache:_write(store, path, text, next_)
  if store.bypass then return nil, "the credentials cache is not used by this run" end
  local ok, why = core.replace_file(path, text)
  if not ok and self.links[path] then
    -- (a symbolic link in this user's own 0700 directory, found by the read: the link itself removed,
    -- never its target written, and the file made anew)
    os.remove(path)
    ok, why = core.replace_file(path, text)
  end
  if not ok then self:_say(path, tostring(why), "not replaced (the next run " .. next_ .. ")") end
  return ok, why
end

--- The `shared` store of streamctl.credentials.refresh for the credentials
-- of `key`: `get()`, `set(creds)`, `lock()`, `unlock()`, and `from_cache`
-- (true once `get` handed out credentials read from a file).
function Cache:credentials(key)
  if type(key) ~= "string" or key == "" then error("bad argument #1 to 'credentials' (a key)", 2) end
  local path, lock_path, id = self:_paths("credentials\n" .. key)
  local store = { path = path }
  store.lock, store.unlock = self:_locker(lock_path, store)
  function store.get()
    local v = self:_read(store, path, id)
    if not v then return nil end
    if type(v.id) ~= "string" or type(v.secret) ~= "string" or type(v.exp) ~= "number" or v.exp ~= floor(v.exp)
        or (v.token ~= nil and type(v.token) ~= "string") or (v.skew ~= nil and type(v.skew) ~= "number") then
      self:_say(path, path .. " is not an entry of credentials")
      return nil
    end
    if v.issued ~= nil and (type(v.issued) ~= "number" or v.issued > v.exp) then
      self:_say(path, path .. " is not an entry of credentials")
      return nil
    end
    local skew = v.skew or 0
    if v.exp - skew > self.clock() + M.MAX_AHEAD then
      self:_say(path, path .. format(" expires at %s, further ahead than any source gives", core.utc_timestamp(v.exp)))
      return nil
    end
    store.from_cache = true
    -- (the expiry as this machine's clock sees it: the provider's, less the skew its writer measured)
    return { access_key_id = v.id, access_key_secret = core.secret(v.secret), security_token = v.token,
             expiration = v.exp - skew, issued = v.issued and v.issued - skew, from_cache = true,
             provider_expiration = v.exp }
  end
  -- `c` as fetched (its secret still text), `c.skew` what the fetch measured (seconds the provider's
  -- clock is ahead of this machine's); true, or nil and why (said: a cache that cannot be written is
  -- a miss for the next process, never a failed run)
  function store.set(c)
    local skew = c.skew or 0
    local parts = { format('"v":%d', M.VERSION), '"key":' .. json.string(id), '"id":' .. json.string(c.access_key_id),
                    '"secret":' .. json.string(c.access_key_secret) }
    if c.security_token then parts[#parts + 1] = '"token":' .. json.string(c.security_token) end
    parts[#parts + 1] = format('"exp":%d', floor(c.expiration + skew))
    if c.issued then parts[#parts + 1] = format('"issued":%d', floor(c.issued + skew)) end
    parts[#parts + 1] = format('"skew":%d', floor(skew + 0.5))
    return self:_write(store, path, "{" .. table.concat(parts, ",") .. "}\n", "fetches again")
  end
  return store
end

--- A cached identity (STS GetCallerIdentity's answer) of `key`, while the
-- credentials it was asked with hold: `get()` -> the table or nil,
-- `set(who, until)`, and `lock()`, `unlock()` around both (a lock file of
-- its own: the credentials' may be taken while the question is signed).
function Cache:identity(key)
  local path, lock_path, id = self:_paths("identity\n" .. key)
  local store = {}
  store.lock, store.unlock = self:_locker(lock_path, store)
  function store.get()
    local v = self:_read(store, path, id)
    if not v or type(v.until_) ~= "number" or type(v.who) ~= "table" then return nil end
    if v.until_ <= self.clock() then return nil end
    v.who.from_cache = true
    return v.who
  end
  function store.set(who, until_)
    local fields = {}
    for _, k in ipairs { "account_id", "identity_type", "arn", "principal_id", "user_id", "role_id" } do
      if type(who[k]) == "string" then fields[#fields + 1] = json.string(k) .. ":" .. json.string(who[k]) end
    end
    return (self:_write(store, path, format('{"v":%d,"key":%s,"until_":%d,"who":{%s}}\n', M.VERSION,
      json.string(id), floor(until_), table.concat(fields, ",")), "asks again"))
  end
  return store
end

--- The key of a credential source (streamctl.credentials.aliyun.resolve's):
-- everything that decides its credentials, the source's own identity (an
-- AccessKeyId, another role's key, and a SHA-256 of its secret: a wrong
-- secret is a key of its own, never served what the right one fetched) but
-- never a secret. `sts_endpoint(source)`: where its STS is; `imds_base`: the
-- metadata service's address, when not its own.
function M.key_of(source, sts_endpoint, imds_base)
  local t = source.type
  if t == "access_key" or t == "sts" then
    local secret = source.access_key_secret
    local digest = (type(secret) == "string" or core.is_secret(secret))
      and core.digest_hex("sha256", "\n", false, "streamctl credentials cache", secret) or ""
    return t .. ":" .. tostring(source.access_key_id) .. ":" .. digest
  end
  local parts = { t }
  local function add(v) parts[#parts + 1] = v == nil and "" or tostring(v) end
  if t == "ram_role_arn" or t == "oidc_role_arn" then
    add(source.role_arn); add(source.role_session_name); add(source.duration_seconds); add(source.policy)
    add(source.external_id); add(source.oidc_provider_arn); add(source.oidc_token_file)
    add(sts_endpoint(source))
    add(source.source and M.key_of(source.source, sts_endpoint) or "anonymous")
  elseif t == "ecs_ram_role" then
    add(source.role_name); add(imds_base)
  else
    add(source.credentials_uri or source.uri); add(imds_base)
  end
  return table.concat(parts, "\n")
end

--- The holder's `shared` store for `key` (streamctl.credentials.init's
-- `holder`: its options `credentials_cache` and `warn`), or nil: switched
-- off (`credentials_cache = false`), inside nginx (its workers share
-- through the dict), or no directory (said once, and the run goes on
-- uncached). Its `identity`: `identity_of`'s cache.
function M.store_for(opts, getenv, key)
  if key == nil or opts.credentials_cache == false or rawget(_G, "ngx") then return nil end
  local warn = opts.warn or function(text) io.stderr:write("streamctl: warning: ", text, "\n") end
  local cache, why = M.new {
    dir = type(opts.credentials_cache) == "string" and opts.credentials_cache or nil, getenv = getenv,
    warn = warn, clock = opts.clock, deadline_ms = opts.deadline_ms }
  if not cache then
    warn(tostring(why) .. ": temporary credentials are not cached (each run asks for its own)")
    return nil
  end
  local store = cache:credentials(key)
  store.lazy = true
  store.identity = cache:identity(key) -- (whoami's answer, while these credentials hold: M.identity)
  return store
end


--- The identity of `holder`'s credentials (`ask()`: STS GetCallerIdentity),
-- cached with them: asked and written under the identity's lock, so runs
-- started together ask once; kept until the credentials expire.
function M.identity_of(holder, ask)
  local cached = holder._shared.identity
  local locked, why = cached.lock()
  if locked == nil then -- (a wait Ctrl-C interrupted: nothing asked)
    return nil, errors.new { provider = "aliyun", code = "CredentialsUnavailable", kind = "auth", retryable = false,
                             message = "the identity could not be had: " .. tostring(why) }
  end
  local who = cached.get()
  if not who then
    local err
    who, err = ask()
    local st = who and holder:state()
    if st and st.expiration then cached.set(who, st.expiration) end
    if not who then
      cached.unlock()
      return nil, err
    end
  end
  cached.unlock()
  return who
end

return M
