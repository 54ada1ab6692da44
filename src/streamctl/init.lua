--- streamctl: control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD.
--
--     local streamctl = require "streamctl"
--     local ali = assert(streamctl.aliyun.new{ access_key_id = ..., access_key_secret = ... })
--     local res, err = ali:resume_live_stream{ domain_name = ..., app_name = ..., stream_name = ... }
--
-- The optional parts are required by their own names, and only where
-- they are used: the edge's `streamctl.edge.callbacks` and `streamctl.edge.authkey`,
-- the operator's `streamctl.operator.reconcile`, `streamctl.operator.audit`,
-- `streamctl.operator.desired` and `streamctl.operator.metrics`, the stores under
-- `streamctl.store` (docs/development/architecture.md, "Layers").
-- @module streamctl

local M = {
  _VERSION = require("streamctl.version")._VERSION,
  errors = require "streamctl.base.errors",
  credentials = require "streamctl.credentials",
}

-- Each provider's client class by its name (streamctl.providers: streamctl.aliyun, streamctl.zego).
for _, name in ipairs(require "streamctl.providers") do M[name] = require("streamctl." .. name) end

return M
