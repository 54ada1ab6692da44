--- Admission at the door: may this stream be published? One decision for
-- both providers, made where the stream arrives (an nginx location, a
-- script), from what arrived:
--
--   local admission = require "streamctl.edge.admission"
--   local door = admission.new {
--     forbidden = desired.redis(conn),   -- the forbid list (streamctl.operator.desired), shared
--     zego = { app_id = 1234567890, secret = server_secret },   -- Token04s to verify
--     aliyun = { keys = { primary, secondary } },                -- auth_key URLs to verify
--   }
--   local verdict = door:decide { provider = "zego", stream_id = "room-1-host", user_id = "u1", token = t }
--   -- { allow = false, code = "Forbidden", reason = "zego stream room-1-host is on the forbid list" }
--
-- In this order, the first that refuses decides:
--   1. what arrived, by its fields' rules (`InvalidRequest`);
--   2. its credential: ZEGO's token (`streamctl.edge.token04`: it verifies, it
--      is the user's, it grants publishing of streams it names, this one
--      among them, and the room when it names one: a token that names no
--      stream grants ZEGO every one, and is refused) or Alibaba Cloud's signed URL
--      (`auth_key`, `streamctl.edge.authkey`), where the door was given the
--      secret or keys (`InvalidToken`, `TokenExpired`, `NotGranted`,
--      `InvalidAuthKey`, ...);
--   3. the forbid list: the edge's desired state, the one its reconciler
--      keeps (`Forbidden`). A list that cannot be read is said in the
--      reason and decides by `on_list_error`: "deny" (the default: a
--      forbidden stream never slips in) or "allow";
--   4. the operator's `hook(request, verdict)`, given the verdict so far
--      (allow): it may return `false, reason` to refuse; one that raises
--      refuses (`HookFailed`).
--
-- Never blocking beyond the list's own read (a shared dict, or Redis
-- through a cosocket in nginx). Each decision is counted by `metrics`
-- (streamctl.operator.metrics: admissions by provider, verdict and code;
-- its latency). See docs/admission.md.
-- @module streamctl.edge.admission

local core = require "streamctl.core"
local validate = require "streamctl.base.validate"
local desired = require "streamctl.operator.desired"
local token04 = require "streamctl.edge.token04"
local authkey = require "streamctl.edge.authkey"

local type, ipairs, tostring, pcall, setmetatable, error = type, ipairs, tostring, pcall, setmetatable, error
local format, find, byte = string.format, string.find, string.byte
local floor = math.floor

local M = {}

local Door = {}
Door.__index = Door

local OPTIONS = {
  { name = "forbidden", type = "object", methods = { "has" }, required = true },
  { name = "zego", type = "custom", nullable_false = true, check = function(v)
    if type(v) ~= "table" then return nil, "must be a table of app_id and secret" end
    if type(v.app_id) ~= "number" then return nil, "must name app_id" end
    if not (type(v.secret) == "string" or core.is_secret(v.secret)) or #v.secret ~= 32 then
      return nil, "must hold the ServerSecret's 32 bytes in secret"
    end
    if v.form ~= nil and v.form ~= "gcm" and v.form ~= "cbc" then return nil, "must name form \"gcm\" or \"cbc\"" end
    return v
  end },
  { name = "aliyun", type = "custom", nullable_false = true, check = function(v)
    if type(v) ~= "table" or type(v.keys) ~= "table" or #v.keys == 0 then
      return nil, "must be a table whose keys lists the domain's auth_key keys"
    end
    return v
  end },
  { name = "hook", type = "function" },
  { name = "on_list_error", type = "string", enum = { "deny", "allow" } },
  { name = "last_whole", type = "object", methods = { "has" } },
  { name = "grace_s", type = "number", min = 0, max = 300 },
  { name = "metrics", type = "object", methods = { "count", "admission_time" } },
  { name = "now", type = "function" },
}

--- A door.
-- @tparam table opts `forbidden` (required: the forbid list, an object with `has(key)`: a
--   streamctl.operator.desired store), `zego` (`{ app_id, secret, legacy_cbc, form }`: tokens are
--   issued in `form` ("gcm", the default, or "cbc": streamctl.edge.token04, and read in it), and
--   required and verified; false or absent: not asked), `aliyun` (`{ keys = { primary, secondary },
--   delta }`: signed URLs are required and verified; false or absent: not asked), `hook`,
--   `on_list_error`, `last_whole` and `grace_s` (while the list cannot be read, the answer comes
--   from `last_whole:has(key)` -> listed, age in seconds (streamctl.edge.lastlist) when it was read
--   at most `grace_s` seconds ago; default 0: never), `metrics`, `now` (Unix seconds)
-- @return the door; or nil and an error (InvalidParameter) naming the option
function M.new(opts)
  local o, err = validate.construct(OPTIONS, opts, "streamctl.edge.admission.new", "new")
  if not o then return nil, err end
  return setmetatable({ o = o, now = o.now or core.now, on_list_error = o.on_list_error or "deny" }, Door)
