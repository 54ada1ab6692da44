-- Temporary credentials the emulator issues (STS sessions): by AssumeRole,
-- AssumeRoleWithOIDC, the ECS metadata service and the credentials URI. An
-- issued key is looked up like a configured one (aliyun_gateway.lua): it signs with
-- its secret, must carry its SecurityToken, and is refused once its
-- Expiration has passed on the emulator clock (InvalidSecurityToken.Expired).
-- It belongs to its role's account: that UID's rate-limit budget (and the
-- qps and rate_limiter its configured keys give), and the role's RAM policy
-- narrowed by the session's own policy.
--
-- Shapes, as the service's: AccessKeyId "STS." and 25 letters and digits,
-- a 44-character secret, and a SecurityToken of "CAIS" and 512 characters of
-- Base64 (it holds "+", "/" and "=", which a signer must percent-encode). The
-- STS page sets no limit on a token's length. Expiration is whole seconds:
-- issued at floor(now), it ends duration seconds later.
--
-- A rotating source (the metadata service's role, the credentials URI) hands
-- out the same credentials until less than its rotation_lead_s is left, then
-- new ones; the old ones stay valid until their own Expiration (STS tokens
-- "both stay valid until their own expiry", CREDENTIALS.md §4).
--
-- Memory: at most MAX_SESSIONS sessions are kept, the oldest dropped first
-- (a dropped key answers InvalidAccessKeyId.NotFound); a reset drops all.

local clock = require "streamctl.emulator.clock"
local bounded = require "streamctl.emulator.bounded"

local ngx = ngx
local encode_base64 = ngx and ngx.encode_base64

local pairs, tostring = pairs, tostring
local floor, random = math.floor, math.random
local char, byte, sub = string.char, string.byte, string.sub
local concat = table.concat
local io_open = io.open

local M = {}

local MAX_SESSIONS = 100000

local sessions = bounded.new(MAX_SESSIONS)   -- AccessKeyId -> session, in issue order
local issued = {}        -- source -> count
local current = {}       -- rotating source -> its session
local rotations = {}     -- rotating source -> count

-- n random bytes: the kernel's, else math.random (seeded per worker).
local function random_bytes(n)
  local f = io_open("/dev/urandom", "rb")
  if f then
    local s = f:read(n)
    f:close()
    if s and #s == n then
      return s
    end
  end
  local out = {}
  for i = 1, n do
    out[i] = char(random(0, 255))
  end
  return concat(out)
end

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

-- n random letters and digits.
function M.random_alnum(n)
  local raw = random_bytes(n)
  local out = {}
  for i = 1, n do
    local k = byte(raw, i) % 62 + 1
    out[i] = sub(ALNUM, k, k)
  end
  return concat(out)
end

function M.random_base64(nbytes)
  return encode_base64(random_bytes(nbytes))
end

-- Issues a session. opts: { role (identity.lua's), session_name, duration,
-- policy (ram.lua's parsed session policy, or nil), source ("AssumeRole",
-- "AssumeRoleWithOIDC", "imds", "credentials-uri"), settings (the account's
-- { qps, rate_limiter }, or nil), now (emulator time) }.
function M.issue(opts)
  local now = floor(opts.now)
  local role = opts.role
  local settings = opts.settings or {}
  local ak
  repeat
    ak = "STS." .. M.random_alnum(25)
  until not sessions:get(ak)
  local s = {
    access_key_id = ak,
    secret = M.random_alnum(44),
    security_token = "CAIS" .. M.random_base64(382),
    account = role.account,
    qps = settings.qps,
    rate_limiter = settings.rate_limiter,
    actions = role.actions,
    session_policy = opts.policy,
    issued_at = now,
    expires_at = now + opts.duration,
    source = opts.source,
    identity = { type = "AssumedRoleUser", account = role.account, role = role, session_name = opts.session_name },
  }
  sessions:put(ak, s)
  issued[opts.source] = (issued[opts.source] or 0) + 1
  return s
end

-- The session of an issued AccessKeyId, or nil.
function M.get(ak)
  return ak and sessions:get(ak) or nil
end

-- The credentials a rotating source hands out now, and whether they are new:
-- the current ones unless less than lead_s is left (or none were issued).
-- opts: as M.issue's, with source the rotating source's name, plus lead_s.
function M.current(opts)
  local s = current[opts.source]
  if s and s.expires_at - opts.now >= opts.lead_s then
    return s, false
  end
  s = M.issue(opts)
  current[opts.source] = s
  rotations[opts.source] = (rotations[opts.source] or 0) + 1
  return s, true
end

-- What a rotating source last handed out, and how often it rotated.
function M.rotating(source)
  return current[source], rotations[source] or 0
end

-- What the control API shows of a rotating source's current session (no secrets).
function M.summary(s)
  return s and {
    AccessKeyId = s.access_key_id,
    Expiration = clock.format_iso8601(s.expires_at),
    LastUpdated = clock.format_iso8601(s.issued_at),
  } or nil
end

-- The sessions (no secrets) for GET /_emulator/credentials.
function M.snapshot(now)
  local out = {}
  for ak, s in sessions:each() do
    out[ak] = {
      source = s.source,
      role = s.identity.role.arn,
      account = s.account,
      session_name = s.identity.session_name,
      issued_at = s.issued_at,
      expires_at = s.expires_at,
      Expiration = clock.format_iso8601(s.expires_at),
      expired = now >= s.expires_at,
    }
  end
  local counts = {}
  for k, v in pairs(issued) do
    counts[tostring(k)] = v
  end
  return out, counts
end

function M.reset()
  sessions = bounded.new(MAX_SESSIONS)
  issued, current, rotations = {}, {}, {}
end

return M
