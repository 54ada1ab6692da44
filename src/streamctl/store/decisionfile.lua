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
-- Each operation is a read-modify-replace under an exclusive lock on the
-- file beside it (`PATH.lock`): read whole, changed, written whole to a
-- temporary file and renamed over it (streamctl.core.replace_file), so a
-- reader sees the last whole state and a run killed mid-write leaves the
-- one before. The directory is made 0700 and the files 0600; a file that
-- another user owns, that others may write, or that is a link is refused,
-- as is one that does not read as this store's (a loud error naming the
-- file, never taken as empty: an empty store would vouch that nobody
-- decided). A missing file is an empty store (a first run).
--
-- The format, one entry a line after a header: `<value> <key>`, the value
-- in decimal digits and the key percent-encoded (streamctl.core.percent_encode,
-- so no key holds a blank or a newline).
-- @module streamctl.store.decisionfile

local core = require "streamctl.core"
local sequence = require "streamctl.engine.sequence"

local type, error, pairs, ipairs, tonumber, setmetatable = type, error, pairs, ipairs, tonumber, setmetatable
local format, find, sub, match, gmatch = string.format, string.find, string.sub, string.match, string.gmatch
local concat, sort = table.concat, table.sort
local encode = core.percent_encode

local M = {}

-- The first line of the file: what it is and its format's version.
local HEADER = "streamctl decisions 1\n"

--- How long an operation waits for another run's lock, in milliseconds:
-- the work under it is a read and a write of a small file.
M.LOCK_WAIT_MS = 5000

--- The largest file read, in bytes: a store holds a minute of decisions
-- (tens of thousands of streams at most); beyond this it is not this store's.
M.MAX_BYTES = 64 * 1024 * 1024

--- The option's rule: an absolute path, without control characters.
-- @return the path, or nil and the rule broken
function M.check(v)
  if type(v) ~= "string" or sub(v, 1, 1) ~= "/" or find(v, "[%z\1-\31\127]") or find(v, "/$") then
    return nil, "must be the absolute path of a file (no control characters, not ending in '/')"
  end
  return v
end

--- The handle: the path (nothing is opened until a decision is taken).
function M.handle(path)
  return { path = path, lock = path .. ".lock" }, false
end

-- The entries of the file's text: key -> value; or nil and why.
local function parse(path, text)
  if text == "" then return {} end
  if sub(text, 1, #HEADER) ~= HEADER then
    return nil, format("%s is not a streamctl decision store (its first line is not %q)", path, sub(HEADER, 1, -2))
  end
  if sub(text, -1) ~= "\n" then return nil, path .. " is cut short (its last line has no newline)" end
  local out, n = {}, 1
  for line in gmatch(sub(text, #HEADER + 1), "([^\n]*)\n") do
    n = n + 1
    local v, key = match(line, "^(%d+) (%S+)$")
    v = v and #v <= 16 and tonumber(v)
    if not v or v > sequence.MAX then
      return nil, format("%s line %d is not '<value> <key>' (a value below 2^53)", path, n)
    end
    out[key] = v
  end
  return out
end

-- The file's text for `entries`, sorted by key (the same state, the same bytes).
local function render(entries)
  local keys = {}
  for k in pairs(entries) do keys[#keys + 1] = k end
  sort(keys)
  local out = { HEADER }
  for i, k in ipairs(keys) do out[i + 1] = format("%.0f %s\n", entries[k], k) end
  return concat(out)
end

-- Runs `change(entries) -> write, ...` on the file's entries under its lock,
-- writing them back when `write` is true; returns change's other values, or
-- nil and why (naming the file).
local function locked(h, change)
  local ok, why = core.private_file(h.lock)
  if not ok then return nil, why end
  local lock, lwhy = core.lock_file(h.lock, M.LOCK_WAIT_MS)
  if not lock then return nil, lwhy end
  local text, rwhy, kind = core.read_file(h.path, M.MAX_BYTES + 1, true)
  if not text and kind ~= "absent" then lock:unlock() return nil, rwhy end
  if text and #text > M.MAX_BYTES then
    lock:unlock()
    return nil, format("%s is larger than %d bytes: not a decision store", h.path, M.MAX_BYTES)
  end
  local entries, perr = parse(h.path, text or "")
  if not entries then lock:unlock() return nil, perr .. " (move it away to start an empty store)" end
  local write, a, b = change(entries)
  if write then
    local done, werr = core.replace_file(h.path, render(entries))
    if not done then lock:unlock() return nil, werr end
  end
  lock:unlock()
  return true, a, b
end

-- Forgets the entries below `below` (they can no longer matter: see
-- streamctl.engine.sequence's KEEP_MS).
local function prune(entries, below)
  for k, v in pairs(entries) do if v < below then entries[k] = nil end end
end

local Store = {}
Store.__index = Store

-- The file's key of the store's key `k`.
local function key_of(self, k) return encode(self.prefix .. k) end

-- v = max(candidate, each key's last + 1), recorded for every key.
local function raise(self, entries, keys, candidate)
  local v = candidate
  for i = 1, #keys do
    local cur = entries[key_of(self, keys[i])]
    if cur and cur + 1 > v then v = cur + 1 end
  end
  prune(entries, candidate - sequence.KEEP_MS)
  for i = 1, #keys do entries[key_of(self, keys[i])] = v end
  return v
end

function Store:advance(k, candidate)
  local ok, v = locked(self.h, function(e) return true, raise(self, e, { k }, candidate) end)
  if not ok then return nil, v end
  return v
end

function Store:advance_all(keys, candidate)
  local ok, v = locked(self.h, function(e) return true, raise(self, e, keys, candidate) end)
  if not ok then return nil, v end
  return v
end

function Store:record_all(keys, value)
  local key, last
  local ok, recorded = locked(self.h, function(e)
    for i = 1, #keys do
      local cur = e[key_of(self, keys[i])]
      if cur and cur >= value then key, last = keys[i], cur return false, false end
    end
    for i = 1, #keys do e[key_of(self, keys[i])] = value end
    return true, true
  end)
  if not ok then return nil, recorded end
  if not recorded then return false, key, last end
  return true
end

function Store:renew(keys, old, candidate, n)
  local later
  local ok, v = locked(self.h, function(e)
    later = sequence.later_than(keys, old, function(k) return e[key_of(self, k)] end, n)
    if later then return false, false end
    return true, raise(self, e, keys, candidate > old and candidate or old + 1)
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
  local ok, why = locked(self.h, function(e)
    for k, v in pairs(e) do if v < below then e[k], n = nil, n + 1 end end
    return n > 0
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
