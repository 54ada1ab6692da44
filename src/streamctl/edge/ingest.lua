--- The door every ingest server asks (issue 88): one URL, `/admission`,
-- answering each server in its own words. What arrived is told apart by
-- its shape, read into the door's request (streamctl.edge.admission's
-- `decide`), and the verdict answered as that server reads answers:
--
-- * `nginx-rtmp` (`on_publish`, `on_play`): a form POST (`call`, `app`,
--   `name`, `tcurl`, `addr`, the client's query); 200 admits, 403 refuses
--   (it reads no body);
-- * `srs` (`http_hooks`): JSON (`action` on_publish or on_play,
--   `client_id`, `ip`, `vhost`, `app`, `stream`, `param`); 200 `{"code":0}`
--   admits, 403 `{"code":403,...}` refuses;
-- * `mediamtx` (external authentication): JSON (`user`, `password`,
--   `token`, `ip`, `action`, `path`, `protocol`, `id`, `query`); 200
--   admits, 403 refuses;
-- * `aliyun` (remote authentication): a GET (`domain`, `app`, `stream`,
--   `auth_key`, `ip`); 200 admits, 403 refuses.
--
-- The ingest domain is the one the server names (SRS's `vhost`, the host of
-- nginx-rtmp's `tcurl`) or the hook URL's `?domain=` (as Alibaba Cloud's
-- remote authentication passes custom parameters); `?domain=` decides when
-- both are there. App and stream come from the dialect's fields (MediaMTX's
-- `path` is `app/stream`). A request that matches no dialect, or more than
-- one, or lacks what its dialect needs, is refused naming the field
-- (`InvalidRequest`), never admitted. Publishing and playing are decided
-- alike: a stream on the forbid list is neither taken nor served.
-- Pure: the caller reads the request and writes the answer.
-- @module streamctl.edge.ingest

local json = require "streamctl.base.json"
local url = require "streamctl.base.url"

local type, ipairs, tostring = type, ipairs, tostring
local find, match, lower, format, sub, byte = string.find, string.match, string.lower, string.format, string.sub,
  string.byte

local M = {}

--- The largest body read (a hook's is a few hundred bytes).
M.MAX_BODY = 8192

-- A field's value as text: nil when absent, false when not a single string.
local function text(t, name)
  local v = t[name]
  if v == nil then return nil end
  return type(v) == "string" and v or false
end

-- The verdict as JSON: `{"code":...,"reason":...}` (`status`: a number first, SRS's `code`).
local function verdict_json(v, status)
  return format('{%s"error":%s,"reason":%s}', status and format('"code":%d,', status) or "", json.string(v.code),
    json.string(v.reason))
end

local function invalid(dialect, why)
  return nil, { allow = false, code = "InvalidRequest", reason = why }, dialect
end

-- The domain: `?domain=` when given, else the server's own (`named`).
local function domain_of(query, named)
  local d = text(query, "domain")
  if d == false then return nil, "query argument 'domain' given more than once" end
  if d ~= nil then return d end
  if named and named ~= "" then return named end
  return nil, "no domain: give the hook URL ?domain= (the ingest domain the list names streams by)"
end

-- The signed URL's `auth_key` in a client's query text (`?a=1&auth_key=...`), or nil.
local function auth_key_in(query_text)
  if type(query_text) ~= "string" then return nil end
  local q = url.parse_query((query_text:gsub("^%?", "")), true)
  return q and type(q.auth_key) == "string" and q.auth_key or nil
end

-- The bytes a URL's scheme may hold after its first letter, and those that end its host.
local IN_SCHEME, ENDS_HOST = { [43] = true, [45] = true, [46] = true }, { [47] = true, [58] = true, [63] = true,
  [35] = true }
for b = 48, 57 do IN_SCHEME[b] = true end
for b = 65, 90 do IN_SCHEME[b], IN_SCHEME[b + 32] = true, true end

-- The host of nginx-rtmp's tcurl (`rtmp://HOST[:PORT]/APP...`: the host names the domain), or nil:
-- `^%a[%w+.-]*://([^/:?#]+)`, read byte by byte (a pattern's match runs outside LuaJIT's traces, and
-- every nginx-rtmp hook asks it).
local function host_of(tcurl)
  local at = find(tcurl, "://", 1, true)
  if not at or at == 1 then return nil end
  local first = byte(tcurl, 1)
  if not IN_SCHEME[first] or first < 65 then return nil end
  for i = 2, at - 1 do
    if not IN_SCHEME[byte(tcurl, i)] then return nil end
  end
  local stop = at + 3
  while stop <= #tcurl and not ENDS_HOST[byte(tcurl, stop)] do stop = stop + 1 end
  return stop > at + 3 and sub(tcurl, at + 3, stop - 1) or nil
end

-- Each dialect: its door request, and its answer. (`auth_key`: the
-- client's, where its server passes the client's query on: checked when the door has keys.)
local DIALECTS = {}

-- nginx-rtmp's notify module: a form POST (`call=publish` or `call=play`).
DIALECTS["nginx-rtmp"] = {
  read = function(r)
    local f = r.form
    local call = text(f, "call")
    if call ~= "publish" and call ~= "play" then
      return nil, "field 'call' must be publish or play (got " .. tostring(call or "a list") .. ")"
    end
    local app, name, tcurl = text(f, "app"), text(f, "name"), text(f, "tcurl")
    if not app then return nil, "field 'app' is missing or given more than once" end
    if not name then return nil, "field 'name' is missing or given more than once" end
    if tcurl == false then return nil, "field 'tcurl' given more than once" end
    local host = tcurl and host_of(tcurl)
    local domain, why = domain_of(r.query, host)
    if not domain then return nil, why end
    return { provider = "aliyun", domain_name = domain, app_name = app, stream_name = name,
             client_ip = text(f, "addr") or nil, auth_key = text(f, "auth_key") or nil, action = call }
  end,
  answer = function(v) return v.allow and 200 or 403, v.allow and "admitted\n" or "refused\n", "text/plain" end,
}

-- SRS's HTTP callbacks: JSON with `action` on_publish / on_play and a `client_id`.
DIALECTS.srs = {
  read = function(r)
    local j = r.json
    local action = j.action
    if action ~= "on_publish" and action ~= "on_play" then
      return nil, "field 'action' must be on_publish or on_play (got " .. tostring(action) .. ")"
    end
    for _, f in ipairs { "app", "stream" } do
      if type(j[f]) ~= "string" then return nil, "field '" .. f .. "' must be a string" end
    end
    local vhost = type(j.vhost) == "string" and j.vhost ~= "__defaultVhost__" and j.vhost or nil
    local domain, why = domain_of(r.query, vhost)
    if not domain then return nil, why end
    return { provider = "aliyun", domain_name = domain, app_name = j.app, stream_name = j.stream,
             client_ip = type(j.ip) == "string" and j.ip or nil, auth_key = auth_key_in(j.param),
             action = action == "on_publish" and "publish" or "play" }
  end,
  answer = function(v)
    if v.allow then return 200, '{"code":0}', "application/json" end
    return 403, verdict_json(v, 403), "application/json"
  end,
}

-- MediaMTX's external authentication: JSON with `path`, `protocol` and `action`.
DIALECTS.mediamtx = {
  read = function(r)
    local j = r.json
    local action = j.action
    if action ~= "publish" and action ~= "read" and action ~= "playback" then
      return nil, "field 'action' must be publish, read or playback: the door decides streams (got "
        .. tostring(action) .. ")"
    end
    local app, stream
    if type(j.path) == "string" then app, stream = match(j.path, "^([^/]+)/([^/]+)$") end
    if not app then return nil, "field 'path' must be app/stream (got " .. tostring(j.path) .. ")" end
    local domain, why = domain_of(r.query, nil)
    if not domain then return nil, why end
    return { provider = "aliyun", domain_name = domain, app_name = app, stream_name = stream,
             client_ip = type(j.ip) == "string" and j.ip or nil, auth_key = auth_key_in(j.query),
             action = action == "publish" and "publish" or "play" }
  end,
  answer = function(v) return v.allow and 200 or 403, verdict_json(v), "application/json" end,
}

-- Alibaba Cloud's remote authentication: a GET with domain, app and stream.
DIALECTS.aliyun = {
  -- (as /admission/aliyun always answered: {"code":..,"reason":..}, whatever the verdict)
  read = function(r)
    local q = r.query
    -- (each field by name, not a loop over a list made per call: LuaJIT compiles this path whole)
    local twice = text(q, "domain") == false and "domain" or text(q, "app") == false and "app"
      or text(q, "stream") == false and "stream" or text(q, "auth_key") == false and "auth_key"
      or text(q, "ip") == false and "ip"
    if twice then return nil, "query argument '" .. twice .. "' given more than once" end
    return { provider = "aliyun", domain_name = q.domain, app_name = q.app, stream_name = q.stream,
             auth_key = q.auth_key, client_ip = q.ip, action = "publish" }
  end,
  answer = function(v)
    return v.allow and 200 or 403, format('{"code":%s,"reason":%s}', json.string(v.code), json.string(v.reason)),
      "application/json"
  end,
}

-- The form fields the nginx-rtmp dialect reads (and its shape: `call`); a form's others are checked, not kept.
local FORM_TYPE = "application/x-www-form-urlencoded"
local FORM_FIELDS = { "call", "app", "name", "tcurl", "addr", "auth_key" }

-- The dialects whose shape the request `r` has: the first, and a second when there is one. (Written
-- out, not a loop over each dialect's test: LuaJIT compiles the door's path whole.)
local function shapes(r)
  local form, j = r.form, r.json
  local rtmp = form ~= nil and form.call ~= nil and "nginx-rtmp" or nil            -- a form with call=
  local srs = j ~= nil and j.client_id ~= nil and "srs" or nil                       -- JSON with client_id
  local mediamtx = j ~= nil and j.path ~= nil and j.protocol ~= nil and "mediamtx" or nil -- path and protocol
  local aliyun = r.method == "GET" and r.query.app ~= nil and r.query.stream ~= nil and "aliyun" or nil
  return rtmp or srs or mediamtx or aliyun,
    rtmp and (srs or mediamtx or aliyun) or srs and (mediamtx or aliyun) or mediamtx and aliyun or nil
end

--- Reads a request into the door's.
-- @tparam table r `method`, `content_type`, `body` (text or nil), `query` (the URI's arguments
--   as ngx.req.get_uri_args gives them: a name given twice is a list), `truncated` (true when
--   the server read only part of the query), `dialect` (read as that dialect, whatever its shape:
--   a URL of its own, such as /admission/aliyun)
-- @return the door's request (its `action` "publish" or "play") and the dialect; or nil, the
--   refusal (`{ allow = false, code = "InvalidRequest", reason }`) and the dialect when one matched
function M.read(r)
  if type(r) ~= "table" or type(r.query) ~= "table" then
    error("bad argument #1 to 'read' (a request expected)", 2)
  end
  local found = r.dialect
  if found ~= nil and not DIALECTS[found] then error("bad argument #1 to 'read' (no dialect " .. tostring(found)
    .. ")", 2) end
  if r.truncated then return invalid(found, "more than 100 query arguments") end
  local body = r.body
  if body ~= nil and (type(body) ~= "string" or #body > M.MAX_BODY) then
    return invalid(found, "body: more than " .. M.MAX_BODY .. " bytes")
  end
  local shaped = { method = r.method, query = r.query }
  local ctype = r.content_type or ""
  if r.method == "POST" and body then
    -- (its first 33 bytes as written, lowered only when they differ: a form's type is read plainly)
    local head = sub(ctype, 1, 33)
    if head == FORM_TYPE or lower(head) == FORM_TYPE then
      shaped.form = url.parse_query(body, false, FORM_FIELDS)
      if not shaped.form then return invalid(nil, "body: a form with a malformed escape") end
    elseif find(lower(ctype), "^application/json") or find(body, "^%s*{") then
      local v = json.decode(body)
      local flaw = type(v) == "table" and json.strict_flaw(body)
      if type(v) ~= "table" or flaw then
        return invalid(nil, "body: not a JSON object" .. (flaw and " (it " .. flaw .. ")" or ""))
      end
      shaped.json = v
    end
  end
  if not found then
    local second
    found, second = shapes(shaped)
    if second then return invalid(nil, format("the request matches both %s and %s: refused", found, second)) end
  end
  if not found then
    return invalid(nil, "the request is none of nginx-rtmp's form (call=...), SRS's JSON (client_id), MediaMTX's "
      .. "JSON (path, protocol) or Alibaba Cloud's GET (domain, app, stream)")
  end
  local req, why = DIALECTS[found].read(shaped)
  if not req then return invalid(found, why) end
  return req, found
end

--- The answer to `dialect`'s server for `verdict` (the door's, or read's
-- refusal): status, body and content type. nil dialect (none matched):
-- 403 with the verdict as JSON.
function M.answer(dialect, verdict)
  local d = dialect and DIALECTS[dialect]
  if not d then return 403, verdict_json(verdict), "application/json" end
  return d.answer(verdict)
end

return M
