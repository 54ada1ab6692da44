--- Alibaba Cloud's block list and its places.
--
-- ForbidLiveStream (help.aliyun.com/document_detail/35413.html): "This
-- operation disables a live stream by adding the stream to the blacklist.
-- You can disable up to 10,000 live streams. If the limit is reached, you
-- cannot disable any more live streams. [...] call the
-- DescribeLiveStreamsBlockList operation to query the number of live
-- streams that are disabled"; and "An interrupted live stream is not added
-- to the blacklist and does not occupy the quota" (Oneshot=yes).
--
-- The page leaves open whether the 10,000 are per domain or per account;
-- the strictest reading is taken: one list of 10,000 per account, its use
-- the sum of every domain's (DescribeLiveUserDomains lists the account's
-- domains; DescribeLiveStreamsBlockList's TotalNum counts a domain's). A
-- forbid of a stream already listed takes no new place.
-- @module streamctl.aliyun.places

local errors = require "streamctl.base.errors"
local pages = require "streamctl.pipeline.pages"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format = string.format

local M = {}

--- The places of an account's block list (the ForbidLiveStream page).
M.LIMIT = 10000

--- The code of a forbid refused at the limit. No page names it: this is
-- the emulator's (docs/development/emulator-fidelity.md, "Differences"); a real answer at the
-- limit under another code is reported as it comes, not retried (a 4xx).
M.FULL = "BlockList.LimitExceeded"

--- A block list is read in pages of this many (the most the page allows),
-- at most MAX_PAGES of them.
M.PAGE_SIZE = 3000
M.MAX_PAGES = 100

local DOMAINS_PAGE = 50      -- DescribeLiveUserDomains' largest PageSize
local MAX_DOMAIN_PAGES = 200 -- 10,000 domains

-- The listings read here, as streamctl.pipeline.pages checks their pages.
local BLOCK_LIST = pages.listing {
  list = "StreamUrls", inner = "StreamUrl", total = "TotalNum", number = "PageNum",
  key = function(u) return type(u) == "string" and u or nil, "a stream (" .. type(u) .. ")" end,
}
local DOMAINS = pages.listing {
  list = "Domains", inner = "PageData", total = "TotalCount", number = "PageNumber",
  what = "a domain (no DomainName)",
  key = function(d) return type(d) == "table" and type(d.DomainName) == "string" and d.DomainName or nil end,
}
M.BLOCK_LIST, M.DOMAINS = BLOCK_LIST, DOMAINS

local PLACES = "the block list's places cannot be counted; "

