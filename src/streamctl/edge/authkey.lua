--- Alibaba Cloud Live's URL signing, type A: the `auth_key` parameter of
-- ingest and playback URLs, made and checked.
--
--   auth_key = timestamp "-" rand "-" uid "-" md5hash
--   md5hash  = MD5(URI "-" timestamp "-" rand "-" uid "-" key), lowercase hex
--
-- The URI is the path alone (`/AppName/StreamName`, `/app/stream.flv`):
-- scheme, host and query are not signed. `key` is the domain's primary or
-- secondary key (the ingest domain's for ingest URLs, the streaming
-- domain's for playback); both are valid at once, which is how a key is
-- rotated, so `verify` takes either.
--
-- What `timestamp` means: the pages disagree (one says a URL lives until
-- timestamp + the domain's validity period, another that the timestamp is
-- the expiry itself). The documented example satisfies the second: made at
-- 16:49:57 with a validity of 40 minutes, its timestamp is 1622194197,
-- 17:29:57, the moment it expires. So here the timestamp is the expiry:
-- `sign` takes it (or `ttl`, seconds from now), and `verify` refuses a URL
-- whose timestamp has passed, plus `delta` seconds where the service is
-- set to allow more (ali_auth_delta; default 0, the strict reading).
--
-- Failures are named as DescribeLiveStreamAuthChecking names them:
-- "INVALID AUTH_KEY" (not four parts of the right form), "INVALID
-- TIMESTAMP" (expired), "INVALID MD5HASH" (signed with another key or for
-- another URI); `err.code` is "InvalidAuthKey", "ExpiredAuthKey" or
-- "InvalidMd5Hash". No key is ever put into a message.
-- @module streamctl.edge.authkey

-- luacheck: globals ngx
local core = require "streamctl.core"
local errors = require "streamctl.base.errors"

local type, tonumber, ipairs, pairs, error = type, tonumber, ipairs, pairs, error
local format, find, match, gsub = string.format, string.find, string.match, string.gsub
local floor = math.floor

local M = {}

-- The rule a URI breaks, or nil: a path from "/", printable, no query.
local function uri_rule(uri)
  if type(uri) ~= "string" or not find(uri, "^/") then return "must be a path starting with /" end
  if #uri > 2048 then return "must be at most 2048 bytes" end
  if find(uri, "[%c%s?#]") then return "must not contain spaces, control characters, ? or #" end
  return nil
end

-- A key: a non-empty string or a streamctl.secret (misuse raises).
local function check_key(key, fname)
  if core.is_secret(key) then
    if #key > 0 then return key end
  elseif type(key) == "string" and key ~= "" then
    return key
  end
  error("bad argument #1 to '" .. fname .. "' (key must be a non-empty string or a streamctl.secret)", 3)
end

-- rand and uid: "0", or 1..64 of letters and digits (a UUID without hyphens).
local function part(v, name, fname)
  if v == nil then return "0" end
  if type(v) == "number" and v >= 0 and v == floor(v) then v = format("%d", v) end
  if type(v) ~= "string" or not find(v, "^%w+$") or #v > 64 then
    error(format("bad argument #1 to '%s' (%s must be 1 to 64 letters and digits)", fname, name), 3)
  end
  return v
end

-- The hash of a signed URI.
local function md5hash(uri, ts, rand, uid, key)
  return core.digest_hex("md5", "-", false, uri, ts, rand, uid, key)
end

