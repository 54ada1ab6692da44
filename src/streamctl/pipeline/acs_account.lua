--- The account an Alibaba Cloud client's pacing budget is keyed by:
-- Alibaba Cloud counts an API's QPS per account, over every AccessKey and
-- STS session of its RAM users. `account_id` when given, else a role ARN's
-- UID, else the UID STS answers once (GetCallerIdentity, asked only when the
-- budget is shared). streamctl.pipeline.acs gives it to each product's rules.
-- @module streamctl.pipeline.acs_account

local redact = require "streamctl.base.redact"
local log = require "streamctl.base.log"
local options = require "streamctl.pipeline.options"

local type, tostring, pairs, pcall = type, tostring, pairs, pcall
local format, match = string.format, string.match

local M = {}

--- The security token of a client (set by streamctl.pipeline.acs, which keeps them apart).
M.token_of = function() return nil end

-- The account UID: decimal digits, as a string: a UID has 16, more than
-- a Lua 5.1 number keeps exactly.
local MAX_ACCOUNT_ID = 32
local function account_id_rule(v)
  if type(v) ~= "string" or #v < 1 or #v > MAX_ACCOUNT_ID or v:find("%D") then
    return format("must be a string of 1 to %d decimal digits (the account UID)", MAX_ACCOUNT_ID)
  end
  return nil
end
function M.account_id_value(v)
  local why = account_id_rule(v)
  if why then return nil, why end
  return v
end

--- The rule an `account_id` breaks (a message fragment), or nil.
M.account_id_rule = account_id_rule

--- The budget key of clients whose account is not known (the lookup below
-- failed, or has not answered yet): one budget for all of them, which can
-- only send less than the caps allow, never more.
M.UNKNOWN_ACCOUNT = "unknown-account"
--- Seconds before a failed account lookup is tried again.
M.LOOKUP_RETRY_S = 60
--- Seconds a call waits for a lookup another coroutine of the process has
-- under way (inside nginx) before it paces as UNKNOWN_ACCOUNT.
M.LOOKUP_WAIT_S = 10

-- The account behind credentials that name none (no `account_id`, no role
-- ARN): STS GetCallerIdentity, asked once per credential source in a
-- process and remembered: the state of each AccessKeyId's lookup (by STS
-- endpoint and key id), and of each holder's (on the holder). Asked only when the budget is shared (a
-- rate_limit_store, shared_dict or Redis): a client's own budget is keyed
-- by nothing another client sees.
local LOOKUPS = {}

--- Where a client's account lookup asks STS unless `sts_endpoint` says:
-- $ALIBABA_CLOUD_STS_ENDPOINT (given by the client: `env`), else for an
-- Alibaba Cloud endpoint the STS of its region (live.<region>.aliyuncs.com ->
-- sts.<region>.aliyuncs.com; live.aliyuncs.com -> sts.aliyuncs.com), else
-- the endpoint itself: a gateway or the emulator, which serves STS beside
-- the API; anything else would send the keys somewhere the caller never named.
-- @tparam table endpoint the client's (options.parse_endpoint)
-- @tparam[opt] string env $ALIBABA_CLOUD_STS_ENDPOINT
function M.sts_endpoint_for(endpoint, env)
  if env and env ~= "" then return match(env, "^https?://") and env or "https://" .. env end
  local host = match(endpoint.host, "^(.-):%d+$") or endpoint.host -- (a port is the endpoint's, not STS's)
  if host == "live.aliyuncs.com" then return "https://sts.aliyuncs.com" end
  local region = match(host, "^live%.([%w%-]+)%.aliyuncs%.com$")
  if region then return "https://sts." .. region .. ".aliyuncs.com" end
  if match(host, "%.aliyuncs%.com$") then return "https://sts.aliyuncs.com" end
  return endpoint.url
end

