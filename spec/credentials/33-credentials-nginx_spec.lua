-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- Temporary credentials inside nginx: four workers, each with a client made
-- from the credential chain (the ECS instance's role, through the
-- emulator's metadata service on 127.0.0.1) and `shared_dict`, under 1,000
-- requests that each sign a request (`prepare`): the machine asks the
-- metadata service once per expiry, whichever worker finds the credentials
-- stale, and every request is signed with credentials that were current.
-- Time is moved, not waited for: the workers' clock (the holder's and the
-- client's `clock`) is ngx.now() plus an offset in the shared dict, which
-- the spec moves on with the emulator's.
local cjson = require "cjson"
local socket = require "socket"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

local UID = "1234567890123456"
local ROLE = "acs:ram::" .. UID .. ":role/edge"
-- 12 s credentials, rotated by the service when 8 s are left; streamctl
-- renews them with a third of their life left (4 s)
local LIFE = 12
local CONFIG = { aliyun = {
  accounts = { LTAIuser = { secret = "s", account = UID, user = "u" } },
  roles = { [ROLE] = {} },
  imds = { role = ROLE, credential_lifetime_s = LIFE, rotation_lead_s = 8 },
} }

local DRIVER = [[
local M = {}
local client
local function clock() return ngx.now() + (ngx.shared.streamctl:get("offset") or 0) end
function M.advance()
  ngx.say((assert(ngx.shared.streamctl:incr("offset", tonumber(ngx.var.arg_s), 0))))
end
function M.sign()
  if not client then
    local creds = assert(require("streamctl.credentials").aliyun { shared_dict = "streamctl", clock = clock })
    client = assert(require("streamctl.aliyun").new { endpoint = os.getenv("ALIYUN"), credentials = creds.credentials,
                                                     account_id = "1234567890123456", clock = clock })
  end
  local req, err = client:prepare("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a", StreamName = "s" })
  if not req then
    ngx.say(require("cjson").encode { worker = ngx.worker.id(), error = tostring(err) })
    return
  end
  ngx.say(require("cjson").encode { worker = ngx.worker.id(), key = req.headers["x-acs-accesskey-id"],
                                    time = ngx.now() })
end
return M
]]

-- `n` GET /sign requests, `batch` at a time on connections of their own: their answers.
local function sign(port, n, batch)
  local out = {}
  while #out < n do
    local socks = {}
    for i = 1, math.min(batch, n - #out) do
      local s = socket.tcp()
      s:settimeout(10)
      assert(s:connect("127.0.0.1", port))
      assert(s:send("GET /sign HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
      socks[i] = s
    end
    for _, s in ipairs(socks) do
      local raw = s:receive("*a")
      s:close()
      local body = raw and raw:match("\r\n\r\n(.*)$")
      out[#out + 1] = body and cjson.decode(body) or { error = "no answer" }
    end
  end
  return out
end

describe("temporary credentials in four nginx workers", function()
  -- (the work is nginx's, under LuaJIT whatever runs this spec: once, in the plain Lua 5.4 run)
  if rawget(_G, "jit") or require("spec.helpers.process").preloaded() then
    pending("run once, in the plain Lua 5.4 run: the workers are nginx's, the same under any test interpreter")
    return
  end
  local emulator, server
  lazy_setup(function()
    emulator = emu.start { imds = true, config = CONFIG }
    server = nginx.start {
      workers = 4,
      env = { ALIYUN = emulator.aliyun_tls_url, ALIBABA_CLOUD_ECS_METADATA = "edge",
              STREAMCTL_TEST_IMDS_ENDPOINT = emulator.imds_url },
      prepare = function(dir) nginx.write_file(dir .. "/driver.lua", DRIVER) end,
      lua_path = function(dir) return dir .. "/?.lua" end,
      lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
      main = "env ALIYUN; env ALIBABA_CLOUD_ECS_METADATA; env STREAMCTL_TEST_IMDS_ENDPOINT;",
      http = function(ports)
        return table.concat({
          "lua_shared_dict streamctl 1m;",
          "server {",
          "  listen 127.0.0.1:" .. ports[1] .. ";",
          "  location = /sign { content_by_lua_block { require('driver').sign() } }",
          "  location = /advance { content_by_lua_block { require('driver').advance() } }",
          "}",
        }, "\n    ")
      end,
    }
  end)
  lazy_teardown(function()
    if server then server:stop() end
    if emulator then emulator:stop() end
  end)

  it("renew once per expiry for the whole machine: 1,000 requests, every one signed", function()
    local t0 = socket.gettime()
    local answers, offset = {}, 0
    -- 1,000 requests spread over about 3 lifetimes (past two renewals): both
    -- clocks moved on by a tenth of 2.5 lifetimes after each hundred
    for _ = 1, 10 do
      for _, a in ipairs(sign(server.ports[1], 100, 25)) do answers[#answers + 1] = a end
      offset = offset + 2.5 * LIFE / 10
      emulator:clock { offset = offset }
      local status, moved = server:get("/advance?s=" .. 2.5 * LIFE / 10)
      assert.equal(200, status)
      assert.equal(offset, tonumber(moved), "the workers' clock")
    end
    local keys, workers, errors = {}, {}, {}
    for _, a in ipairs(answers) do
      if a.error then errors[#errors + 1] = a.error else keys[a.key] = true end
      if a.worker then workers[a.worker] = true end
    end
    assert.same({}, errors)
    assert.equal(1000, #answers)
    local nkeys, nworkers = 0, 0
    for _ in pairs(keys) do nkeys = nkeys + 1 end
    for _ in pairs(workers) do nworkers = nworkers + 1 end
    assert.is_true(nworkers >= 2, "the requests reached " .. nworkers .. " worker(s)")
    -- the metadata service handed out as many credentials as were used, one per expiry
    local issued = 0
    for _, e in ipairs(emulator:log { provider = "imds", action = "credentials" }) do
      if e.status == 200 then issued = issued + 1 end
    end
    assert.is_true(nkeys >= 3, nkeys .. " sets of credentials in " .. string.format("%.1f", socket.gettime() - t0)
      .. " s")
    assert.equal(nkeys, issued)
  end)
end)
