--- Provider callbacks, verified: Alibaba Cloud Live's stream ingest
-- callbacks (`publish`, `publish_done`) and ZEGOCLOUD's server callbacks
-- (`stream_create`, `stream_close`, ...). Facts: docs/callbacks.md.
--
-- Each provider has `verify{...}` (the signed values, as the contract
-- names them) and `check(request, opts)` (what nginx gives: `{ method =,
-- headers = { name = value }, query = raw query string, body = raw body }`;
-- header names in any case, and one sent twice, in one case or two, is
-- refused), which returns the parsed event; `check_nginx(opts)` reads the
-- current request itself (rewrite, access or content phase).
--
-- Every check, in order: the signed values are well formed; the timestamp
-- is within `window` seconds of `now` (default WINDOW_S, at most
-- MAX_WINDOW_S); the signature, computed in the C core (OpenSSL) and
-- compared in constant time; then replay: a callback seen before within the
-- window is refused. Seen callbacks are kept in `replay` (a store from
-- `memory_replay` or `shdict_replay`), else in the lua_shared_dict named
-- `shared_dict` (every worker of the machine), else in this process's memory.
--
-- A key (Aliyun's NotifyAuthKey, ZEGO's callback secret) may be a list of
-- up to MAX_KEYS: a callback signed by any of them passes (each compared in
-- constant time, all compared), so a rotation names the new key and the old
-- one for a while, and then the new one alone (Alibaba Cloud applies a new
-- NotifyAuthKey to a stream only once it is pushed again). A `replay` store
-- may also be Redis' (streamctl.store.redis.replay_store), shared by every
-- edge.
--
-- Expected failures return `nil, err`: an error object (streamctl.base.errors)
-- whose `code` says which check failed: "MalformedCallback", "StaleCallback",
-- "InvalidSignature", "ReplayedCallback", "ReplayStoreFull",
-- "ReplayStoreUnavailable" (a store that cannot answer, never taken for
-- "not seen": the provider delivers the callback again). No key, secret or
-- signature is ever put into a message. Misuse (a missing key, a bad option)
-- raises.
--
-- Neither provider signs the event itself (Alibaba Cloud signs the domain
-- and the timestamp, ZEGO the timestamp and a nonce): a captured signature
-- can carry other event fields until its window closes. ZEGO's nonce makes
-- each signature one callback's, so a ZEGO signature is accepted once.
-- Alibaba Cloud's is the same for every callback of a domain within one
-- second, so what is remembered is the signature with the event's own
-- fields (a replay of the same callback is refused; another stream's event
-- in the same second is not). `check` also remembers the event's identity
-- (Aliyun: action, domain, app, stream and event time; ZEGO: event, AppId,
-- stream_sid and stream_seq), so that a provider's retry, sent again under
-- a new timestamp or nonce, is refused as well. docs/callbacks.md says what
-- else helps.
-- @module streamctl.edge.callbacks

-- luacheck: globals ngx
local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local url = require "streamctl.base.url"
local json = require "streamctl.base.json"
local replay = require "streamctl.store.replay"

local type, tostring, tonumber, pairs, ipairs, rawget, error = type, tostring, tonumber, pairs, ipairs, rawget, error
local format, find, lower = string.format, string.find, string.lower
local floor, abs = math.floor, math.abs
local concat = table.concat

local M = { aliyun = {}, zego = {} }

