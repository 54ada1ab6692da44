-- sanitizers: none (the house: files, docs and tools, not our C)
-- The core rock installed alone (issue 37, "optional means optional"): the
-- streamctl rock, built by luarocks from a copy of the tree into a tree of
-- its own with none of the other three rocks (the command, the Redis store,
-- the emulator), loads, signs the published example to the byte, builds
-- the same requests as the development tree, finds none of the optional
-- modules, and answers the redis option with the rock to install. Its
-- manifest holds the files its rockspec lists and no other (luarocks copies
-- a top-level lua/ directory whole: the sources are under src/ for that).
local cjson = require "cjson"
local process = require "spec.helpers.process"
local rockspec = require "spec.helpers.rockspec"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local LUA = process.interpreter()

-- The interpreter's Lua version as luarocks names it ("5.4"; LuaJIT: "5.1").
local function lua_version()
  return (_VERSION:match("%d+%.%d+"))
end

-- What runs under the tree: the same requests the spec builds (clock, nonce
-- and keys fixed), the published V1 vector signed by the installed C, and
-- what of the optional parts can be found. Prints one JSON object.
local PROBE = [==[
local cjson = require "cjson"
local V = cjson.decode(assert(io.open(arg[1], "rb")):read("*a"))
local streamctl = require "streamctl"
local core = require "streamctl.core"
local out = { found = {}, files = {} }
local v = V.aliyun_rpc_v1[1]
out.v1 = core.aliyun_sign_v1(v.method, v.params, v.access_key_secret)
out.v1_expected = v.signature
local common = { clock = function() return 1700000000 end, nonce = function() return "0123456789abcdef" end,
                 transport = function() error("nothing is sent") end }
local function with(t) for k, x in pairs(common) do t[k] = x end return t end
local a = assert(streamctl.aliyun.new(with { access_key_id = "AKID", access_key_secret = "secret" }))
out.aliyun = assert(a:prepare("ForbidLiveStream",
  { DomainName = "push.example.com", AppName = "live", StreamName = "s1", LiveStreamType = "publisher" }))
local z = assert(streamctl.zego.new(with { app_id = 1234567, server_secret = ("s"):rep(32) }))
out.zego = assert(z:prepare("ForbidRTCStream", { StreamId = "s1", Sequence = 1 }))
for _, m in ipairs { "streamctl.cli", "streamctl.cli.parser", "streamctl.store.redis", "streamctl.store.redisconn",
                     "streamctl.emulator.server", "streamctl.emulator.aliyun" } do
  out.found[m] = package.searchpath(m, package.path) or false
end
out.found["streamctl.redis"] = package.searchpath("streamctl.redis", package.cpath) or false
-- the core's optional layers that have no dependencies of their own are in it
for _, m in ipairs { "streamctl.edge.callbacks", "streamctl.edge.authkey", "streamctl.operator.audit",
                     "streamctl.operator.reconcile", "streamctl.store.shdict", "streamctl.credentials" } do
  require(m)
end
local _, err = streamctl.aliyun.new(with { access_key_id = "AKID", access_key_secret = "secret",
                                          redis = "redis://127.0.0.1:6379/0" })
out.redis = err and err.message or "accepted"
for name in pairs(package.loaded) do
  if name:find("^streamctl") then
    out.files[name] = package.searchpath(name, package.path) or package.searchpath(name, package.cpath) or false
  end
end
print(cjson.encode(out))
]==]

