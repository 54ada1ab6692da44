--- The door in nginx (streamctl.edge.server): may this stream be
-- published? /admission answers every ingest server that asks in its own
-- words (streamctl.edge.ingest), /admission/aliyun Alibaba Cloud's remote
-- authentication, /tokens/zego issues ZEGO's tokens only for streams the
-- door admits; every verdict comes from one decision (streamctl.edge.admission):
-- the forbid list, the signed URL or token where configured.
-- @module streamctl.edge.door

-- luacheck: globals ngx

local cjson = require "cjson.safe"
local admission = require "streamctl.edge.admission"
local ingest = require "streamctl.edge.ingest"
local settings = require "streamctl.edge.settings"
local lastlist = require "streamctl.edge.lastlist"
local metrics_mod = require "streamctl.operator.metrics"
local W = require "streamctl.edge.worker"

local type, pairs, next, tostring, pcall, assert = type, pairs, next, tostring, pcall, assert
local format = string.format

local M = {}

-- The decision (streamctl.edge.admission): the forbid list (this edge's, or every edge's in
-- Redis), ZEGO's tokens with the server API's AppId and secret, and Alibaba Cloud's signed URLs
-- with the aliyun_auth_key setting (two keys during a rotation) when set. A list that cannot be
-- read refuses, unless admit_on_list_error is "allow". One per worker, made on first use.
-- With Redis, while the list cannot be read (a failover, the list made whole again after one), the
-- door answers from the list this worker last read whole (streamctl.edge.lastlist, read every
-- second) for list_grace_s seconds.
local the_door, last_whole, counted, pending
local function door()
  if not the_door then
    local s = W.settings
    local keys = s.aliyun_auth_key
    the_door = assert(admission.new {
      forbidden = W.store(), metrics = counted,
      zego = s.zego_app_id and { app_id = s.zego_app_id, secret = s.zego_server_secret, form = s.zego_token_form }
        or nil,
      aliyun = keys and { keys = type(keys) == "table" and keys or { keys } } or nil,
      on_list_error = s.admit_on_list_error,
      last_whole = last_whole, grace_s = s.list_grace_s,
    })
  end
  return the_door
end

-- What the door answers from, said once each time it changes (per worker): the list, the list last
-- read whole (a failover), or on_list_error (past the grace).
local said = nil
local function say(verdict)
  local now = verdict.list
  if now == nil or now == said then return end
  if now == "last" then
    ngx.log(ngx.WARN, "streamctl.edge: the door answers from the forbid list last read whole: ", verdict.reason)
  elseif now == "expired" or now == "unread" then
    ngx.log(ngx.ERR, "streamctl.edge: the door answers as admit_on_list_error says: ", verdict.reason)
  elseif said then
    ngx.log(ngx.NOTICE, "streamctl.edge: the door answers from the forbid list again")
  end
  said = now
end

local function decide(req)
  local verdict = door():decide(req)
  if last_whole then say(verdict) end
  return verdict
end

local refreshing = false
local function refresh(premature)
  if premature or refreshing then return end
  refreshing = true
  -- (a list that cannot be read: the one read last is kept)
  local ok, read = pcall(last_whole.refresh, last_whole)
  W.metrics:count("list_reads", { result = ok and read and "whole" or "failed" })
  refreshing = false
end

--- Adds this worker's counts of the door's decisions into the metrics dict.
function M.flush()
  if not pending or next(pending) == nil then return end
  local dict, counts = ngx.shared[W.METRICS_DICT], pending
  pending = {}
  for key, n in pairs(counts) do
    local ok, err = dict:incr(key, n, 0)
    if not ok then ngx.log(ngx.ERR, "streamctl.edge: the metrics dict: ", tostring(err)) end
  end
end

