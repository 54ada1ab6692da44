--- streamctl: control live streams on Alibaba Cloud ApsaraVideo Live and ZEGOCLOUD.
--
--     local streamctl = require "streamctl"
--     local ali = assert(streamctl.aliyun.new{ access_key_id = ..., access_key_secret = ... })
--     local res, err = ali:resume_live_stream{ domain_name = ..., app_name = ..., stream_name = ... }
--
-- @module streamctl

return {
  _VERSION = require("streamctl.version")._VERSION,
  aliyun = require "streamctl.aliyun",
  zego = require "streamctl.zego",
  errors = require "streamctl.errors",
  credentials = require "streamctl.credentials",
  callbacks = require "streamctl.callbacks",
  authkey = require "streamctl.authkey",
}
