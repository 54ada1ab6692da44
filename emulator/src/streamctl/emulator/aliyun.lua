-- The Aliyun ports as the server sees them (server.lua's provider module:
-- init, peek_action, process, fault_response, placeholder_body, snapshot,
-- reset): Alibaba Cloud OpenAPI (RPC style) as ApsaraVideo Live and STS
-- answer it, and GET /credentials-uri, the credentials URI
-- (credentials_uri.lua), outside the gateway. Its parts:
--   aliyun_gateway.lua    a request through the gateway's checks (their
--                         order, keys, budgets) to its operation
--   aliyun_signature.lua  signature V1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256)
--   aliyun_nonces.lua     the nonces seen (SignatureNonceUsed)
--   aliyun_response.lua   error codes, request ids, JSON and XML answers
--   aliyun_products.lua   Live or STS by the request's Version, and what a
--                         request names before it is verified
--   aliyun_live.lua (Live, version 2016-11-01) and sts.lua (STS, version
--   2015-04-01): the operations themselves.

local json = require "streamctl.emulator.json"
local stats = require "streamctl.emulator.stats"
local live = require "streamctl.emulator.aliyun_live"
local sessions = require "streamctl.emulator.sessions"
local credentials_uri = require "streamctl.emulator.credentials_uri"
local products = require "streamctl.emulator.aliyun_products"
local response = require "streamctl.emulator.aliyun_response"
local gateway = require "streamctl.emulator.aliyun_gateway"
local nonces = require "streamctl.emulator.aliyun_nonces"

local pairs, tostring = pairs, tostring

local M = {}

local cfg

M.ERRORS = response.ERRORS
M.status_of = response.status_of
M.error_response = response.error_response
M.peek_action = products.peek_action

function M.init(settings)
  cfg = settings
  products.init(settings)
  gateway.init(settings)
  live.init(settings)
end

-- The account UID a known AccessKeyId belongs to (its "account" in the
-- config, or an issued key's role's); nil for an unknown key and for a key
-- that is an account of its own.
function M.account_uid(ak)
  local account = ak and gateway.lookup(ak)
  return account and account.account or nil
end

-- Verifies and executes one request. Returns a result:
--   { status, headers, body, log = {...}, applied = bool }
function M.process(req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.process(req, cfg.aliyun)
  end
  return gateway.process(req)
end

-- The answer an injected fault gives in place of (or over) a request.
-- kind: http500 | http503 | throttle | code. Returns a result like process().
function M.fault_response(kind, fault, req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.fault_response(kind)
  end
  local product = products.peek_product(req)
  local fmt = response.format_of(req)
  if kind == "code" then
    local rid = response.request_id()
    return response.render(200, (M.peek_action(req) or "") .. "Response",
      { RequestId = rid, RetCode = fault.code, Description = fault.message or "Failed" }, fmt, rid)
  elseif kind == "http500" then
    return response.error_response("InternalError", nil, fmt, nil, nil, product)
  elseif kind == "http503" then
    return response.error_response("ServiceUnavailable", nil, fmt, nil, nil, product)
  end
  return response.error_response("Throttling.User", nil, fmt,
    nil, { ["x-acs-retry-after"] = tostring(fault.retry_after_ms) }, product)
end

-- A plausible success body for malformed/truncated faults that replace the
-- request entirely.
function M.placeholder_body(req)
  if req.path == credentials_uri.PATH then
    return credentials_uri.placeholder_body()
  end
  return json.encode({ RequestId = response.request_id(), Action = M.peek_action(req) })
end

-- The limiter each key uses (its own rate_limiter or the provider's), and
-- the account UID of each key that has one.
local function limiters()
  local out, uids = {}, {}
  for id, account in pairs(cfg.aliyun.accounts) do
    out[id] = account.rate_limiter or cfg.aliyun.rate_limiter
    uids[id] = account.account
  end
  return out, uids
end

-- Online streams (DescribeLiveStreamsOnlineList), set through /_emulator/online.
M.tick = live.tick
M.mark_online = live.mark_online
M.mark_offline = live.mark_offline
M.online_snapshot = live.online_snapshot

function M.snapshot(now)
  local s = live.snapshot(now)
  s.counters = stats.snapshot("aliyun")
  s.rate_limiter = cfg.aliyun.rate_limiter
  s.rate_limiters, s.account_uids = limiters()
  return s
end

function M.reset()
  live.reset()
  sessions.reset()
  nonces.reset()
end

return M