--- In each worker's init_worker: the door's counters, added up here and into the metrics dict every
-- second (a decision writes nothing shared: /metrics flushes its own worker's first, another
-- worker's are at most a second behind); with Redis and a grace, the list last read whole, read
-- every second.
function M.start()
  pending = {}
  local function only_counts() error("streamctl.edge: the door's counters only add", 2) end
  counted = assert(metrics_mod.new { dict = { set = only_counts, get = only_counts, get_keys = only_counts,
    incr = function(_, key, n)
      local v = (pending[key] or 0) + n
      pending[key] = v
      return v
    end } })
  assert(ngx.timer.every(1, function(premature) if not premature then M.flush() end end))
  if not (W.settings.redis_url and W.settings.list_grace_s > 0) then return end
  last_whole = lastlist.new(W.store())
  assert(ngx.timer.at(0, refresh))
  assert(ngx.timer.every(1, refresh))
end

-- Reads the request as `dialect` says (nil: as its shape says), decides, and answers as that
-- dialect's server reads answers.
local function serve(dialect)
  local args, truncated = ngx.req.get_uri_args(100)
  local method, body = ngx.req.get_method(), nil
  if method == "POST" and not dialect then
    ngx.req.read_body()
    body = ngx.req.get_body_data()
    -- (a body larger than the buffer nginx keeps in memory: refused, never read in part)
    if not body and ngx.req.get_body_file() then body = string.rep(" ", ingest.MAX_BODY + 1) end
  end
  local req, v
  req, v, dialect = ingest.read { method = method, content_type = ngx.var.content_type, body = body, query = args,
    truncated = truncated == "truncated", dialect = dialect }
  if req then dialect, v = v, decide(req) end
  if not v.allow then
    ngx.log(ngx.INFO, "streamctl.edge: admission refused (", tostring(dialect), "): ", v.code, ": ", v.reason)
  end
  local status, text, ctype = ingest.answer(dialect, v)
  ngx.status = status
  ngx.header.content_type = ctype
  ngx.header.cache_control = "no-store"
  ngx.print(text)
  return ngx.exit(status)
end

--- content_by_lua for GET /admission/aliyun: Alibaba Cloud Live's remote authentication asks
-- before an ingest (set the domain's remote authentication to pass domain, app, stream and ip:
-- docs/admission.md): /admission's aliyun dialect, whatever the request's shape. 200 admitted,
-- 403 refused; the answer names the verdict's code and reason.
function M.aliyun() return serve("aliyun") end

--- content_by_lua for /admission: the door every ingest server asks (nginx-rtmp, SRS, MediaMTX,
-- Alibaba Cloud), each answered as it reads answers (streamctl.edge.ingest).
function M.ingest() return serve(nil) end

--- content_by_lua for POST /tokens/zego: a client's Token04 for the streams the door admits.
function M.zego_token()
  -- (its own Bearer: the app servers that hand clients their tokens hold no key to the moderation API)
  local s = W.settings
  if not s.issuer_token then
    return W.answer_error(503, format("%s is not set: /tokens/zego is off (its Bearer is apart from %s's, the "
      .. "moderation API's)", settings.name(s, "issuer_token"), settings.name(s, "token")))
  end
  if W.refused_at_door(W.answer_error, "issuer_token") then return end
  if not s.zego_app_id then
    return W.answer_error(503, format("%s and %s are not set", settings.name(s, "zego_app_id"),
      settings.name(s, "zego_server_secret")))
  end
  ngx.req.read_body()
  local body = cjson.decode(ngx.req.get_body_data() or "")
  if type(body) ~= "table" then return W.answer_error(400, "body: a JSON object expected") end
  local ids = body.stream_ids ~= nil and body.stream_ids ~= cjson.null and body.stream_ids or nil
  local token, refusal = door():issue_token { user_id = body.user_id, room_id = body.room_id,
    login = body.login, publish = body.publish, stream_ids = ids, ttl = body.ttl,
    client_ip = ngx.var.remote_addr }
  if not token then
    return W.reply(refusal.code == "InvalidParameter" and 400 or 403, { error = refusal.code, reason = refusal.reason })
  end
  return W.reply(200, { token = token })
end


return M