describe("the core rock installed alone", function()
  local tmp, tree, result, manifest

  setup(function()
    tmp = os.tmpname()
    os.remove(tmp)
    tree = tmp .. "/tree"
    local src = tmp .. "/src"
    -- a copy, so the build's objects land beside the copy, not in the checkout
    assert(process.run("mkdir -p " .. q(src) .. " " .. q(tmp .. "/run") .. " && cp -r " .. q(ROOT .. "/src") .. " "
      .. q(ROOT .. "/csrc") .. " " .. q(ROOT .. "/rockspecs") .. " " .. q(src .. "/")))
    local v = lua_version()
    local log = tmp .. "/luarocks.log"
    local ok = process.run("cd " .. q(src) .. " && LUAROCKS_CONFIG=rockspecs/luarocks-config.lua luarocks --lua-version="
      .. v .. " --tree " .. q(tree) .. " make rockspecs/streamctl-scm-1.rockspec CFLAGS='-O0 -fPIC -Wall -Wextra -Werror'"
      .. " >" .. q(log) .. " 2>&1")
    assert(ok, "luarocks make of the core rock alone failed:\n" .. tostring(process.read_file(log)))
    process.write_file(tmp .. "/probe.lua", PROBE)
    -- the tree first, then the system's own paths (cjson), and never the checkout
    local env = "LUA_PATH=" .. q(tree .. "/share/lua/" .. v .. "/?.lua;" .. tree .. "/share/lua/" .. v .. "/?/init.lua;;")
      .. " LUA_CPATH=" .. q(tree .. "/lib/lua/" .. v .. "/?.so;;")
    local p = assert(io.popen("cd " .. q(tmp .. "/run") .. " && env -u STREAMCTL_ROOT " .. env .. " " .. q(LUA) .. " "
      .. q(tmp .. "/probe.lua") .. " " .. q(ROOT .. "/spec/vectors/signing-vectors.json") .. " 2>&1"))
    local text = p:read("*a")
    p:close()
    local decoded
    ok, decoded = pcall(cjson.decode, text)
    assert(ok and type(decoded) == "table", "the probe failed under the tree alone:\n" .. text)
    result = decoded
    manifest = process.read_file(tree .. "/lib/luarocks/rocks-" .. v .. "/streamctl/scm-1/rock_manifest")
  end)

  teardown(function()
    if tmp then process.run("rm -rf " .. q(tmp)) end
  end)

  it("loads every module from the tree alone", function()
    local n = 0
    for name, file in pairs(result.files) do
      n = n + 1
      assert.truthy(file, name .. " was loaded from no file on the paths")
      assert.equal(tree, file:sub(1, #tree), name .. " came from " .. tostring(file) .. ", not the tree")
    end
    assert.is_true(n >= 20, "only " .. n .. " modules loaded")
  end)

  it("signs the published V1 example to the byte with its own C", function()
    assert.equal(result.v1_expected, result.v1)
  end)

  it("builds the same requests as the development tree", function()
    local common = { clock = function() return 1700000000 end, nonce = function() return "0123456789abcdef" end,
                     transport = function() error("nothing is sent") end }
    local function with(t) for k, x in pairs(common) do t[k] = x end return t end
    local a = assert(aliyun.new(with { access_key_id = "AKID", access_key_secret = "secret" }))
    local want = assert(a:prepare("ForbidLiveStream",
      { DomainName = "push.example.com", AppName = "live", StreamName = "s1", LiveStreamType = "publisher" }))
    assert.equal(want.url, result.aliyun.url)
    assert.same(want.headers, result.aliyun.headers)
    assert.equal(want.body or cjson.null, result.aliyun.body or cjson.null)
    local z = assert(zego.new(with { app_id = 1234567, server_secret = ("s"):rep(32) }))
    local zwant = assert(z:prepare("ForbidRTCStream", { StreamId = "s1", Sequence = 1 }))
    assert.equal(zwant.url, result.zego.url)
    -- signed: V3's Authorization names its algorithm; ZEGO's URL carries its signature
    assert.truthy((result.aliyun.headers.Authorization or result.aliyun.headers.authorization or "")
      :find("^ACS3%-HMAC%-SHA256 Credential=AKID,"), result.aliyun.headers)
    assert.truthy(result.zego.url:find("[?&]Signature=%x+"), result.zego.url)
  end)

  it("finds none of the optional rocks' modules", function()
    for name, file in pairs(result.found) do
      assert.equal(false, file, name .. " is in the core alone: " .. tostring(file))
    end
    assert.truthy(next(result.found))
  end)

  it("answers the redis option with the rock to install", function()
    assert.equal("option 'redis' needs the streamctl-redis rock, which is not installed (README \"Install\": "
      .. "apt-get install libhiredis-dev, then luarocks make rockspecs/streamctl-redis-scm-1.rockspec)", result.redis)
  end)

  it("holds in its manifest the files its rockspec lists and no other", function()
    assert.truthy(manifest, "no rock_manifest for the core rock")
    local listed = {}
    for _, file in pairs(rockspec.lua_modules("streamctl")) do listed[(file:gsub("^src/", ""))] = true end
    -- the manifest is Lua: { lua = { streamctl = { ["aliyun.lua"] = md5, base = { ... } } } }
    local env = {}
    local chunk = assert(load(manifest, "rock_manifest", "t", env))
    if setfenv then setfenv(chunk, env) end
    chunk()
    local seen = {}
    local function walk(t, prefix)
      for k, x in pairs(t) do
        if type(x) == "table" then walk(x, prefix .. k .. "/") else seen[prefix .. k] = true end
      end
    end
    walk(assert(env.rock_manifest.lua, "the manifest has no lua section"), "")
    assert.same(listed, seen)
  end)
end)