end

-- (`list`: where the answer came from: "read" (the forbid list), "last" (the list last read whole,
-- within the grace), "expired" (that one too old), "unread" (neither); nil: the list was not asked)
local function deny(code, reason, list) return { allow = false, code = code, reason = reason, list = list } end

-- The list last read whole's answer for `key` within the grace: listed (true or false) and its age;
-- or nil and its age when it is older than the grace; or nil when there is none.
function Door:_last_whole(key)
  local last, grace = self.o.last_whole, self.o.grace_s or 0
  if not last or grace <= 0 then return nil end
  local listed, age = last:has(key)
  if listed == nil then return nil end
  if age > grace then return nil, age end
  return listed, age
end

-- The bytes no part of a stream's name holds: `[%c%s/|?#]` (controls 0-31 and 127, the space, /,
-- |, ? and #), by value.
local NOT_IN_NAME = { [32] = true, [47] = true, [124] = true, [63] = true, [35] = true, [127] = true }
for b = 0, 31 do NOT_IN_NAME[b] = true end

-- Whether `v` can be a part of an Alibaba Cloud stream's name on the list. (A look at each byte,
-- not a pattern: LuaJIT compiles this loop; the door asks for every part of every stream.)
local function name_part(v)
  if type(v) ~= "string" or v == "" or #v > 256 then return false end
  for i = 1, #v do
    if NOT_IN_NAME[byte(v, i)] then return false end
  end
  return true
end

