-- Runs the docs' examples for spec/house/70-docs_spec.lua (see there for the
-- conventions), each as a reader would, and writes what each did as JSON:
--
--   lua5.4 spec/helpers/docs_driver.lua IN.json OUT.json
--
-- IN: { dir = a fresh directory for everything, isolated = true when this
-- runs in a network namespace of its own, blocks = { { lang, tags, text,
-- commands } } }. OUT: { error = why nothing ran, or results = { { status,
-- output, seconds, commands = { { status, output } } (console) } } }.
--
-- The emulator runs on its default ports (the ones the docs show) in
-- dir/emulator, started before the first block and reset before each. In a
-- namespace of its own (spec/70 makes one with unshare when it can) those
-- ports are private: nothing outside can answer, and nothing here can reach
-- anything else. Without one they must be free, or nothing runs.
local cjson = require "cjson"
local socket = require "socket"
local docs = require "spec.helpers.docs"
local process = require "spec.helpers.process"
local defaults = require "streamctl.emulator.defaults"

local q, read, write = process.quote, process.read_file, process.write_file
local ROOT = docs.root
local LIMIT = 120 -- seconds a block may take before it is stopped
local EDGE_PORT = 8080 -- examples/openresty/nginx.conf's

local input = cjson.decode((assert(read(arg[1]), "cannot read " .. tostring(arg[1]))))
local DIR = input.dir
local EMU = DIR .. "/emulator"

-- Does something listen on 127.0.0.1:port (so it cannot be bound)?
local function in_use(port)
  local sock = socket.bind("127.0.0.1", port)
  if sock then sock:close() end
  return sock == nil
end

-- The environment of every block: the emulator's accounts as the providers'
-- variables, its HTTPS endpoints and CA as the variables the examples read,
-- the repository's modules and commands, an empty HOME.
local A, Z, P = defaults.ALIYUN, defaults.ZEGO, defaults.PORTS
local ENV = {
  HOME = DIR .. "/home", USER = "docs", LANG = "C.UTF-8",
  PATH = DIR .. "/bin:/usr/local/bin:/usr/bin:/bin",
  LUA_PATH = ROOT .. "/src/?.lua;" .. ROOT .. "/src/?/init.lua;" .. ROOT .. "/emulator/src/?.lua;" .. ROOT
    .. "/emulator/src/?/init.lua;;",
  LUA_CPATH = ROOT .. "/build/5.4/lib/lua/5.4/?.so;;",
  STREAMCTL_EMULATOR_DIR = EMU,
  ALIBABA_CLOUD_ACCESS_KEY_ID = A.access_key_id, ALIBABA_CLOUD_ACCESS_KEY_SECRET = A.access_key_secret,
  ZEGO_APP_ID = Z.app_id, ZEGO_SERVER_SECRET = Z.server_secret,
  STREAMCTL_ALIYUN_ENDPOINT = "https://127.0.0.1:" .. P.aliyun_tls,
  STREAMCTL_ZEGO_ENDPOINT = "https://127.0.0.1:" .. P.zego_tls,
  STREAMCTL_CA_FILE = EMU .. "/ca.pem",
}

