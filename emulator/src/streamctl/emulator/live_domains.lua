-- The account's ApsaraVideo Live domains in the emulator, and
-- DescribeLiveUserDomains, which lists them (its page:
-- alibabacloud.com/help/en/live/developer-reference/api-live-2016-11-01-describeliveuserdomains).
--
-- The domains are aliyun.domains when that is set (non-empty), each created
-- at the emulator's start; else every domain a Live call named and was
-- accepted for (forbid, resume, block list, online list, notify
-- configuration: live_params.domain_known notes it), created when first
-- seen. At most MAX_SEEN are remembered, the oldest forgotten first
-- (bounded.lua). Each is listed as a streaming domain (liveVideo), online,
-- in RegionName REGION, with no tags, sorted by name.
--
-- Request: LiveDomainType liveVideo | liveEdge (unset: both); PageSize 1..50
-- (default 20); PageNumber 1..100000 (default 1); DomainName, a filter by
-- DomainSearchType fuzzy_match (default: a substring) | pre_match (a prefix)
-- | suf_match (a suffix) | full_match (the whole name), its characters taken
-- literally; DomainStatus online | offline | configuring; RegionName (the
-- region's name, exactly); Tag.N.Key / Tag.N.Value (the domains have none,
-- so a tag filter matches nothing). A value outside its rule answers
-- InvalidParameter naming it. Answer: { Domains = { PageData = [...] },
-- PageNumber, PageSize, TotalCount }.

local json = require "streamctl.emulator.json"
local clock = require "streamctl.emulator.clock"
local bounded = require "streamctl.emulator.bounded"
local params = require "streamctl.emulator.live_params"

local ipairs, pairs, type, os_time = ipairs, pairs, type, os.time
local find, sub, match = string.find, string.sub, string.match
local sort = table.sort
local invalid, present, int_param, page_of = params.invalid, params.present, params.int_param, params.page_of

local M = {}

local MAX_SEEN = 10000
local REGION = "cn-shanghai"
local PAGE_FIELDS = { "DomainName", "LiveDomainType", "LiveDomainStatus", "Cname", "Description", "GmtCreated",
  "GmtModified", "RegionName" }

local seen = bounded.new(MAX_SEEN) -- domain -> when first seen (emulator time)
local started_at = 0               -- the start, for the configured domains
local cfg

function M.init(settings)
  cfg = settings.aliyun
  started_at = os_time()
end

-- Notes a domain a Live call named (live_params.domain_known calls it).
-- Names not shaped as a domain are not noted.
function M.note(domain, now)
  if type(domain) == "string" and seen:get(domain) == nil and params.domain_shaped(domain) then
    seen:put(domain, now)
  end
end

-- The account's domains, sorted: a list of { name, created }.
local function domains()
  local out = {}
  if cfg and cfg.domains and #cfg.domains > 0 then
    for _, d in ipairs(cfg.domains) do
      out[#out + 1] = { name = d, created = started_at }
    end
  else
    for d, at in seen:each() do
      out[#out + 1] = { name = d, created = at }
    end
  end
  sort(out, function(a, b) return a.name < b.name end)
  return out
end

local SEARCH = {
  fuzzy_match = function(name, f) return find(name, f, 1, true) ~= nil end,
  pre_match = function(name, f) return sub(name, 1, #f) == f end,
  suf_match = function(name, f) return #f <= #name and sub(name, #name - #f + 1) == f end,
  full_match = function(name, f) return name == f end,
}
local STATUSES = { online = true, offline = true, configuring = true }
local TYPES = { liveVideo = true, liveEdge = true }

-- Whether the request filters by a tag (Tag.N.Key or Tag.N.Value).
local function tag_filter(p)
  for k, v in pairs(p) do
    if type(k) == "string" and present(v) and (match(k, "^Tag%.%d+%.Key$") or match(k, "^Tag%.%d+%.Value$")) then
      return true
    end
  end
  return false
end

-- The request's filters: { type, search, name, status, region, tags }, or
-- nil plus the InvalidParameter error.
local function filters(p)
  if present(p.LiveDomainType) and not TYPES[p.LiveDomainType] then
    return invalid("LiveDomainType", "Valid values: liveVideo, liveEdge.")
  end
  local search = present(p.DomainSearchType) and p.DomainSearchType or "fuzzy_match"
  if not SEARCH[search] then
    return invalid("DomainSearchType", "Valid values: fuzzy_match, pre_match, suf_match, full_match.")
  end
  if present(p.DomainStatus) and not STATUSES[p.DomainStatus] then
    return invalid("DomainStatus", "Valid values: online, offline, configuring.")
  end
  return { type = p.LiveDomainType, search = SEARCH[search], name = p.DomainName, status = p.DomainStatus,
    region = p.RegionName, tags = tag_filter(p) }
end

local function shown(d)
  local created = clock.format_iso8601(d.created)
  return json.ordered({
    DomainName = d.name, LiveDomainType = "liveVideo", LiveDomainStatus = "online",
    Cname = d.name .. ".livecdn.alikunlun.com", Description = "", GmtCreated = created, GmtModified = created,
    RegionName = REGION,
  }, PAGE_FIELDS)
end

function M.DescribeLiveUserDomains(p)
  local f, code, msg = filters(p)
  if not f then
    return nil, code, msg
  end
  local size, number
  size, code, msg = int_param(p, "PageSize", 20, 1, 50, "Valid values: 1 to 50.")
  if not size then
    return nil, code, msg
  end
  number, code, msg = int_param(p, "PageNumber", 1, 1, 100000, "Valid values: 1 to 100000.")
  if not number then
    return nil, code, msg
  end
  local matched = {}
  for _, d in ipairs(domains()) do
    if (not present(f.type) or f.type == "liveVideo") and (not present(f.status) or f.status == "online")
      and (not present(f.region) or f.region == REGION) and not f.tags
      and (not present(f.name) or f.search(d.name, f.name)) then
      matched[#matched + 1] = d
    end
  end
  return {
    Domains = { PageData = page_of(matched, { number = number, size = size }, shown) },
    PageNumber = number,
    PageSize = size,
    TotalCount = #matched,
  }, { applied = true }
end

function M.reset()
  seen = bounded.new(MAX_SEEN)
end

return M
