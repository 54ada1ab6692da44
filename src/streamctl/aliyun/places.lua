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

local type, ipairs, pairs, tostring, tonumber = type, ipairs, pairs, tostring, tonumber
local format, floor = string.format, math.floor

local M = {}

--- The places of an account's block list (the ForbidLiveStream page).
M.LIMIT = 10000

--- The code of a forbid refused at the limit. No page names it: this is
-- the emulator's (docs/emulator.md, "Differences"); a real answer at the
-- limit under another code is reported as it comes, not retried (a 4xx).
M.FULL = "BlockList.LimitExceeded"

--- A block list is read in pages of this many (the most the page allows),
-- at most MAX_PAGES of them.
M.PAGE_SIZE = 3000
M.MAX_PAGES = 100

local DOMAINS_PAGE = 50      -- DescribeLiveUserDomains' largest PageSize
local MAX_DOMAIN_PAGES = 200 -- 10,000 domains

--- The look-up after a forbid (`want_listed` true) or a resume whose
-- outcome is unknown: the block list tells whether it took effect, so it
-- is not applied a second time (streamctl.engine.runner's `recover`). Only
-- a complete first page can prove a stream absent; otherwise the call is
-- sent again (harmless: both are idempotent).
function M.lookup(want_listed)
  return {
    action = "DescribeLiveStreamsBlockList",
    params = function(p) return { DomainName = p.DomainName, PageSize = tostring(M.PAGE_SIZE) } end,
    found = function(result, p)
      local urls = result.StreamUrls
      if type(urls) == "table" and type(urls.StreamUrl) == "table" then urls = urls.StreamUrl end
      if type(urls) ~= "table" then return nil end
      -- Entries are "domain/app/stream", and app and stream names may hold
      -- "/": match the whole entry, never a split of it.
      local exact = p.DomainName .. "/" .. p.AppName .. "/" .. p.StreamName
      local head, tail = p.DomainName .. "/", "/" .. p.StreamName
      local listed = false
      for _, u in ipairs(urls) do
        u = tostring(u)
        if u == exact or (p.AppName == "*" and #u > #head + #tail
            and u:sub(1, #head) == head and u:sub(-#tail) == tail) then
          listed = true
          break
        end
      end
      local complete = (tonumber(result.TotalNum) or #urls) <= #urls
      if listed == want_listed and (listed or complete) then
        return { Recovered = true }
      end
      return nil
    end,
  }
end

local function bad_answer(action, res, message)
  return errors.new { provider = "aliyun", action = action, code = "InvalidResponse", kind = "response",
                      request_id = type(res) == "table" and res.RequestId or nil, message = message }
end

-- What is wrong with a block-list page (a message), or nil: its StreamUrls
-- must be a list of non-empty texts, TotalNum (when given) a count, and a
-- last page (shorter than asked) must not end before TotalNum says the
-- list does (entries resumed between two pages may make it end later).
local function page_flaw(urls, total, page, size)
  if type(urls) ~= "table" then return "has no StreamUrls list" end
  local n = #urls
  for k in pairs(urls) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
      return "has a StreamUrls that is not a list (key " .. tostring(k) .. ")"
    end
  end
  for i = 1, n do
    if type(urls[i]) ~= "string" or urls[i] == "" then
      return format("has a StreamUrls entry %d that is not a stream (%s)", i, type(urls[i]))
    end
  end
  if n > size then return format("holds %d entries, more than the %d asked", n, size) end
  local count = tonumber(total)
  if total ~= nil and (not count or count < 0 or count ~= floor(count)) then
    return "has a TotalNum that is not a count (" .. tostring(total) .. ")"
  end
  if count and n < size and (page - 1) * size + n < count then
    return format("ends the list at %d entries, but its TotalNum is %d", (page - 1) * size + n, count)
  end
  return nil
end

--- Every entry ("domain/app/stream") of `domain`'s block list, every page.
-- @param client a streamctl.aliyun client
-- @tparam string domain the domain whose list is read
-- @tparam[opt] table o `page_size` (default PAGE_SIZE), `max_pages` (default MAX_PAGES),
--   `on_call()` (told of each request)
-- @return the entries, or nil and an error (nothing was sent)
function M.block_list(client, domain, o)
  o = o or {}
  local out, size = {}, o.page_size or M.PAGE_SIZE
  for page = 1, o.max_pages or M.MAX_PAGES do
    local res, err = client:describe_live_streams_block_list { domain_name = domain, page_number = page,
                                                              page_size = size }
    if o.on_call then o.on_call() end
    if not res then return nil, err end
    local urls, total = res.StreamUrls, res.TotalNum
    if type(urls) == "table" and urls.StreamUrl ~= nil then urls = urls.StreamUrl end
    if urls == nil and tonumber(total) == 0 then urls = {} end
    local flaw = page_flaw(urls, total, page, size)
    if flaw then
      return nil, bad_answer("DescribeLiveStreamsBlockList", res,
        format("page %d of the block list of %s %s: nothing was sent", page, domain, flaw))
    end
    for _, u in ipairs(urls) do out[#out + 1] = u end
    total = tonumber(total)
    if #urls < size or (total and page * size >= total) then return out end
  end
  return nil, errors.new { provider = "aliyun", action = "DescribeLiveStreamsBlockList", code = "TooManyPages",
    kind = "validation", message = format("the block list of %s has more than %d pages of %d: nothing was sent "
      .. "(raise max_pages)", domain, o.max_pages or M.MAX_PAGES, size) }
end

-- The account's domains (DescribeLiveUserDomains, every page), sorted as
-- listed; or nil and an error.
local function account_domains(client, on_call)
  -- (a copy: its caller adds to it)
  local out, seen = {}, {}
  for page = 1, MAX_DOMAIN_PAGES do
    local res, err = client:describe_live_user_domains { page_number = page, page_size = DOMAINS_PAGE }
    if on_call then on_call() end
    if not res then return nil, err end
    local list = res.Domains
    if type(list) == "table" and list.PageData ~= nil then list = list.PageData end
    if list == nil and tonumber(res.TotalCount) == 0 then list = {} end
    if type(list) ~= "table" then
      return nil, bad_answer("DescribeLiveUserDomains", res, format("page %d of the account's domains has no "
        .. "Domains list: the block list's places cannot be counted; nothing was sent", page))
    end
    for i, d in ipairs(list) do
      local name = type(d) == "table" and d.DomainName
      if type(name) ~= "string" or name == "" then
        return nil, bad_answer("DescribeLiveUserDomains", res, format("page %d of the account's domains has an "
          .. "entry %d without a DomainName: nothing was sent", page, i))
      end
      if not seen[name] then seen[name] = true; out[#out + 1] = name end
    end
    local total = tonumber(res.TotalCount)
    if #list < DOMAINS_PAGE or (total and page * DOMAINS_PAGE >= total) then return out end
  end
  return nil, errors.new { provider = "aliyun", action = "DescribeLiveUserDomains", code = "TooManyPages",
    kind = "validation", message = format("the account has more than %d domains: the block list's places cannot "
      .. "be counted; nothing was sent", MAX_DOMAIN_PAGES * DOMAINS_PAGE) }
end

-- How many streams `domain`'s block list holds (its TotalNum); or nil and an error.
local function listed_on(client, domain, on_call)
  local res, err = client:describe_live_streams_block_list { domain_name = domain, page_number = 1, page_size = 1 }
  if on_call then on_call() end
  if not res then return nil, err end
  local n = tonumber(res.TotalNum)
  if not n or n < 0 or n ~= floor(n) then
    return nil, bad_answer("DescribeLiveStreamsBlockList", res, format("the block list of %s has a TotalNum that "
      .. "is not a count (%s): its places cannot be counted; nothing was sent", domain, tostring(res.TotalNum)))
  end
  return n
end

--- The places in use on the account's block list: the sum of every
-- domain's (those DescribeLiveUserDomains lists, `known`'s and `domains`).
-- @param client a streamctl.aliyun client
-- @tparam[opt] table o `known` (`{ [domain] = count }`: domains already read, not read again),
--   `domains` (more domains to count, e.g. a batch's own), `on_call()` (told of each request)
-- @return `{ used = n, domains = n }`, or nil and an error
function M.in_use(client, o)
  o = o or {}
  local domains, err = account_domains(client, o.on_call)
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