--- A random `rand`: a UUID without its hyphens (from OpenSSL's RAND_bytes),
-- so that each URL made is different.
function M.rand()
  return (gsub(core.uuid4(), "-", ""))
end

--- The `auth_key` value for `uri`.
-- @tparam table o `{ uri =, key =, timestamp =, ttl =, rand =, uid =, now = }`: `timestamp` (Unix
--   seconds, the expiry) or `ttl` (seconds from `now`, default the clock); `rand` and `uid`
--   default "0" (`rand = streamctl.edge.authkey.rand()` for a URL that differs each time)
-- @treturn string "timestamp-rand-uid-md5hash"
function M.sign(o)
  if type(o) ~= "table" then error("bad argument #1 to 'sign' (table expected)", 2) end
  local why = uri_rule(o.uri)
  if why then error("bad argument #1 to 'sign' (uri " .. why .. ")", 2) end
  local key = check_key(o.key, "sign")
  local ts = o.timestamp
  if ts == nil and o.ttl ~= nil then
    if type(o.ttl) ~= "number" or o.ttl < 1 or o.ttl ~= floor(o.ttl) then
      error("bad argument #1 to 'sign' (ttl must be a whole number of seconds, at least 1)", 2)
    end
    ts = floor(o.now or core.now()) + o.ttl
  end
  if type(ts) ~= "number" or ts < 0 or ts ~= floor(ts) or ts >= 2 ^ 40 then
    error("bad argument #1 to 'sign' (timestamp, the expiry in Unix seconds, or ttl is required)", 2)
  end
  local t = format("%d", ts)
  local rand, uid = part(o.rand, "rand", "sign"), part(o.uid, "uid", "sign")
  return format("%s-%s-%s-%s", t, rand, uid, md5hash(o.uri, t, rand, uid, key))
end

--- A URL with its `auth_key` added (`?auth_key=` or `&auth_key=` after a
-- query the URL has, which is not signed).
-- @tparam table o `{ url =, key =, timestamp =, ttl =, rand =, uid =, now = }`
-- @treturn string the signed URL
function M.sign_url(o)
  if type(o) ~= "table" then error("bad argument #1 to 'sign_url' (table expected)", 2) end
  if type(o.url) ~= "string" then error("bad argument #1 to 'sign_url' (url must be a string)", 2) end
  local base, path, query = match(o.url, "^(%a[%w+.-]*://[^/?#]+)(/[^?#]*)(%??[^#]*)$")
  if not base then error("bad argument #1 to 'sign_url' (url must be scheme://host/path[?query])", 2) end
  local s = {}
  for k, v in pairs(o) do s[k] = v end
  s.uri = path
  local value = M.sign(s)
  return base .. path .. query .. (query == "" and "?" or "&") .. "auth_key=" .. value
end

-- A failure, named as DescribeLiveStreamAuthChecking names it.
local function fail(code, name, message)
  return nil, errors.new { provider = "aliyun", code = code, kind = "auth", message = name .. ": " .. message }
end

--- Checks an `auth_key` for `uri`.
-- @tparam table o `{ uri =, key = (or keys = { primary, secondary }), auth_key =, now =, delta = }`
-- @return true, or nil and an error
function M.verify(o)
  if type(o) ~= "table" then error("bad argument #1 to 'verify' (table expected)", 2) end
  local why = uri_rule(o.uri)
  if why then error("bad argument #1 to 'verify' (uri " .. why .. ")", 2) end
  local keys = o.keys or { o.key }
  if type(keys) ~= "table" or #keys == 0 then error("bad argument #1 to 'verify' (key or keys is required)", 2) end
  for _, k in ipairs(keys) do check_key(k, "verify") end
  local delta = o.delta or 0
  if type(delta) ~= "number" or delta < 0 then error("bad argument #1 to 'verify' (delta must be >= 0)", 2) end
  local now = o.now or core.now()
  local v = o.auth_key
  local t, rand, uid, hash = match(type(v) == "string" and v or "", "^(%d+)%-(%w+)%-(%w+)%-(%x+)$")
  if not t or #t > 12 or #rand > 64 or #uid > 64 or #hash ~= 32 then
    return fail("InvalidAuthKey", "INVALID AUTH_KEY", "not timestamp-rand-uid-md5hash")
  end
  if tonumber(t) + delta < now then
    return fail("ExpiredAuthKey", "INVALID TIMESTAMP", format("expired %d s ago", floor(now - tonumber(t) - delta)))
  end
  local ok = false
  for _, k in ipairs(keys) do
    -- (every key is tried, so the time taken does not say which one matched)
    if core.equal(md5hash(o.uri, t, rand, uid, k), hash) then ok = true end
  end
  if not ok then return fail("InvalidMd5Hash", "INVALID MD5HASH", "the hash does not match") end
  return true
end

--- `verify` of the current nginx request: its path as sent (before nginx
-- decodes or merges it) and its `auth_key` argument.
-- @tparam table o `{ key = (or keys =), now =, delta = }`
function M.verify_nginx(o)
  if type(o) ~= "table" then error("bad argument #1 to 'verify_nginx' (table expected)", 2) end
  local path = match(ngx.var.request_uri or "", "^[^?#]*")
  local v = {}
  for k, x in pairs(o) do v[k] = x end
  v.uri, v.auth_key = path, ngx.var.arg_auth_key
  if uri_rule(path) then return fail("InvalidAuthKey", "INVALID AUTH_KEY", "the request's path cannot be signed") end
  return M.verify(v)
end

return M
