--- The launcher's dealings with the system: messages, shell commands,
-- files, sleeping, paths. Runs under Lua 5.1/LuaJIT and 5.4, outside nginx
-- (streamctl.emulator.launcher).
-- @module streamctl.emulator.launcher.sys

local M = {}

-- For tests only: STREAMCTL_EMULATOR_TEST_SYSROOT names a directory that
-- stands in for / wherever the launcher looks for what it needs from the
-- system (nginx, its two modules, the Lua 5.1 modules), so a spec can show the
-- message for a missing package without uninstalling it
-- (spec/emulator/10-emulator-start_spec.lua). Not for use otherwise.
M.SYSROOT = os.getenv("STREAMCTL_EMULATOR_TEST_SYSROOT") or ""

local function say(...)
  io.stdout:write(table.concat({ ... }), "\n")
end

local function warn(...)
  io.stderr:write("streamctl-emulator: ", table.concat({ ... }), "\n")
end

local function die(code, ...)
  warn(...)
  os.exit(code)
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute differs: 5.1 returns the raw status, 5.2+ returns ok, "exit", code.
local function run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then
    return a == 0, a
  end
  return a == true, c
end

local function capture(cmd)
  local p = io.popen(cmd)
  if not p then
    return ""
  end
  local out = p:read("*a") or ""
  p:close()
  return out
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, text, mode)
  local f, err = io.open(path, "wb")
  if not f then
    die(1, "cannot write ", path, ": ", tostring(err))
  end
  f:write(text)
  f:close()
  if mode then
    run("chmod " .. mode .. " " .. shell_quote(path))
  end
end

-- The last n lines of a file, from byte offset `from` on (default: all).
local function tail(path, n, from)
  local text = read_file(path)
  if text and from then
    text = text:sub(from + 1)
  end
  if not text or text == "" then
    return ""
  end
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    lines[#lines + 1] = line
  end
  local first = math.max(1, #lines - n + 1)
  local out = {}
  for i = first, #lines do
    out[#out + 1] = "  " .. lines[i]
  end
  return table.concat(out, "\n")
end

local have_socket, socket = pcall(require, "socket")
if not have_socket then
  socket = nil
end

local function sleep(seconds)
  if socket and socket.sleep then
    socket.sleep(seconds)
  else
    run("sleep " .. string.format("%.2f", seconds))
  end
end

local function absolute(path)
  if path:sub(1, 1) == "/" then
    return path
  end
  local cwd = os.getenv("PWD")
  if not cwd or cwd == "" then
    cwd = trim(capture("pwd"))
  end
  return cwd .. "/" .. path
end


M.say, M.warn, M.die, M.shell_quote, M.run, M.capture = say, warn, die, shell_quote, run, capture
M.trim, M.file_exists, M.read_file, M.write_file, M.tail = trim, file_exists, read_file, write_file, tail
M.sleep, M.absolute, M.socket = sleep, absolute, socket

return M