-- The request's stream and its forbid-list key, or nil and why.
local function stream_of(req)
  local p = req.provider
  if p == "zego" then
    local id = req.stream_id
    if type(id) ~= "string" or id == "" or #id > 256 or not id:find("^[%w_%-]+$") then
      return nil, "stream_id must be 1 to 256 digits, letters, - and _"
    end
    return "zego stream " .. id, desired.key("zego", id)
  elseif p == "aliyun" then
    -- (each field by name, not a loop over a list made per call: LuaJIT compiles the door's path whole)
    local bad = not name_part(req.domain_name) and "domain_name" or not name_part(req.app_name) and "app_name"
      or not name_part(req.stream_name) and "stream_name"
    if bad then return nil, bad .. " must be 1 to 256 printable characters, without spaces, /, |, ? or #" end
    if find(req.domain_name, ":", 1, true) then
      return nil, "domain_name must be a domain without a port (the list holds domains)"
    end
    return format("aliyun stream %s/%s/%s", req.domain_name, req.app_name, req.stream_name),
      desired.key("aliyun", req)
  end
  return nil, "provider must be \"aliyun\" or \"zego\""
end

-- Does the list `list` hold `v`?
local function holds(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- The credential's verdict: nil to go on, or a refusal.
local function credential(self, req, name)
  if req.provider == "zego" and self.o.zego then
    local z = self.o.zego
    local t, err = token04.read(req.token, { app_id = z.app_id, secret = z.secret, now = self.now(),
                                             legacy_cbc = z.legacy_cbc or z.form == "cbc" })
    if not t then return deny(err.code, "its token: " .. err.message) end
    if req.user_id ~= nil and t.user_id ~= req.user_id then
      return deny("NotGranted", format("its token is user %s's, not %s's", t.user_id, tostring(req.user_id)))
    end
    -- (a publish grant names its streams: a token with no payload, or one whose list is empty, grants
    -- every stream to ZEGO, banned ones included; the door takes neither)
    if t.payload == "" then
      return deny("NotGranted", "its token grants no stream by name (no payload): a publish grant names its streams")
    end
    if not t.publish then return deny("NotGranted", "its token does not grant publishing") end
    if not (t.stream_ids and #t.stream_ids > 0) then
      return deny("NotGranted", "its token names no stream: a publish grant names its streams")
    end
    if not holds(t.stream_ids, req.stream_id) then
      return deny("NotGranted", format("its token does not grant publishing %s", name))
    end
    if t.room_id and t.room_id ~= "" and req.room_id ~= nil and t.room_id ~= req.room_id then
      return deny("NotGranted", format("its token is for room %s, not %s", t.room_id, tostring(req.room_id)))
    end
  elseif req.provider == "aliyun" and self.o.aliyun then
    local a = self.o.aliyun
    local ok, err = authkey.verify { uri = "/" .. req.app_name .. "/" .. req.stream_name, keys = a.keys,
                                     auth_key = req.auth_key, now = self.now(), delta = a.delta }
    if not ok then return deny(err.code, "its signed URL: " .. err.message) end
  end
  return nil
end

--- The verdict on one arrival.
-- @tparam table req `provider` ("aliyun" or "zego"); ZEGO's `stream_id`, `user_id`, `room_id`,
--   `token`; Alibaba Cloud's `domain_name`, `app_name`, `stream_name`, `auth_key`; `client_ip`
--   (for the hook and the log)
-- @return `{ allow, code, reason, list }` (`code` "Admitted" when allowed; `list`: where the list's
--   answer came from, see `deny`)
function Door:decide(req)
  if type(req) ~= "table" then error("bad argument #1 to 'decide' (table expected)", 2) end
  local started = core.monotonic()
  local verdict = self:_decide(req)
  local m = self.o.metrics
  if m then
    local p = (req.provider == "aliyun" or req.provider == "zego") and req.provider or "unknown"
    m:count("admissions", { provider = p, verdict = verdict.allow and "allow" or "deny", code = verdict.code })
    if verdict.list == "last" or verdict.list == "expired" then
      m:count("stale_admissions", { provider = p, result = verdict.list == "last" and "answered" or "expired" })
    end
    m:admission_time(p, core.monotonic() - started)
  end
  return verdict
end

function Door:_decide(req, no_credential)
  local name, key = stream_of(req)
  if not name then return deny("InvalidRequest", key) end
  local refused = not no_credential and credential(self, req, name)
  if refused then return refused end
  local listed, lerr = self.o.forbidden:has(key)
  if listed then return deny("Forbidden", name .. " is on the forbid list", "read") end
  local verdict = { allow = true, code = "Admitted", reason = name .. " is not on the forbid list", list = "read" }
  if listed == nil then
    local why = "the forbid list cannot be read (" .. tostring(lerr) .. ")"
    local last, age = self:_last_whole(key)
    if last ~= nil then
      -- (the list as last read whole, within the grace: a failover's seconds answered as before it)
      local as_read = format("as read whole %.1f s ago (%s; grace %s s)", age, why, tostring(self.o.grace_s))
      if last then return deny("Forbidden", name .. " is on the forbid list " .. as_read, "last") end
      verdict.reason, verdict.list = name .. " is not on the forbid list " .. as_read, "last"
    else
      local from = age and "expired" or "unread"
      if age then
        why = why .. format("; the list last read whole is %.1f s old, past the grace (%s s)", age,
          tostring(self.o.grace_s))
      end
      if self.on_list_error == "deny" then
        return deny("ListUnavailable", why .. ": refused, as on_list_error says", from)
      end
      verdict.reason, verdict.list = why .. ": admitted, as on_list_error says", from
    end
  end
  if self.o.hook then
    local ok, allow, why = pcall(self.o.hook, req, verdict)
    if not ok then return deny("HookFailed", "the hook raised: " .. tostring(allow)) end
    if allow == false then return deny("HookRefused", why and tostring(why) or "the hook refused it") end
  end
  return verdict
end

--- A ZEGO token (streamctl.edge.token04) for a user, issued only when
-- every stream it would let the user publish is admitted now (the forbid
-- list, the hook; no credential is asked: this is where it comes from). A
-- publish grant names its streams: `publish` without `stream_ids` is
-- refused (InvalidParameter).
-- @tparam table req `user_id`, `room_id`, `login`, `publish`, `stream_ids`, `ttl` (token04.issue's
--   fields), `client_ip` (for the hook)
-- @return the token; or nil and the verdict that refused it (`{ allow = false, code, reason }`:
--   a stream's, or `InvalidParameter` for a field)
function Door:issue_token(req)
  if type(req) ~= "table" then error("bad argument #1 to 'issue_token' (table expected)", 2) end
  local z = self.o.zego
  if not z then error("issue_token: the door was made without zego = { app_id, secret }", 2) end
  local m = self.o.metrics
  local function refused(v)
    if m then m:count("tokens", { provider = "zego", result = v.code }) end
    return nil, v
  end
  if req.publish then
    if type(req.stream_ids) ~= "table" or req.stream_ids[1] == nil then
      return refused(deny("InvalidParameter", "stream_ids: a publish grant names its streams (a token without them "
        .. "would let the user publish any stream, banned ones included)"))
    end
    for _, id in ipairs(req.stream_ids) do
      local v = self:_decide({ provider = "zego", stream_id = id, user_id = req.user_id, room_id = req.room_id,
                               client_ip = req.client_ip }, true)
      if not v.allow then return refused(v) end
    end
  end
  local token, err = token04.issue { app_id = z.app_id, secret = z.secret, user_id = req.user_id, ttl = req.ttl,
    room_id = req.room_id, login = req.login, publish = req.publish, stream_ids = req.stream_ids,
    now = floor(self.now()), form = z.form }
  if not token then return refused(deny(err.code, err.message)) end
  if m then m:count("tokens", { provider = "zego", result = "issued" }) end
  return token
end

--- A copy of `req` with only the fields `decide` reads (for a log line:
-- the token and auth_key left out).
function M.loggable(req)
  local out = {}
  for _, k in ipairs { "provider", "stream_id", "user_id", "room_id", "domain_name", "app_name", "stream_name",
                       "client_ip" } do
    out[k] = req[k]
  end
  return out
end

return M
