-- Child processes for specs: the interpreter running the spec, shell quoting,
-- and start/stop of a child whose stdout the spec reads.
local M = {}

--- The interpreter running this spec: STREAMCTL_LUA, else the lowest arg[-n], else lua5.4.
function M.interpreter()
  local env = os.getenv("STREAMCTL_LUA")
  if env and env ~= "" then return env end
  if type(arg) == "table" and arg[-1] then
    local i = -1
    while arg[i - 1] do i = i - 1 end
    return arg[i]
  end
  return "lua5.4"
end

function M.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- os.execute's success: 5.1/LuaJIT return the raw wait status, 5.2+ ok, "exit", code.
function M.run(cmd)
  local a = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true
end

--- A file's bytes, or nil when it cannot be read.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- A new empty directory (under the system's temporary directory).
function M.temp_dir()
  local name = os.tmpname()
  os.remove(name)
  assert(M.run("mkdir -p " .. M.quote(name)), "cannot create " .. name)
  return name
end

--- What `cmd` prints on standard output.
function M.capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a") or ""
  p:close()
  return out
end

--- Starts `cmd` in a child process whose stdout we read; the shell execs it, so $$ is its pid.
function M.spawn(cmd)
  local pipe = assert(io.popen("echo $$; exec " .. cmd, "r"))
  local pid = tonumber(pipe:read("*l"))
  assert(pid, "could not start " .. cmd)
  return { pipe = pipe, pid = pid }
end

--- Kills and reaps a child. Until reaped by pipe:close() the pid cannot be
-- reused, so the kill is always aimed right.
function M.stop(child)
  if child then
    os.execute("kill " .. child.pid .. " 2>/dev/null")
    child.pipe:close()
  end
end

--- A port on 127.0.0.1 that nothing listens on (bound, then closed).
function M.free_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- Starts spec/helpers/httpserver.lua; returns the child and its port.
-- @param seconds, requests its bounds; root_route the behaviour "/" takes (e.g. "/json")
function M.httpserver(seconds, requests, root_route)
  local root = os.getenv("STREAMCTL_ROOT") or "."
  local child = M.spawn(M.quote(M.interpreter()) .. " " .. M.quote(root .. "/spec/helpers/httpserver.lua")
    .. " " .. (seconds or 20) .. " " .. (requests or 1000) .. (root_route and (" " .. M.quote(root_route)) or ""))
  local port = tonumber(child.pipe:read("*l"))
  assert(port, "the test HTTP server did not start")
  return child, port
end

return M
