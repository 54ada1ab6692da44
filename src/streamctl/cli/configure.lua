--- `streamctl configure`: asks for a provider's keys (aliyun or zego,
-- `--profile NAME`) and writes them where the credential chain reads them,
-- as `aws configure` and `aliyun configure` do: Alibaba Cloud's into the
-- shared `~/.alibabacloud/credentials` (`[NAME]`, `type = access_key`),
-- ZEGO's into `~/.config/streamctl/config` (`[zego]` or `[zego.NAME]`):
-- what each provider's profile holds is its command table's `configure`
-- (streamctl.cli.provider). The file and section are the chain's
-- (streamctl.credentials.profile_file: XDG_CONFIG_HOME,
-- ALIBABA_CLOUD_CREDENTIALS_FILE, ALIBABA_CLOUD_PROFILE), and the chain a
-- command uses is asked what it would read with the new file before it is
-- written (another source first: refused, naming it) and after (what was
-- written read back, or exit 1).
--
-- A value is read a line at a time from standard input (a prompt on
-- standard error shows the current one masked; an empty line keeps it), so
-- it scripts as well (`printf 'id\nsecret\n' | streamctl configure aliyun`).
-- Each is checked by the rule of the flag that would give it before
-- anything is written. The file is read whole and valid first (one that
-- does not parse is left as it is: the error names its line); only the
-- profile's keys change, every other line stays as it was; the new file is
-- written whole beside the old and renamed over it (a symbolic link's
-- target, the link kept), mode 0600, in a directory of mode 0700
-- (streamctl.core's private_file and replace_file; its own directory,
-- already there and looser, tightened).
-- A secret is never echoed, shown or put into a message.
-- @module streamctl.cli.configure

local core = require "streamctl.core"
local lfs = require "lfs"
local credentials = require "streamctl.credentials"
local provider_tables = require "streamctl.cli.provider"

local ipairs, pairs, tostring, format = ipairs, pairs, tostring, string.format
local find, sub, gsub, match, concat = string.find, string.sub, string.gsub, string.match, table.concat

local M = {}

