-- Alibaba Cloud Live's remote authentication, the provider's side: before
-- an ingest the emulator is told of (POST /_emulator/online) on a domain
-- that has it set, the emulator asks the customer's authentication server
-- and honours the answer. Set by POST /_emulator/remote_auth (one domain's
-- settings), read by GET, all removed by DELETE or a reset.
--
-- What Live's pages say (docs/development/emulator-fidelity.md, "Remote
-- authentication"): the live center forwards the request (its query string
-- passed through by default) to the server, acts on its answer, and on a
-- timeout passes or fails the request as the domain is set ("timeout: pass
-- or fail"). What they leave unsaid is taken from Alibaba Cloud CDN's
-- remote authentication, the strictest reading where they differ:
--
--   GET <url>?domain=D&app=A&stream=S&ip=CLIENT[&<the ingest URL's query>]
--   success_codes (default 200): admitted; fail_codes (default 403): refused;
--   any other status: other_code_action ("pass", the CDN's default, or "reject");
--   no answer within timeout_ms (default 500; at most 3000) or no connection:
--   timeout_action ("pass" by default: a server that is slow or down lets
--   every stream in, which is what an admission server must never rely on).
--
-- Each question is kept (GET /_emulator/remote_auth: `asked`, the last 100).

local callback_http = require "streamctl.emulator.callback_http"
local encoding = require "streamctl.emulator.encoding"
local json = require "streamctl.emulator.json"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format = string.format
local concat, remove, sort = table.concat, table.remove, table.sort

local M = {}

local settings = {} -- domain -> its settings
local asked = {}    -- the last questions, oldest first
local MAX_ASKED = 100

-- (a query's values percent-encoded as the provider encodes them)
local escape = encoding.aliyun_encode

local function codes(v, name, default)
  if v == nil then return { [default] = true } end
  if type(v) ~= "table" or #v == 0 then return nil, name .. " must be a non-empty array of HTTP statuses" end
  local out = {}
  for _, c in ipairs(v) do
    if type(c) ~= "number" or c < 100 or c > 599 or c % 1 ~= 0 then return nil, name .. " must hold HTTP statuses" end
    out[c] = true
  end
  return out
end

local function action(v, name)
  if v == nil then return "pass" end
  if v ~= "pass" and v ~= "reject" then return nil, name .. " must be \"pass\" or \"reject\"" end
  return v
end

--- Sets one domain's remote authentication from a control request's body:
-- `{ domain, url, timeout_ms, timeout_action, other_code_action,
-- success_codes, fail_codes }`. Returns the settings, or nil and why.
function M.set(value)
  if type(value) ~= "table" then return nil, "remote_auth: expected an object" end
  if type(value.domain) ~= "string" or value.domain == "" then return nil, "remote_auth: domain is required" end
  local url, uerr = callback_http.parse_url(value.url)
  if not url then return nil, "remote_auth: url: " .. tostring(uerr) end
  local timeout = value.timeout_ms == nil and 500 or value.timeout_ms
  if type(timeout) ~= "number" or timeout < 1 or timeout > 3000 or timeout % 1 ~= 0 then
    return nil, "remote_auth: timeout_ms must be a whole number of milliseconds from 1 to 3000"
  end
  local s = { domain = value.domain, url = value.url, parsed = url, timeout_ms = timeout }
  local err
  s.timeout_action, err = action(value.timeout_action, "timeout_action")
  if not s.timeout_action then return nil, "remote_auth: " .. err end
  s.other_code_action, err = action(value.other_code_action, "other_code_action")
  if not s.other_code_action then return nil, "remote_auth: " .. err end
  s.success, err = codes(value.success_codes, "success_codes", 200)
  if not s.success then return nil, "remote_auth: " .. err end
  s.fail, err = codes(value.fail_codes, "fail_codes", 403)
  if not s.fail then return nil, "remote_auth: " .. err end
  settings[value.domain] = s
  return s
end

local function codes_list(set)
  local out = json.array()
  for c in pairs(set) do out[#out + 1] = c end
  sort(out)
  return out
end

--- The settings and the questions asked, for GET /_emulator/remote_auth.
function M.snapshot()
  local domains = {}
  for d, s in pairs(settings) do
    domains[d] = json.ordered({ url = s.url, timeout_ms = s.timeout_ms, timeout_action = s.timeout_action,
      other_code_action = s.other_code_action, success_codes = codes_list(s.success),
      fail_codes = codes_list(s.fail) }, { "url", "timeout_ms", "timeout_action", "other_code_action",
      "success_codes", "fail_codes" })
  end
  local list = json.array()
  for i, a in ipairs(asked) do list[i] = a end
  return { domains = domains, asked = list }
end

--- Whether an ingest of `spec` ({ domain, app, stream, client_ip, usrargs })
-- may go on: true, or false and why; nil when its domain has no remote
-- authentication. Asks the server (a cosocket: a control request's phase).
function M.admit(spec)
  local s = settings[spec.domain]
  if not s then return nil end
  local query = { "domain=" .. escape(spec.domain), "app=" .. escape(spec.app), "stream=" .. escape(spec.stream),
                  "ip=" .. escape(spec.client_ip or "127.0.0.1") }
  if type(spec.usrargs) == "string" and spec.usrargs ~= "" then query[#query + 1] = spec.usrargs end
  local u = {}
  for k, v in pairs(s.parsed) do u[k] = v end
  u.target = u.target .. (u.target:find("?", 1, true) and "&" or "?") .. concat(query, "&")
  local status, err = callback_http.request({ method = "GET", url = u }, s.timeout_ms)
  local allowed, why
  if status and s.success[status] then
    allowed, why = true, "admitted: " .. status
  elseif status and s.fail[status] then
    allowed, why = false, format("refused by remote authentication (%d)", status)
  elseif status then
    allowed = s.other_code_action == "pass"
    why = format("%s: %d is neither a success nor a failure status (other_code_action)",
      allowed and "admitted" or "refused", status)
  else
    allowed = s.timeout_action == "pass"
    why = format("%s: no answer (%s; timeout_action)", allowed and "admitted" or "refused", tostring(err))
  end
  asked[#asked + 1] = json.ordered({ stream = spec.domain .. "/" .. spec.app .. "/" .. spec.stream,
    target = u.target, status = status or json.null, allowed = allowed, why = why },
    { "stream", "target", "status", "allowed", "why" })
  if #asked > MAX_ASKED then remove(asked, 1) end
  return allowed, why
end

--- Forgets every setting and question.
function M.reset()
  settings, asked = {}, {}
end

return M
