-- The request log behind GET /_emulator/log: one entry per provider request,
-- numbered by `seq` (1, 2, ... since the last reset), oldest dropped beyond the
-- configured limit. Secrets never enter it: see redact().

local pairs, type = pairs, type
local lower, gsub, find = string.lower, string.gsub, string.find
local tonumber = tonumber

local encoding = require "streamctl.emulator.encoding"

local M = {}

local entries = {}   -- seq -> entry
local first = 1      -- oldest seq still kept
local last = 0       -- newest seq
local dropped = 0
local limit = 10000

-- Names (lowercased) whose values are replaced by "***" wherever they appear:
-- query/form parameters and headers alike.
local SECRET_NAMES = {
  signature = true,
  accesskeysecret = true,
  securitytoken = true,
  ["x-acs-security-token"] = true,
  authorization = true,
  serversecret = true,
  notifyauthkey = true,                    -- SetLiveStreamsNotifyUrlConfig's key
  oidctoken = true,                        -- AssumeRoleWithOIDC's OIDCToken
  ["x-aliyun-ecs-metadata-token"] = true,  -- the metadata service's token
}

M.REDACTED = "***"

function M.is_secret(name)
  return SECRET_NAMES[lower(name)] == true
end

-- A copy of a name -> value map with every secret value replaced.
function M.redact(map)
  local out = {}
  for k, v in pairs(map) do
    if SECRET_NAMES[lower(k)] then
      out[k] = M.REDACTED
    else
      out[k] = v
    end
  end
  return out
end

local function escape_pattern(s)
  return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- The values of the request's secret parameters and headers (a security
-- token, a signature...), with the forms they take when quoted elsewhere:
-- percent-encoded once and twice (a V1 string to sign holds them so).
local function secret_values(req)
  local values = {}
  for _, map in pairs({ req.params or {}, req.headers or {} }) do
    for k, v in pairs(map) do
      if SECRET_NAMES[lower(k)] and type(v) == "string" and #v >= 4 then
        local once = encoding.aliyun_encode(v)
        values[#values + 1] = encoding.aliyun_encode(once)
        values[#values + 1] = once
        values[#values + 1] = v
      end
    end
  end
  return values
end

-- Replaces every secret value of `req` in the entry's strings (a message that
-- quotes a string to sign, a canonical request) with "***", one level of
-- tables deep (params and headers are redacted by name already).
function M.scrub(entry, req)
  local values = secret_values(req)
  if #values == 0 then return entry end
  local function clean(text)
    for _, v in pairs(values) do
      if find(text, v, 1, true) then text = gsub(text, escape_pattern(v), M.REDACTED) end
    end
    return text
  end
  for k, v in pairs(entry) do
    if type(v) == "string" then
      entry[k] = clean(v)
    elseif type(v) == "table" then
      for k2, v2 in pairs(v) do
        if type(v2) == "string" then v[k2] = clean(v2) end
      end
    end
  end
  return entry
end

function M.set_limit(n)
  if n and n >= 1 then
    limit = n
  end
end

-- Stores entry (a table), stamping entry.seq; returns the seq.
function M.append(entry)
  last = last + 1
  entry.seq = last
  entries[last] = entry
  while last - first + 1 > limit do
    entries[first] = nil
    first = first + 1
    dropped = dropped + 1
  end
  return last
end

-- Entries with seq > since, optionally only one provider / action, at most
-- `max` of the newest. Returns the list, the newest seq and the dropped count.
function M.query(since, provider, action, max)
  since = tonumber(since) or 0
  local out = {}
  local from = since + 1
  if from < first then
    from = first
  end
  for seq = from, last do
    local e = entries[seq]
    if e and (not provider or e.provider == provider) and (not action or e.action == action) then
      out[#out + 1] = e
    end
  end
  max = tonumber(max)
  if max and max >= 0 and #out > max then
    local trimmed = {}
    for i = #out - max + 1, #out do
      trimmed[#trimmed + 1] = out[i]
    end
    out = trimmed
  end
  return out, last, dropped
end

function M.reset()
  entries, first, last, dropped = {}, 1, 0, 0
end

return M