--- Seconds a callback's timestamp may be from now, either way, by default:
-- Alibaba Cloud's pages give 5 minutes as their example; ZEGO documents
-- none, and retries for up to 62 s after the first delivery.
M.WINDOW_S = 300
--- The widest window allowed: seen callbacks are remembered this long.
M.MAX_WINDOW_S = 3600
--- How many callbacks a memory store remembers at most (within the window).
M.MEMORY_REPLAY_MAX = 100000
--- The largest callback body read (ZEGO's are well under 4 KB).
M.MAX_BODY = 65536

-- An error object of a failed check.
local function fail(provider, code, message, kind)
  return nil, errors.new { provider = provider, code = code, message = message, kind = kind or "auth" }
end

--- A replay store in this process's memory: at most `max` callbacks
-- (default MEMORY_REPLAY_MAX) remembered each for its window; when that many
-- are still within theirs, new ones are refused (ReplayStoreFull: the
-- provider delivers again later) rather than forgetting one that could
-- then be replayed (streamctl.store.replay's `memory`).
function M.memory_replay(opts)
  local store = replay.memory(opts, M.MEMORY_REPLAY_MAX) -- (not a tail call: misuse is blamed on our caller)
  return store
end

--- A replay store in a lua_shared_dict (`dict`: ngx.shared.NAME), shared by
-- every worker: streamctl.store.replay's `shdict` (a full dict refuses,
-- ReplayStoreFull; a callback whose window began before the dict's memory
-- did, ReplayStoreUnavailable). `opts.log`: where a loss is said.
M.shdict_replay = replay.shdict
--- `shdict_started(ngx.shared.NAME, ngx.now())` in init_by_lua: marks nginx's start in the dict.
M.shdict_started = replay.shdict_started

local PROCESS_REPLAY -- (made on first use)

-- The replay store `opts` names.
local function replay_store(opts, fname)
  if opts.replay ~= nil then
    if type(opts.replay) ~= "table" or type(opts.replay.add) ~= "function" then
      error("bad argument #1 to '" .. fname .. "' (replay must be a store with add: memory_replay, shdict_replay, "
        .. "streamctl.store.redis.replay_store)", 3)
    end
    return opts.replay
  end
  if opts.shared_dict ~= nil then
    local shared = rawget(_G, "ngx") and ngx.shared
    local dict = shared and type(opts.shared_dict) == "string" and shared[opts.shared_dict]
    if not dict then
      error("bad argument #1 to '" .. fname .. "' (shared_dict names no lua_shared_dict: " .. tostring(opts.shared_dict)
        .. ")", 3)
    end
    return M.shdict_replay(dict)
  end
  PROCESS_REPLAY = PROCESS_REPLAY or M.memory_replay()
  return PROCESS_REPLAY
end

-- The window and now from `opts` (misuse raises).
local function window_now(opts, fname)
  local window = opts.window or M.WINDOW_S
  if type(window) ~= "number" or window < 1 or window > M.MAX_WINDOW_S or window ~= floor(window) then
    error(format("bad argument #1 to '%s' (window must be a whole number of seconds in 1..%d)", fname,
      M.MAX_WINDOW_S), 3)
  end
  local now = opts.now or core.now()
  if type(now) ~= "number" then error("bad argument #1 to '" .. fname .. "' (now must be a number)", 3) end
  return window, now
end

--- The most keys (or secrets) a callback is checked against: a rotation
-- names the new one and the old one until the old one is gone.
M.MAX_KEYS = 4

-- A key or secret argument: a non-empty string or a streamctl.secret, or a
-- list of 1..MAX_KEYS of them (a rotation); as a list.
local function check_key(v, name, fname)
  local list = type(v) == "table" and not core.is_secret(v) and v or { v }
  if #list == 0 or #list > M.MAX_KEYS then
    error(format("bad argument #1 to '%s' (%s must be a key or a list of 1 to %d keys)", fname, name,
      M.MAX_KEYS), 3)
  end
  for i = 1, #list do
    local k, at = list[i], list == v and format("%s[%d]", name, i) or name
    if core.is_secret(k) then
      if #k == 0 then error(format("bad argument #1 to '%s' (%s is empty)", fname, at), 3) end
    elseif type(k) ~= "string" or k == "" then
      error(format("bad argument #1 to '%s' (%s must be a non-empty string or a streamctl.secret)", fname, at), 3)
    end
  end
  return list
end

-- Whether `signature` is one of the signatures `sign(key)` gives for the
-- keys, each compared in constant time and all of them compared (how long
-- it takes says nothing of which matched); the index of the one that did.
local function signed_by(keys, sign, signature)
  local which
  for i = 1, #keys do
    if core.equal(sign(keys[i]), signature) and not which then which = i end
  end
  return which
end

-- A decimal timestamp as received (text of 1..12 digits), as a number; or nil.
local function seconds(v)
  if type(v) ~= "string" or not find(v, "^%d+$") or #v > 12 then return nil end
  return tonumber(v)
end

-- The checks every callback goes through after its own parse: the window,
-- the signature, then replay (the signature first: a forger fills no store).
local function checked(provider, o)
  local ts = seconds(o.timestamp)
  if not ts then
    return fail(provider, "MalformedCallback", "the timestamp is not 1 to 12 decimal digits", "validation")
  end
  if type(o.signature) ~= "string" or #o.signature ~= o.length or not find(o.signature, "^[0-9a-f]+$") then
    return fail(provider, "MalformedCallback", "the signature is not " .. o.form, "validation")
  end
  if abs(o.now - ts) > o.window then
    return fail(provider, "StaleCallback", format("the timestamp is %d s from now, outside the window of %d s",
      floor(ts - o.now), o.window), "clock")
  end
  if not signed_by(o.keys, o.sign, o.signature) then
    return fail(provider, "InvalidSignature", "the signature does not match" .. (#o.keys > 1
      and " any of the " .. #o.keys .. " keys" or ""))
  end
  -- remembered for the rest of its window (after it, the timestamp is refused anyway): the signature
  -- with what the caller says makes a callback different, and (check) the event's own identity, which
  -- a provider's retry keeps under a new timestamp or nonce
  local ttl = floor(ts + o.window - o.now) + 1
  local keys = { o.signature .. ":" .. o.event, o.identity and ("event:" .. o.identity) }
  for _, key in ipairs(keys) do
    -- (and how long ago its window began: a store whose memory began after that may have forgotten it)
    local fresh, why, code = o.replay:add(provider .. ":" .. key, ttl, o.now, o.now - ts + o.window)
    if fresh == nil then return fail(provider, code or "ReplayStoreFull", tostring(why), "server") end
    if not fresh then return fail(provider, "ReplayedCallback", "this callback was seen before within its window") end
  end
  return true
end

-- --------------------------------------------------------------------
-- Alibaba Cloud Live: stream ingest callbacks

--- Alibaba Cloud's signature of an ingest callback: MD5 of
-- "domain|timestamp|NotifyAuthKey", lowercase hex (the callback
-- authentication page; its input `learn.aliyundoc.com|1519375990|yourkey`
-- gives 9e226fc2c250be266e3657e156f68c12).
function M.aliyun.signature(key, domain, timestamp)
  return core.digest_hex("md5", "|", false, domain, timestamp, key)
end

local ALIYUN_FIELDS = { "action", "ip", "id", "app", "appname", "time", "usrargs", "node", "height", "width" }
local USED = { action = true, id = true, app = true, appname = true, time = true }


--- Verifies the signed values of an Alibaba Cloud ingest callback.
-- @tparam table o `{ key =, domain =, timestamp =, signature =, now =, window =, event =, replay =,
--   shared_dict = }`: `key` the NotifyAuthKey (string or streamctl.secret, or a list of up to
--   MAX_KEYS of them during a rotation), `domain` the ingest
--   domain the callback is configured on, `timestamp` and `signature` as received
--   (ALI-LIVE-TIMESTAMP, ALI-LIVE-SIGNATURE); `event` (optional) what makes this callback
--   different from another one of the same second (check passes the event's fields)
-- @return true, or nil and an error
function M.aliyun.verify(o)
  if type(o) ~= "table" then error("bad argument #1 to 'verify' (table expected)", 2) end
  local keys = check_key(o.key, "key", "verify")
  if type(o.domain) ~= "string" or o.domain == "" or find(o.domain, "[|%s%c]") then
    error("bad argument #1 to 'verify' (domain must be the ingest domain: a non-empty string without | or spaces)", 2)
  end
  local window, now = window_now(o, "verify")
  local ts = o.timestamp
  return checked("aliyun", {
    timestamp = ts, signature = o.signature, length = 32, form = "32 lowercase hex digits (MD5)",
    now = now, window = window, replay = replay_store(o, "verify"), keys = keys,
    sign = function(key) return M.aliyun.signature(key, o.domain, ts) end,
    event = tostring(o.event or ""), identity = o.identity,
  })
end

-- The request's headers by lower-case name, however the caller or the
-- sender wrote them: a name given twice, in one case or in two
-- ("ALI-LIVE-SIGNATURE" and "ali-live-signature"), becomes a list of its
-- values, which `header` refuses; never one of them picked by hash order.
local function by_lower_name(headers)
  local out = {}
  for k, v in pairs(headers or {}) do
    if type(k) == "string" then
      local name = lower(k)
      local have = out[name]
      if have == nil then
        out[name] = v
      else
        local list = type(have) == "table" and have or { have }
        if type(v) == "table" then
          for _, x in ipairs(v) do list[#list + 1] = x end
        else
          list[#list + 1] = v
        end
        out[name] = list
      end
    end
  end
  return out
end

-- A header's value from a table of lower-case names (a repeated header: refused).
local function header(headers, name)
  local v = headers[name]
  if type(v) == "table" then return nil end
  return v
end

--- Checks an Alibaba Cloud ingest callback as it arrives: a GET whose query
-- holds the event, signed by the ALI-LIVE-TIMESTAMP and ALI-LIVE-SIGNATURE
-- headers.
-- @tparam table req `{ method =, headers = { name = value }, query = raw query string }` (names in any
--   case; one given twice, in one case or two, is refused)
-- @tparam table opts `{ key =, domain =, now =, window =, replay =, shared_dict = }` (see verify)
-- @return the event `{ action, ip, id, app, appname, time, usrargs, node, height, width }` (strings,
--   those present; `stream` = "app/appname/id" for convenience), or nil and an error
function M.aliyun.check(req, opts)
  if type(req) ~= "table" or type(opts) ~= "table" then error("bad argument to 'check' (two tables expected)", 2) end
  if req.method ~= "GET" then
    return fail("aliyun", "MalformedCallback", "an ingest callback is a GET (got " .. tostring(req.method) .. ")",
      "validation")
  end
  local headers = by_lower_name(req.headers)
  -- (the publisher's own parameters come as the publisher wrote them: a broken escape is kept)
  local query = url.parse_query(req.query or "", true)
  local event, parts = {}, {}
  for _, name in ipairs(ALIYUN_FIELDS) do
    local v = query[name]
    if type(v) == "table" then
      -- (the fields that say what happened to which stream must be one; the publisher's own
      -- parameters, usrargs, unescaped and unsigned, may bring anything else along)
      if USED[name] then
        return fail("aliyun", "MalformedCallback", "the query repeats '" .. name .. "'", "validation")
      end
      v = v[1]
    end
    event[name] = v
    parts[#parts + 1] = v or ""
  end
  if event.action ~= "publish" and event.action ~= "publish_done" then
    return fail("aliyun", "MalformedCallback", "action is not publish or publish_done", "validation")
  end
  if not event.id or event.id == "" or not event.appname then
    return fail("aliyun", "MalformedCallback", "the query has no id (the stream) or appname", "validation")
  end
  local v = {}
  for k, x in pairs(opts) do v[k] = x end
  for _, name in ipairs { "ALI-LIVE-TIMESTAMP", "ALI-LIVE-SIGNATURE" } do
    if type(headers[lower(name)]) == "table" then
      return fail("aliyun", "MalformedCallback", "the request has more than one " .. name .. " header (names "
        .. "compared without regard to case)", "validation")
    end
  end
  v.timestamp, v.signature = header(headers, "ali-live-timestamp"), header(headers, "ali-live-signature")
  v.event = concat(parts, "&")
  -- a retry of this event (a new ALI-LIVE-TIMESTAMP, the same event time) is refused too
  v.identity = concat({ event.action, event.app or "", event.appname, event.id, event.time or "" }, "|")
  local ok, err = M.aliyun.verify(v)
  if not ok then return nil, err end
  event.stream = format("%s/%s/%s", event.app or "", event.appname, event.id)
  return event
end

-- --------------------------------------------------------------------
-- ZEGOCLOUD: server callbacks

--- ZEGO's callback signature: SHA-1 of the callback secret, the timestamp
-- and the nonce sorted as strings and joined, lowercase hex (its example:
-- nonce 123412, timestamp 1470820198, secret "secret" give
-- 5bd59fd62953a8059fb7eaba95720f66d19e4517).
function M.zego.signature(secret, timestamp, nonce)
  return core.digest_hex("sha1", "", true, secret, timestamp, nonce)
end

--- Verifies the signed values of a ZEGO callback.
-- @tparam table o `{ secret =, signature =, timestamp =, nonce =, now =, window =, replay =,
--   shared_dict = }`: `secret` the callback secret (string or streamctl.secret, or a list of up to
--   MAX_KEYS of them during a rotation); the others as
--   received, as text
-- @return true, or nil and an error
function M.zego.verify(o)
  if type(o) ~= "table" then error("bad argument #1 to 'verify' (table expected)", 2) end
  local secrets = check_key(o.secret, "secret", "verify")
  local window, now = window_now(o, "verify")
  local nonce = o.nonce
  if type(nonce) ~= "string" or nonce == "" or #nonce > 64 or find(nonce, "[%c%s]") then
    return fail("zego", "MalformedCallback", "the nonce is not 1 to 64 printable characters", "validation")
  end
  return checked("zego", {
    timestamp = o.timestamp, signature = o.signature, length = 40, form = "40 lowercase hex digits (SHA-1)",
    now = now, window = window, replay = replay_store(o, "verify"), keys = secrets,
    sign = function(secret) return M.zego.signature(secret, o.timestamp, nonce) end,
    event = "", identity = o.identity, -- (the nonce, signed, makes each signature one callback's)
  })
end

-- A signed field as the text that was signed: a string as it is, a JSON
-- integer written in decimal; nil for anything else.
local function as_text(v)
  if type(v) == "string" then return v end
  if type(v) == "number" and v >= 0 and v < 2 ^ 53 and v == floor(v) then return format("%d", v) end
  return nil
end

local JSON_TYPE, FORM_TYPE = "application/json", "application/x-www-form-urlencoded"

-- Refuses (nil, err) a ZEGO callback whose Content-Type is not the one ZEGO
-- sends: application/json, or a form for a project ZEGO support has set to
-- POST/FORM (`opts.form`); none at all is read as ZEGO's default, JSON (its
-- stream pages say "JSON" and name no header). Parameters (`; charset=`) are
-- allowed. Before any field is read: a body read under the wrong type
-- fails on a field (the nonce) and hides the cause.
local function content_type(headers, opts, fname)
  if opts.form ~= nil and type(opts.form) ~= "boolean" then
    error("bad argument #2 to '" .. fname .. "' (form must be a boolean)", 3)
  end
  local expected = opts.form and FORM_TYPE or JSON_TYPE
  local v = headers["content-type"]
  if type(v) == "table" then
    return fail("zego", "MalformedCallback", "the request has more than one Content-Type header", "validation")
  end
  local media = v and lower(tostring(v)):match("^[^;]*"):match("^%s*(.-)%s*$") or (not opts.form and JSON_TYPE)
  if media == expected then return true end
  local got = v and ("is " .. format("%q", tostring(v):sub(1, 64)):gsub("\\\n", "\\n")) or "is missing"
  return fail("zego", "MalformedCallback", format("the Content-Type %s, not %s (%s)", got, expected, opts.form
    and "form = true; ZEGO's default is application/json"
    or "what ZEGO sends; for a project ZEGO set to POST/FORM pass form = true"), "validation")
end

--- Checks a ZEGO server callback as it arrives: a POST whose body is JSON
-- (Content-Type application/json; none is read as JSON), or with `form =
-- true` a form (application/x-www-form-urlencoded: ZEGO's older pages offer
-- POST/FORM on request), with `signature`, `timestamp` and `nonce` among its
-- fields. Another Content-Type is refused naming it, before a field is read.
-- @tparam table req `{ method =, headers = { name = value }, body = raw body }` (names as `aliyun.check`)
-- @tparam table opts `{ secret =, form =, now =, window =, replay =, shared_dict = }` (see verify)
-- @return the event: the body's fields (`event` names it: "stream_create", ...), or nil and an error
function M.zego.check(req, opts)
  if type(req) ~= "table" or type(opts) ~= "table" then error("bad argument to 'check' (two tables expected)", 2) end
  if req.method ~= "POST" then
    return fail("zego", "MalformedCallback", "a callback is a POST (got " .. tostring(req.method) .. ")", "validation")
  end
  local headers = by_lower_name(req.headers)
  local typed, terr = content_type(headers, opts, "check")
  if not typed then return nil, terr end
  local body = req.body
  if type(body) ~= "string" or body == "" then
    return fail("zego", "MalformedCallback", "the body is empty", "validation")
  end
  if #body > M.MAX_BODY then
    return fail("zego", "MalformedCallback", "the body is larger than " .. M.MAX_BODY .. " bytes", "validation")
  end
  local event
  if opts.form then
    event = url.parse_query(body)
    for _, v in pairs(event or {}) do
      if type(v) == "table" then event = nil break end
    end
  else
    event = json.decode(body)
  end
  if type(event) ~= "table" then
    return fail("zego", "MalformedCallback", opts.form and "the body is not a form (a field repeated)"
      or "the body is not a JSON object", "validation")
  end
  local v = {}
  for k, x in pairs(opts) do v[k] = x end
  v.form = nil
  v.signature, v.timestamp, v.nonce = as_text(event.signature), as_text(event.timestamp), as_text(event.nonce)
  -- a retry of this event (a new timestamp and nonce): the same event, stream and its server id and seq
  local sid, seq = as_text(event.stream_sid), as_text(event.stream_seq)
  if sid and seq then
    v.identity = concat({ tostring(as_text(event.event)), tostring(as_text(event.appid)), sid, seq }, "|")
  end
  local ok, err = M.zego.verify(v)
  if not ok then return nil, err end
  return event
end

-- --------------------------------------------------------------------
-- The nginx forms

-- The current nginx request as `check` takes it (its body read, up to MAX_BODY).
local function nginx_request(provider, with_body)
  local req = ngx.req
  -- (raw names: `check` lower-cases them, and a name sent twice in two cases is refused there;
  -- past 100 headers nginx leaves the rest out, where a second signature could hide: refused)
  local headers, truncated = req.get_headers(100, true)
  if truncated == "truncated" then
    return fail(provider, "MalformedCallback", "the request has more than 100 headers", "validation")
  end
  local r = { method = req.get_method(), headers = headers, query = ngx.var.args or "" }
  if with_body then
    req.read_body()
    local body = req.get_body_data()
    if not body then
      -- nginx buffered it to a file (client_body_buffer_size): read it there, bounded
      local path = req.get_body_file()
      local f = path and io.open(path, "rb")
      if f then
        body = f:read(M.MAX_BODY + 1)
        f:close()
      end
    end
    r.body = body
  end
  return r
end

--- `aliyun.check` of the current nginx request.
function M.aliyun.check_nginx(opts)
  local req, err = nginx_request("aliyun", false)
  if not req then return nil, err end
  return M.aliyun.check(req, opts)
end

--- `zego.check` of the current nginx request (its body is read, once its
-- Content-Type is the one expected).
function M.zego.check_nginx(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'check_nginx' (table expected)", 2) end
  if ngx.req.get_method() == "POST" then -- (anything else: check says so, as it does first)
    local typed, terr = content_type(by_lower_name(ngx.req.get_headers(100, true)), opts, "check_nginx")
    if not typed then return nil, terr end
  end
  local req, err = nginx_request("zego", true)
  if not req then return nil, err end
  return M.zego.check(req, opts)
end

return M
