--- What one nginx worker of the edge holds (streamctl.edge.server): its
-- settings, clients, forbid list, metrics, tracer and audit log, each made
-- once; and what every handler answers with (JSON replies, the Bearer
-- check, audit lines). The handlers' modules (moderation, reactions, door,
-- keeper) share this one table.
-- @module streamctl.edge.worker

-- luacheck: globals ngx

local cjson = require "cjson.safe"
local core = require "streamctl.core"
local audit = require "streamctl.operator.audit"
local desired_store = require "streamctl.operator.desired"

local type, ipairs, tostring = type, ipairs, tostring

local W = {
  -- the shared dicts nginx.conf declares
  SHARED_DICT = "streamctl",                -- rate limits and ZEGO Sequences, one budget per nginx
  METRICS_DICT = "streamctl_metrics",       -- the counters every worker adds to
  CALLBACKS_DICT = "streamctl_callbacks",   -- callbacks seen (replays refused), for every worker
  DESIRED_DICT = "streamctl_desired",       -- the forbid list: "aliyun|domain|app|stream", "zego|stream_id"
  settings = nil, -- checked (streamctl.edge.settings), set by the server's init
  clients = {},   -- by provider, made on first use
  metrics = nil,  -- made in init_worker, over the metrics dict
  tracer = nil,   -- this worker's span exporter, when OTEL_* asks for one
  host = nil,     -- this machine's name, for the audit lines
  audit_write = nil, audit_why = nil, -- the audit log's writer (and why the last write failed)
}

--- The forbid list (streamctl.operator.desired): in Redis with `redis_url` (every edge naming
-- it agrees), else in the shared dict (this nginx). Made on first use.
function W.store()
  if not W.desired then
    local redis = W.settings.redis_url
    if redis then
      W.desired = assert(desired_store.redis(redis)) -- (the URL was checked in init)
    else
      W.desired = desired_store.shdict(ngx.shared[W.DESIRED_DICT])
    end
  end
  return W.desired
end

--- The client for `provider`, made on first use in this worker; or nil and why.
function W.client(provider)
  local c = W.clients[provider]
  if c then return c end
  local s = W.settings
  local err
  local opts = {
    redis = s.redis_url,                            -- one budget for every nginx using this Redis,
    shared_dict = not s.redis_url and W.SHARED_DICT or nil, -- else for every worker of this nginx
    on_attempt = W.metrics.on_attempt,
    tracer = W.tracer,                              -- with OTEL_EXPORTER_OTLP_ENDPOINT: spans exported
    ca_file = s.ca_file,                            -- must be the CA lua_ssl_trusted_certificate names
    timeout_ms = 10000,
  }
  if provider == "aliyun" then
    opts.endpoint = s.aliyun_endpoint
    c, err = require("streamctl.aliyun").new(opts)
  else
    opts.endpoint = s.zego_endpoint
    opts.app_id, opts.server_secret = s.zego_app_id, s.zego_server_secret -- (nil: the environment's)
    c, err = require("streamctl.zego").new(opts)
  end
  if not c then return nil, err end
  W.clients[provider] = c
  return c
end

--- Answers `value` as JSON with `status`, and ends the request.
function W.reply(status, value)
  ngx.status = status
  ngx.header.content_type = "application/json"
  ngx.header.cache_control = "no-store"
  ngx.print(cjson.encode(value))
  return ngx.exit(status)
end

function W.answer_error(status, message)
  return W.reply(status, { error = message })
end

--- Equal strings, compared in time that depends on neither: both are hashed
-- first, so even their lengths do not show, and the hashes compared by core.equal.
function W.same_secret(a, b)
  return core.equal(core.sha256_hex(a), core.sha256_hex(b))
end

local function authorized(key)
  local header = ngx.var.http_authorization
  local token = type(header) == "string" and header:match("^[Bb]earer +(%S+)%s*$")
  if not token then return false end
  return W.same_secret(token, W.settings[key] or "")
end

--- A POST with the Bearer token of setting `key` (default "token", the moderation API's), or the
-- answer already given by `refuse(status, message)` (405, 401): true when refused.
function W.refused_at_door(refuse, key)
  if ngx.req.get_method() ~= "POST" then
    ngx.header.allow = "POST"
    refuse(405, "use POST")
    return true
  end
  if not authorized(key or "token") then
    ngx.header.www_authenticate = 'Bearer realm="streamctl"'
    refuse(401, "a valid 'Authorization: Bearer <token>' header is required")
    return true
  end
  return false
end

--- One audit line (streamctl.operator.audit.record's fields). Who: `fields.user`, else the
-- client of this request (a timer has none: it is the edge's own doing). A line that
-- cannot be written is said, and /streams requests are refused until one can be.
function W.write_audit(fields)
  if not W.audit_write then return false end
  local c = W.clients[fields.provider]
  if not fields.user then
    local timer = ngx.get_phase() == "timer"
    fields.user = timer and "the edge (timer)" or ("edge token from " .. tostring(ngx.var.remote_addr))
  end
  fields.host = W.host
  fields.credential = c and (c.access_key_id or (c.app_id and tostring(c.app_id))) or nil
  local ok, why = W.audit_write(audit.record(fields))
  if not ok then
    W.audit_why = why
    ngx.log(ngx.ERR, "streamctl.edge: the audit log: ", why)
    return false
  end
  W.audit_why = nil
  return true
end

--- The intent of a change about to be sent (the audit log as a write-ahead
-- log: docs/reconcile.md): a new run id, the streams (each when at most 100,
-- always their count and digest). True and the run id, or false: nothing
-- may be sent. (write(2) under a lock, no fdatasync: that would block the
-- worker; a worker that crashes keeps it, a power loss may not.)
function W.write_intent(fields, streams)
  local run = audit.run_id()
  fields.run = run
  return W.write_audit(audit.intent(fields, streams)), run
end

--- A report's streams as audit entries.
function W.audit_streams(report)
  local out = {}
  for i, r in ipairs(report.results) do
    out[i] = audit.entry(r, r.stream, r.action or report.action) -- (a reconcile's entries name their own)
  end
  return out
end

--- A stream's key on the forbid list: Aliyun's by `fields`' domain and app, ZEGO's by its ID.
function W.desired_key(provider, fields, name)
  if provider == "aliyun" then
    return desired_store.key("aliyun", { domain_name = fields.domain_name, app_name = fields.app_name,
      stream_name = name })
  end
  return desired_store.key("zego", name)
end

-- When a forbid ends by itself (an entry's `ends`, Unix seconds), as UTC text.
local function ends_text(r)
  return r.ends and core.utc_timestamp(math.floor(r.ends)) or nil
end

--- A report as JSON: one entry per stream, in the order given.
function W.report_json(report)
  local results = {}
  for i, r in ipairs(report.results) do
    local e = r.error
    results[i] = {
      stream = r.stream, ok = r.ok, attempts = r.attempts, request_id = r.request_id or (e and e.request_id),
      lookup_request_id = r.lookup_request_id or (e and e.lookup_request_id),
      code = e and e.code, message = e and e.message, outcome_unknown = r.outcome_unknown or nil,
      superseded_by = r.superseded_by, -- (a later call's decision on the stream stands: not on the list)
      ends = ends_text(r), ends_by = r.ends_by, -- (when a forbid ends by itself: docs/W.clients.md)
    }
  end
  return {
    action = report.action, total = report.total, succeeded = report.succeeded, failed = report.failed,
    unknown = report.unknown, calls = report.calls, duplicates = report.duplicates, results = results,
  }
end

return W
