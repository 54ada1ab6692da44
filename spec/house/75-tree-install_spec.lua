-- sanitizers: none (the house: an install, not our C)
-- interpreters: lua5.4 (it installs for Lua 5.4: the interpreter running it is not under test)
-- README "Install" for Lua 5.4 (`luarocks --lua-version=5.4 make
-- --deps-mode=none`, Debian's packages standing in for the Lua
-- dependencies) into a tree of one's own (`--tree T`): the wrapper luarocks
-- writes with --deps-mode=none puts no tree on the module paths, so the
-- command must find its own tree (bin/streamctl), and `T/bin/streamctl`
-- runs from an empty environment, nothing of the tree on LUA_PATH.
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local V = require("streamctl.version")._VERSION

describe("a luarocks install into a tree of one's own", function()
  it("runs `streamctl --version` from the tree, with no module path set", function()
    local dir = process.temp_dir()
    local src, tree = dir .. "/src", dir .. "/tree"
    -- (from a copy: luarocks builds the objects beside the sources)
    assert.is_true(process.run("mkdir -p " .. q(src) .. " && cd " .. q(ROOT) .. " && cp -r src csrc rockspecs bin docs "
      .. q(src .. "/")))
    for _, rock in ipairs { "streamctl", "streamctl-cli" } do
      assert.is_true(process.run("cd " .. q(src) .. " && env -u LUA_PATH -u LUA_CPATH luarocks --lua-version=5.4 --tree "
        .. q(tree) .. " make --deps-mode=none rockspecs/" .. rock .. "-scm-1.rockspec >/dev/null 2>&1"), rock)
    end
    local p = assert(io.popen("cd / && env -i PATH=/usr/bin:/bin " .. q(tree .. "/bin/streamctl")
      .. " --version 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf " .. q(dir))
    assert.are.equal("streamctl " .. V .. " (Lua 5.4)\nexit 0\n", out)
  end)

  -- (luarocks' builtin backend leaves the modules it linked in ./streamctl/: a `lua5.4` or
  -- `luajit` started in the checkout would load them first, through `./?.so`, whichever
  -- interpreter they were built for; the Makefile removes them)
  it("make build leaves no module in the checkout's root, where ./?.so would find it", function()
    local p = assert(io.popen("ls -A " .. q(ROOT .. "/streamctl") .. " 2>/dev/null"))
    local left = p:read("*a")
    p:close()
    assert.are.equal("", left)
  end)
end)
