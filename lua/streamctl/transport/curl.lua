--- The libcurl transport for scripts (blocking; not for nginx workers).
-- `new(opts)` returns `{ send = function(request) -> response | nil, err, close = function() }`.
-- @module streamctl.transport.curl

local curl = require "streamctl.curl"

local M = {}

--- Makes a transport with one reusable connection.
-- @param opts timeout_ms, connect_timeout_ms, ca_file, proxy (all optional)
function M.new(opts)
  local h = curl.easy {
    timeout_ms = opts.timeout_ms, connect_timeout_ms = opts.connect_timeout_ms,
    ca_file = opts.ca_file, proxy = opts.proxy,
  }
  return {
    send = function(request) return h:request(request) end,
    close = function() h:close() end,
  }
end

return M
