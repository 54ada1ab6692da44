--- The machine's decision store: one file that every run of a user on this
-- machine shares, so that two runs of the command see each other's
-- decisions (streamctl.pipeline.decision) and ZEGO's Sequences, without a
-- Redis. A client's `decision_file` option (a path) uses it; the command
-- gives it by default (`$STREAMCTL_DECISION_FILE`, else
-- `${XDG_STATE_HOME:-~/.local/state}/streamctl/decisions`).
--
-- It holds what streamctl.engine.sequence's store contract asks (a value
-- per key, kept `sequence.KEEP_MS` of the generator's clock), and nothing
-- of the rate limits: a backend with `sequence_store` alone.
--
-- The file is a log: a header, then a line `<value> <key>` for each value
-- taken (the value in decimal digits, the key percent-encoded by
-- streamctl.core.percent_encode, so no key holds a blank or a newline); a
-- key's value is the largest of its lines. Each operation runs under an
-- exclusive lock on the file beside it (`PATH.lock`): it reads what other
-- processes appended since it last looked (only those bytes: each process
-- keeps the file's values in memory, read again whole when the file was
-- replaced), then appends its own lines (streamctl.core.append_private, a
-- file made 0600 in a directory made 0700). A decision is taken inside a
-- call's send, between its rate-limit slot and the request: whole rewrites
-- of the file there (tens of ms for a batch's thousands of streams) made
-- slots go stale, so the file is rewritten, with the values still kept,
-- only when it holds four times what is kept (replaced by rename).
--
-- No write is synced: a decision matters only to calls still running, and
-- a power loss that takes its line takes every process that made one. (A
-- rewrite is still whole and by rename: a crash never leaves half of it.)
--
-- A file that another user owns, that others may write, or that is a link
-- is refused, as is one that does not read as this store's (a loud error
-- naming the file, never taken as empty: an empty store would vouch that
-- nobody decided). A missing file is an empty store (a first run).
-- @module streamctl.store.decisionfile

local core = require "streamctl.core"
local lfs = require "lfs"
local sequence = require "streamctl.engine.sequence"

local type, error, pairs, ipairs, tonumber, setmetatable, rawget = type, error, pairs, ipairs, tonumber, setmetatable,
  rawget
local format, find, sub, match, gmatch = string.format, string.find, string.sub, string.match, string.gmatch
local concat, sort, open = table.concat, table.sort, io.open
local encode = core.percent_encode

local M = {}

-- The first line of the file: what it is and its format's version.
local HEADER = "streamctl decisions 2\n"

--- How long an operation waits for another run's lock, in milliseconds:
-- the work under it is a read and a write of a small file.
M.LOCK_WAIT_MS = 5000

--- The largest file read, in bytes: a store holds a minute of decisions
-- (tens of thousands of streams at most); beyond this it is not this store's.
M.MAX_BYTES = 64 * 1024 * 1024

--- The file is rewritten when it holds more than this many times the lines
-- kept, and more than `COMPACT_FLOOR` bytes.
M.COMPACT_RATIO = 4

--- The least size of a file that is rewritten, in bytes.
M.COMPACT_FLOOR = 65536

--- The option's rule: an absolute path, without control characters, in a
-- process outside nginx (its lock is waited for, which would block a worker).
-- @return the path, or nil and the rule broken
function M.check(v)
  if rawget(_G, "ngx") ~= nil then
    return nil, "is for processes outside nginx (its lock would block a worker): give shared_dict for one nginx, "
      .. "redis for several"
  end
  if type(v) ~= "string" or sub(v, 1, 1) ~= "/" or find(v, "[%z\1-\31\127]") or find(v, "/$") then
    return nil, "must be the absolute path of a file (no control characters, not ending in '/')"
  end
  return v
end

--- The handle: the path, and this process's view of the file (nothing is
-- opened until a decision is taken).
function M.handle(path)
  return { path = path, lock = path .. ".lock", values = {}, offset = 0, lines = 0 }, false
end

-- Reads the lines of `text` (from line `first`) into `values` (each key's
-- largest); returns how many, or nil and why.
local function parse_lines(path, text, values, first)
  if text ~= "" and sub(text, -1) ~= "\n" then return nil, path .. " is cut short (its last line has no newline)" end
  local n = first - 1
  for line in gmatch(text, "([^\n]*)\n") do
    n = n + 1
    local v, key = match(line, "^(%d+) (%S+)$")
    v = v and #v <= 16 and tonumber(v)
    if not v or v > sequence.MAX then
      return nil, format("%s line %d is not '<value> <key>' (a value below 2^53)", path, n)
    end
    local cur = values[key]
    if cur == nil or v > cur then values[key] = v end
  end
  return n - first + 1
