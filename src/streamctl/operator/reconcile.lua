--- The forbid list as a desired state: read what the provider blocks,
-- compare, send only the difference.
--
-- `reconcile.aliyun(client, desired, opts)` reads each domain's block list
-- (DescribeLiveStreamsBlockList, every page, bounded), forbids the desired
-- streams it lacks (`forbid_live_streams`, paced), and, only with
-- `remove_extra`, resumes the blocked streams not desired. ZEGO's Server API
-- cannot be asked which streams are forbidden (DescribeRTCStreamState answers
-- for one stream, in a shape its pages do not document), so
-- `reconcile.zego(client, desired, opts)` takes its view from a state store
-- the caller gives (`get`/`set`: `file_store(path)`, an nginx shared dict):
-- what this reconciler last applied. A change made behind its back on ZEGO
-- cannot be seen there. Both refuse, sending nothing, when the provider's
-- view cannot be read, and when the forbids are more than the blast-radius
-- guard allows (streamctl.operator.audit.guard). See docs/reconcile.md.
-- @module streamctl.operator.reconcile

local base = require "streamctl.operator.reconcile_base"
local aliyun = require "streamctl.operator.reconcile_aliyun"
local zego = require "streamctl.operator.reconcile_zego"

local M = {}

--- Pages of the block list read per domain at most (by default), and their size.
M.MAX_PAGES = base.MAX_PAGES
M.PAGE_SIZE = base.PAGE_SIZE

--- How long a ZEGO CDN forbid lasts when no resume time is given (its page: a day).
M.CDN_BAN = base.CDN_BAN

M.parse = base.parse
M.check = base.check
M.aliyun = aliyun.aliyun
M.zego = zego.zego
M.zego_forget = zego.zego_forget
M.file_store = zego.file_store

return M
