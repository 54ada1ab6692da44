--- The libcurl transport for scripts: concurrent transfers on libcurl's multi
-- interface, one connection cache per client. It blocks while it waits, so
-- it is not for nginx request handlers.
--
-- `new(opts)` returns a transport table (see streamctl.client):
-- `start(key, request)`, `poll(timeout_seconds)`, `sleep(seconds)`, `close()`.
-- @module streamctl.transport.curl

local curl = require "streamctl.curl"

local floor = math.floor

local M = {}

--- A blocking sleep, for scripts.
M.sleep = curl.sleep

--- Makes a transport.
-- @param opts timeout_ms, connect_timeout_ms, ca_file, proxy, max_connections (all optional)
function M.new(opts)
  local m = curl.multi {
    timeout_ms = opts.timeout_ms, connect_timeout_ms = opts.connect_timeout_ms,
    ca_file = opts.ca_file, proxy = opts.proxy, max_connections = opts.max_connections,
  }
  local t = { sleep = curl.sleep }

  function t.start(key, request)
    return m:add(key, request)
  end

  --- Completions, waiting up to `timeout` seconds for at least one.
  function t.poll(timeout)
    if m:pending() == 0 then
      if timeout > 0 then curl.sleep(timeout) end
      return {}
    end
    return m:poll(floor(timeout * 1000 + 0.5))
  end

  function t.close()
    m:close()
  end

  return t
end

return M