end

-- The file read whole into `h` (it is new to this process, or was replaced).
local function reload(h)
  local text, why, kind = core.read_file(h.path, M.MAX_BYTES + 1, true)
  h.values, h.offset, h.lines, h.ino = {}, 0, 0, nil
  if not text and kind == "absent" then return true end
  if not text then return nil, why end
  if #text > M.MAX_BYTES then
    return nil, format("%s is larger than %d bytes: not a decision store", h.path, M.MAX_BYTES)
  end
  if sub(text, 1, #HEADER) ~= HEADER then
    return nil, format("%s is not a streamctl decision store (its first line is not %q)", h.path, sub(HEADER, 1, -2))
  end
  local n, perr = parse_lines(h.path, sub(text, #HEADER + 1), h.values, 2)
  if not n then return nil, perr end
  local a = lfs.attributes(h.path)
  h.offset, h.lines, h.ino = #text, n, a and a.ino
  return true
end

-- What other processes appended since `h` last looked, read into it.
local function catch_up(h)
  local a = lfs.attributes(h.path)
  if not a then
    if h.offset > 0 then return reload(h) end -- (removed: an empty store from here on)
    return true
  end
  if a.mode ~= "file" or a.ino ~= h.ino or a.size < h.offset then return reload(h) end
  if a.size == h.offset then return true end
  -- (the same file, grown: the new bytes alone; read_file checked its owner and mode when it was read whole)
  local f, why = open(h.path, "rb")
  if not f then return nil, why end
  f:seek("set", h.offset)
  local text = f:read(a.size - h.offset) or ""
  f:close()
  local n, perr = parse_lines(h.path, text, h.values, h.lines + 2)
  if not n then return nil, perr end
  h.offset, h.lines = h.offset + #text, h.lines + n
  return true
end

-- The file's text for the values kept, sorted by key (the same values, the same bytes).
local function render(values)
  local keys = {}
  for k in pairs(values) do keys[#keys + 1] = k end
  sort(keys)
  local out = { HEADER }
  for i, k in ipairs(keys) do out[i + 1] = format("%.0f %s\n", values[k], k) end
  return concat(out), #keys
end

-- Appends the lines of `set` (key -> value) to the file, or rewrites it
-- whole with the values kept when it has grown past COMPACT_RATIO of them.
local function write(h, set)
  local keys, parts = {}, {}
  for k in pairs(set) do keys[#keys + 1] = k end
  if #keys == 0 then return true end
  sort(keys) -- (the same values, the same bytes)
  for i, k in ipairs(keys) do parts[i] = format("%.0f %s\n", set[k], k) end
  local kept = 0
  for _ in pairs(h.values) do kept = kept + 1 end
  if h.offset == 0 or (h.offset > M.COMPACT_FLOOR and h.lines + #parts > M.COMPACT_RATIO * kept) then
    local text, n = render(h.values)
    -- (whole and by rename, as core.replace_file, without its fsyncs: a new file of mode 0600 written in
    -- one write(2) by core.append_private, then renamed over the log. One name: only the lock's holder
    -- writes it, and a run killed here leaves one file, which the next rewrite removes first)
    local tmp = h.path .. ".tmp"
    os.remove(tmp)
    local ok, why = core.append_private(tmp, text)
    if ok then ok, why = os.rename(tmp, h.path) end
    if not ok then os.remove(tmp) return nil, why end
    local a = lfs.attributes(h.path)
    h.offset, h.lines, h.ino = #text, n, a and a.ino
    return true
  end
  local data = concat(parts)
  local ok, why = core.append_private(h.path, data)
  if not ok then return nil, why end
  local a = lfs.attributes(h.path)
  -- (under the lock no one else appends: the file is what this process knows, and its new lines;
  -- a newline the append had to add first, after a line cut short, would show as one more byte)
  if not a or a.ino ~= h.ino or a.size ~= h.offset + #data then return reload(h) end
  h.offset, h.lines = a.size, h.lines + #parts
  return true
end

-- Runs `change(values, set) -> write?, ...` on the file's values under its
-- lock (`set(key, value)` records a new value), appending what it set when
-- `write` is true; returns change's other values, or nil and why (naming
-- the file).
local function locked(h, change)
  local ok, why = core.private_file(h.lock)
  if not ok then return nil, why end
  local lock, lwhy = core.lock_file(h.lock, M.LOCK_WAIT_MS)
  if not lock then return nil, lwhy end
  ok, why = catch_up(h)
  if not ok then
    lock:unlock()
    h.ino = false -- (read whole next time)
    return nil, why .. " (move it away to start an empty store)"
  end
  local set = {}
  local function put(k, v) h.values[k], set[k] = v, v end
  local w, a, b = change(h.values, put)
  if w then
    ok, why = write(h, set)
    if not ok then lock:unlock() h.ino = false return nil, why end
  end
  lock:unlock()
  return true, a, b
end

-- Forgets the values below `below` (they can no longer matter: see
-- streamctl.engine.sequence's KEEP_MS); the file keeps them until it is rewritten.
local function prune(values, below)
  for k, v in pairs(values) do if v < below then values[k] = nil end end
end

local Store = {}
Store.__index = Store

-- The file's key of the store's key `k`.
local function key_of(self, k) return encode(self.prefix .. k) end

-- v = max(candidate, each key's last + 1), recorded for every key.
local function raise(self, values, put, keys, candidate)
  local v = candidate
  for i = 1, #keys do
    local cur = values[key_of(self, keys[i])]
    if cur and cur + 1 > v then v = cur + 1 end
  end
  prune(values, candidate - sequence.KEEP_MS)
  for i = 1, #keys do put(key_of(self, keys[i]), v) end
  return v
end

function Store:advance(k, candidate)
  local ok, v = locked(self.h, function(e, put) return true, raise(self, e, put, { k }, candidate) end)
  if not ok then return nil, v end
  return v
end

function Store:advance_all(keys, candidate)
  local ok, v = locked(self.h, function(e, put) return true, raise(self, e, put, keys, candidate) end)
  if not ok then return nil, v end
  return v
end

function Store:record_all(keys, value)
  local key, last
  local ok, recorded = locked(self.h, function(e, put)
    for i = 1, #keys do
      local cur = e[key_of(self, keys[i])]
      if cur and cur >= value then key, last = keys[i], cur return false, false end
    end
    for i = 1, #keys do put(key_of(self, keys[i]), value) end
    return true, true
  end)
  if not ok then return nil, recorded end
  if not recorded then return false, key, last end
  return true
end

function Store:renew(keys, old, candidate, n)
  local later
  local ok, v = locked(self.h, function(e, put)
    later = sequence.later_than(keys, old, function(k) return e[key_of(self, k)] end, n)
    if later then return false, false end
    return true, raise(self, e, put, keys, candidate > old and candidate or old + 1)
  end)
  if not ok then return nil, v end
  if later then return false, later end
  return v
end

function Store:get(k)
  -- (no file yet: nothing decided, and nothing made for a look, a dry run's)
  local _, _, kind = core.read_file(self.h.path, 0, true)
  if kind == "absent" then return nil end
  local ok, v = locked(self.h, function(e) return false, e[key_of(self, k)] end)
  if not ok then return nil, v end
  return v
end

function Store:prune(below)
  if type(below) ~= "number" then
    error("bad argument #1 to 'prune' (below must be a number, got " .. type(below) .. ")", 2)
  end
  local n = 0
  -- (in this process's view; the file keeps them until it is rewritten)
  local ok, why = locked(self.h, function(e)
    for k, v in pairs(e) do if v < below then e[k], n = nil, n + 1 end end
    return false
  end)
  if not ok then return nil, why end
  return n
end

--- The Sequence store of keys under `prefix` (streamctl.engine.sequence's
-- contract: advance, advance_all, record_all, renew, get, prune). An
-- operation that cannot be done returns nil and why (naming the file).
function M.sequence_store(h, prefix)
  if type(h) ~= "table" or type(h.path) ~= "string" then
    error("bad argument #1 to 'sequence_store' (a handle of streamctl.store.decisionfile expected)", 2)
  end
  if type(prefix) ~= "string" then
    error("bad argument #2 to 'sequence_store' (prefix must be a string, got " .. type(prefix) .. ")", 2)
  end
  return setmetatable({ h = h, prefix = prefix }, Store)
end

--- The path of the machine's store by default: `$STREAMCTL_DECISION_FILE`,
-- else under `$XDG_STATE_HOME` (absolute) or `~/.local/state`; nil without HOME.
function M.default_path(getenv)
  return require("streamctl.base.xdg").path(getenv or os.getenv, "STREAMCTL_DECISION_FILE", "XDG_STATE_HOME",
    ".local/state", "streamctl/decisions")
end

return M
