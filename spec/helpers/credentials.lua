-- streamctl.credentials as the credential specs read it (spec/15, spec/49):
-- a failure of `aliyun` or `zego` is an error object (code
-- MissingCredentials, kind auth, its provider), checked here, and the specs
-- compare its words. Every other function is the module's own.
local assert = require "luassert"
local real = require "streamctl.credentials"

local M = setmetatable({}, { __index = real })

for _, provider in ipairs { "aliyun", "zego" } do
  M[provider] = function(opts)
    local c, err, warnings, source = real[provider](opts)
    if err == nil then return c, err, warnings, source end
    assert.same({ "MissingCredentials", "auth", provider }, { err.code, err.kind, err.provider })
    return c, err.message, warnings, source
  end
end

return M
