--- The command's stream lists from `--from FILE` (or "-", standard input),
-- read as they go (docs/cli.md, "Long lists").
--
-- One name a line, surrounding blanks trimmed, blank lines and lines
-- starting with "#" skipped; a UTF-8 byte order mark at the top is skipped
-- (Notepad writes one) and one anywhere else is an error, since it would be
-- sent as part of a name nobody can see.
--
-- A list of at most LOOKAHEAD names is read whole and handed to the batch
-- as an array: what it sends, its guard and its audit intent are exactly
-- those of names given on the command line. A longer one is *streamed*:
--
--   * from a file that can be read twice (a regular file, or standard
--     input redirected from one), a first pass reads it to the end in
--     blocks: every name checked by the list's rule (a bad one refuses the
--     run, naming its line, before anything is sent), the distinct names
--     counted in a streamctl.core.fingerprint_set (the guard's count and the
--     progress bar's total), the bytes' SHA-256 taken (what `sha256sum FILE`
--     says: the audit intent's `from_sha256`), and each block's SHA-256
--     kept (32 bytes a block). The second pass, which the batch reads as it
--     sends, stops where the first one ended, and checks each block against
--     the first pass's before a name of it is handed out: a file changed
--     between the count and the sending stops the run at the first block
--     that differs (said, with its line; nothing of it or after is sent),
--     so what is sent is only ever what the guard counted;
--   * from a pipe, the names read so far are sent first and the rest as it
--     comes; how many there are is not known before sending, which the
--     guard refuses unless told --yes.
--
-- Memory: the names in the look-ahead, one block, and the fingerprints.
-- @module streamctl.cli.input
local core = require "streamctl.core"
local validate = require "streamctl.base.validate"

local byte, find, format, match, sub = string.byte, string.find, string.format, string.match, string.sub

local M = {}

--- Names read whole before a list is streamed (a field, for specs).
M.LOOKAHEAD = 10000

--- Bytes read at a time.
M.BLOCK = 65536

local BOM = "\239\187\191"
local HASH = byte("#")
local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true } -- (what %s is)

-- A parser of the lines of `f`, in blocks of BLOCK bytes: next() -> name,
-- line | nil (the end) | false, message (a byte order mark inside). At most
-- `limit` bytes are read (nil: to the end); every byte read goes to `hash`
-- (a core.sha256_stream) when given. A read that fails raises its message
-- (`error` with a string): the caller turns it into an expected failure.
local function lines(f, name, flag, limit, hash)
  local buf, pos, line, eof, read, bom = "", 1, 0, false, 0, false
  local function fill()
    local want = M.BLOCK
    if limit then want = limit - read end
    if want <= 0 then eof = true return end
    if want > M.BLOCK then want = M.BLOCK end
    local block, err = f:read(want)
    if block == nil then
      if err then error(format("%s: cannot read %s: %s", flag, name, tostring(err)), 0) end
      eof = true
      return
    end
    read = read + #block
    if hash then hash:update(block) end
    buf = sub(buf, pos) .. block
    pos = 1
    -- (a byte order mark is looked for line by line only in a block that has one)
    bom = find(buf, BOM, 1, true) ~= nil
  end
  local self = {}
  function self.next()
    while true do
      local stop = find(buf, "\n", pos, true)
      while not stop and not eof do
        fill()
        stop = find(buf, "\n", pos, true)
      end
      local text
      if stop then
        text, pos = sub(buf, pos, stop - 1), stop + 1
      elseif pos <= #buf then
        -- (a last line with no newline, read again from a file cut shorter
        -- than counted at a block's end, whose every block matched: it may
        -- be a name's first bytes, a stream nobody listed; never sent)
        if limit and read < limit then
          error(format("%s: %s changed while it was read: it ends at byte %d, where %d bytes were counted before "
            .. "sending", flag, name, read, limit), 0)
        end
        -- (counted without a newline at its end, the last line may have grown
        -- since: "fff" become "fffggg"; a byte past those counted says so)
        if limit and f:read(1) ~= nil then
          error(format("%s: %s changed while it was read: its last line, counted without a newline at byte %d, "
            .. "goes on past it; the run stops there and sends nothing of that line", flag, name, limit), 0)
        end
        text, pos = sub(buf, pos), #buf + 1
      else
        return nil
      end
      line = line + 1
      if bom then
        if line == 1 and sub(text, 1, 3) == BOM then text = sub(text, 4) end
        if find(text, BOM, 1, true) then
          return false, format("%s: %s:%d: a byte order mark (U+FEFF) inside the list; only the first line may "
            .. "start with one", flag, name, line)
        end
      end
      -- (trimmed only when it starts or ends with a blank: most lines do not)
      local first, last = byte(text, 1), byte(text, -1)
      if first and (SPACE[first] or SPACE[last]) then
        text = match(text, "^%s*(.-)%s*$")
        first = byte(text, 1)
      end
      if first and first ~= HASH then return text, line end
    end
  end
  function self.read() return read end
  function self.lines() return line end
  return self
end

-- next() raising a read error as nil, message.
local function step(p)
  local ok, a, b = pcall(p.next)
  if not ok then return false, a end
  return a, b
end

--- The file `path` names ("-": `stdin`, default io.stdin) and its name in
-- messages ("standard input" or the path); or nil and why, naming `flag`.
function M.handle(path, stdin, flag)
  if path == "-" then return stdin or io.stdin, "standard input" end
  local f, err = io.open(path, "rb")
  if not f then return nil, flag .. ": cannot read " .. tostring(err) end
  return f, path
end

-- A list read so far: `c` holds the file (`f`, `name`, `own`: opened
-- here), the `flag`, the names given `first`, `checked(text, line)` (the
-- list's rule: a message or nil) and `fail(message)` (closes what is ours).

-- Each block's digest, kept by the first pass (`update`), and checked by
-- the second (`checker`'s `update`): a block that differs raises, naming
-- its bytes and the line it starts, before any name of it is handed out.
local function block_digests()
  local sums, n, whole = {}, 0, core.sha256_stream()
  local d = {}
  function d.update(_, block)
    n = n + 1
    sums[n] = core.sha256_hex(block)
    whole:update(block)
  end
  function d.hex() return whole:hex() end
  function d.checker(flag, name, lines_before)
    local i, at = 0, 0
    return { update = function(_, block)
      i = i + 1
      if sums[i] ~= core.sha256_hex(block) then
        error(format("%s: %s changed while it was read: its bytes %d to %d (from line %d) are not those counted "
          .. "before sending; the run stops there and sends nothing of the list from that line on", flag, name,
          at + 1, at + #block, lines_before() + 1), 0)
      end
      at = at + #block
    end }
  end
  return d
end

-- A file: counted to the end first (every name checked, the distinct ones
-- counted, its bytes hashed block by block), then read again as the batch
-- sends, each block checked against the count's before it is used.
local function stream_file(c, list, start)
  local f, name, flag, first = c.f, c.name, c.flag, c.first
  local seen, digests = core.fingerprint_set(), block_digests()
  for _, s in ipairs(first) do seen:add(s) end
  local pass = lines(f, name, flag, nil, digests)
  while true do
    local text, line = step(pass)
    if text == nil then break end
    if text == false then return c.fail(line) end
    local why = c.checked(text, line)
    if why then return c.fail(why) end
    seen:add(text)
  end
  local bytes = pass.read()
  list.count, list.sha256, list.bytes = #seen, digests.hex(), bytes
  if not f:seek("set", start) then return c.fail(format("%s: cannot read %s again", flag, name)) end
  -- (unbuffered: each block is read from the file when the batch needs it,
  -- not from what stdio read ahead, so a change is seen at its block)
  f:setvbuf("no")
  local second
  second = lines(f, name, flag, bytes, digests.checker(flag, name, function() return second.lines() end))
  local i, ended = 0, false
  list.names = function()
    if ended then return nil end
    i = i + 1
    if first[i] then return first[i] end
    local text, line = step(second)
    if text then
      list.line = line
      return text
    end
    ended = true
    if text == false then list.error = line end
    -- (the end: a file cut shorter than counted)
    if not list.error and second.read() ~= bytes then
      list.error = format("%s: %s changed while it was read: it ends at byte %d, where %d bytes were counted "
        .. "before sending", flag, name, second.read(), bytes)
    end
    if c.own then f:close() end
    return nil
  end
  return list
end

-- A pipe: the `n` names read ahead (`names`, their lines `at`), then the
-- rest as it comes from `head`; only a lower bound of the count is known.
local function stream_pipe(c, list, head, names, at, n)
  local distinct, count = {}, 0
  for i = 1, n do
    if not distinct[names[i]] then distinct[names[i]], count = true, count + 1 end
  end
  distinct = nil -- luacheck: ignore 311 (let the look-ahead's set go)
  list.count_at_least = count
  local i, ended = 0, false
  list.names = function()
    if ended then return nil end
    i = i + 1
    if i <= n then
      local s = names[i]
      list.line = at[i]
      if i == n then names, at = nil, nil end -- (the look-ahead is sent: let it go)
      return s
    end
    local text, line = step(head)
    if text then
      local why = c.checked(text, line)
      if not why then
        list.line = line
        return text
      end
      list.error = why .. "; the rest of the list was not read"
    elseif text == false then
      list.error = line .. "; the rest of the list was not read"
    end
    ended = true
    return nil
  end
  return list
end

--- Opens a stream list.
-- @tparam string path the file, or "-" for `stdin`
-- @tparam[opt] file stdin standard input (default io.stdin)
-- @tparam[opt] table opts `first` (names given before the file: counted and
-- sent first), `check(name) -> why|nil` (the list's rule for one name),
-- `flag` (the flag named in messages, default "--from"), `lookahead`
-- (default LOOKAHEAD: math.huge reads any list whole)
-- @return a list: `{ names, streamed, count, count_at_least, sha256, name }`
-- with `names` the whole list (`streamed` false) or an iterator (then
-- `line`: the line of the name it gave last, nil for one given first); or
-- nil and a message naming the flag, the file and the line
function M.open(path, stdin, opts)
  opts = opts or {}
  local flag = opts.flag or "--from"
  local f, name = M.handle(path, stdin, flag)
  if not f then return nil, name end
  local c = { f = f, name = name, flag = flag, own = path ~= "-", first = opts.first or {} }
  function c.fail(message)
    if c.own then f:close() end
    return nil, message
  end
  local check = opts.check
  function c.checked(text, line)
    local why = check and check(text)
    if why then return format("%s: %s:%d: the name %s%s", flag, name, line, why, validate.comment_hint(text)) end
  end

  -- The look-ahead: up to LOOKAHEAD names, after the ones given first,
  -- and one more (which says the list is longer).
  local start = f.seek and f:seek("cur") -- (nil: a pipe, read once)
  local names, at, n = {}, {}, 0 -- (at: each name's line; none for those given first)
  for _, s in ipairs(c.first) do n = n + 1; names[n] = s end
  local head = lines(f, name, flag, nil, nil)
  local ahead = 0
  local most = opts.lookahead or M.LOOKAHEAD
  while ahead <= most do
    local text, line = step(head)
    if text == nil then
      if c.own then f:close() end
      return { names = names, streamed = false, name = name }
    end
    if text == false then return c.fail(line) end
    local why = c.checked(text, line)
    if why then return c.fail(why) end
    ahead, n = ahead + 1, n + 1
    names[n], at[n] = text, line
  end

  local list = { streamed = true, name = name, width = 0 }
  for i = 1, n do if #names[i] > list.width then list.width = #names[i] end end
  if start and f:seek("set", start) then
    names, at = nil, nil -- luacheck: ignore 311 (let the look-ahead go)
    return stream_file(c, list, start)
  end
  return stream_pipe(c, list, head, names, at, n)
end

--- The text of `path` ("-": standard input), a UTF-8 byte order mark at
-- the top taken off: the text and the name to give it in messages, or nil
-- and why (naming `flag_name`, default --from).
function M.read_text(path, stdin, flag_name)
  flag_name = flag_name or "--from"
  local f, name = M.handle(path, stdin, flag_name)
  if not f then return nil, name end
  -- (read whole: a directory, or a read that fails midway, is an error
  -- return here, where f:lines() raises)
  local text, rerr = f:read("*a")
  if f ~= (stdin or io.stdin) then f:close() end
  if not text then return nil, format("%s: cannot read %s: %s", flag_name, name, tostring(rerr)) end
  if sub(text, 1, #BOM) == BOM then text = sub(text, #BOM + 1) end
  return text, name
end

--- Reads stream names from `path` ("-": standard input), whole: one per
-- line, by streamctl.cli.input's rules (which the batches read as they go).
-- @return array, or nil and why (naming --from, the file and the line)
function M.read_list(path, stdin)
  local list, err = M.open(path, stdin, { lookahead = math.huge })
  return list and list.names, err
end

return M
