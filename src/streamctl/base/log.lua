--- Where the library's warnings go unless a caller gives its own `log`
-- function: nginx's error log (WARN) inside nginx, else standard error.
-- One line per call; callers never pass a secret.
-- @module streamctl.base.log

local rawget = rawget

local M = {}

--- Writes `msg` as one warning line.
-- @tparam string msg
function M.warn(msg)
  local ngx_ = rawget(_G, "ngx")
  if ngx_ and ngx_.log and ngx_.WARN then
    ngx_.log(ngx_.WARN, msg)
  else
    io.stderr:write(msg, "\n")
  end
end

return M
