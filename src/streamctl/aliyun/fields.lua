--- The fields ApsaraVideo Live's pages share: paging, the stream (domain,
-- app, name and type) and the RegionId, each by the strictest reading of
-- the pages (streamctl.base.validate's shapes), for streamctl.aliyun and its
-- neighbours.
-- @module streamctl.aliyun.fields

local type, ipairs = type, ipairs

local M = {}

-- Paging fields; the stream lists call the page number PageNum.
function M.paging(max_size, page_param)
  return {
    { name = "page_number", param = page_param or "PageNumber", type = "integer", min = 1 },
    { name = "page_size", param = "PageSize", type = "integer", min = 1, max = max_size },
  }
end

-- The fields of several lists, in order, as one list.
function M.with(...)
  local out = {}
  for _, list in ipairs { ... } do
    for _, f in ipairs(list) do out[#out + 1] = f end
  end
  return out
end

-- The domain, app and stream keep the strictest reading of the page (none
-- states their characters): streamctl.base.validate's shapes.
local DOMAIN = { name = "domain_name", param = "DomainName", type = "string", required = true, shape = "domain" }
local APP = { name = "app_name", param = "AppName", type = "string", required = true, shape = "name", also = { "*" } }
local STREAM_TYPE = { name = "live_stream_type", param = "LiveStreamType", type = "string", enum = { "publisher" },
                      default = "publisher" }
local STREAM = { DOMAIN, APP, { name = "stream_name", param = "StreamName", type = "string", required = true,
                                shape = "name" },
                 STREAM_TYPE }
-- RegionId: a region's ID as the pages write them (cn-shanghai, ap-southeast-1), never sent as other text.
local function region_id(v)
  if type(v) == "string" and #v <= 64 and v:find("^%l[%l%d]*%-[%l%d%-]*[%l%d]$") and not v:find("--", 1, true) then
    return v
  end
  return nil, "must be a region ID: lower-case letters and digits, words joined by '-' (cn-shanghai)"
end
local REGION_ID = { name = "region_id", param = "RegionId", type = "custom", check = region_id }

M.DOMAIN, M.APP, M.STREAM_TYPE, M.STREAM, M.REGION_ID = DOMAIN, APP, STREAM_TYPE, STREAM, REGION_ID

return M
