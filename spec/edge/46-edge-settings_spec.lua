-- The edge module's settings (streamctl.edge.settings, issue 88): one table, each key by its rule,
-- checked when nginx starts; from the environment, a message names the variable; from a table, the
-- key. The example's nginx.conf passes every variable on (an `env` directive each), and run.sh says
-- of each whether it passes it on.

local settings = require "streamctl.edge.settings"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local function read(path)
  local f = assert(io.open(ROOT .. "/" .. path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local SECRET = "0123456789abcdef0123456789abcdef"

describe("streamctl.edge.settings", function()
  it("takes a table with defaults, keys parsed", function()
    local s = assert(settings.check { token = "t", aliyun_auth_key = "new,old", zego_app_id = "123",
                                      zego_server_secret = SECRET, max_forbid = "250", reconcile_s = 5 })
    assert.equal("t", s.token)
    assert.same({ "new", "old" }, s.aliyun_auth_key)
    assert.equal(123, s.zego_app_id)
    assert.equal(250, s.max_forbid)
    assert.equal(5, s.reconcile_s)
    assert.equal("deny", s.admit_on_list_error)
    assert.equal(10, s.list_grace_s)
    assert.is_nil(s.max_resume)
  end)

  -- { settings, the message }
  for _, row in ipairs {
    { {}, "settings.token is not set: every /streams request would be refused" },
    { { token = "t", tokn = "u" }, "settings.tokn: no such setting (did you mean 'token'?)" },
    { { token = "t", admit_on_list_error = "Deny" }, 'settings.admit_on_list_error must be "deny" or "allow" (got Deny)' },
    { { token = "t", max_forbid = "0x100" }, "settings.max_forbid must be a whole number >= 0 in decimal digits (got 0x100)" },
    { { token = "t", reconcile_s = "0" }, "settings.reconcile_s must be a number of seconds from 1 to 86400 (got 0)" },
    { { token = "t", list_grace_s = "-1" }, "settings.list_grace_s must be a number of seconds from 0 to 300 (got -1)" },
    { { token = "t", list_grace_s = "1e3" }, "settings.list_grace_s must be a number of seconds from 0 to 300 (got 1e3)" },
    { { token = "t", aliyun_auth_key = "a,b,c" }, "settings.aliyun_auth_key must be a key, or \"new,old\" during a rotation: no "
      .. "empty part, no space, at most two" },
    { { token = "t", zego_app_id = "1" }, "settings.zego_app_id and settings.zego_server_secret go together (only "
      .. "settings.zego_app_id is set): without both the door could not verify ZEGO's tokens" },
    { { token = "t", zego_app_id = "1", zego_server_secret = "short" },
      "settings.zego_server_secret must be the ServerSecret's 32 characters (got 5)" },
    { { token = "t", aliyun_notify_key = "k" }, "settings.aliyun_notify_key and settings.aliyun_notify_domain go together" },
    { { token = "t", issuer_token = "t" }, "settings.issuer_token must differ from settings.token" },
    { { token = "t", rtmp_control = "ftp://x/control" }, "settings.rtmp_control must be an http:// or https:// URL (got "
      .. "ftp://x/control)" },
    { { token = "t", adopt = "yes" }, 'settings.adopt must be "aliyun" (got yes)' },
  } do
    it("refuses " .. row[2]:sub(1, 60), function()
      local s, why = settings.check(row[1])
      assert.is_nil(s)
      assert.equal(row[2], why:sub(1, #row[2]))
    end)
  end

  it("never shows a secret or a token in a message", function()
    local _, why = settings.check { token = "t", issuer_token = "line\nbreak-secret" }
    assert.equal("settings.issuer_token must be a non-empty line of text", why)
    _, why = settings.check { token = "t", zego_callback_secret = "a b" }
    assert.is_nil(why:find("a b", 1, true))
  end)

  it("from the environment, names the variables; an empty one is unset", function()
    local env = { STREAMCTL_EDGE_TOKEN = "t", STREAMCTL_EDGE_MAX_RESUME = "1.5", STREAMCTL_EDGE_FORBIDS = "" }
    local s = settings.from_env(function(name) return env[name] end)
    assert.is_nil(s.forbids)
    local ok, why = settings.check(s)
    assert.is_nil(ok)
    assert.equal("STREAMCTL_EDGE_MAX_RESUME must be a whole number >= 0 in decimal digits (got 1.5)", why)
    assert.equal("STREAMCTL_EDGE_FORBIDS", settings.name(s, "forbids"))
    assert.equal("settings.forbids", settings.name({}, "forbids"))
    assert.has_error(function() settings.check("token") end, "bad argument #1 to 'check' (table expected)")
  end)

  it("is passed on by the example: an env directive for each variable, run.sh says of each what it does", function()
    local conf, run = read("examples/openresty/nginx.conf"), read("examples/openresty/run.sh")
    local missing, unsaid = {}, {}
    for _, k in ipairs(settings.KEYS) do
      if not conf:find("\nenv " .. k[2] .. ";", 1, true) then missing[#missing + 1] = k[2] end
      if not run:find("[%s(]" .. k[2] .. "[%s)]") then unsaid[#unsaid + 1] = k[2] end
    end
    assert.same({}, missing)
    assert.same({}, unsaid)
  end)
end)
