--- `streamctl man`: the command's manual page, wherever its install put it.
-- The Debian package puts it where man looks (`man streamctl`); luarocks
-- can only put it in the rock's own directory (its `conf`), where man does
-- not; a checkout has it in docs/. This finds it: on a terminal it is shown
-- with `man -l`; otherwise its text (roff) is written out, to be kept where
-- man looks (`streamctl man > ~/.local/share/man/man1/streamctl.1`).
-- @module streamctl.cli.man

local cli_output = require "streamctl.cli.output"

local M = {}

local function readable(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local ok = f:read(0) ~= nil
  f:close()
  return ok
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- os.execute's success (5.1 and LuaJIT return the status, 5.2+ true or nil).
local function succeeded(cmd)
  local a = os.execute(cmd)
  return a == true or a == 0
end

--- Where the page is: the first of the luarocks tree this module was loaded
-- from (its streamctl-cli rock's conf/streamctl.1), the checkout this
-- module is in (docs/streamctl.1), the system's man directory (the Debian
-- package's). Returns the path, or nil and the places looked at.
function M.find()
  local looked = {}
  local here = package.searchpath and package.searchpath("streamctl.cli.man", package.path)
  if here then
    -- TREE/share/lua/5.x/streamctl/cli/man.lua: the rock's directory is TREE/lib/luarocks/rocks-5.x/streamctl-cli/*
    local tree, lv = here:match("^(.-)share/lua/(%d%.%d)/streamctl/cli/man%.lua$")
    if tree then
      local rocks = tree .. "lib/luarocks/rocks-" .. lv .. "/streamctl-cli"
      -- (its versions' directories, read with lfs, in the order `ls` gave them: no shell)
      local versions = {}
      local lok, lfs = pcall(require, "lfs")
      local dok, iter, dir = false, nil, nil
      if lok then dok, iter, dir = pcall(lfs.dir, rocks) end
      if dok then
        for v in iter, dir do
          if v ~= "." and v ~= ".." then versions[#versions + 1] = v end
        end
        table.sort(versions)
      end
      for _, v in ipairs(versions) do
        local page = rocks .. "/" .. v .. "/conf/streamctl.1"
        looked[#looked + 1] = page
        if readable(page) then return page end
      end
    end
    -- ROOT/src/streamctl/cli/man.lua: a checkout's docs/
    local root = here:match("^(.-)src/streamctl/cli/man%.lua$")
    if root then
      looked[#looked + 1] = root .. "docs/streamctl.1"
      if readable(root .. "docs/streamctl.1") then return root .. "docs/streamctl.1" end
    end
  end
  for _, page in ipairs { "/usr/share/man/man1/streamctl.1.gz", "/usr/local/share/man/man1/streamctl.1" } do
    looked[#looked + 1] = page
    if readable(page) then return page end
  end
  return nil, looked
end

--- Runs `streamctl man`: the exit status (0; 1 when the page is nowhere, the places said).
function M.run(out)
  local page, looked = M.find()
  if not page then
    out:warn("no manual page found (looked at ", table.concat(looked, ", "), "); streamctl --help has it all")
    return 1
  end
  if out.out == io.stdout and cli_output.is_tty(1) and succeeded("command -v man >/dev/null 2>&1") then
    return succeeded("man -l " .. quote(page)) and 0 or 1
  end
  local f = page:match("%.gz$") and io.popen("gzip -dc " .. quote(page)) or io.open(page, "rb")
  local text = f and f:read("*a")
  if f then f:close() end
  if not text or text == "" then
    out:warn("cannot read the manual page ", page)
    return 1
  end
  local wrote, why = out.out:write(text)
  if not wrote then out.failed = tostring(why) end
  if not out:flush() then
    out:lost("the manual page")
    return 1
  end
  return 0
end

return M
