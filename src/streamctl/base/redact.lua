--- What a signed request carries that no one may see (its signature, a
-- security token, the provider's secrets) and where it must not show: a
-- dry run's requests, error messages, and answers that quote the request.
-- Each value is hidden in every form it can take (as is, percent-encoded).
-- @module streamctl.base.redact

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local url = require "streamctl.base.url"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local match, lower, gsub, find, sub, byte = string.match, string.lower, string.gsub, string.find, string.sub,
  string.byte
local concat = table.concat

local M = {}

-- Percent-decoding, for values read back from a URL (ours: well formed; one
-- that is not is hidden as it stands).
local function unescape(s)
  return url.unescape(s) or s
end

-- The values of parameter `name` in `text`, a URL's query (after its
-- first `?`) or a form body, appended to `out`, percent-decoded. Found by
-- plain search (a pattern tried at every byte of a request took 10 us of
-- every attempt): each `name=` at the start of the text or after `&` or
-- `?`; a URL's path, which holds no `name=` of ours, is read too (hiding
-- more, never less).
local AMP, QUERY = ("&"):byte(), ("?"):byte()
local function param_values(text, name, out)
  local key, from = name .. "=", 1
  while true do
    local s, e = find(text, key, from, true)
    if not s then return end
    local before = s > 1 and byte(text, s - 1)
    if not before or before == AMP or before == QUERY then
      local stop = find(text, "&", e + 1, true)
      out[#out + 1] = unescape(sub(text, e + 1, stop and stop - 1 or -1))
    end
    from = e + 1
  end
end

-- The values a provider's build handed over with the request it made
-- (request -> array): it has them in hand, and finding them again in the
-- URL costs every attempt a search and a decoding. A fresh table every
-- GIVEN_MAX requests: a weak table keeps the size its busiest moment gave
-- it (a batch of 20,000 left 60 bytes a stream held, spec/operator/44),
-- and a request it forgot is searched as any other.
local WEAK, GIVEN_MAX = { __mode = "k" }, 1024
local given, given_n = setmetatable({}, WEAK), 0

--- Hands over, with `req`, the values it carries that must never be shown
-- (its signature, a security token: either may be nil), for `hidden` to
-- return as they are. A provider's build calls it on the request it made;
-- spec/base/17 holds each build's to what `hidden` finds by searching.
-- @return req
function M.with_hidden(req, signature, token)
  local values = {}
  if signature ~= nil then values[1] = signature end
  if token ~= nil then values[#values + 1] = token end
  if given_n >= GIVEN_MAX then given, given_n = setmetatable({}, WEAK), 0 end
  given[req], given_n = values, given_n + 1
  return req
end

--- The values a signed request carries that must never be shown: those
-- its build handed over (`with_hidden`); else those of the provider's
-- `redact` parameters and headers (`rules.redact`, decoded), and the
-- Signature=... part of a header that carries one.
-- @return array of strings (a new one)
function M.hidden(rules, req)
  local values = given[req]
  if values then
    local out = {}
    for i = 1, #values do out[i] = values[i] end
    return out
  end
  local hide = rules.redact or {}
  local out = {}
  for _, name in ipairs(hide.query or {}) do
    if req.url then param_values(req.url, name, out) end
    if req.body and req.body ~= "" then param_values(req.body, name, out) end
  end
  local headers = req.headers
  if headers and hide.headers then
    for k, v in pairs(headers) do
      local how = hide.headers[lower(k)]
      if how and type(v) == "string" then
        out[#out + 1] = how == "all" and v or match(v, "Signature=([^,%s]+)")
      end
    end
  end
  return out
end

-- A query (or a fragment) with each value hidden: `name=<redacted>`, and a
-- part without `=` (it could be a bare token) `<redacted>`.
local function hide_query(q)
  return (gsub(q, "[^&]+", function(part)
    local name = match(part, "^([%w_.~%-]*)=")
    return name and (name .. "=<redacted>") or "<redacted>"
  end))
end

-- A path as shown: "" or "/" as it is (it holds nothing), any other
-- `/<redacted>` (a credentials URI may carry its token there, as
-- `/creds/<token>`, as well as in its query).
local function hide_path(path)
  if path == "" or path == "/" then return path end
  return "/<redacted>"
end

--- The one way a URL is shown in an error, a log line, a report or a dry
-- run (a credentials URI, a proxy, a Redis URL, an endpoint, STS): its user
-- information (a password, a token) replaced by `<redacted>@`, a path
-- other than `/` by `/<redacted>`, the value of every query parameter by
-- `<redacted>` (a part without `=` whole), a fragment by `#<redacted>`;
-- the scheme, host, port and the parameters' names kept, so the reader
-- still sees which server it was. Conservative where the text is not
-- plainly `scheme://host[:port]...`: a `host[:port]` that does not parse,
-- or an `@` after the authority (a password holding an unescaped `/`, `?`
-- or `#` splits there, so the part before it may be one), hides all after
-- `scheme://`; text that is not a URL at all is `<redacted>` whole when it
-- has an `@`, `?` or `#` in it, else shown up to its first `/`, the rest
-- `/<redacted>` (`host:port/token`, which libcurl reads as http://; a
-- file's path `/<redacted>`).
function M.url(u)
  u = tostring(u)
  local scheme, authority, rest = url.split(u)
  if not scheme then
    if find(u, "[@?#]") then return "<redacted>" end
    local head, path = match(u, "^([^/]*)(.*)$")
    return head .. hide_path(path)
  end
  local info, hostport = url.userinfo(authority)
  if find(rest, "@", 1, true) or (hostport ~= "" and not url.host_port((gsub(hostport, ":$", "")))) then
    return scheme .. "://<redacted>"
  end
  local path, query, fragment = match(rest, "^([^?#]*)(%??[^#]*)(#?.*)$")
  if query ~= "" then query = "?" .. hide_query(sub(query, 2)) end
  if fragment ~= "" then fragment = "#<redacted>" end
  return scheme .. "://" .. (info and "<redacted>@" or "") .. hostport .. hide_path(path) .. query .. fragment
end

--- `text` with `u` (a URL: see `url`) replaced, wherever it appears whole,
-- by its redacted form (or by `shown`, when the caller has a form of its
-- own that shows no more: the metadata service's fixed paths): for a
-- message that may quote a URL (a transport's).
function M.url_in(text, u, shown)
  text, u = tostring(text), tostring(u)
  if u == "" then return text end
  shown = shown or M.url(u)
  local out, at = {}, 1
  while true do
    local i, j = find(text, u, at, true)
    if not i then break end
    out[#out + 1] = sub(text, at, i - 1)
    out[#out + 1] = shown
    at = j + 1
  end
  out[#out + 1] = sub(text, at)
  return concat(out)
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
-- With `raw`, the JSON it was decoded from: when it holds no `\` (so every
-- decoded string stands in it byte for byte) and none of the forms, no
-- string can hold one, and the walk is skipped (every answer's case).
function M.answer(t, hidden, raw)
  local plain = type(raw) == "string" and not find(raw, "\\", 1, true)
  -- (each form of a value holds the value's first run of bytes the encoder
  -- keeps, as it is: a raw answer without that run holds no form of it, and
  -- the forms are not made)
  if plain and not M.may_hold(raw, hidden) then return end
  local forms = errors.redaction_forms(hidden, core.percent_encode)
  if plain then
    local any = false
    for i = 1, #forms do
      if find(raw, forms[i], 1, true) then any = true break end
    end
    if not any then return end
  end
  scrub(t, forms, 0)
end

--- Whether `text` may hold a form of one of `hidden` (see redaction_forms:
-- values under 4 bytes are never hidden): false when, for each, the first
-- run of bytes percent-encoding keeps (A-Z a-z 0-9 - _ . ~) is not in it.
function M.may_hold(text, hidden)
  for i = 1, #hidden do
    local s = hidden[i]
    if type(s) == "string" and #s >= 4 then
      local run = match(s, "[%w%-_.~]+")
      if not run or find(text, run, 1, true) then return true end
    end
  end
  return false
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
