--- Reconciling an Alibaba Cloud forbid list (streamctl.operator.reconcile's
-- `aliyun`): each domain's block list read, every page, bounded; the
-- missing forbids sent, and with `remove_extra` the extra ones resumed.
-- @module streamctl.operator.reconcile_aliyun

local base = require "streamctl.operator.reconcile_base"
local places = require "streamctl.aliyun.places"

local ipairs = ipairs
local format, sub, match, sort = string.format, string.sub, string.match, table.sort
local ALIYUN_OPTIONS, by_app = base.ALIYUN_OPTIONS, base.by_app
local invalid, new_report, entry_of = base.invalid, base.new_report, base.entry_of
local add, batch, before_sending = base.add, base.batch, base.before_sending
local finish = base.finish

local M = {}

-- Every page of `domain`'s block list: the entries, or nil and an error.
local function block_list(client, domain, o, report)
  return places.block_list(client, domain, { page_size = o.page_size, max_pages = o.max_pages,
                                             on_call = function() report.calls = report.calls + 1 end })
end

-- The places the missing forbids need against those left on the account's
-- block list (`counts`: the domains read, their entries): the report's
-- `places`, and the refusal of a run that needs more than are left (none
-- for a dry run: its report says so, `places.full`); or nil and an error.
local function check_places(client, o, report, counts)
  local needed = #report.found.missing
  if needed == 0 or o.check_places == false then return true end
  local use, err = places.in_use(client, { known = counts, on_call = function() report.calls = report.calls + 1 end })
  if not use then return nil, err end
  local room = { used = use.used, limit = o.places_limit or places.LIMIT, needed = needed, domains = use.domains }
  report.places = room
  if use.used + needed <= room.limit then return true end
  room.full = true
  if o.dry_run then return true end
  local refusal = places.refusal("ForbidLiveStream", room)
  refusal.report = report
  return nil, refusal
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
-- `confirm`, `concurrency`, `resume_time` (the forbids', default none: the provider ends them 6 months
-- later), `domains` (more domains to read: their blocked streams are extras), `max_pages` (per domain,
-- default 100), `page_size` (default 3000), `places_limit` (the account's block-list places, default
-- 10000), `check_places` (default true: the places in use, every domain of the account, read before the
-- forbids)
-- @return the report (docs/reconcile.md); or nil and an error: a bad item or option, the block list
-- unreadable, the guard's refusal (its `report`: the difference found), the block list's places too few
-- for the missing forbids (code "BlockListFull", its `places` and `report`). Nothing is sent then.
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
  local blocked, extra_parts, counts = {}, {}, {}
  for _, d in ipairs(domains) do
    local list, err = block_list(client, d, o, report)
    if not list then return nil, err end
    counts[d] = #list
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
  local room, perr = check_places(client, o, report, counts)
  if not room then return nil, perr end
  local extras = o.remove_extra and report.found.extra or {}
  local go, out, err = before_sending(report, o, extras)
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

M.aliyun = base.traced(aliyun)

return M
