-- The package itself: the rockspec installs every module, and every module
-- loads without touching globals and returns a table.
local ROOT = os.getenv("STREAMCTL_ROOT") or "."

local function lua_files()
  local p = assert(io.popen("cd '" .. ROOT .. "' && find lua -name '*.lua' | sort"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function rockspec()
  local env = {}
  local chunk = assert(loadfile(ROOT .. "/streamctl-scm-1.rockspec", "t", env))
  if setfenv then setfenv(chunk, env) end
  chunk()
  return env
end

describe("the rockspec", function()
  local spec = rockspec()

  it("lists every Lua file under lua/ as a module of the right name", function()
    local listed = {}
    for name, m in pairs(spec.build.modules) do
      if type(m) == "string" then listed[m] = name end
    end
    local files = lua_files()
    assert.is_true(#files >= 10)
    for _, f in ipairs(files) do
      local expected = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(expected, listed[f], f .. " is not installed by the rockspec")
      listed[f] = nil
    end
    assert.same({}, listed)
  end)

  it("builds both C modules and installs the emulator command", function()
    assert.same({ "csrc/core.c" }, spec.build.modules["streamctl.core"].sources)
    assert.same({ "csrc/curl.c" }, spec.build.modules["streamctl.curl"].sources)
    assert.same({ "csrc/redis.c" }, spec.build.modules["streamctl.redis"].sources)
    assert.equal("bin/streamctl-emulator", spec.build.install.bin["streamctl-emulator"])
  end)
end)

describe("modules", function()
  for _, f in ipairs(lua_files()) do
    local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
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
    assert.equal(require "streamctl.errors", streamctl.errors)
    assert.matches("^%d+%.%d+%.%d+$", streamctl._VERSION)
  end)
end)
