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

--- The page's roff as plain text, for a reader without man (a pipe, a
-- minimal system): our page's few macros (help2man's and the command
-- list's, .RS/.RE and .nf/.fi) read, its text filled into paragraphs of at
-- most 78 columns (a tag's body and an .RS block indented; .nf lines kept as
-- they are), escapes undone, bold and italics dropped.
-- Hand-written: no roff formatter (groff) is on a minimal system, and this
-- page is ours.
function M.plain(roff)
  local out, words, indent, tag, nofill = {}, {}, "", false, false
  local function unescape(t)
    return (t:gsub("\\f[BRIP]", ""):gsub("\\f%(%a%a", ""):gsub("\\[/,]", ""):gsub("\\%-", "-")
      :gsub("\\e", "\\"):gsub("\\&", ""))
  end
  local function flush()
    local line = indent
    for _, w in ipairs(words) do
      if #line + #w + 1 > 78 and line ~= indent then out[#out + 1] = line line = indent end
      line = line == indent and line .. w or line .. " " .. w
    end
    if line ~= indent then out[#out + 1] = line end
    words = {}
  end
  local function gap() flush() if out[#out] ~= "" then out[#out + 1] = "" end end
  for line in (roff .. "\n"):gmatch("([^\n]*)\n") do
    local macro, rest = line:match("^%.(%a+)%s*(.*)$")
    if line:find('^%.\\"') or macro == "TH" then -- luacheck: ignore 542 (a comment; the header)
    elseif macro == "SH" or macro == "SS" then
      gap()
      out[#out + 1], indent = unescape((rest:gsub('^"(.*)"$', "%1"))), "       "
    elseif macro == "TP" then
      gap()
      tag = true
    elseif macro == "PP" or macro == "IP" or macro == "sp" or macro == "br" then
      gap()
      indent = "       "
    elseif macro == "RS" or macro == "RE" then -- an indented block, and its end
      flush()
      indent = macro == "RS" and indent .. "       " or indent:sub(8)
    elseif macro == "nf" or macro == "fi" then -- lines as they are (a URL's form), and filled again
      flush()
      nofill = macro == "nf"
    elseif macro == "B" or macro == "I" or not macro then
      local text = unescape(macro and rest or line)
      if nofill then
        out[#out + 1] = indent .. text
      elseif tag then
        flush()
        out[#out + 1], tag = "       " .. text, false
        indent = "              "
      else
        for w in text:gmatch("%S+") do words[#words + 1] = w end
      end
    end
  end
  flush()
  return table.concat(out, "\n"):gsub("\n\n\n+", "\n\n"):gsub("^\n+", "") .. "\n"
end

-- The page's text (its roff), or nil and why.
local function read_page(page)
  local f = page:match("%.gz$") and io.popen("gzip -dc " .. quote(page)) or io.open(page, "rb")
  local text = f and f:read("*a")
  if f then f:close() end
  if not text or text == "" then return nil, "cannot read the manual page " .. page end
  return text
end

-- Writes `text` to `path` whole (a temporary beside it, renamed over it),
-- mode 0644 (the umask's: a manual page and a completion are for every
-- user), its directories made; true, or nil and why.
local function install_file(path, text)
  local dir = path:match("^(.*)/[^/]+$")
  if not succeeded("mkdir -p " .. quote(dir)) then return nil, "cannot make " .. dir end
  local tmp = path .. ".tmp-" .. tostring(os.time())
  local f, err = io.open(tmp, "wb")
  if not f then return nil, tostring(err) end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if not ok or not closed then os.remove(tmp) return nil, tostring(werr or cerr) end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then os.remove(tmp) return nil, tostring(rerr) end
  return true
end

-- `streamctl man --install`: the page where man looks and the bash
-- completion where bash-completion looks, under `prefix` when given, else
-- for this user (under $XDG_DATA_HOME, else ~/.local/share) or, as root,
-- for every user (under /usr/local/share). The exit status.
local function install(out, roff, getenv, prefix, completion)
  local signal = require "streamctl.signal"
  local base = prefix
  if base then -- luacheck: ignore 542 (as given)
  elseif signal.uid and signal.uid() == 0 then
    base = "/usr/local/share"
  else
    local data, home = getenv("XDG_DATA_HOME"), getenv("HOME")
    base = (data and data:sub(1, 1) == "/") and data or (home and home ~= "" and home .. "/.local/share")
    if not base then out:warn("man --install: HOME is not set: nowhere to install") return 1 end
  end
  local page = base .. "/man/man1/streamctl.1"
  local ok, why = install_file(page, roff)
  if ok then
    ok, why = install_file(base .. "/bash-completion/completions/streamctl", completion())
    if ok then
      out:line("the manual page: ", page, " (man streamctl)")
      out:line("bash completion: ", base, "/bash-completion/completions/streamctl (new shells)")
      return 0
    end
  end
  out:warn("man --install: ", why)
  return 1
end

--- Runs `streamctl man`: on a terminal with man, man shows the page;
-- otherwise its plain text is written (`args.roff`: its roff source; and
-- `args.install`: the page and the bash completion put where man and
-- bash-completion look; `completion()` gives the completion script). The
-- exit status (1 when the page is nowhere, the places said).
function M.run(out, args, getenv, completion)
  args = args or {}
  -- (--prefix names a directory: an empty one would install under /, one without --install is ignored: both refused)
  if args.prefix == "" then out:warn("man: --prefix must not be empty (a directory: DIR/man/man1 ...)") return 2 end
  if args.prefix and not args.install then out:warn("man: --prefix goes with --install") return 2 end
  local page, looked = M.find()
  if not page then
    out:warn("no manual page found (looked at ", table.concat(looked, ", "), "); streamctl --help has it all")
    return 1
  end
  if args.install then
    local roff, why = read_page(page)
    if not roff then out:warn(why) return 1 end
    return install(out, roff, getenv or os.getenv, args.prefix, completion)
  end
  if not args.roff and out.out == io.stdout and cli_output.is_tty(1)
      and succeeded("command -v man >/dev/null 2>&1") then
    return succeeded("man -l " .. quote(page)) and 0 or 1
  end
  local text, why = read_page(page)
  if not text then out:warn(why) return 1 end
  if not args.roff then text = M.plain(text) end
  local wrote, werr = out.out:write(text)
  if not wrote then out.failed = tostring(werr) end
  if not out:flush() then
    out:lost("the manual page")
    return 1
  end
  return 0
end

return M
