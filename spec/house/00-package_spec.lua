-- tier: unit
-- sanitizers: none (the house: files, docs and tools, not our C)
-- The package itself: the rockspecs install every module, and every module
-- loads without touching globals and returns a table.
local ROOT = os.getenv("STREAMCTL_ROOT") or "."

local function lua_files()
  local p = assert(io.popen("cd '" .. ROOT .. "' && find src emulator/src -name '*.lua' | sort"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local rockspec = require("spec.helpers.rockspec").load

describe("the rockspecs", function()
  local main, cli, redis, emulator = rockspec("streamctl"), rockspec("streamctl-cli"), rockspec("streamctl-redis"),
    rockspec("streamctl-emulator")

  -- the rock a file belongs to: each optional part with dependencies of its own in its own
  local function rock_of(f)
    if f:find("^emulator/") then return "streamctl-emulator" end
    if f:find("^src/streamctl/cli/") then return "streamctl-cli" end
    if f:find("^src/streamctl/store/redis") then return "streamctl-redis" end
    return "streamctl"
  end

  it("list every Lua file under src/ and emulator/src/ once, by the right name, in its part's rock", function()
    local listed = {}
    for _, spec in ipairs { main, cli, redis, emulator } do
      for name, m in pairs(spec.build.modules) do
        if type(m) == "string" then
          assert.is_nil(listed[m], m .. " is in two rocks")
          listed[m] = { name = name, rock = spec.package }
        end
      end
    end
    local files = lua_files()
    assert.is_true(#files >= 10)
    for _, f in ipairs(files) do
      local expected = f:gsub("^emulator/src/", ""):gsub("^src/", ""):gsub("%.lua$", ""):gsub("/init$", "")
        :gsub("/", ".")
      assert.is_table(listed[f], f .. " is not installed by any rockspec")
      assert.equal(expected, listed[f].name, f)
      assert.equal(rock_of(f), listed[f].rock, f)
      listed[f] = nil
    end
    assert.same({}, listed)
  end)

  it("build the C where it belongs: hiredis only in streamctl-redis", function()
    -- streamctl.core and streamctl.curl are made of several files: the
    -- rockspec and the Makefile's own builds (ASan, the fuzzer) list the
    -- same ones, core.c first
    local mk = assert(io.open(ROOT .. "/Makefile")):read("a")
    local core_src = {}
    for f in mk:match("\nCORE_SRC := ([^\n]+)"):gmatch("%S+") do core_src[#core_src + 1] = f end
    assert.equal("csrc/core.c", core_src[1])
    assert.same(core_src, main.build.modules["streamctl.core"].sources)
    local curl_src = {}
    for f in mk:match("\nCURL_SRC := ([^\n]+)"):gmatch("%S+") do curl_src[#curl_src + 1] = f end
    assert.same(curl_src, main.build.modules["streamctl.curl"].sources)
    assert.same({ "csrc/signal.c" }, main.build.modules["streamctl.signal"].sources)
    assert.is_nil(main.build.modules["streamctl.redis"])
    assert.is_nil(main.external_dependencies.HIREDIS)
    assert.same({ "csrc/redis.c", "csrc/redis_resp.c", "csrc/redis_tls.c" },
      redis.build.modules["streamctl.redis"].sources)
    assert.same({ "OPENSSL", "HIREDIS" }, { redis.external_dependencies.OPENSSL and "OPENSSL",
                                            redis.external_dependencies.HIREDIS and "HIREDIS" })
  end)

  it("install each command from its own rock, and declare the Lua dependencies", function()
    assert.is_nil(main.build.install)
    assert.same({ streamctl = "bin/streamctl" }, cli.build.install.bin)
    assert.same({ ["streamctl.1"] = "docs/streamctl.1", ["streamctl.bash"] = "docs/streamctl.bash" },
      cli.build.install.conf)
    assert.same({ ["streamctl-emulator"] = "emulator/bin/streamctl-emulator" }, emulator.build.install.bin)
    assert.same({ "lua >= 5.1, < 5.5", "lua-cjson >= 2.1", "luafilesystem >= 1.8" }, main.dependencies)
    assert.same({ "lua >= 5.1, < 5.5", "streamctl", "argparse >= 0.7" }, cli.dependencies)
    assert.same({ "lua >= 5.1, < 5.5", "streamctl" }, redis.dependencies)
    -- (the emulator names nothing of the command's: its defaults are its own, which the command reads)
    assert.same({ "lua >= 5.1, < 5.5", "streamctl", "lua-cjson >= 2.1" }, emulator.dependencies)
  end)

  it("have release rockspecs made from them for the version in streamctl.version", function()
    local lua = arg and arg[-1] or "lua"
    local p = assert(io.popen("'" .. lua .. "' '" .. ROOT .. "/tools/rockspecs.lua' --check 2>&1; echo \"rc=$?\""))
    local out = p:read("*a")
    p:close()
    assert.equal("rc=0\n", out)
  end)
end)

describe("modules", function()
  for _, f in ipairs(lua_files()) do
    local name = f:gsub("^emulator/src/", ""):gsub("^src/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    if not name:find("^streamctl%.emulator") then -- the emulator runs inside nginx
      it(name .. " returns a table and sets no globals", function()
        local before = {}
        for k in pairs(_G) do before[k] = true end
        package.loaded[name] = nil
        local m = require(name)
        assert.is_table(m)
        for k in pairs(_G) do assert.is_true(before[k] or false, name .. " set global " .. tostring(k)) end
      end)
    end
  end

  it("streamctl exposes both providers and the error model", function()
    package.loaded.streamctl = nil
    local streamctl = require "streamctl"
    assert.equal(require "streamctl.aliyun", streamctl.aliyun)
    assert.equal(require "streamctl.zego", streamctl.zego)
    assert.equal(require "streamctl.base.errors", streamctl.errors)
    assert.matches("^%d+%.%d+%.%d+$", streamctl._VERSION)
  end)
end)