-- A current value as a prompt shows it: a secret's last 4 characters at most.
local function shown(v, secret)
  if v == nil or v == "" then return "none" end
  if not secret then return v end
  return "****" .. (#v > 12 and sub(v, -4) or "")
end

-- A value as an INI line holds it: quoted when the reader would not take it
-- bare (blanks at an end, a blank before ; or #, a quote first).
local function ini_value(v)
  if find(v, "^%s") or find(v, "%s$") or find(v, "%s[#;]") or find(v, "^[\"']") then
    return find(v, '"', 1, true) and "'" .. v .. "'" or '"' .. v .. '"'
  end
  return v
end

-- `text` (an INI file's) with `values` set in section `name`: its lines for
-- those keys replaced where they stand, the others kept, any missing added
-- after the section's last line; the section appended when absent.
local function with_section(text, name, values, order)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  if lines[#lines] == "" then lines[#lines] = nil end
  local first, last -- (the section's header line, and its last line of a key)
  local current
  for i, line in ipairs(lines) do
    local header = match(line, "^%s*%[%s*([^%]]-)%s*%]")
    if header then
      current = header
      if header == name then first, last = i, i end
    elseif current == name and find(line, "^%s*[%w_.-]+%s*=") then
      last = i
    end
  end
  if not first then
    if #lines > 0 and lines[#lines] ~= "" then lines[#lines + 1] = "" end
    lines[#lines + 1] = "[" .. name .. "]"
    for _, k in ipairs(order) do lines[#lines + 1] = k .. " = " .. ini_value(values[k]) end
    return concat(lines, "\n") .. "\n"
  end
  local done, out = {}, {}
  current = nil
  for i, line in ipairs(lines) do
    local header = match(line, "^%s*%[%s*([^%]]-)%s*%]")
    if header then current = header end
    local key = not header and current == name and match(line, "^%s*([%w_.-]+)%s*=")
    key = key and key:lower()
    if key and values[key] ~= nil then
      out[#out + 1] = key .. " = " .. ini_value(values[key])
      done[key] = true
    else
      out[#out + 1] = line
    end
    if i == last then
      for _, k in ipairs(order) do
        if not done[k] then out[#out + 1] = k .. " = " .. ini_value(values[k]) done[k] = true end
      end
    end
  end
  return concat(out, "\n") .. "\n"
end

-- The rule a value breaks, checked as the flag that would give it is (the
-- client of its provider made with them: nothing sent), or nil.
local function rule_broken(class, p, values)
  local opts = {}
  for k, v in pairs(values) do if p.fixed[k] == nil then opts[k] = v end end
  local client, err = class.new(opts)
  if client then client:close() return nil end
  return tostring(err and err.message or err)
end

-- The file a rename must replace to change what `path` reads: `path`, or
-- the file its symbolic links lead to (a rename over the link would replace
-- the link, and the chain reads through it); nil and why for a loop.
local function through_links(path)
  for _ = 1, 40 do
    if lfs.symlinkattributes(path, "mode") ~= "link" then return path end
    local target = lfs.symlinkattributes(path, "target")
    if not target then return nil, format("%s is a symbolic link that cannot be read", path) end
    path = find(target, "^/") and target or (match(path, "^(.*/)") or "") .. target
  end
  return nil, format("%s: too many levels of symbolic links", path)
end

-- A mode as octal digits ("rwxr-xr-x" -> "0755").
local function octal(perms)
  local digits = { "0" }
  for i = 1, 9, 3 do
    local v = 0
    for j, bit in ipairs { 4, 2, 1 } do
      if sub(perms, i + j - 1, i + j - 1) ~= "-" then v = v + bit end
    end
    digits[#digits + 1] = tostring(v)
  end
  return concat(digits)
end

-- Makes `dir` (the directory streamctl's layout gives the file) mode 0700
-- when it is there and is not (streamctl.core's private_dir: fchmod(2), a
-- link refused): "DIR: mode 0700 (was M)" to say, nil (nothing to do), or
-- nil and why.
local function tighten(dir)
  local was = dir and lfs.symlinkattributes(dir, "mode") == "directory" and lfs.attributes(dir, "permissions")
  if not was or was == "rwx------" then return nil end
  local ok, err = core.private_dir(dir)
  if not ok then return nil, format("%s is mode %s and could not be made 0700: %s", dir, octal(was), err) end
  return format("%s: mode 0700 (was %s)", dir, octal(was))
end

-- What the chain a command uses (the provider's `chain`) reads, with the
-- files in `pending` as they would be: nil when it is [section] of `t.path`
-- with `values`, else what it reads instead, said.
local function chain_misreads(provider, args, getenv, t, values, pending)
  local c, err, _, source = provider.chain { profile = args.profile, getenv = getenv, pending = pending }
  local ours = format("%s [%s]", t.path, t.section)
  if not c then return format("the credential chain would not read [%s] of %s: %s", t.section, t.path,
    tostring(err and err.message or err)) end
  if source ~= ours then
    if source == "environment" then
      local set = {}
      for _, v in ipairs(provider.class._rules.variables) do
        if credentials.variable(v[2], getenv) then set[#set + 1] = v[2] end
      end
      source = format("the environment (%s %s set)", concat(set, " and "), #set == 1 and "is" or "are")
    end
    return format("the credential chain would read %s, not [%s] of %s, which comes after it", tostring(source),
      t.section, t.path)
  end
  for _, f in ipairs(provider.configure.keys) do
    if c[f.key] ~= values[f.key] then return "the credential chain reads other keys from it" end
  end
  return nil
end

-- The answers to the profile's prompts (`current`: its values now): the
-- values and their order, or nil and why.
local function answers(out, p, current, stdin)
  local values, order = {}, {}
  -- (the prompts for a person at a terminal; a script's answers come without them)
  local ask = stdin == io.stdin and require("streamctl.cli.output").is_tty(0)
  for k, v in pairs(p.fixed) do values[k], order[#order + 1] = v, k end
  for _, f in ipairs(p.keys) do
    if ask then out.err:write(format("%s [%s]: ", f.prompt, shown(current[f.key], f.secret))) end
    local line = stdin:read("*l")
    if line == nil then
      if ask then out.err:write("\n") end
      return nil, "standard input ended before " .. f.prompt .. ": nothing was written"
    end
    line = gsub(gsub(line, "\r$", ""), "^%s*(.-)%s*$", "%1")
    if line == "" then line = current[f.key] end
    if line == nil or line == "" then
      return nil, format("%s is required (there is none to keep): nothing was written", f.prompt)
    end
    values[f.key], order[#order + 1] = line, f.key
  end
  return values, order
end

-- The profile file at target `t` read and parsed (empty when absent): its
-- text and sections, or nil and why.
local function current_file(t)
  local text, why, kind = core.read_file(t.path)
  if not text and kind ~= "absent" then return nil, tostring(why) end
  text = text or ""
  local sections, perr = credentials.parse_ini(text, t.path)
  if not sections then return nil, format("%s: nothing was written (fix that line first)", perr) end
  return text, sections
end

-- Writes `new` where target `t` reads (through its links), its own
-- directory 0700 first; proved by the chain: true, or nil and why.
local function write(out, provider, args, getenv, t, new, values)
  local file, lerr = through_links(t.path)
  if not file then return nil, lerr .. ": nothing was written" end
  local said, terr = tighten(t.own_dir)
  if terr then return nil, terr .. ": nothing was written" end
  if said then out:line(said) end
  local ok, werr = core.private_file(file)
  if ok then ok, werr = core.replace_file(file, new) end
  if not ok then return nil, format("%s: nothing was written", tostring(werr)) end
  local wrong = chain_misreads(provider, args, getenv, t, values)
  if wrong then return nil, format("[%s] was written to %s, but %s", t.section, t.path, wrong) end
  -- (a directory a variable or a link chose is the operator's: its mode said when looser, never changed)
  local dir = match(file, "^(.*)/") or "."
  local perms = dir ~= t.own_dir and lfs.attributes(dir, "permissions")
  if perms and perms ~= "rwx------" then
    out:line(format("%s: mode %s, left as it is (not streamctl's own directory; the file is 0600)", dir, octal(perms)))
  end
  return file
end

--- Runs `streamctl configure`.
-- @param out the command's output (its `err` is where prompts go)
-- @tparam table args `what` (aliyun or zego), `profile`
-- @param stdin a file handle (or a table with `read`) of the answers
-- @tparam function getenv the environment
-- @return the exit status (0 written, 1 not written, 2 a usage error)
function M.run(out, args, stdin, getenv)
  local provider = provider_tables.get(args.what)
  local p = provider.configure
  if args.profile ~= nil and not find(args.profile, "^[%w_.-]+$") then
    out:warn("--profile must be letters, digits, '.', '_' and '-' (it names an INI section)")
    return 2
  end
  -- (the file and section the chain reads: its variables' too, XDG_CONFIG_HOME, ALIBABA_CLOUD_CREDENTIALS_FILE)
  local t, why = credentials.profile_file(args.what, { profile = args.profile, getenv = getenv })
  if not t then out:warn("configure: ", why) return 2 end
  local text, sections = current_file(t)
  if not text then out:warn("configure: ", sections) return 1 end
  local current = sections[t.section] or {}
  local refused = p.check and p.check(current, t.section, t.path) -- (a profile it may not overwrite: the provider's)
  if refused then out:warn("configure: ", refused) return 1 end
  local values, order = answers(out, p, current, stdin)
  if not values then out:warn("configure: ", order) return 1 end
  local broken = rule_broken(provider.class, p, values)
  if broken then out:warn("configure: ", broken, ": nothing was written") return 2 end
  local new = with_section(text, t.section, values, order)
  -- (what the chain would read with the new file, asked before it replaces the old: another source first is refused)
  local wrong = chain_misreads(provider, args, getenv, t, values, { [t.path] = new })
  if wrong then out:warn("configure: ", wrong, ": nothing was written") return 1 end
  local file, werr = write(out, provider, args, getenv, t, new, values)
  if not file then out:warn("configure: ", werr) return 1 end
  out:line(format("[%s]%s written to %s%s (mode 0600)", t.section,
    t.named_by and format(" (named by %s)", t.named_by) or "",
    file, file ~= t.path and format(" (the link %s points to it)", t.path) or ""))
  return 0
end

--- `text` (an INI file's) with `values` set in section `name` (keys in
-- `order`): their lines replaced where they stand, the others kept.
M.with_section = with_section

return M
