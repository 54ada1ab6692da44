-- Stream-level region blocks: SetLiveStreamBlock, DeleteLiveStreamBlock and
-- DescribeStreamLocationBlock, as their pages describe them.
--
-- State: blocks["<domain>/<app>/<stream>"] = { DomainName, AppName, StreamName,
-- BlockType ("blacklist" | "whitelist"), LocationList (region codes joined by
-- commas), release_at (emulator time), updated_at, account }. A block ends at
-- its ReleaseTime, else 7 days after it was set (SetLiveStreamBlock's page);
-- an ended one is gone. A stream holds one block: a second Set replaces it.
-- A domain holds at most 200 (PEERS.md: "200 rules a domain"); one more is
-- refused (InvalidParameter, a strict choice: no page names the code).
-- DeleteLiveStreamBlock of a stream with no block succeeds and changes
-- nothing (applied = false): a delete sent again after an unknown outcome
-- must not fail (no page says otherwise).
-- DescribeStreamLocationBlock: Count, PageNum, PageSize, TotalPage and
-- StreamBlockList.StreamBlock[] (DomainName, AppName, StreamName, BlockType,
-- LocationList, Status 2 "succeeded" while it lasts, ReleaseTime,
-- UpdateTime), sorted by stream; PageSize 1..100 (the page).
local clock = require "streamctl.emulator.clock"
local params = require "streamctl.emulator.live_params"

local pairs, ipairs, sort, ceil, find = pairs, ipairs, table.sort, math.ceil, string.find
local present, missing, invalid = params.present, params.missing, params.invalid

local M = {}

local DEFAULT_S = 7 * 24 * 3600
local PER_DOMAIN = 200
local TYPES = { blacklist = true, whitelist = true }

local blocks = {}

local function purge(now)
  for key, b in pairs(blocks) do
    if b.release_at <= now then blocks[key] = nil end
  end
end

local function stream_params(p)
  for _, name in ipairs { "DomainName", "AppName", "StreamName" } do
    if not present(p[name]) then return missing(name) end
  end
  return true
end

function M.SetLiveStreamBlock(p, ctx)
  local ok, code, msg = stream_params(p)
  if not ok then return nil, code, msg end
  if not present(p.BlockType) then return missing("BlockType") end
  if not TYPES[p.BlockType] then return invalid("BlockType", "must be blacklist or whitelist") end
  if not present(p.LocationList) then return missing("LocationList") end
  for item in (p.LocationList .. ","):gmatch("([^,]*),") do
    if not find(item, "^%u%u+$") then return invalid("LocationList", "must be region codes joined by commas") end
  end
  local release_at = ctx.now + DEFAULT_S
  if present(p.ReleaseTime) then
    release_at = clock.parse_iso8601(p.ReleaseTime)
    if not release_at then return invalid("ReleaseTime", "must be yyyy-MM-ddTHH:mm:ssZ") end
    if release_at <= ctx.now then return invalid("ReleaseTime", "must be in the future") end
  end
  if not params.domain_known(ctx, p.DomainName) then return params.domain_not_found() end
  purge(ctx.now)
  local key = p.DomainName .. "/" .. p.AppName .. "/" .. p.StreamName
  if not blocks[key] then
    local n = 0
    for _, b in pairs(blocks) do
      if b.DomainName == p.DomainName then n = n + 1 end
    end
    if n >= PER_DOMAIN then
      return invalid("StreamName", "the domain holds " .. PER_DOMAIN .. " stream blocks already")
    end
  end
  blocks[key] = { DomainName = p.DomainName, AppName = p.AppName, StreamName = p.StreamName,
                  BlockType = p.BlockType, LocationList = p.LocationList, release_at = release_at,
                  updated_at = ctx.now, account = ctx.account_id }
  return {}, { applied = true, detail = { block = key, release_at = clock.format_iso8601(release_at) } }
end

function M.DeleteLiveStreamBlock(p, ctx)
  local ok, code, msg = stream_params(p)
  if not ok then return nil, code, msg end
  if not params.domain_known(ctx, p.DomainName) then return params.domain_not_found() end
  purge(ctx.now)
  local key = p.DomainName .. "/" .. p.AppName .. "/" .. p.StreamName
  local had = blocks[key] ~= nil
  blocks[key] = nil
  return {}, { applied = had, detail = { block = key, deleted = had } }
end

function M.DescribeStreamLocationBlock(p, ctx)
  if not present(p.DomainName) then return missing("DomainName") end
  if present(p.BlockType) and not TYPES[p.BlockType] then
    return invalid("BlockType", "must be blacklist or whitelist")
  end
  local page, code, msg = params.page_params(p, "PageNum", 100, 100)
  if not page then return nil, code, msg end
  if not params.domain_known(ctx, p.DomainName) then return params.domain_not_found() end
  purge(ctx.now)
  local keys = {}
  for key, b in pairs(blocks) do
    if b.DomainName == p.DomainName and (not present(p.AppName) or b.AppName == p.AppName)
        and (not present(p.StreamName) or b.StreamName == p.StreamName)
        and (not present(p.BlockType) or b.BlockType == p.BlockType) then
      keys[#keys + 1] = key
    end
  end
  sort(keys)
  local list = {}
  for _, key in ipairs(params.page_of(keys, page)) do
    local b = blocks[key]
    list[#list + 1] = { DomainName = b.DomainName, AppName = b.AppName, StreamName = b.StreamName,
                        BlockType = b.BlockType, LocationList = b.LocationList, Status = 2,
                        ReleaseTime = clock.format_iso8601(b.release_at),
                        UpdateTime = clock.format_iso8601(b.updated_at) }
  end
  return { Count = #keys, PageNum = page.number, PageSize = page.size, TotalPage = ceil(#keys / page.size),
           StreamBlockList = { StreamBlock = list } }, { applied = true }
end

function M.snapshot(now)
  purge(now)
  local out = {}
  for key, b in pairs(blocks) do
    out[key] = { BlockType = b.BlockType, LocationList = b.LocationList,
                 ReleaseTime = clock.format_iso8601(b.release_at) }
  end
  return out
end

function M.reset()
  blocks = {}
end

return M
