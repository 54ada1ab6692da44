-- tier: unit
-- Issue 69, the command: `streamctl zego issue-token` prints a Token04 made
-- with the server API's credentials (the environment, a profile; never a
-- secret on the command line), `streamctl zego read-token TOKEN|-` prints
-- its fields as one JSON object and exits 1 saying why when it does not
-- verify or has expired; every flag checked by its field's rule.
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"
local token04 = require "streamctl.edge.token04"

local HOME = process.temp_dir()
local APP, SECRET = "1234567890", "0123456789abcdef0123456789abcdef"
local T = 1795800000 -- 2026-11-27T17:20:00Z: the command's clock
local ENV = { ZEGO_APP_ID = APP, ZEGO_SERVER_SECRET = SECRET }

local function run(argv, o)
  o = o or {}
  local env = o.env or ENV
  return checks.run_cli(argv, { getenv = function(name) if name == "HOME" then return HOME end return env[name] end,
    clock = function() return o.now or T end, stdin = o.stdin })
end

describe("issue 69: streamctl zego issue-token and read-token", function()
  it("issues a token that reads back, with every grant; its fields as one JSON object", function()
    local status, out, err = run { "zego", "issue-token", "--user-id", "u1", "--room-id", "room-1", "--login",
      "--publish", "--stream-id", "room-1-host", "--stream-id", "room-1-guest", "--ttl", "600" }
    assert.same({ 0, "" }, { status, err })
    local tok = out:match("^(04[%w+/=]+)\n$")
    assert.truthy(tok, out)
    local t = assert(token04.read(tok, { app_id = tonumber(APP), secret = SECRET, now = T + 1 }))
    assert.same({ "u1", T, T + 600, "room-1", true, true, { "room-1-host", "room-1-guest" } },
      { t.user_id, t.ctime, t.expire, t.room_id, t.login, t.publish, t.stream_ids })
    local nonce = string.format("%d", t.nonce)
    local fields = '{"app_id":1234567890,"user_id":"u1","ctime":1795800000,"expire":1795800600,"nonce":' .. nonce
      .. ',"mode":"gcm","room_id":"room-1","login":true,"publish":true,"stream_ids":["room-1-host","room-1-guest"]}\n'
    assert.same({ 0, fields, "" }, { run { "zego", "read-token", tok } })
    assert.same({ 0, fields, "" }, { run({ "zego", "read-token", "-" }, { stdin = tok .. "\n" }) })
    -- --output json: the token and when it expires
    status, out = run { "zego", "issue-token", "--user-id", "u2", "-o", "json" }
    assert.equal(0, status)
    assert.truthy(out:match('^{"token":"04[%w+/=]+","expire":1795803600}\n$'), out)
  end)

  it("read-token exits 1 saying why: expired, another secret, another AppId, not a token", function()
    local _, tok = run { "zego", "issue-token", "--user-id", "u1", "--ttl", "60" }
    tok = tok:gsub("\n$", "")
    assert.same({ 1, "", "streamctl: the token has expired: expired at 2026-11-27T17:21:00Z (now "
      .. "2026-11-27T17:21:00Z)\n" }, { run({ "zego", "read-token", tok }, { now = T + 60 }) })
    assert.same({ 1, "", "streamctl: the token does not verify: does not verify with this secret (a byte changed, "
      .. "or another secret)\n" }, { run({ "zego", "read-token", tok },
      { env = { ZEGO_APP_ID = APP, ZEGO_SERVER_SECRET = string.rep("f", 32) } }) })
    assert.same({ 1, "", "streamctl: the token does not verify: made for AppId 1234567890, not 42\n" },
      { run({ "zego", "read-token", tok }, { env = { ZEGO_APP_ID = "42", ZEGO_SERVER_SECRET = SECRET } }) })
    assert.same({ 1, "", "streamctl: the token does not verify: not a Token04: it does not start with 04\n" },
      { run { "zego", "read-token", "hello" } })
  end)

  it("refuses a flag that breaks its field's rule, and a secret on the command line, before anything", function()
    local rows = {
      { { "--user-id", "a b" }, "streamctl: --user-id may hold only digits, letters and ~!@#$%^&*()_+=-`;',.<> "
        .. "(ZEGO's rule)\n" },
      { {}, "streamctl: --user-id must be a non-empty string\n" },
      { { "--user-id", "u", "--room-id", string.rep("r", 128) }, "streamctl: --room-id must be at most 127 bytes "
        .. "(got 128)\n" },
      { { "--user-id", "u", "--stream-id", "a/b" }, "streamctl: --stream-id item 1 may hold only digits, letters, - "
        .. "and _ (ZEGO's rule)\n" },
      { { "--user-id", "u", "--ttl", "0" }, "streamctl: --ttl must be an integer >= 1 in decimal digits (at most "
        .. "9007199254740991) (got '0')\n" },
      { { "--user-id", "u", "--ttl", "2073601" }, "streamctl: --ttl must be whole seconds from 1 to 2073600 (24 "
        .. "days)\n" },
    }
    for _, row in ipairs(rows) do
      local argv = { "zego", "issue-token" }
      for _, a in ipairs(row[1]) do argv[#argv + 1] = a end
      assert.same({ 2, "", row[2] }, { run(argv) })
    end
    local status, _, err = run { "zego", "issue-token", "--user-id", "u", "--server-secret", SECRET }
    assert.equal(2, status)
    assert.truthy(err:find("unknown option '--server-secret'", 1, true), err)
    assert.is_nil(err:find(SECRET, 1, true))
    assert.same({ 2, "", "streamctl: no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET (HOME is not set: "
      .. "profile files under it were not read)\n" }, { checks.run_cli({ "zego", "issue-token", "--user-id", "u" },
      { getenv = function() return nil end }) })
  end)
end)
