--- ZEGO's Token04: the token an app's server gives a client to log in to a
-- room and publish, made and read back.
--
--   token = "04" .. base64( expire (int64) | 12 (uint16) | nonce (12 bytes)
--                           | n (uint16) | AES-GCM(plaintext) and its 16-byte tag (n bytes)
--                           | 1 (uint8: the mode, GCM) )
--   plaintext = {"app_id":A,"user_id":U,"ctime":C,"expire":E,"nonce":N,"payload":P}
--
-- Integers big-endian; base64 the standard, padded alphabet; the key the
-- ServerSecret's 32 bytes as they are (AES-256); no additional data;
-- `nonce` in the JSON a random 31-bit integer; `payload` a string: "" or
-- the JSON of a room's privileges, `{"room_id":R,"privilege":{"1":L,"2":P},
-- "stream_id_list":[...] or null}` (1: login, 2: publish; 1 allowed, 0
-- not; an empty room or list restricts nothing). That is the GCM form,
-- the one ZEGO's newer samples make and its docs' verifier reads (mode
-- byte 1); the generators of zegoim/zego_server_assistant (token/*/token04)
-- make the CBC form (a 16-byte IV, PKCS#7, no mode byte), which is read
-- only with `legacy_cbc`, and issued only with `form = "cbc"`, for it authenticates nothing. Sources:
-- docs/admission.md. AES and the nonce come from OpenSSL (streamctl.core).
--
-- `issue` checks every field by its rule (ZEGO's for user, room and stream
-- IDs; the lifetime's bounds; the secret's length) and returns the token,
-- or nil and an InvalidParameter error naming the field. `read` returns
-- the token's fields, or nil and an error whose code says why: `InvalidToken`
-- (not a Token04, cut short, does not verify with this secret, for
-- another AppId) or `TokenExpired`. No secret is ever put into a message.
-- See docs/admission.md.
-- @module streamctl.edge.token04

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local json = require "streamctl.base.json"
local validate = require "streamctl.base.validate"

local type, ipairs, pairs, tostring, error, pcall = type, ipairs, pairs, tostring, error, pcall
local NULL = require("cjson.safe").null
local byte, char, sub, find, format = string.byte, string.char, string.sub, string.find, string.format
local concat = table.concat
local floor = math.floor

local M = {}

--- The longest lifetime `issue` gives, in seconds: 24 days (ZEGO's token
-- pages: "must not exceed 24 days").
M.MAX_TTL = 24 * 86400
--- The lifetime when none is given: an hour.
M.DEFAULT_TTL = 3600

-- ZEGO's character rules (its ZegoUser and ZegoStream pages): user and
-- room IDs of digits, letters and ~!@#$%^&*()_+=-`;',.<> (a user ID at most
-- 64 bytes, a room ID under 128); a stream ID of digits, letters, - and _,
-- at most 256.
local ID_CHARS = "^[%w~!@#%$%%%^&%*%(%)_%+=%-`;',%.<>]+$"
local STREAM_CHARS = "^[%w_%-]+$"

local function invalid(message)
  return nil, errors.new { provider = "zego", code = "InvalidParameter", kind = "validation", message = message }
end

local function id_rule(v, name, max, chars, said)
  if type(v) ~= "string" or v == "" then return format("field '%s' must be a non-empty string", name) end
  if #v > max then return format("field '%s' must be at most %d bytes (got %d)", name, max, #v) end
  if not find(v, chars) then return format("field '%s' may hold only %s", name, said) end
  return nil
end
local ID_SAID = "digits, letters and ~!@#$%^&*()_+=-`;',.<> (ZEGO's rule)"
local STREAM_SAID = "digits, letters, - and _ (ZEGO's rule)"