local function env_words(extra)
  local words = {}
  for k, v in pairs(ENV) do words[#words + 1] = k .. "=" .. q(v) end
  for k, v in pairs(extra or {}) do words[#words + 1] = k .. "=" .. q(v) end
  table.sort(words)
  return "env -i " .. table.concat(words, " ")
end

local function sh(cmd)
  return process.exit_status(os.execute(cmd))
end

-- streamctl and streamctl-emulator from the repository, under Lua 5.4.
assert(sh("mkdir -p " .. q(DIR .. "/bin") .. " " .. q(ENV.HOME) .. " " .. q(DIR .. "/run")) == 0)
for name, path in pairs { streamctl = "/bin/streamctl", ["streamctl-emulator"] = "/emulator/bin/streamctl-emulator" } do
  write(DIR .. "/bin/" .. name, "#!/bin/sh\nexec lua5.4 " .. q(ROOT .. path) .. ' "$@"\n')
  assert(sh("chmod +x " .. q(DIR .. "/bin/" .. name)) == 0)
end

local function emulator(what)
  local out = DIR .. "/emulator.out"
  local status = sh(env_words() .. " streamctl-emulator " .. what .. " --dir " .. q(EMU) .. " >" .. q(out) .. " 2>&1")
  return status == 0, read(out) or ""
end

local function reset()
  local ok, status = require("socket.http").request("http://127.0.0.1:" .. P.aliyun .. "/_emulator/reset", "{}")
  return ok ~= nil and status == 200
end

-- The OpenResty example as examples/openresty/run.sh starts it (make
-- openresty-demo): its nginx.conf changed only where it must be, against the
-- emulator above, on 127.0.0.1:8080. Returns its two tokens (the moderation
-- API's and /tokens/zego's), or nil and why not.
local EDGE = DIR .. "/edge"
local function start_edge()
  local out = DIR .. "/edge.out"
  local status = sh(env_words() .. " " .. q(ROOT .. "/examples/openresty/run.sh") .. " start --port " .. EDGE_PORT
    .. " --dir " .. q(EDGE) .. " --emulator-dir " .. q(EMU) .. " >" .. q(out) .. " 2>&1")
  local env = read(EDGE .. "/demo.env") or ""
  local token, issuer = env:match("\nSTREAMCTL_EDGE_TOKEN='(%x+)'"), env:match("\nSTREAMCTL_EDGE_ISSUER_TOKEN='(%x+)'")
  if status ~= 0 or not token or not issuer or not in_use(EDGE_PORT) then
    return nil, "examples/openresty/run.sh start failed:\n" .. (read(out) or "")
  end
  return token, issuer
end

local function stop_edge()
  sh(env_words() .. " " .. q(ROOT .. "/examples/openresty/run.sh") .. " stop --dir " .. q(EDGE) .. " >/dev/null 2>&1")
end

-- The script a block runs as: a lua block as it is; an sh block under
-- bash -e -o pipefail; a console block's commands one after the other in one
-- shell, each one's output and status kept apart.
local function script(b, i, cwd)
  if b.lang == "lua" then
    write(cwd .. "/example.lua", b.text)
    return "lua5.4 example.lua"
  elseif b.lang == "sh" then
    write(cwd .. "/example.sh", b.text)
    return "bash -e -o pipefail example.sh"
  end
  local outs = DIR .. "/run/" .. i .. ".out"
  assert(sh("mkdir -p " .. q(outs)) == 0)
  local lines = {}
  for n, c in ipairs(b.commands) do
    local f = q(outs .. "/" .. n)
    lines[#lines + 1] = "{ " .. c.command .. "\n} >" .. f .. " 2>&1; echo $? >" .. f .. ".status"
  end
  write(DIR .. "/run/" .. i .. ".sh", table.concat(lines, "\n") .. "\n")
  return "bash " .. q(DIR .. "/run/" .. i .. ".sh")
end

local function run_block(b, i)
  local cwd = DIR .. "/run/" .. i
  assert(sh("mkdir -p " .. q(cwd)) == 0)
  local result = {}
  local up, why = emulator("start")
  if not up or not reset() then
    return { status = -1, output = "the emulator is not running in " .. EMU .. ":\n" .. why, seconds = 0 }
  end
  local extra, edge = {}, false
  for _, t in ipairs(b.tags) do
    if t == "edge" then
      local token, issuer = start_edge()
      if not token then
        stop_edge()
        return { status = -1, output = issuer, seconds = 0 }
      end
      extra.STREAMCTL_EDGE_TOKEN, extra.STREAMCTL_EDGE_ISSUER_TOKEN, edge = token, issuer, true
    end
  end
  local out = DIR .. "/run/" .. i .. ".output"
  local t0 = socket.gettime()
  result.status = sh("cd " .. q(cwd) .. " && " .. env_words(extra) .. " timeout -k 5 " .. LIMIT .. " "
    .. script(b, i, cwd) .. " </dev/null >" .. q(out) .. " 2>&1")
  result.seconds = socket.gettime() - t0
  result.output = read(out) or ""
  if b.lang == "console" then
    result.commands = {}
    for n = 1, #b.commands do
      local f = DIR .. "/run/" .. i .. ".out/" .. n
      result.commands[n] = { status = tonumber(read(f .. ".status") or ""), output = read(f) or "" }
    end
  end
  if edge then stop_edge() end
  return result
end

local answer = {}
local busy = {}
if not input.isolated then
  for _, port in ipairs { P.aliyun, P.zego, P.aliyun_tls, P.zego_tls, EDGE_PORT } do
    if in_use(port) then busy[#busy + 1] = port end
  end
end
if #busy > 0 then
  answer.error = "the docs' examples use the emulator's default ports and the OpenResty example's, and "
    .. "without a network namespace of their own (unshare) these must be free; in use: "
    .. table.concat(busy, ", ") .. " (an emulator from `streamctl emulator start`? stop it)"
else
  local up, why = emulator("start")
  if not up then
    answer.error = "streamctl-emulator start failed:\n" .. why
  else
    answer.results = {}
    for i, b in ipairs(input.blocks) do answer.results[i] = run_block(b, i) end
  end
  emulator("stop")
end
write(arg[2], cjson.encode(answer))
