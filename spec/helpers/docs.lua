-- Test helper for spec/house/70-docs_spec.lua: the fenced blocks of README.md,
-- docs/*.md and docs/development/*.md, what each kind means to the test, and how output is compared.
-- Plain Lua (5.1/LuaJIT and 5.4); spec/helpers/docs_driver.lua runs the blocks.
--
--   local docs = require "spec.helpers.docs"
--   docs.files()              "README.md", then docs/*.md and docs/development/*.md, sorted
--   docs.blocks(file)         its fenced blocks: { file, line, info, lang, tags, text,
--                             output = the ```text block right after a lua/sh one, or nil }
--   docs.check_kind(block)    nil, or why the test cannot run a block of that kind
--   docs.runs(block)          whether the test runs it (lua, sh, console; not `sh install`, `sh install-deb`)
--   docs.installs(block)      nil, or why it must not run here (it installs: make check-install's)
--   docs.console(block)       a console block's commands: { { line, command, expected = {lines} } }
--   docs.lines(text)          output as a terminal shows it, one string a line
--   docs.compare(expected, actual_text) -> true, or false and the first difference
--   docs.anchors(file)        the #anchors GitHub makes for a file's headings
--   docs.links(file)          its relative links: { { line, target, path, anchor } }
--
-- Expected output (a console block's lines after each `$ ` command, or a
-- ```text block after a lua or sh one) is compared line by line with what the
-- command wrote to standard output and standard error together, as a terminal
-- shows it (a carriage return overwrites the line; a missing final newline is
-- not a difference). In an expected line these stand for text that differs
-- from run to run, and nothing else does:
--   ...                  any text in that line (possibly none); a line that is only
--                        `...` stands for any number of lines (possibly none)
--   1D0E4B64-0C2B-4A5E-8C1F-2B7C0A9E6D13   an upper-case hex UUID: any such (an Aliyun RequestId)
--   223115883314287851   a run of 15 or more digits: any such run (a ZEGO RequestId)
--   0.11 s               at the end of a line, seconds with two decimals: any such (a duration)
-- and an expected line that is a JSON object or array also matches the same
-- value written with its members in another order (strings in it compared as
-- above): a table's order is not always the same from one run to the next.

local M = {}

local function root()
  local env = os.getenv("STREAMCTL_ROOT")
  if env and env ~= "" then return env end
  local src = debug.getinfo(1, "S").source
  return src:match("^@(.*)/spec/helpers/[^/]*$") or "."
end
M.root = root()

local read = require("spec.helpers.process").read_file
M.read = read

--- README.md, then every docs/*.md and docs/development/*.md (sorted): the files whose examples must run.
function M.files()
  local list = {}
  local p = assert(io.popen("cd '" .. M.root:gsub("'", "'\\''") .. "' && ls docs/*.md docs/development/*.md"))
  for name in p:read("*a"):gmatch("[^\n]+") do list[#list + 1] = name end
  p:close()
  table.sort(list)
  table.insert(list, 1, "README.md")
  return list
end

--- The kinds of block, by the info string's first word. `run`: the test runs
-- it; `tags`: the further words it may carry (what the block needs set up).
M.KINDS = {
  lua = { run = true, tags = {} },
  -- `sh install` (luarocks), `sh install-deb` (the Debian packages): make check-install runs them
  sh = { run = true, tags = { install = true, ["install-deb"] = true } },
  console = { run = true, tags = { edge = true } },        -- edge: the OpenResty example on 127.0.0.1:8080
  text = { output = true, tags = {} },                      -- the output of the lua or sh block above it
  ini = { tags = {} }, json = { tags = {} }, nginx = { tags = {} }, [""] = { tags = {} },
}

--- A file's fenced blocks (``` fences at the start of a line), in order.
function M.blocks(file)
  local text = assert(read(M.root .. "/" .. file), "cannot read " .. file)
  local list, open, n = {}, nil, 0
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    n = n + 1
    local fence = line:match("^```(.*)$")
    if open then
      if fence and fence:match("^%s*$") then
        open.text = table.concat(open.body, "\n") .. (#open.body > 0 and "\n" or "")
        open.body = nil
        open.last = n
        list[#list + 1] = open
        open = nil
      else
        open.body[#open.body + 1] = line
      end
    elseif fence then
      local info = fence:match("^%s*(.-)%s*$")
      local words = {}
      for w in info:gmatch("%S+") do words[#words + 1] = w end
      local tags = {}
      for i = 2, #words do tags[#tags + 1] = words[i] end
      open = { file = file, line = n, info = info, lang = words[1] or "", tags = tags, body = {} }
    end
  end
  assert(not open, file .. ":" .. (open and open.line or 0) .. ": a ``` block that is never closed")
  -- A ```text block right after a lua or sh block (blank lines between at most) is its output.
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local kept = {}
  for _, b in ipairs(list) do
    local prev = kept[#kept]
    local adjacent = prev and (prev.lang == "lua" or prev.lang == "sh") and not prev.output
    if adjacent then
      for i = prev.last + 1, b.line - 1 do
        if not lines[i]:match("^%s*$") then adjacent = false break end
      end
    end
    if b.lang == "text" and adjacent then
      prev.output, prev.output_line = b.text, b.line
    else
      kept[#kept + 1] = b
    end
  end
  return kept
end

--- nil when the test knows what to do with a block; else why not.
function M.check_kind(b)
  local kind = M.KINDS[b.lang]
  if not kind then
    return "```" .. b.lang .. " is no kind the doc test knows (lua, sh, console run; text after a lua or sh "
      .. "block is its output; ini, json, nginx and plain blocks are not code)"
  end
  if kind.output then return "a ```text block that follows no lua or sh block is not any block's output" end
  for _, t in ipairs(b.tags) do
    if not kind.tags[t] then return "```" .. b.lang .. " takes no '" .. t .. "' (info string: " .. b.info .. ")" end
  end
  return nil
end

--- nil, or why a block must not run here: installing is make check-install's.
function M.installs(b)
  for _, word in ipairs { "apt-get", "apt", "sudo", "luarocks", "dpkg" } do
    if (" " .. b.text):find("[%s;&|(]" .. word:gsub("%-", "%%-") .. "%s") then
      return "it runs " .. word .. ": installing is make check-install's (```sh install blocks, README \"Install\")"
    end
  end
  return nil
end

--- Does the test run this block? (`sh install` and `sh install-deb` are make check-install's.)
function M.runs(b)
  local kind = M.KINDS[b.lang]
  if not (kind and kind.run) then return false end
  return not (b.lang == "sh" and (b.tags[1] == "install" or b.tags[1] == "install-deb"))
end

--- A console block's commands: a line that starts with `$ ` is a command (a
-- line ending in `\` goes on to the next), the lines after it until the next
-- command are its output.
function M.console(b)
  local cmds, cur, continued = {}, nil, false
  local n = b.line
  for line in b.text:gmatch("([^\n]*)\n") do
    n = n + 1
    if continued then
      cur.command = cur.command .. "\n" .. line
      continued = line:sub(-1) == "\\"
    elseif line:sub(1, 2) == "$ " then
      cur = { line = n, command = line:sub(3), expected = {} }
      cmds[#cmds + 1] = cur
      continued = line:sub(-1) == "\\"
    else
      assert(cur, b.file .. ":" .. n .. ": a console block starts with a `$ ` command")
      cur.expected[#cur.expected + 1] = line
    end
  end
  return cmds
end

-- A line as a terminal shows it: each carriage return goes back to its start
-- and what follows overwrites what was there.
local function as_shown(line)
  if not line:find("\r", 1, true) then return line end
  local shown = ""
  for seg in (line .. "\r"):gmatch("([^\r]*)\r") do
    shown = seg .. shown:sub(#seg + 1)
  end
  return shown
end

--- Output text as lines, as a terminal shows them.
function M.lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = as_shown(line) end
  local tail = text:match("([^\n]+)$")
  if tail then out[#out + 1] = as_shown(tail) end
  return out
end

local UUID = "^" .. ("[0-9A-F]"):rep(8) .. "%-" .. ("[0-9A-F]"):rep(4) .. "%-" .. ("[0-9A-F]"):rep(4)
  .. "%-" .. ("[0-9A-F]"):rep(4) .. "%-" .. ("[0-9A-F]"):rep(12)
local UUID_PATTERN = UUID:sub(2):gsub("0%-9", "%%d")

--- An expected line as an anchored Lua pattern (see the placeholders above).
function M.pattern(expected)
  local out, i, n = { "^" }, 1, #expected
  while i <= n do
    local rest = expected:sub(i)
    local prev = i > 1 and expected:sub(i - 1, i - 1) or ""
    local digits = not prev:match("[%d%.]") and rest:match("^%d+")
    if rest:sub(1, 3) == "..." then
      out[#out + 1] = ".-"
      i = i + 3
    elseif rest:match(UUID) then
      out[#out + 1] = UUID_PATTERN
      i = i + 36
    elseif digits and #digits >= 15 then
      out[#out + 1] = ("%d"):rep(15) .. "%d*"
      i = i + #digits
    elseif digits and rest:match("^%d+%.%d%d s$") then
      out[#out + 1] = "%d+%.%d%d s"
      i = n + 1
    else
      out[#out + 1] = (rest:sub(1, 1):gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
      i = i + 1
    end
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

local cjson = require "cjson.safe"

-- Do an expected line and an actual one hold the same JSON value (an object
-- or an array), members in any order? Strings compare as lines do.
local function same_json(expected, actual)
  if not expected:match("^[%[{]") then return false end
  local e, a = cjson.decode(expected), cjson.decode(actual)
  if type(e) ~= "table" or type(a) ~= "table" then return false end
  local function same(x, y)
    if type(x) == "string" and type(y) == "string" then return y:match(M.pattern(x)) ~= nil end
    if type(x) ~= "table" or type(y) ~= "table" then return x == y end
    for k, v in pairs(x) do
      if not same(v, y[k]) then return false end
    end
    for k in pairs(y) do
      if x[k] == nil then return false end
    end
    return true
  end
  return same(e, a)
end

local function line_matches(expected, actual)
  return actual:match(M.pattern(expected)) ~= nil or same_json(expected, actual)
end

--- Compares expected lines with actual output text; true, or false and what differs.
function M.compare(expected, actual_text)
  local actual = M.lines(actual_text)
  local memo = {}
  -- Can expected[e..] match actual[a..]?
  local function from(e, a)
    local key = e * 100003 + a
    if memo[key] ~= nil then return memo[key] end
    local ok
    if e > #expected then
      ok = a > #actual
    elseif expected[e] == "..." then
      ok = from(e + 1, a) or (a <= #actual and from(e, a + 1))
    else
      ok = a <= #actual and line_matches(expected[e], actual[a]) and from(e + 1, a + 1)
    end
    memo[key] = ok
    return ok
  end
  if from(1, 1) then return true end
  -- the first line that differs, for the message
  local e, a = 1, 1
  while e <= #expected and a <= #actual do
    if expected[e] == "..." then break end
    if not line_matches(expected[e], actual[a]) then break end
    e, a = e + 1, a + 1
  end
  return false, string.format("expected line %d:\n  %s\nbut got line %d:\n  %s\nwhole output:\n%s", e,
    tostring(expected[e] or "(end of output)"), a, tostring(actual[a] or "(end of output)"), actual_text)
end

--- The anchor GitHub gives a heading: lower case, punctuation other than `-`
-- and `_` dropped, spaces made `-`; a repeated one gets -1, -2...
function M.anchors(file)
  local text = read(M.root .. "/" .. file)
  if not text then return nil end
  local seen, set, fenced = {}, {}, false
  for line in text:gmatch("([^\n]*)\n") do
    if line:match("^```") then fenced = not fenced end
    local heading = not fenced and line:match("^#+%s+(.-)%s*$")
    if heading then
      local slug = heading:lower():gsub("[^%w%s%-_]", ""):gsub("%s", "-")
      local base = slug
      if seen[base] then slug = base .. "-" .. seen[base] end
      seen[base] = (seen[base] or 0) + 1
      set[slug] = true
    end
  end
  return set
end

--- A file's relative links (not http:, https:, mailto:), outside code blocks and spans.
function M.links(file)
  local text = assert(read(M.root .. "/" .. file))
  local list, fenced, n = {}, false, 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^```") then fenced = not fenced end
    if not fenced then
      for target in line:gsub("`[^`]*`", ""):gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a[%w+.-]*:") then
          local path, anchor = target:match("^([^#]*)#?(.*)$")
          list[#list + 1] = { line = n, target = target, path = path, anchor = anchor }
        end
      end
    end
  end
  return list
end

return M
