--- The one INI dialect streamctl reads, for every INI file
-- (~/.alibabacloud/credentials and streamctl's own config), and the check of
-- its names against what a reader takes. streamctl.credentials gives both
-- (`parse_ini`, `unknown_names`). Hand-written, not Debian's lua-inifile
-- (1.0): that reader skips a line it does not understand, keeps the last of
-- a key given twice, turns a value that reads as a number into one (a
-- secret "0x10" would be 16) and names no line; a credentials file read so
-- could sign with a value nobody wrote. This dialect refuses each, by line.
-- @module streamctl.credentials.ini

local validate = require "streamctl.base.validate"

local pairs, ipairs = pairs, ipairs
local format, match, find, sub, lower = string.format, string.match, string.find, string.sub, string.lower

local M = {}

-- A UTF-8 byte order mark, which some editors (Notepad) put at the top of
-- a file: an encoding marker, never a name or a value anyone wrote.
M.BOM = "\239\187\191"

--- Parses INI text in the one dialect streamctl reads, for every INI file
-- (~/.alibabacloud/credentials and streamctl's own config):
--
-- * A UTF-8 byte order mark at the top of the file is skipped.
-- * Blanks around a line are ignored; blank lines are skipped; a line
--   whose first character is `;` or `#` is a comment.
-- * `[name]` starts a section, and may be followed by blanks and a `;` or
--   `#` comment: `[zego]   ; the default profile`. A section appears once.
-- * `key = value`: keys are letters, digits, `_`, `.` and `-`, in any case;
--   the value is the rest of the line, its surrounding blanks trimmed. A key
--   appears once in a section (a second one is an error naming both lines).
-- * A value in double or single quotes is taken as it is between them
--   (`;`, `#` and blanks included), and may be followed by a comment.
-- * An unquoted value must not contain a blank followed by `;` or `#`: an
--   error naming the file and line. Readers disagree on such text (Python's
--   configparser keeps it in the value by default, other INI libraries cut
--   a comment there), and either guess is wrong for somebody:
--   `server_secret = abc ; prod` would send "abc ; prod" as the secret, and
--   cutting would silently shorten a secret that has " #" in it. Refused,
--   the fix is the user's to choose: the comment on a line of its own, or
--   the value in quotes. `;` or `#` with no blank before (`a;b`) is part of
--   the value.
--
-- With `known` (and `sections_hint`), the names are checked too: see
-- `unknown_names`.
--
-- No value is ever put into an error message (values are secrets).
-- @return { [section] = { key = value, _line = n, _lines = { key = n } } }, or nil and "path:line: what"
function M.parse_ini(text, path, known, sections_hint)
  local sections, current, current_name = {}, nil, nil
  local n = 0
  if sub(text, 1, #M.BOM) == M.BOM then text = sub(text, #M.BOM + 1) end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = match(line, "^%s*(.-)%s*$")
    if line ~= "" and not find(line, "^[#;]") then
      if find(line, "^%[") then
        local name, rest = match(line, "^%[%s*([^%]]-)%s*%](.*)$")
        if not name or not (rest == "" or find(rest, "^%s+[#;]")) then
          return nil, format("%s:%d: expected '[section]', optionally followed by a ; or # comment", path, n)
        end
        if name == "" then return nil, format("%s:%d: a section needs a name", path, n) end
        if sections[name] then
          return nil, format("%s:%d: section [%s] appears twice (first at line %d)", path, n, name,
            sections[name]._line)
        end
        current, current_name = { _line = n, _lines = {} }, name
        sections[name] = current
      else
        local key, value = match(line, "^([%w_.-]+)%s*=%s*(.-)$")
        if not key then
          return nil, format("%s:%d: expected 'key = value' or '[section]'", path, n)
        end
        if not current then return nil, format("%s:%d: '%s' comes before any [section]", path, n, key) end
        key = lower(key)
        if current._lines[key] then
          return nil, format("%s:%d: %s is set twice in [%s] (first at line %d)", path, n, key, current_name,
            current._lines[key])
        end
        local quote = match(value, "^([\"'])")
        local inner, rest
        if quote then inner, rest = match(value, "^" .. quote .. "(.-)" .. quote .. "(.*)$") end
        if inner then
          if not (rest == "" or find(rest, "^%s+[#;]")) then
            return nil, format("%s:%d: the value of %s has text after its closing quote (only a ; or # comment, "
              .. "after a blank, may follow it)", path, n, key)
          end
          value = inner
        elseif find(value, "%s[#;]") then
          return nil, format("%s:%d: the value of %s has a blank followed by ; or #, which streamctl neither "
            .. "keeps nor cuts as a comment: put the comment on a line of its own, or the value in quotes",
            path, n, key)
        end
        current[key], current._lines[key] = value, n
      end
    end
  end
  if known then
    local why = M.unknown_names(sections, path, known, sections_hint)
    if why then return nil, why end
  end
  return sections
end

-- The sorted keys of section `s` (the parser's bookkeeping left out).
local function keys_of(s)
  local list = {}
  for k in pairs(s) do
    if k ~= "_line" and k ~= "_lines" then list[#list + 1] = k end
  end
  table.sort(list, function(a, b) return s._lines[a] < s._lines[b] end)
  return list
end

--- Checks INI `sections` (from `parse_ini`) against the names a reader
-- takes: `known(name)` gives a section's keys (an array, or a set
-- `{ key = true }`), or nil for a section it does not take; `sections_hint`
-- are the section names to suggest. The first unknown section or key, as
-- "path:line: ... (did you mean 'x'?)", or nil.
function M.unknown_names(sections, path, known, sections_hint)
  local names = {}
  for name, s in pairs(sections) do names[#names + 1] = { name = name, s = s } end
  table.sort(names, function(a, b) return a.s._line < b.s._line end)
  for _, n in ipairs(names) do
    local keys = known(n.name)
    if not keys then
      return format("%s:%d: unknown section [%s]%s", path, n.s._line, n.name,
        validate.hint(n.name, sections_hint))
    end
    local set, list = keys, {}
    if keys[1] then
      set = {}
      for _, k in ipairs(keys) do set[k] = true end
    end
    for k in pairs(set) do list[#list + 1] = k end
    table.sort(list)
    for _, k in ipairs(keys_of(n.s)) do
      if not set[k] then
        return format("%s:%d: unknown key '%s' in [%s]%s", path, n.s._lines[k], k, n.name, validate.hint(k, list))
      end
    end
  end
  return nil
end

return M
