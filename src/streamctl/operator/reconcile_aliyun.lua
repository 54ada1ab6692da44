--- Reconciling an Alibaba Cloud forbid list (streamctl.operator.reconcile's
-- `aliyun`): each domain's block list read, every page, bounded; the
-- missing forbids sent, and with `remove_extra` the extra ones resumed.
-- @module streamctl.operator.reconcile_aliyun

local errors = require "streamctl.base.errors"
local base = require "streamctl.operator.reconcile_base"

local type, ipairs, pairs, tostring, tonumber = type, ipairs, pairs, tostring, tonumber
local format, sub, match, sort, floor = string.format, string.sub, string.match, table.sort, math.floor
local ALIYUN_OPTIONS, by_app = base.ALIYUN_OPTIONS, base.by_app
local invalid, new_report, entry_of = base.invalid, base.new_report, base.entry_of
local add, batch, before_sending = base.add, base.batch, base.before_sending
local finish = base.finish

local M = {}

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

-- Every page of `domain`'s block list: the entries, or nil and an error.
local function block_list(client, domain, o, report)
  local out, size = {}, o.page_size or base.PAGE_SIZE
  for page = 1, o.max_pages or base.MAX_PAGES do
    local res, err = client:describe_live_streams_block_list { domain_name = domain, page_number = page,
                                                              page_size = size }
    report.calls = report.calls + 1
    if not res then return nil, err end
    local urls, total = res.StreamUrls, res.TotalNum
    if type(urls) == "table" and urls.StreamUrl ~= nil then urls = urls.StreamUrl end
    if urls == nil and tonumber(total) == 0 then urls = {} end
    local flaw = page_flaw(urls, total, page, size)
    if flaw then
      return nil, errors.new { provider = "aliyun", action = "DescribeLiveStreamsBlockList", code = "InvalidResponse",
        kind = "response", request_id = res.RequestId, message = format("page %d of the block list of "
          .. "%s %s: nothing was sent", page, domain, flaw) }
    end
    for _, u in ipairs(urls) do out[#out + 1] = u end
    total = tonumber(total)
    if #urls < size or (total and page * size >= total) then return out end
  end
  return nil, errors.new { provider = "aliyun", action = "DescribeLiveStreamsBlockList", code = "TooManyPages",
    kind = "validation", message = format("the block list of %s has more than %d pages of %d: nothing was sent "
      .. "(raise max_pages)", domain, o.max_pages or base.MAX_PAGES, size) }
end

-- An extra entry "domain/app/stream" as its parts, or nil when the app
-- cannot be told from the stream (a "/" in either).
local function split_extra(domain, entry)
  local rest = sub(entry, #domain + 2)
  if sub(entry, 1, #domain + 1) ~= domain .. "/" then return nil end
  local a, s = match(rest, "^([^/]+)/([^/]+)$")
  if not a then return nil end
  return { domain_name = domain, app_name = a, stream_name = s }
end

--- Makes Alibaba Cloud's block list hold the desired streams.
-- @param client a `streamctl.aliyun` client
-- @tparam table desired `{ { domain_name, app_name, stream_name }, ... }`: the streams that must be blocked
-- @tparam[opt] table opts `remove_extra`, `dry_run`, `on_progress(done, total, entry)`, `max_forbid`,
-- `confirm`, `concurrency`, `resume_time` (the forbids', default none: until resumed), `domains` (more
-- domains to read: their blocked streams are extras), `max_pages` (per domain, default 100), `page_size`
-- (default 3000)
-- @return the report (docs/reconcile.md); or nil and an error: a bad item or option, the block list
-- unreadable, the guard's refusal (its `report`: the difference found). Nothing is sent then.
local function aliyun(client, desired, opts)
  local o, keys, items = base.arguments("aliyun", "streamctl.aliyun", { "describe_live_streams_block_list",
    "forbid_live_streams", "resume_live_streams" }, ALIYUN_OPTIONS, client, desired, opts)
  if not o then return nil, keys end
  -- (a ResumeTime already past would let the streams back at once: refused
  -- before anything is read, as the client refuses it for a forbid)
  if o.resume_time and o.resume_time <= client:now() then
    return nil, invalid("aliyun", "option 'resume_time' must be in the future (it is when the forbidden streams "
      .. "may publish again)")
  end
  local report = new_report("aliyun", o, #keys)
  local domains, seen = {}, {}
  for _, key in ipairs(keys) do
    local d = items[key].domain_name
    if not seen[d] then seen[d] = true; domains[#domains + 1] = d end
  end
  for _, d in ipairs(o.domains or {}) do
    if not seen[d] then seen[d] = true; domains[#domains + 1] = d end
  end
  local blocked, extra_parts = {}, {}
  for _, d in ipairs(domains) do
    local list, err = block_list(client, d, o, report)
    if not list then return nil, err end
    for _, u in ipairs(list) do
      if not blocked[u] then
        blocked[u] = true
        report.blocked = report.blocked + 1
        if not items[u] then
          report.found.extra[#report.found.extra + 1] = u
          extra_parts[u] = split_extra(d, u) or false
        end
      end
    end
  end
  for _, key in ipairs(keys) do
    if not blocked[key] then report.found.missing[#report.found.missing + 1] = key end
  end
  sort(report.found.extra)
  local extras = o.remove_extra and report.found.extra or {}
  local go, out, err = before_sending(report, o, #report.found.missing + #extras, extras)
  if not go then return out, err end
  local total = #report.found.missing + #extras
  for _, g in ipairs(by_app(report.found.missing, items)) do
    batch(client, "forbid_live_streams", { domain_name = g.domain_name, app_name = g.app_name,
      stream_names = g.names, resume_time = o.resume_time, concurrency = o.concurrency }, g.keys,
      "ForbidLiveStream", report, o, total)
  end
  local resumable = {}
  for _, key in ipairs(extras) do
    if extra_parts[key] then
      resumable[#resumable + 1] = key
    else
      add(report, o, entry_of(key, "ResumeLiveStream", { ok = false, error = invalid("aliyun", format(
        "cannot tell the app name from the stream name in '%s' (a '/' in one of them): resume it by hand", key)) }),
        total)
    end
  end
  for _, g in ipairs(by_app(resumable, extra_parts)) do
    batch(client, "resume_live_streams", { domain_name = g.domain_name, app_name = g.app_name,
      stream_names = g.names, concurrency = o.concurrency }, g.keys, "ResumeLiveStream", report, o, total)
  end
  return finish(report)
end

M.aliyun = aliyun

return M
