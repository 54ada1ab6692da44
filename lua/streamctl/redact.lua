--- What a signed request carries that no one may see (its signature, a
-- security token, the provider's secrets) and where it must not show: a
-- dry run's requests, error messages, and answers that quote the request.
-- Each value is hidden in every form it can take (as is, percent-encoded).
-- @module streamctl.redact

local core = require "streamctl.core"
local errors = require "streamctl.errors"
local url = require "streamctl.url"

local type, ipairs, pairs = type, ipairs, pairs
local match, gmatch, lower = string.match, string.gmatch, string.lower

local M = {}

-- Percent-decoding, for values read back from a URL (ours: well formed; one
-- that is not is hidden as it stands).
local function unescape(s)
  return url.unescape(s) or s
end

--- The values a signed request carries that must never be shown: those of
-- the provider's `redact` parameters and headers (`rules.redact`, decoded),
-- and the Signature=... part of a header that carries one.
-- @return array of strings
function M.hidden(rules, req)
  local hide = rules.redact or {}
  local out = {}
  for _, name in ipairs(hide.query or {}) do
    for _, text in ipairs { req.url or "", req.body or "" } do
      for v in gmatch("&" .. (match(text, "%?(.*)$") or text), "&" .. name .. "=([^&]*)") do
        out[#out + 1] = unescape(v)
      end
    end
  end
  for name, how in pairs(hide.headers or {}) do
    for k, v in pairs(req.headers or {}) do
      if lower(k) == name and type(v) == "string" then
        out[#out + 1] = how == "all" and v or match(v, "Signature=([^,%s]+)")
      end
    end
  end
  return out
end

--- `text` with every hidden value replaced by "<redacted>".
function M.text(text, hidden)
  return errors.redact(text, hidden, core.percent_encode)
end

-- Replaces the hidden forms in every string of a decoded answer (a few
-- levels deep: answers are shallow), in place.
local function scrub(t, forms, depth)
  if depth > 8 then return end
  for k, v in pairs(t) do
    if type(v) == "string" then
      t[k] = errors.redact_forms(v, forms)
    elseif type(v) == "table" then
      scrub(v, forms, depth + 1)
    end
  end
end

--- Hides the hidden values in every string of a decoded answer, in place.
function M.answer(t, hidden)
  scrub(t, errors.redaction_forms(hidden, core.percent_encode), 0)
end

--- A copy of a signed request with its hidden values (and `secrets`)
-- replaced by "<redacted>".
function M.request(rules, secrets, req)
  local hidden = M.hidden(rules, req)
  for _, v in ipairs(secrets) do hidden[#hidden + 1] = v end
  local headers = {}
  for name, value in pairs(req.headers or {}) do headers[name] = M.text(value, hidden) end
  return { provider = req.provider, action = req.action, method = req.method, url = M.text(req.url, hidden),
           headers = headers, body = M.text(req.body or "", hidden) }
end

return M
