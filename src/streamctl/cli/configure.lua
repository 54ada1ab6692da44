--- `streamctl configure`: asks for a provider's keys (aliyun or zego,
-- `--profile NAME`) and writes them where the credential chain reads them,
-- as `aws configure` and `aliyun configure` do: Alibaba Cloud's into the
-- shared `~/.alibabacloud/credentials` (`[NAME]`, `type = access_key`),
-- ZEGO's into `~/.config/streamctl/config` (`[zego]` or `[zego.NAME]`):
-- what each provider's profile holds is its command table's `configure`
-- (streamctl.cli.provider).
--
-- A value is read a line at a time from standard input (a prompt on
-- standard error shows the current one masked; an empty line keeps it), so
-- it scripts as well (`printf 'id\nsecret\n' | streamctl configure aliyun`).
-- Each is checked by the rule of the flag that would give it before
-- anything is written. The file is read whole and valid first (one that
-- does not parse is left as it is: the error names its line); only the
-- profile's keys change, every other line stays as it was; the new file is
-- written whole beside the old and renamed over it, mode 0600, in a
-- directory of mode 0700 (streamctl.core's private_file and replace_file).
-- A secret is never echoed, shown or put into a message.
-- @module streamctl.cli.configure

local core = require "streamctl.core"
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

--- Runs `streamctl configure`.
-- @param out the command's output (its `err` is where prompts go)
-- @tparam table args `what` (aliyun or zego), `profile`
-- @param stdin a file handle (or a table with `read`) of the answers
-- @tparam function getenv the environment
-- @return the exit status (0 written, 1 not written, 2 a usage error)
function M.run(out, args, stdin, getenv)
  local provider = provider_tables.get(args.what)
  local p = provider.configure
  local home = getenv("HOME")
  if not home or home == "" then
    out:warn("configure: HOME is not set: there is no home directory to write the profile into")
    return 2
  end
  if args.profile ~= nil and not find(args.profile, "^[%w_.-]+$") then
    out:warn("--profile must be letters, digits, '.', '_' and '-' (it names an INI section)")
    return 2
  end
  local path = home .. p.file
  local name = p.section(args.profile)
  local text, why, kind = core.read_file(path)
  if not text and kind ~= "absent" then out:warn(format("configure: %s", tostring(why))) return 1 end
  text = text or ""
  local sections, perr = credentials.parse_ini(text, path)
  if not sections then
    out:warn(format("configure: %s: nothing was written (fix that line first)", perr))
    return 1
  end
  local current = sections[name] or {}
  local refused = p.check and p.check(current, name, path) -- (a profile it may not overwrite: the provider's)
  if refused then
    out:warn("configure: ", refused)
    return 1
  end
  local values, order = {}, {}
  -- (the prompts for a person at a terminal; a script's answers come without them)
  local ask = stdin == io.stdin and require("streamctl.cli.output").is_tty(0)
  for k, v in pairs(p.fixed) do values[k], order[#order + 1] = v, k end
  for _, f in ipairs(p.keys) do
    if ask then out.err:write(format("%s [%s]: ", f.prompt, shown(current[f.key], f.secret))) end
    local line = stdin:read("*l")
    if line == nil then
      if ask then out.err:write("\n") end
      out:warn("configure: standard input ended before ", f.prompt, ": nothing was written")
      return 1
    end
    line = gsub(gsub(line, "\r$", ""), "^%s*(.-)%s*$", "%1")
    if line == "" then line = current[f.key] end
    if line == nil or line == "" then
      out:warn(format("configure: %s is required (there is none to keep): nothing was written", f.prompt))
      return 1
    end
    values[f.key], order[#order + 1] = line, f.key
  end
  local broken = rule_broken(provider.class, p, values)
  if broken then out:warn("configure: ", broken, ": nothing was written") return 2 end
  local new = with_section(text, name, values, order)
  -- (the written text must read back as the chain reads it: checked before it replaces the file)
  local back = credentials.parse_ini(new, path)
  if not back or back[name] == nil then
    out:warn("configure: the new file would not read back: nothing was written")
    return 1
  end
  local ok, werr = core.private_file(path)
  if ok then ok, werr = core.replace_file(path, new) end
  if not ok then out:warn(format("configure: %s: nothing was written", tostring(werr))) return 1 end
  out:line(format("[%s] written to %s (mode 0600)", name, path))
  return 0
end

--- `text` (an INI file's) with `values` set in section `name` (keys in
-- `order`): their lines replaced where they stand, the others kept.
M.with_section = with_section

return M
