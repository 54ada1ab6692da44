-- What ApsaraVideo Live's operations in the emulator share (aliyun_live.lua
-- says what they do): the regions each page lists, a parameter's presence,
-- integers, URLs and their length in characters, pages, domains known to
-- the account, and the fuzzy match of the list operations.

local json = require "streamctl.emulator.json"

local type, ipairs, tonumber, random, format = type, ipairs, tonumber, math.random, string.format
local match, gmatch, find, byte, concat = string.match, string.gmatch, string.find, string.byte, table.concat

local M = {}

local function region_list(...)
  local set = {}
  for _, name in ipairs({ ... }) do
    set[name] = true
  end
  return { valid = set, text = concat({ ... }, ", ") }
end
-- A task's Regions. CreateLivePullToPush's page lists five, the other task
-- operations' pages four (no cn-shenzhen); the follow-ups take what the
-- create took, so a task created in a Region can be stopped, updated,
-- restarted, deleted and described there (docs/development/emulator-fidelity.md, "Differences").
local REGIONS = region_list("ap-southeast-1", "ap-southeast-5", "cn-beijing", "cn-shanghai", "cn-shenzhen")
local SOURCE_TYPES = { live = true, vod = true, url = true }
-- What a source is pulled over (the page): a live source over RTMP, SRT or
-- HTTP-FLV, its URL in the scheme of its SourceProtocol; a third-party (url)
-- source, MP4 or HTTP-FLV over HTTP(S). A vod source's URLs are not
-- constrained. (The SDK's enum and one language of the page add rtsp and
-- flv: the strictest reading, the pages' common list, is taken.)
local SOURCE_PROTOCOLS = {
  rtmp = { "rtmp://" }, srt = { "srt://" }, ["http-flv"] = { "http://", "https://" },
}
local URL_SOURCE_SCHEMES = { "http://", "https://" }
local MAX_URL = 2000
local MAX_SPAN = 7 * 86400

local function missing(name)
  return nil, "Missing" .. name, name .. " is mandatory for this action."
end

local function invalid(name, why)
  local msg = "Specified parameter " .. name .. " is not valid."
  if why then
    msg = msg .. " " .. why
  end
  return nil, "InvalidParameter", msg
end

local function present(v)
  return v ~= nil and v ~= ""
end

local function parse_int(s)
  if type(s) ~= "string" or not match(s, "^%-?%d+$") then
    return nil
  end
  return tonumber(s)
end

-- An optional integer parameter: `default` when absent, its value when it is an
-- integer in min..max (max nil: no upper bound), else nil plus the
-- InvalidParameter error (with `why` in the message).
local function int_param(p, name, default, min, max, why)
  if not present(p[name]) then
    return default
  end
  local n = parse_int(p[name])
  if not n or n < min or (max and n > max) then
    return invalid(name, why)
  end
  return n
end

-- The number of characters of a UTF-8 string, or nil when it is not valid
-- UTF-8 (overlong forms, surrogates and code points above U+10FFFF included).
local function utf8_chars(s)
  local n, i, len = 0, 1, #s
  while i <= len do
    local c = byte(s, i)
    local extra, lo, hi = 0, 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then
      extra = 1
    elseif c >= 0xE0 and c <= 0xEF then
      extra = 2
      if c == 0xE0 then
        lo = 0xA0
      elseif c == 0xED then
        hi = 0x9F
      end
    elseif c >= 0xF0 and c <= 0xF4 then
      extra = 3
      if c == 0xF0 then
        lo = 0x90
      elseif c == 0xF4 then
        hi = 0x8F
      end
    elseif c >= 0x80 then
      return nil
    end
    for k = 1, extra do
      local d = byte(s, i + k)
      if not d or d < (k == 1 and lo or 0x80) or d > (k == 1 and hi or 0xBF) then
        return nil
      end
    end
    i = i + 1 + extra
    n = n + 1
  end
  return n
end

M.utf8_chars = utf8_chars

-- Whether s is valid UTF-8 of at most max characters (the pages count URL
-- lengths in characters; text that is not UTF-8 is refused).
local function within_chars(s, max)
  local n = utf8_chars(s)
  return n ~= nil and n <= max
end

-- An optional URL parameter: nil when absent, its value when it has at most
-- MAX_URL characters, else nil plus the InvalidParameter error.
local function url_param(p, name)
  if not present(p[name]) then
    return nil
  end
  if not within_chars(p[name], MAX_URL) then
    return invalid(name, "At most 2000 characters (UTF-8).")
  end
  return p[name]
end

-- The paging of a Describe*List request: { number, size } from the parameter
-- `number_name` (>= 1, default 1) and PageSize (1..max_size, default
-- default_size); or nil plus the InvalidParameter error.
local function page_params(p, number_name, default_size, max_size)
  local number, code, msg = int_param(p, number_name, 1, 1)
  if not number then
    return nil, code, msg
  end
  local size
  size, code, msg = int_param(p, "PageSize", default_size, 1, max_size,
    "Valid values: 1 to " .. max_size .. ".")
  if not size then
    return nil, code, msg
  end
  return { number = number, size = size }
end

-- The items of list on that page (a JSON array), each passed through view when
-- one is given.
local function page_of(list, page, view)
  local out = json.array()
  for i = (page.number - 1) * page.size + 1, page.number * page.size do
    local item = list[i]
    if item == nil then
      break
    end
    out[#out + 1] = view and view(item) or item
  end
  return out
end

local function uuid()
  return format("%08x-%04x-4%03x-%04x-%04x%08x",
    random(0, 0x7fffffff), random(0, 0xffff), random(0, 0xfff),
    0x8000 + random(0, 0x3fff), random(0, 0xffff), random(0, 0x7fffffff))
end

-- Whether v is shaped as a domain name: lower-case labels of letters,
-- digits and '-' (not at a label's ends), at most 63 each and 253 in all
-- (docs/development/emulator-fidelity.md, "Names").
local function domain_shaped(v)
  if #v > 253 or not match(v, "^[%l%d%-%.]+$") then
    return false
  end
  for label in gmatch(v .. ".", "([^.]*)%.") do
    if label == "" or #label > 63 or match(label, "^%-") or match(label, "%-$") then
      return false
    end
  end
  return true
end

-- Whether a DomainName is the account's: any when aliyun.domains is empty,
-- else one of them. A domain it accepts is noted as seen (ctx.note_domain,
-- when the caller gives one: DescribeLiveUserDomains lists them).
local function domain_known(ctx, domain)
  local list = ctx.cfg.domains
  local known = not list or #list == 0
  for _, d in ipairs(list or {}) do
    if d == domain then
      known = true
    end
  end
  if known and ctx.note_domain then
    ctx.note_domain(domain, ctx.now)
  end
  return known
end

local function domain_not_found()
  return nil, "InvalidDomain.NotFound", "The domain provided does not exist in our records."
end

local function fuzzy(value, filter)
  if not present(filter) then
    return true
  end
  return value ~= nil and find(value, filter, 1, true) ~= nil
end

M.REGIONS = REGIONS
M.SOURCE_TYPES = SOURCE_TYPES
M.SOURCE_PROTOCOLS = SOURCE_PROTOCOLS
M.URL_SOURCE_SCHEMES = URL_SOURCE_SCHEMES
M.MAX_URL = MAX_URL
M.MAX_SPAN = MAX_SPAN
M.missing = missing
M.invalid = invalid
M.present = present
M.parse_int = parse_int
M.int_param = int_param
M.within_chars = within_chars
M.url_param = url_param
M.page_params = page_params
M.page_of = page_of
M.uuid = uuid
M.domain_shaped = domain_shaped
M.domain_known = domain_known
M.domain_not_found = domain_not_found
M.fuzzy = fuzzy

return M
