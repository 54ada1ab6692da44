-- ApsaraVideo Live stream ingest callbacks: the notify configuration
-- operations and the publish / publish_done callbacks they make the emulator
-- send (callbacks.lua delivers them).
--
-- Operations (version 2016-11-01; the gateway checks of aliyun_gateway.lua apply;
-- each returns fields, info or nil, code, message as aliyun_live.lua's do):
--   SetLiveStreamsNotifyUrlConfig   DomainName*, NotifyUrl* (http:// or https://
--       with a host), NotifyReqAuth yes|no (default no), NotifyAuthKey (required
--       with yes: 16 to 64 letters and digits, the page's rule; refused with no,
--       where it would sign nothing), ExceptionNotifyUrl, SwitchNotifyUrl
--       (stored and shown; the emulator sends nothing to them). Replaces the
--       domain's configuration.
--   DescribeLiveStreamsNotifyUrlConfig  DomainName* -> LiveStreamsNotifyConfig
--       { DomainName, NotifyUrl, NotifyReqAuth, NotifyAuthKey (in clear, as the
--       page says), ExceptionNotifyUrl, SwitchNotifyUrl }; no such member when
--       the domain has none
--   DeleteLiveStreamsNotifyUrlConfig    DomainName* -> {} (also when none was set)
-- A DomainName outside aliyun.domains (when set) answers InvalidDomain.NotFound.
-- The config file may preset configurations: aliyun.notify = { "<domain>":
-- { "url": ..., "auth_key": ... } } (auth_key optional, any non-empty text: a
-- test can use a documented example key such as "yourkey"); a reset restores them.
--
-- Callbacks: when a stream of a configured ingest domain goes online
-- (POST /_emulator/online) a GET to NotifyUrl with, in this order,
--   action=publish&ip=<ClientIp>&id=<stream>&app=<domain>&appname=<app>&time=<unix s>
--   &usrargs=<the publisher's parameters>&node=<node>&height=<h>&width=<w>
-- (each value percent-encoded, RFC 3986 unreserved characters literal; time is
-- the PublishTime); when it goes offline (DELETE /_emulator/online, or a
-- ForbidLiveStream cutting it) the same without height and width, with
-- action=publish_done and the time of the event. A URL that has a query
-- already gets "&" and the fields. With a key, each send carries
-- ALI-LIVE-TIMESTAMP (Unix seconds of that send, emulator clock) and
-- ALI-LIVE-SIGNATURE = md5("<domain>|<timestamp>|<key>"), lowercase hex. The
-- key that signs a stream's callbacks is the one in effect when it was
-- published ("a new NotifyAuthKey takes effect only after the stream is pushed
-- again"); the URL is the domain's at the time of the event (none: no callback).
-- Success is HTTP 200 only; otherwise, or with no reply within 5 s, up to 5
-- retries, each 1 s after the previous attempt ended (6 sends at most).

local callbacks = require "streamctl.emulator.callbacks"
local encoding = require "streamctl.emulator.encoding"

local pairs, ipairs, tostring = pairs, ipairs, tostring
local floor = math.floor
local match, find, lower = string.match, string.find, string.lower
local concat = table.concat

local M = {}

local cfg        -- settings.aliyun
local configs = {}  -- DomainName -> { DomainName, NotifyUrl, NotifyReqAuth, NotifyAuthKey, ... }

M.RETRY_DELAYS = { 1, 1, 1, 1, 1 }
M.TIMEOUT_MS = 5000
M.DEFAULT_NODE = "emulator-node-01.cm3"

local function present(v)
  return v ~= nil and v ~= ""
end

local function missing(name)
  return nil, "Missing" .. name, name .. " is mandatory for this action."
end

local function invalid(name, why)
  return nil, "InvalidParameter", "Specified parameter " .. name .. " is not valid. " .. why
end

local function http_url(s)
  local scheme = match(s, "^(%a+)://[^/?#]")
  scheme = scheme and lower(scheme)
  return scheme == "http" or scheme == "https"
end

function M.init(settings)
  cfg = settings.aliyun
  M.reset()
end

-- Back to the configurations of the config file.
function M.reset()
  configs = {}
  for domain, n in pairs(cfg and cfg.notify or {}) do
    configs[domain] = {
      DomainName = domain, NotifyUrl = n.url,
      NotifyReqAuth = n.auth_key and "yes" or "no", NotifyAuthKey = n.auth_key,
    }
  end
end

-- SetLiveStreamsNotifyUrlConfig. ctx.domain_known(domain) says whether the
-- domain is one of aliyun.domains (aliyun_live.lua).
function M.SetLiveStreamsNotifyUrlConfig(p, ctx)
  if not present(p.DomainName) then
    return missing("DomainName")
  end
  if not present(p.NotifyUrl) then
    return missing("NotifyUrl")
  end
  if not http_url(p.NotifyUrl) then
    return invalid("NotifyUrl", "An http:// or https:// URL with a host.")
  end
  for _, name in ipairs({ "ExceptionNotifyUrl", "SwitchNotifyUrl" }) do
    if present(p[name]) and not http_url(p[name]) then
      return invalid(name, "An http:// or https:// URL with a host.")
    end
  end
  local auth = present(p.NotifyReqAuth) and p.NotifyReqAuth or "no"
  if auth ~= "yes" and auth ~= "no" then
    return invalid("NotifyReqAuth", "Valid values: yes, no.")
  end
  if auth == "yes" then
    if not present(p.NotifyAuthKey) then
      return missing("NotifyAuthKey")
    end
    if not match(p.NotifyAuthKey, "^%w+$") or #p.NotifyAuthKey < 16 or #p.NotifyAuthKey > 64 then
      return invalid("NotifyAuthKey", "16 to 64 characters: uppercase and lowercase letters and digits.")
    end
  elseif p.NotifyAuthKey ~= nil then
    return invalid("NotifyAuthKey", "It is only taken with NotifyReqAuth=yes.")
  end
  if not ctx.domain_known(p.DomainName) then
    return nil, "InvalidDomain.NotFound", "The domain provided does not exist in our records."
  end
  configs[p.DomainName] = {
    DomainName = p.DomainName, NotifyUrl = p.NotifyUrl, NotifyReqAuth = auth,
    NotifyAuthKey = auth == "yes" and p.NotifyAuthKey or nil,
    ExceptionNotifyUrl = present(p.ExceptionNotifyUrl) and p.ExceptionNotifyUrl or nil,
    SwitchNotifyUrl = present(p.SwitchNotifyUrl) and p.SwitchNotifyUrl or nil,
    updated_at = ctx.now,
  }
  return {}, { applied = true, detail = { domain = p.DomainName, notify_url = p.NotifyUrl, auth = auth } }
end

local function domain_param(p, ctx)
  if not present(p.DomainName) then
    return missing("DomainName")
  end
  if not ctx.domain_known(p.DomainName) then
    return nil, "InvalidDomain.NotFound", "The domain provided does not exist in our records."
  end
  return p.DomainName
end

function M.DescribeLiveStreamsNotifyUrlConfig(p, ctx)
  local domain, code, msg = domain_param(p, ctx)
  if not domain then
    return nil, code, msg
  end
  local c = configs[domain]
  if not c then
    return {}, { applied = true }
  end
  return {
    LiveStreamsNotifyConfig = {
      DomainName = c.DomainName, NotifyUrl = c.NotifyUrl, NotifyReqAuth = c.NotifyReqAuth,
      NotifyAuthKey = c.NotifyAuthKey, ExceptionNotifyUrl = c.ExceptionNotifyUrl,
      SwitchNotifyUrl = c.SwitchNotifyUrl,
    },
  }, { applied = true }
end

function M.DeleteLiveStreamsNotifyUrlConfig(p, ctx)
  local domain, code, msg = domain_param(p, ctx)
  if not domain then
    return nil, code, msg
  end
  local existed = configs[domain] ~= nil
  configs[domain] = nil
  return {}, { applied = true, detail = { domain = domain, deleted = existed } }
end

M.OPERATIONS = {
  SetLiveStreamsNotifyUrlConfig = M.SetLiveStreamsNotifyUrlConfig,
  DescribeLiveStreamsNotifyUrlConfig = M.DescribeLiveStreamsNotifyUrlConfig,
  DeleteLiveStreamsNotifyUrlConfig = M.DeleteLiveStreamsNotifyUrlConfig,
}

-- The configurations, without keys (for the state).
function M.snapshot()
  local out = {}
  for domain, c in pairs(configs) do
    out[domain] = { NotifyUrl = c.NotifyUrl, NotifyReqAuth = c.NotifyReqAuth }
  end
  return out
end

-- The key that will sign the callbacks of a stream of `domain` published now
-- (false: none), kept on its online entry.
function M.key_for_publish(domain)
  local c = configs[domain]
  return c and c.NotifyAuthKey or false
end

-------------------------------------------------------------------------------
-- Callbacks

local function field(name, value)
  return name .. "=" .. encoding.aliyun_encode(tostring(value))
end

-- Sends the callback of an ingest event: action "publish" or "publish_done";
-- entry: the stream's online entry { DomainName, AppName, StreamName, ClientIp,
-- usrargs, node, height, width, publish_unix, notify_key }; now: emulator time.
function M.stream_event(action, entry, now)
  local c = configs[entry.DomainName]
  if not c then
    return nil
  end
  local q = {
    field("action", action), field("ip", entry.ClientIp), field("id", entry.StreamName),
    field("app", entry.DomainName), field("appname", entry.AppName),
    field("time", floor(action == "publish" and entry.publish_unix or now)),
    field("usrargs", entry.usrargs or ""), field("node", entry.node or M.DEFAULT_NODE),
  }
  if action == "publish" then
    q[#q + 1] = field("height", entry.height or 720)
    q[#q + 1] = field("width", entry.width or 1280)
  end
  local url = c.NotifyUrl .. (find(c.NotifyUrl, "?", 1, true) and "&" or "?") .. concat(q, "&")
  local key = entry.notify_key
  local domain = entry.DomainName
  return callbacks.enqueue({
    provider = "aliyun", event = action, method = "GET", url = url,
    delays = M.RETRY_DELAYS, timeout_ms = M.TIMEOUT_MS,
    success = function(status) return status == 200 end,
    subject = { stream = domain .. "/" .. entry.AppName .. "/" .. entry.StreamName },
    prepare = function(send_now)
      if not key then
        return { headers = {} }
      end
      local ts = tostring(floor(send_now))
      return {
        headers = {
          { "ALI-LIVE-TIMESTAMP", ts },
          { "ALI-LIVE-SIGNATURE", callbacks.aliyun_signature(domain, ts, key) },
        },
        log_headers = { ["ALI-LIVE-TIMESTAMP"] = ts, ["ALI-LIVE-SIGNATURE"] = "***" },
      }
    end,
  })
end

return M
