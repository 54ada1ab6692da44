--- ApsaraVideo Live's stream-control family beyond forbid, resume and
-- relays, with their pages' rules: what was published and the operations
-- done on streams (DescribeLiveStreamsPublishList,
-- DescribeLiveStreamsControlHistory), stream-level region blocks
-- (Set/DeleteLiveStreamBlock, DescribeStreamLocationBlock) and a domain's
-- settings (DescribeLiveDomainConfigs: its URL signing, aliauth, and its
-- remote authentication). streamctl.aliyun adds them to its own.
-- @module streamctl.aliyun.neighbours

local fields = require "streamctl.aliyun.fields"

local type, format = type, string.format
local paging, with, DOMAIN, STREAM = fields.paging, fields.with, fields.DOMAIN, fields.STREAM

local M = {}

--- Their operations (streamctl.pipeline.provider's).
M.operations = {
  -- What was published (no page here gives its cap: 1 a second, as any published method's without one:
  -- streamctl.aliyun's default_cap), and the operations done on streams (its page: 50 a second).
  DescribeLiveStreamsPublishList = { effect = "read", method = "POST", idempotent = true, cap = 1 },
  DescribeLiveStreamsControlHistory = { effect = "read", method = "POST", idempotent = true, cap = 50 },
  -- Stream-level region blocks (their pages: 50 a second; a rule set or deleted twice is the same rule).
  SetLiveStreamBlock = { effect = "change", method = "POST", idempotent = true, cap = 50 },
  DeleteLiveStreamBlock = { effect = "change", method = "POST", idempotent = true, cap = 50 },
  DescribeStreamLocationBlock = { effect = "read", method = "POST", idempotent = true, cap = 50 },
  -- A domain's settings, e.g. its URL signing (aliauth) and remote authentication (docs/admission.md).
  -- (its page: 100 a second)
  DescribeLiveDomainConfigs = { effect = "read", method = "POST", idempotent = true, cap = 100 },
}

local methods = {}
M.methods = methods

-- A time range of at most `days` (the page's), its end after its start.
local function time_range(days)
  return function(_, v)
    if v.end_time <= v.start_time then return "field 'end_time' must be after start_time" end
    if v.end_time - v.start_time > days * 86400 then
      return format("fields 'start_time'..'end_time' must span at most %d days", days)
    end
    return nil
  end
end
local START = { name = "start_time", param = "StartTime", type = "time", required = true }
local END = { name = "end_time", param = "EndTime", type = "time", required = true }
local APP_FILTER = { name = "app_name", param = "AppName", type = "string", shape = "name" }
local STREAM_FILTER = { name = "stream_name", param = "StreamName", type = "string", shape = "name" }

-- A list the page writes as one string, items joined by commas: each item
-- by `pattern` (`what` says it), none empty.
local function comma_list(pattern, what)
  return function(v)
    if type(v) ~= "string" or v == "" or #v > 1024 then return nil, "must be " .. what .. ", joined by commas" end
    for item in (v .. ","):gmatch("([^,]*),") do
      if not item:find(pattern) then return nil, "must be " .. what .. ", joined by commas (not '" .. item .. "')" end
    end
    return v
  end
end

-- Stream-level region blocks: BlockType and the regions, such as CN and
-- AS (the page: region codes joined by commas; upper-case letters, the
-- strictest reading of its examples).
local ONE_STREAM = { DOMAIN, { name = "app_name", param = "AppName", type = "string", required = true, shape = "name" },
                     STREAM[3] }
local BLOCK_TYPE = { name = "block_type", param = "BlockType", type = "string", enum = { "blacklist", "whitelist" } }

methods.describe_live_streams_publish_list = {
  action = "DescribeLiveStreamsPublishList",
  fields = with({ DOMAIN, APP_FILTER, STREAM_FILTER, START, END,
    { name = "order_by", param = "OrderBy", type = "string",
      enum = { "publish_time_asc", "publish_time_desc", "stream_name_asc", "stream_name_desc" } },
    { name = "query_type", param = "QueryType", type = "string", enum = { "fuzzy", "strict" },
      note = "how stream_name matches: fuzzy (default) or strict" },
    { name = "stream_type", param = "StreamType", type = "string", enum = { "all", "trans" },
      note = "all or trans (transcoded); without it, the source streams" },
  }, paging(3000)),
  check = time_range(30),
}
methods.describe_live_streams_control_history = {
  action = "DescribeLiveStreamsControlHistory",
  fields = { DOMAIN, APP_FILTER, START, END },
  check = time_range(7),
}
methods.set_live_stream_block = {
  action = "SetLiveStreamBlock",
  fields = with(ONE_STREAM, {
    { name = "block_type", param = "BlockType", type = "string", enum = { "blacklist", "whitelist" },
      required = true },
    { name = "location_list", param = "LocationList", type = "custom", required = true,
      check = comma_list("^%u%u+$", "region codes (CN, AS...)") },
    { name = "release_time", param = "ReleaseTime", type = "time",
      note = "when the block ends; without it the provider ends it after 7 days" },
  }),
  check = function(_, v, self)
    if v.release_time and v.release_time <= self:now() then return "field 'release_time' must be in the future" end
    return nil
  end,
}
methods.delete_live_stream_block = { action = "DeleteLiveStreamBlock", fields = ONE_STREAM }
methods.describe_stream_location_block = {
  action = "DescribeStreamLocationBlock",
  fields = with({ DOMAIN, APP_FILTER, STREAM_FILTER, BLOCK_TYPE }, paging(100, "PageNum")),
}
methods.describe_live_domain_configs = {
  action = "DescribeLiveDomainConfigs",
  fields = { DOMAIN, { name = "function_names", param = "FunctionNames", type = "custom", required = true,
                       check = comma_list("^[%l%d_]+$", "feature names (aliauth, set_req_header...)") } },
}

return M
