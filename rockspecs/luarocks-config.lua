-- luarocks configuration for installing streamctl into a tree of its own
-- (LUAROCKS_CONFIG=rockspecs/luarocks-config.lua), such as a LuaJIT build for
-- OpenResty beside the Lua 5.4 install:
--
--   LUAROCKS_CONFIG=rockspecs/luarocks-config.lua luarocks --lua-version=5.1 \
--     --tree /opt/streamctl-luajit make rockspecs/streamctl-scm-1.rockspec
--
-- The Lua dependencies are provided by Debian's packages (lua-cjson,
-- lua-argparse, lua-filesystem) or bundled by OpenResty (cjson), which
-- luarocks cannot see: declared here, so luarocks checks the rest without
-- --deps-mode=none, and the commands it writes put the tree on the module
-- paths (with --deps-mode=none they carry no tree: bin/streamctl then puts
-- its own tree first itself, so `--tree T` works either way).
rocks_provided = {
  ["lua-cjson"] = "2.1.0-1",
  argparse = "0.7.1-1",
  luafilesystem = "1.8.0-1",
}
-- For 5.1, LuaJIT: the tree's commands run luajit (luarocks would pick PUC
-- Lua 5.1, which cannot load a LuaJIT build's C modules), and the headers
-- are LuaJIT's. LUAJIT_PREFIX names another LuaJIT (OpenResty's:
-- /usr/local/openresty/luajit); the default is Debian's luajit2.
if lua_version == "5.1" then
  local prefix = os_getenv("LUAJIT_PREFIX") or "/usr"
  lua_interpreter = "luajit"
  variables.LUA_DIR = prefix
  variables.LUA_BINDIR = prefix .. "/bin"
  variables.LUA_INCDIR = prefix .. "/include/luajit-2.1"
end
