-- sanitizers: none (the emulator and a test server, each a process of its own: not our C)
-- Issue 69: the emulator plays Alibaba Cloud Live's remote authentication.
-- Before an ingest it is told of (POST /_emulator/online) on a domain that
-- has it set, it asks that server (GET, the stream's domain, app, name and
-- client address and the ingest URL's own query) and honours the answer:
-- a success status admits, a failure status refuses, another status and
-- no answer in time go by other_code_action and timeout_action ("pass" by
-- default, the provider's, which a server must not rely on). The server
-- here is spec/helpers/httpserver.lua: /echo answers 200, /error 400,
-- /hang never.
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

describe("the emulator's remote authentication (Alibaba Cloud Live)", function()
  local server, http, port
  lazy_setup(function()
    server = emu.start {}
    http, port = process.httpserver(100)
  end)
  lazy_teardown(function()
    if server then server:stop() end
    if http then process.stop(http) end
  end)
  before_each(function() server:reset() end)

  local function set(path, extra)
    local v = { domain = "push.example.com", url = "http://127.0.0.1:" .. port .. path }
    for k, x in pairs(extra or {}) do v[k] = x end
    local answer, status = server:control("POST", "remote_auth", v)
    assert.equal(200, status, require("cjson").encode(answer))
    return answer
  end
  local function publish(stream, usrargs)
    return server:online { domain = "push.example.com", app = "live", stream = stream, client_ip = "10.0.0.7",
                           usrargs = usrargs }
  end

  it("asks with the stream, the client and the ingest URL's query; admits on 200", function()
    set("/echo")
    local answer = publish("cam-1", "auth_key=1700000000-0-0-abc")
    assert.same({ "push.example.com/live/cam-1" }, answer.marked)
    assert.same({}, answer.refused)
    assert.equal("admitted: 200", answer.remote_auth["push.example.com/live/cam-1"])
    local asked = server:control("GET", "remote_auth").asked
    assert.equal(1, #asked)
    assert.equal("/echo?domain=push.example.com&app=live&stream=cam-1&ip=10.0.0.7&auth_key=1700000000-0-0-abc",
      asked[1].target)
    -- another domain is not asked
    server:online { domain = "other.example.com", app = "live", stream = "x" }
    assert.equal(1, #server:control("GET", "remote_auth").asked)
  end)

  it("refuses on a failure status: the stream is not online", function()
    set("/error", { fail_codes = { 400, 403 } })
    local answer = publish("cam-2")
    assert.same({}, answer.marked)
    assert.same({ "push.example.com/live/cam-2" }, answer.refused)
    assert.equal("refused by remote authentication (400)", answer.remote_auth["push.example.com/live/cam-2"])
    assert.is_nil(server:online().online["push.example.com/live/cam-2"])
  end)

  it("another status and no answer in time: as the domain is set (pass by default)", function()
    set("/error")
    assert.equal("admitted: 400 is neither a success nor a failure status (other_code_action)",
      publish("cam-3").remote_auth["push.example.com/live/cam-3"])
    set("/error", { other_code_action = "reject" })
    assert.equal("refused: 400 is neither a success nor a failure status (other_code_action)",
      publish("cam-4").remote_auth["push.example.com/live/cam-4"])
    set("/hang", { timeout_ms = 200 })
    local why = publish("cam-5").remote_auth["push.example.com/live/cam-5"]
    assert.truthy(why:find("^admitted: no answer %(receive: timeout; timeout_action%)$"), why)
    set("/hang", { timeout_ms = 200, timeout_action = "reject" })
    local answer = publish("cam-6")
    assert.same({ "push.example.com/live/cam-6" }, answer.refused)
  end)

  it("refuses bad settings by name; a reset forgets them", function()
    local rows = {
      { { url = "ftp://x" }, "remote_auth: url: scheme ftp is not http or https" },
      { { timeout_ms = 3001 }, "remote_auth: timeout_ms must be a whole number of milliseconds from 1 to 3000" },
      { { timeout_action = "allow" }, "remote_auth: timeout_action must be \"pass\" or \"reject\"" },
      { { fail_codes = { 99 } }, "remote_auth: fail_codes must hold HTTP statuses" },
    }
    for _, row in ipairs(rows) do
      local v = { domain = "push.example.com", url = "http://127.0.0.1:" .. port .. "/echo" }
      for k, x in pairs(row[1]) do v[k] = x end
      local answer, status = server:control("POST", "remote_auth", v)
      assert.same({ 400, row[2] }, { status, answer.error })
    end
    set("/error", { fail_codes = { 400 } })
    server:reset()
    assert.same({ "push.example.com/live/cam-7" }, publish("cam-7").marked)
  end)
end)
