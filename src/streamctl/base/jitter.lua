--- The one source of jitter: a uniform number in [0, 1) from OpenSSL's
-- RAND_bytes, for every random wait the library draws (a retry's backoff,
-- a refused reservation's spread, a credentials renewal's backoff). Never
-- math.random: under LuaJIT it is one sequence in every process, so
-- processes started together would wait alike. streamctl.core's
-- random_hex is looked up at each draw (the simulation replaces it).
-- @module streamctl.base.jitter

local core = require "streamctl.core"

local tonumber = tonumber

local M = {}

--- A uniform number in [0, 1).
function M.unit()
  return tonumber(core.random_hex(4), 16) / 4294967296
end

return M
