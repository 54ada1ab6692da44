--- streamctl's version: written here once, read by every module that reports it
-- (`streamctl._VERSION`, the transports' User-Agent, the emulator's health answer).
-- @module streamctl.version
local V = "0.1.0"
return { _VERSION = V, user_agent = "streamctl/" .. V }
