--- Temporary credentials shared by every worker of one nginx, in a
-- lua_shared_dict (streamctl.store.shdict's `credentials_store`, which
-- checks its arguments and hands them here).
-- @module streamctl.store.shdictcreds

local type, floor, format = type, math.floor, string.format

local M = {}

--- How long a worker may hold a credential renewal's lock, in seconds: a
-- worker that dies renewing frees it for another after this (the metadata
-- service and STS answer within their timeouts, 2 s and 15 s).
M.LOCK_TTL = 30

--- How far ahead (seconds) an entry's expiry may lie: no source gives
-- credentials for longer than 12 hours (STS' DurationSeconds at most
-- 43200); a day is past any of them and any clock's error.
M.MAX_AHEAD = 86400

--- The current temporary credentials of one source and a lock, shared by
-- every worker (streamctl.credentials.refresh's `shared`): so one machine
-- renews once per expiry, whichever worker finds them stale. The entry is
-- JSON holding the secret as it is (shared memory of this nginx only; it
-- is never logged) and expires with the credentials. Its expiry is checked
-- by its rule (whole seconds, at most MAX_AHEAD from now): an entry that
-- breaks it (`inf` kept every worker on credentials never renewed) is
-- dropped, so they are renewed from their source, and said (`log`), naming
-- the entry and its expiry, never the rest.
-- @param dict an ngx.shared dict
-- @tparam string key the source's name (keys: "cred:" .. key, "lock:cred:" .. key)
-- @tparam function log where a dropped entry is said
-- @return `{ get(), set(creds), lock(), unlock() }`
function M.store(dict, key, log)
  local cjson = require "cjson.safe"
  local core = require "streamctl.core"
  local entry, lock = "cred:" .. key, "lock:cred:" .. key
  local cache_text, cache -- (the table last decoded, kept while the text is the same: one table per renewal)
  return {
    get = function()
      local text = dict:get(entry)
      if text == nil then return nil end
      if text == cache_text then return cache end
      local v = cjson.decode(text)
      if type(v) ~= "table" or type(v.id) ~= "string" or type(v.secret) ~= "string" or type(v.exp) ~= "number" then
        return nil
      end
      if not (v.exp == floor(v.exp) and v.exp <= core.now() + M.MAX_AHEAD) then
        dict:delete(entry)
        log(format("streamctl: the shared dict held credentials that cannot be right in %s (their expiry: %s); "
          .. "they were dropped, and are renewed from their source", entry, format("%.0f", v.exp)))
        return nil
      end
      cache_text, cache = text, { access_key_id = v.id, access_key_secret = core.secret(v.secret),
                                  security_token = v.token, expiration = v.exp }
      return cache
    end,
    -- (`c` as fetched: its secret still text, which only this dict keeps)
    set = function(c)
      local text = cjson.encode { id = c.access_key_id, secret = c.access_key_secret, token = c.security_token,
                                  exp = floor(c.expiration) } -- (whole seconds, as every source gives them)
      local ttl = c.expiration - core.now()
      if ttl > 0 then dict:set(entry, text, ttl) end
    end,
    lock = function() return (dict:add(lock, true, M.LOCK_TTL)) == true end,
    unlock = function() dict:delete(lock) end,
  }
end

return M