-- The secret: 32 bytes, a string or a streamctl.secret (misuse, a wrong
-- type, raises; a wrong length is the field's rule).
local function secret_rule(secret, fname)
  if not (type(secret) == "string" or core.is_secret(secret)) then
    error("bad argument #1 to '" .. fname .. "' (secret must be a string or a streamctl.secret)", 3)
  end
  if #secret ~= 32 then
    return format("field 'secret' must be the ServerSecret's 32 bytes (got %d)", #secret)
  end
  return nil
end

local function app_id_rule(v)
  if type(v) ~= "number" or v ~= floor(v) or v < 1 or v > 4294967295 then
    return "field 'app_id' must be an integer from 1 to 4294967295"
  end
  return nil
end

-- Big-endian integers, by hand: string.pack is Lua 5.3's, and LuaJIT has none.
local function be(n, width)
  local out = {}
  for i = width, 1, -1 do
    out[i] = char(n % 256)
    n = floor(n / 256)
  end
  return concat(out)
end
local function read_be(s, at, width)
  local n = 0
  for i = at, at + width - 1 do n = n * 256 + byte(s, i) end
  return n
end

-- The payload's JSON: "" when it grants nothing.
local function payload_of(o)
  if o.room_id == nil and o.login == nil and o.publish == nil and o.stream_ids == nil then return "" end
  local list = "null"
  if o.stream_ids then list = json.string_array(o.stream_ids) end
  return format('{"room_id":%s,"privilege":{"1":%d,"2":%d},"stream_id_list":%s}', json.string(o.room_id or ""),
    o.login and 1 or 0, o.publish and 1 or 0, list)
end

local ISSUE_FIELDS = { app_id = true, secret = true, user_id = true, ttl = true, room_id = true, login = true,
                       publish = true, stream_ids = true, now = true, form = true }

--- A token for a user of an app.
-- @tparam table o `app_id`, `secret` (the ServerSecret, 32 bytes: a string or a streamctl.secret),
--   `user_id`, `ttl` (seconds, 1 to MAX_TTL; default DEFAULT_TTL), and to grant a room's privileges:
--   `room_id`, `login`, `publish` (booleans), `stream_ids` (the streams it may publish); `now` (Unix
--   seconds; default the clock); `form`: "gcm" (the default) or "cbc" (zego_server_assistant's
--   generators' form: a 16-character hex IV, PKCS#7, no mode byte; it authenticates nothing, and
--   a reader takes it only when told to: read's `legacy_cbc`)
-- @return the token; or nil and an error (InvalidParameter, naming the field and its rule)
function M.issue(o)
  if type(o) ~= "table" then error("bad argument #1 to 'issue' (table expected)", 2) end
  for k in pairs(o) do
    if not ISSUE_FIELDS[k] then return invalid(format("field '%s' is not a field of a Token04", tostring(k))) end
  end
  local why = app_id_rule(o.app_id) or secret_rule(o.secret, "issue")
    or id_rule(o.user_id, "user_id", 64, ID_CHARS, ID_SAID)
  if why then return invalid(why) end
  local ttl = o.ttl == nil and M.DEFAULT_TTL or o.ttl
  if type(ttl) ~= "number" or ttl ~= floor(ttl) or ttl < 1 or ttl > M.MAX_TTL then
    return invalid(format("field 'ttl' must be whole seconds from 1 to %d (24 days)", M.MAX_TTL))
  end
  if o.room_id ~= nil then
    why = id_rule(o.room_id, "room_id", 127, ID_CHARS, ID_SAID)
    if why then return invalid(why) end
  end
  for _, name in ipairs { "login", "publish" } do
    if o[name] ~= nil and type(o[name]) ~= "boolean" then
      return invalid(format("field '%s' must be true or false", name))
    end
  end
  if o.stream_ids ~= nil then
    if type(o.stream_ids) ~= "table" then return invalid("field 'stream_ids' must be a list of stream IDs") end
    local n = 0
    for _ in pairs(o.stream_ids) do n = n + 1 end
    if n ~= #o.stream_ids then return invalid("field 'stream_ids' must be a list (keys 1..n)") end
    for i, id in ipairs(o.stream_ids) do
      why = id_rule(id, "stream_ids", 256, STREAM_CHARS, STREAM_SAID)
      if why then return invalid((why:gsub("^field 'stream_ids'", format("field 'stream_ids' item %d", i)))) end
    end
  end
  if o.form ~= nil and o.form ~= "gcm" and o.form ~= "cbc" then
    return invalid("field 'form' must be \"gcm\" or \"cbc\"")
  end
  local now = o.now == nil and floor(core.now()) or o.now
  if type(now) ~= "number" or now ~= floor(now) or now < 0 or now > 2 ^ 40 then
    return invalid("field 'now' must be Unix seconds")
  end
  local expire = now + ttl
  local r = core.random_bytes(4)
  local nonce_int = read_be(r, 1, 4) % 2147483648
  local plain = format('{"app_id":%s,"user_id":%s,"ctime":%s,"expire":%s,"nonce":%s,"payload":%s}',
    validate.decimal(o.app_id), json.string(o.user_id), validate.decimal(now), validate.decimal(expire),
    validate.decimal(nonce_int), json.string(payload_of(o)))
  if o.form == "cbc" then
    -- (the IV as the generators make it: 16 characters of 0-9a-f, from 8 random bytes)
    local iv = (core.random_bytes(8):gsub(".", function(c) return format("%02x", byte(c)) end))
    local sealed = core.aes_cbc_seal(o.secret, iv, plain)
    return "04" .. core.base64_encode(be(expire, 8) .. be(16, 2) .. iv .. be(#sealed, 2) .. sealed)
  end
  local nonce = core.random_bytes(12)
  local sealed = core.aes_gcm_seal(o.secret, nonce, plain)
  return "04" .. core.base64_encode(be(expire, 8) .. be(12, 2) .. nonce .. be(#sealed, 2) .. sealed .. "\1")
end

local function bad(message, code)
  return nil, errors.new { provider = "zego", code = code or "InvalidToken", kind = "auth", message = message }
end

-- The payload's fields, read from its JSON (nil and why when it is not one).
local function read_payload(text, out)
  if text == "" then return true end
  local p = json.decode(text)
  if type(p) ~= "table" then return nil, "its payload is not a JSON object" end
  if p.room_id ~= nil and type(p.room_id) ~= "string" then return nil, "its payload's room_id is not a string" end
  out.room_id = p.room_id
  local priv = p.privilege
  if priv ~= nil then
    if type(priv) ~= "table" then return nil, "its payload's privilege is not an object" end
    out.login, out.publish = priv["1"] == 1, priv["2"] == 1
  end
  local list = p.stream_id_list
  if list ~= nil and list ~= NULL then
    if type(list) ~= "table" then return nil, "its payload's stream_id_list is not a list" end
    for _, id in ipairs(list) do
      if type(id) ~= "string" then return nil, "its payload's stream_id_list holds a non-string" end
    end
    out.stream_ids = list
  end
  return true
end

--- A token read back: decrypted and verified with the secret, its AppId
-- and expiry checked.
-- @tparam string token the token
-- @tparam table o `app_id`, `secret` (32 bytes), `now` (Unix seconds; default the clock),
--   `legacy_cbc` (true: also read the AES-CBC form, which authenticates nothing)
-- @return `{ app_id, user_id, ctime, expire, nonce, payload, mode, room_id, login, publish, stream_ids }`
--   (`mode`: "gcm" or "cbc"; the last four from the payload, when it grants a room); or nil and an
--   error: `InvalidToken` (why: not a Token04, cut short, does not verify, for another AppId) or
--   `TokenExpired`; bad options: InvalidParameter
function M.read(token, o)
  if type(o) ~= "table" then error("bad argument #2 to 'read' (table expected)", 2) end
  local why = app_id_rule(o.app_id) or secret_rule(o.secret, "read")
  if why then return invalid(why) end
  if type(token) ~= "string" or sub(token, 1, 2) ~= "04" then return bad("not a Token04: it does not start with 04") end
  if #token > 8192 then return bad("not a Token04: longer than 8192 bytes") end
  local body = core.base64_decode(sub(token, 3))
  if not body then return bad("not a Token04: what follows 04 is not base64") end
  if #body < 12 then return bad("cut short: " .. #body .. " bytes after the base64") end
  local expire, nl = read_be(body, 1, 8), read_be(body, 9, 2)
  if nl ~= 12 and nl ~= 16 then return bad(format("not a Token04: a nonce of %d bytes (12 or 16 expected)", nl)) end
  if #body < 10 + nl + 2 then return bad("cut short: no ciphertext") end
  local nonce = sub(body, 11, 10 + nl)
  local cl = read_be(body, 11 + nl, 2)
  local rest = #body - (12 + nl) - cl
  if rest < 0 then return bad("cut short: its ciphertext is " .. cl .. " bytes, fewer are there") end
  local sealed = sub(body, 13 + nl, 12 + nl + cl)
  local plain, mode
  if nl == 12 and rest == 1 and byte(body, #body) == 1 then
    mode, plain = "gcm", core.aes_gcm_open(o.secret, nonce, sealed)
    if not plain then return bad("does not verify with this secret (a byte changed, or another secret)") end
  elseif nl == 16 and rest == 0 then
    if not o.legacy_cbc then
      return bad("the AES-CBC form (zego_server_assistant's generators), which authenticates nothing: refused "
        .. "(legacy_cbc = true reads it)")
    end
    mode, plain = "cbc", core.aes_cbc_open(o.secret, nonce, sealed)
  else
    return bad(format("not a Token04: %d bytes after its ciphertext, mode %s", rest,
      rest > 0 and tostring(byte(body, #body)) or "none"))
  end
  -- (CBC authenticates nothing: one reason for every failure of what it decrypts to, so that no
  -- answer tells a forger whether the padding, the JSON or a field was what failed)
  local function fail(message)
    if mode == "cbc" then return bad("does not decrypt with this secret to a token's content (the CBC form)") end
    return bad(message)
  end
  if not plain then return fail() end
  local ok, t = pcall(json.decode, plain)
  if not ok or type(t) ~= "table" then return fail("its content is not JSON (another secret?)") end
  local out = { mode = mode }
  for _, f in ipairs { { "app_id", "number" }, { "user_id", "string" }, { "ctime", "number" }, { "expire", "number" },
                       { "nonce", "number" }, { "payload", "string" } } do
    if type(t[f[1]]) ~= f[2] then return fail(format("its content's %s is not a %s", f[1], f[2])) end
    out[f[1]] = t[f[1]]
  end
  if out.expire ~= expire then
    return fail(format("its two expiries differ (%s outside, %s inside)", validate.decimal(expire),
      validate.decimal(out.expire)))
  end
  if out.app_id ~= o.app_id then
    return fail(format("made for AppId %s, not %s", validate.decimal(out.app_id), validate.decimal(o.app_id)))
  end
  local pok, perr = read_payload(out.payload, out)
  if not pok then return fail(perr) end
  local now = o.now == nil and core.now() or o.now
  if now >= out.expire then
    return bad(format("expired at %s (now %s)", core.utc_timestamp(out.expire), core.utc_timestamp(floor(now))),
      "TokenExpired")
  end
  return out
end

return M