-- Is the stream of `p` (a forbid's or resume's parameters) among `urls`?
-- Entries are "domain/app/stream", and app and stream names may hold "/":
-- the whole entry matched, never a split of it.
local function is_listed(urls, p)
  local exact = p.DomainName .. "/" .. p.AppName .. "/" .. p.StreamName
  local head, tail = p.DomainName .. "/", "/" .. p.StreamName
  for _, u in ipairs(urls) do
    if u == exact or (p.AppName == "*" and #u > #head + #tail
        and u:sub(1, #head) == head and u:sub(-#tail) == tail) then
      return true
    end
  end
  return false
end

--- The look-up after a forbid (`want_listed` true) or a resume whose
-- outcome is unknown: the block list tells whether it took effect, so it
-- is not applied a second time (streamctl.engine.runner's `recover`). Its
-- first page is checked as every page is (streamctl.pipeline.pages): one
-- that cannot be (a TotalNum of 1e300, more entries than asked) is refused,
-- the outcome left unknown and said (`unproven`); only a page that is the
-- whole list can prove a stream absent; otherwise the call is sent again
-- (harmless: both are idempotent).
function M.lookup(want_listed)
  local function read(result) return pages.lookup(BLOCK_LIST, result, M.PAGE_SIZE) end
  return {
    action = "DescribeLiveStreamsBlockList",
    params = function(p) return { DomainName = p.DomainName, PageSize = tostring(M.PAGE_SIZE) } end,
    found = function(result, p)
      local urls, whole = read(result)
      if not urls then return nil end
      local listed = is_listed(urls, p)
      if listed == want_listed and (listed or whole) then return { Recovered = true } end
      return nil
    end,
    unproven = function(result, p)
      local urls, flaw = read(result)
      if urls then return nil end
      return errors.new { provider = "aliyun", action = "DescribeLiveStreamsBlockList", code = "InvalidResponse",
        kind = "response", request_id = result.RequestId, retryable = false, page = 1,
        message = format("page 1 of the block list of %s %s: it cannot tell whether the earlier attempt took "
          .. "effect; not sent again", tostring(p.DomainName), flaw) }
    end,
  }
end

-- The pages of `domain`'s block list, as streamctl.pipeline.pages fetches them.
local function block_list_pages(client, domain)
  return function(page, size)
    return client:describe_live_streams_block_list { domain_name = domain, page_number = page, page_size = size }
  end
end

--- Every entry ("domain/app/stream") of `domain`'s block list, every page
-- (streamctl.pipeline.pages: read whole or not at all).
-- @param client a streamctl.aliyun client
-- @tparam string domain the domain whose list is read
-- @tparam[opt] table o `page_size` (default PAGE_SIZE), `max_pages` (default MAX_PAGES),
--   `on_call()` (told of each request)
-- @return the entries, or nil and an error (nothing was sent)
function M.block_list(client, domain, o)
  o = o or {}
  return pages.read {
    provider = "aliyun", action = "DescribeLiveStreamsBlockList", name = "the block list of " .. domain,
    listing = BLOCK_LIST, size = o.page_size or M.PAGE_SIZE, max_pages = o.max_pages or M.MAX_PAGES,
    hint = " (raise max_pages)", on_call = o.on_call,
    fetch = block_list_pages(client, domain),
  }
end

--- The account's domains (DescribeLiveUserDomains, every page): their
-- names; or nil and an error.
-- @param client a streamctl.aliyun client
-- @tparam[opt] function on_call told of each request
function M.account_domains(client, on_call)
  return pages.read {
    provider = "aliyun", action = "DescribeLiveUserDomains", name = "the account's domains", listing = DOMAINS,
    size = DOMAINS_PAGE, max_pages = MAX_DOMAIN_PAGES, context = PLACES, on_call = on_call,
    fetch = function(page, size) return client:describe_live_user_domains { page_number = page, page_size = size } end,
  }
end

-- How many streams `domain`'s block list holds (its TotalNum, with its
-- first page of one entry checked); or nil and an error.
local function listed_on(client, domain, on_call)
  return pages.total {
    provider = "aliyun", action = "DescribeLiveStreamsBlockList", name = "the block list of " .. domain,
    listing = BLOCK_LIST, size = 1, context = PLACES, on_call = on_call,
    fetch = block_list_pages(client, domain),
  }
end

--- The places in use on the account's block list: the sum of every
-- domain's (those DescribeLiveUserDomains lists, `known`'s and `domains`).
-- @param client a streamctl.aliyun client
-- @tparam[opt] table o `known` (`{ [domain] = count }`: domains already read, not read again),
--   `domains` (more domains to count, e.g. a batch's own), `on_call()` (told of each request)
-- @return `{ used = n, domains = n }`, or nil and an error
function M.in_use(client, o)
  o = o or {}
  local domains, err = M.account_domains(client, o.on_call)
  if not domains then return nil, err end
  for _, d in ipairs(o.domains or {}) do domains[#domains + 1] = d end
  local used, count, seen = 0, 0, {}
  for d, n in pairs(o.known or {}) do
    seen[d], used, count = true, used + n, count + 1
  end
  for _, d in ipairs(domains) do
    if not seen[d] then
      seen[d] = true
      local n, lerr = listed_on(client, d, o.on_call)
      if not n then return nil, lerr end
      used, count = used + n, count + 1
    end
  end
  return { used = used, domains = count }
end

--- The refusal of a run that would go past the limit: how many places are
-- in use and how many the run needs (`places`: `{ used, limit, needed,
-- domains }`).
function M.refusal(action, places)
  return errors.new {
    provider = "aliyun", action = action, code = "BlockListFull", kind = "validation", sent = false,
    places = places,
    message = format("the block list has %d of its %d places in use (over %d domains: one list per account, "
      .. "the strictest reading of the ForbidLiveStream page) and this run needs %d more, %d past the limit: "
      .. "nothing was sent (a oneshot forbid cuts the ingest without taking a place)", places.used, places.limit,
      places.domains, places.needed, places.used + places.needed - places.limit),
  }
end

--- After a forbid batch: its places check's `places` with `used` grown by
-- the places the run may have taken: its forbids that succeeded (not those
-- a later decision superseded) or whose outcome is unknown, at most the
-- `needed` the check counted as new (a forbid of a listed stream takes
-- none). Exact when every forbid succeeded; when some did not, an upper
-- bound: the places left it gives are never more than there are.
-- @tparam table places `{ used, limit, needed, domains }` (a check's; `used` nil: oneshot, none taken)
-- @tparam table report the batch's (`succeeded`, `superseded`, `unknown`)
-- @return a new table of the places after the run
function M.after(places, report)
  local out = {}
  for k, v in pairs(places) do out[k] = v end
  if type(places.used) ~= "number" then return out end
  local took = (report.succeeded or 0) - (report.superseded or 0) + (report.unknown or 0)
  out.used = places.used + math.max(0, math.min(places.needed or 0, took))
  return out
end

--- Before a forbid batch: the places it needs (its streams not listed
-- yet; none with Oneshot=yes) against those left.
-- @param client a streamctl.aliyun client
-- @tparam table fields the batch's fields (checked): `domain_name`, `app_name`, `stream_names` (a table),
--   `oneshot`, `places_limit`
-- @return `{ used, limit, needed, domains }`, or nil and an error (the refusal, or a read that failed)
function M.check_batch(client, fields)
  local limit = fields.places_limit or M.LIMIT
  if fields.oneshot == true or fields.oneshot == "yes" then
    return { used = nil, limit = limit, needed = 0, domains = 0 }
  end
  local domain, app = fields.domain_name, fields.app_name
  local list, err = M.block_list(client, domain)
  if not list then return nil, err end
  local listed = {}
  for _, u in ipairs(list) do listed[u] = true end
  local needed, seen = 0, {}
  for _, name in ipairs(fields.stream_names) do
    local key = domain .. "/" .. app .. "/" .. name
    if not seen[key] and not listed[key] then needed = needed + 1 end
    seen[key] = true
  end
  local use, uerr = M.in_use(client, { known = { [domain] = #list } })
  if not use then return nil, uerr end
  local places = { used = use.used, limit = limit, needed = needed, domains = use.domains }
  if use.used + needed > limit then return nil, M.refusal("ForbidLiveStream", places) end
  return places
end

return M