-- The state of the lookup of `self`'s account (see LOOKUPS), or nil when
-- its credentials say the account (a holder's role ARN).
local function lookup_of(self)
  local h = self._holder
  if not h then
    local id = self.access_key_id
    local key = self._sts_endpoint .. " " .. id -- (one key id may be an emulator's and a real one)
    local st = LOOKUPS[key]
    if not st then st = { source = "AccessKeyId " .. id, key = key, retry_at = -1 / 0 }; LOOKUPS[key] = st end
    return st
  end
  if h.account_id then return nil end
  local st = h._account_lookup
  if not st then
    -- (a holder without a name is known in this process only: no shared-dict key, which another
    -- worker's unnamed holder of another account would read)
    local named = type(h.source) == "string" and h.source ~= ""
    st = { source = named and h.source or tostring(h), retry_at = -1 / 0,
           key = named and (self._sts_endpoint .. " " .. h.source) or nil }
    h._account_lookup = st
  end
  return st
end

--- The budget's owner: the account UID. Alibaba Cloud counts a QPS cap per
-- account, over all its RAM users' keys and STS sessions, so that every
-- client of one account must share one budget: `account_id` when given,
-- else a role ARN's UID, else the UID STS gave (`resolve_account`); while
-- that is unknown, UNKNOWN_ACCOUNT when the budget is shared, and the
-- AccessKeyId or the source when it is the client's own (nothing else sees it).
function M.account(self)
  if self.account_id then return self.account_id end
  local st = lookup_of(self)
  if not st then return self._holder.account_id end
  if st.uid then return st.uid end
  if self._pacer and self._pacer.shared then return M.UNKNOWN_ACCOUNT end
  return self.access_key_id or ("source " .. st.source)
end

-- Asks STS who `self`'s credentials are: the account UID, or nil and why.
local function ask_sts_account(self)
  local so = { endpoint = self._sts_endpoint, rate_limits = false, retry = { attempts = 2 } }
  for k, v in pairs(self._lookup_options) do so[k] = v end
  local given = type(so.transport) == "table"
  if self._holder then
    so.credentials = self._holder
  else
    so.credentials = { get = function()
      return { access_key_id = self.access_key_id, access_key_secret = self._secret, security_token = M.token_of(self) }
    end }
  end
  if not options.parse_endpoint(so.endpoint) then
    return nil, "its endpoint (sts_endpoint or $ALIBABA_CLOUD_STS_ENDPOINT) is not https://host[:port]"
  end
  -- (STS's client class, from the provider's rules: `identity`, a loader;
  -- STS's own rules have none, and it never shares a budget)
  local identity = self._rules.identity
  if not identity then return nil, "these rules cannot ask STS who the keys belong to" end
  local sts, err = identity().new(so)
  if not sts then return nil, tostring(err) end
  local ok, res, cerr = pcall(sts.get_caller_identity, sts, {})
  if not given then sts:close() end -- (a transport the caller gave is the caller's to close)
  if not ok then return nil, tostring(res) end
  if not res then return nil, tostring(cerr) end
  local why = account_id_rule(res.AccountId)
  if why then return nil, "its AccountId " .. why end
  return res.AccountId
end

--- Before a call or batch: when the budget is shared and the account is
-- not known, asks STS once (GetCallerIdentity; a failure is said once and
-- asked again after LOOKUP_RETRY_S, the calls meanwhile paced as
-- UNKNOWN_ACCOUNT: the safe side). `sleep` waits for a lookup another
-- coroutine has under way.
function M.resolve_account(self, sleep)
  if self.account_id or not (self._pacer and self._pacer.shared) then return end
  local st = lookup_of(self)
  if not st or st.uid then return end
  local monotonic = self._monotonic
  -- (a lookup under way in another coroutine, until its deadline: one abandoned mid-way,
  -- an nginx request killed, is not waited for after it)
  local deadline = monotonic() + M.LOOKUP_WAIT_S
  while st.pending_until and st.pending_until > monotonic() and monotonic() < deadline do sleep(0.02) end
  if st.uid or (st.pending_until and st.pending_until > monotonic()) or monotonic() < st.retry_at then return end
  -- inside nginx, what another worker learnt (an account never changes: kept for the dict's life)
  local dict = st.key and self._lookup_dict
  local dict_key = dict and "streamctl:account:" .. st.key
  local known = dict and dict:get(dict_key)
  if known then st.uid = known; return end
  st.pending_until = monotonic() + M.LOOKUP_WAIT_S
  local ok, uid, why = pcall(ask_sts_account, self)
  st.pending_until = nil
  if ok and uid then
    st.uid = uid
    if dict then dict:set(dict_key, uid) end -- (no room: each worker asks once, which is all)
    if st.warned then log.warn(format("streamctl: %s is account %s: its calls share that account's budget "
      .. "from now on", st.source, uid)) end
    return
  end
  st.retry_at = monotonic() + M.LOOKUP_RETRY_S
  if not st.warned then
    st.warned = true
    log.warn(format("streamctl: the account behind %s is unknown (STS GetCallerIdentity at %s: %s); its calls "
      .. "are paced under one budget with every other unknown account's until STS answers (asked again every "
      .. "%d s); give account_id to say it", st.source, redact.url(self._sts_endpoint),
      tostring(ok and why or uid),
      M.LOOKUP_RETRY_S))
  end
end

return M
