-- streamctl.credentials.sources against the emulator's metadata service and
-- credentials URI (spec/helpers/emulator.lua, 127.0.0.1 on free ports): the
-- IMDSv2 token first, IMDSv1 where allowed, hardened mode, the role named or
-- asked for, answers that are not credentials, a URI's credentials, and a
-- holder (streamctl.credentials.refresh) renewing through them.
local emu = require "spec.helpers.emulator"
local sources = require "streamctl.credentials.sources"
local refresh = require "streamctl.credentials.refresh"
local core = require "streamctl.core"

local UID = "1234567890123456"
local ROLE = "acs:ram::" .. UID .. ":role/edge"
local CONFIG = { aliyun = {
  accounts = { LTAIuser = { secret = "s", account = UID, user = "u" } },
  roles = { [ROLE] = {} },
  imds = { role = ROLE, credential_lifetime_s = 3600, rotation_lead_s = 300 },
  credentials_uri = { role = ROLE, credential_lifetime_s = 1800, rotation_lead_s = 120 },
} }

describe("streamctl.credentials.sources", function()
  local server, imds, exchange
  lazy_setup(function()
    server = emu.start { imds = true, config = CONFIG }
    -- (the SDKs' timeouts, not under test here: scaled under valgrind and ASan, where a busy machine
    -- made the token's PUT miss its second and the fetch go without it)
    local slow = require("spec.helpers.process").slowdown()
    exchange = assert(sources.exchange { timeout_ms = sources.IMDS_TIMEOUT_MS * slow,
                                         connect_timeout_ms = sources.IMDS_CONNECT_TIMEOUT_MS * slow })
  end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function()
    server:reset()
    server:imds_mode { hardened = false }
  end)

  local function ecs(extra)
    local s = { type = "ecs_ram_role", from = "the ECS instance's RAM role" }
    for k, v in pairs(extra or {}) do s[k] = v end
    return assert(sources.fetcher(s, exchange, server.imds_url))
  end

  -- What the metadata service was asked, in order: "action version"
  local function requests()
    local out = {}
    for _, e in ipairs(server:log { provider = "imds" }) do
      out[#out + 1] = e.action .. " " .. tostring(e.detail and e.detail.version)
    end
    return out
  end

  it("asks for a token, the role's name and its credentials, as the official SDKs do", function()
    imds = ecs()
    local before = core.now()
    local c = assert(imds())
    local after = core.now()
    assert.matches("^STS%.", c.access_key_id)
    assert.is_string(c.access_key_secret) -- (text from fetch; the holder keeps it as a streamctl.secret)
    assert.is_string(c.security_token)
    -- (an hour from when it was asked, to the second: within the fetch, by one wall clock)
    assert.is_true(c.expiration >= math.floor(before) + 3600 and c.expiration <= after + 3600, c.expiration)
    assert.same({ "token nil", "role v2", "credentials v2" }, requests())
  end)

  it("skips the name when the role is given; a wrong name is said as such", function()
    assert(ecs { role_name = "edge" }())
    assert.equal(2, #requests())
    local c, err = ecs { role_name = "egde" }()
    assert.is_nil(c)
    assert.matches("GET " .. server.imds_url:gsub("%p", "%%%0") .. "/latest/meta%-data/ram/security%-credentials/egde: "
      .. "HTTP 404 %(is 'egde' the instance's RAM role%?%)$", err)
  end)

  it("goes without a token (IMDSv1) when none can be had, unless IMDSv1 is turned off", function()
    server:faults { provider = "imds", kind = "http500", action = "token", count = 2 }
    assert(ecs { role_name = "edge" }())
    assert.same({ "token nil", "credentials v1" }, requests())
    local c, err = ecs { role_name = "edge", imdsv1_disabled = true }()
    assert.is_nil(c)
    assert.matches("^the metadata service gave no token and IMDSv1 is turned off %(ALIBABA_CLOUD_IMDSV1_DISABLED%): "
      .. "PUT .*/latest/api/token: HTTP 500$", err)
  end)

  it("asks again without the token when a request with it fails (as @alicloud/credentials 2.4.7 does)", function()
    server:faults { provider = "imds", kind = "http500", action = "credentials" }
    assert(ecs { role_name = "edge" }())
    -- (the faulted answer is logged before the service looks at the token: no version)
    assert.same({ "token nil", "credentials nil", "credentials v1" }, requests())
  end)

  it("in hardened mode, works with the token and fails clearly without one", function()
    server:imds_mode { hardened = true }
    assert(ecs { role_name = "edge" }())
    server:faults { provider = "imds", kind = "http500", action = "token" }
    local c, err = ecs { role_name = "edge" }()
    assert.is_nil(c)
    assert.matches("/latest/meta%-data/ram/security%-credentials/edge: HTTP 401$", err)
  end)

  it("gets a credentials URI's", function()
    local uri = server.aliyun_url .. "/credentials-uri"
    local fetch = assert(sources.fetcher({ type = "credentials_uri", from = "environment", uri = uri }, exchange))
    local before = core.now()
    local c = assert(fetch())
    local after = core.now()
    assert.matches("^STS%.", c.access_key_id)
    assert.is_true(c.expiration >= math.floor(before) + 1800 and c.expiration <= after + 1800, c.expiration)
    local bad = sources.fetcher({ type = "credentials_uri", from = "environment", uri = server.aliyun_url .. "/" },
      exchange)
    local none, err = bad()
    assert.is_nil(none)
    assert.matches("^GET " .. server.aliyun_url:gsub("%p", "%%%0") .. "/: HTTP %d+$", err)
  end)

  it("takes only an answer whose Code is Success", function()
    local process = require "spec.helpers.process"
    local child, port = process.httpserver(5)
    local fetch = sources.fetcher({ type = "credentials_uri", from = "environment",
                                    uri = "http://127.0.0.1:" .. port .. "/echo" }, exchange)
    local c, err = fetch()
    process.stop(child)
    assert.is_nil(c)
    assert.equal("http://127.0.0.1:" .. port .. "/<redacted>: Code is missing, not Success", err)
  end)

  it("refuses a role source it does not fetch over plain HTTP", function()
    local f, err = sources.fetcher({ type = "ram_role_arn", from = "x [p]" }, exchange)
    assert.is_nil(f)
    assert.equal("x [p]: source type ram_role_arn is not fetched over plain HTTP", err)
  end)

  it("keeps a holder's credentials current through the metadata service", function()
    local holder = refresh.new { source = "the ECS instance's RAM role edge", fetch = ecs { role_name = "edge" } }
    local c = assert(holder:get())
    assert.equal(c, (holder:get()))
    assert.equal("userdata", type(c.access_key_secret))
    assert.equal(1, holder.fetches)
  end)
end)
