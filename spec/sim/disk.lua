--- A simulated disk for the operator's layer: the files the audit log and
-- the reconcile state live in, held in memory, behind the three calls of
-- streamctl.core the library writes and reads them with (append_private,
-- replace_file, read_file; private_file, which makes a log before a run,
-- and lock_file, the state file's lock beside it), for the paths
-- registered here only.
--
-- What it models:
--   * what reached the file (a write(2)) and what is durable (fdatasync'd,
--     or replaced by rename after an fsync): a process killed keeps the
--     first, a machine that loses its power keeps only the second;
--   * a disk that fills: `space` bytes left; an append longer than that is
--     cut short at it (nil, "No space left", the bytes written) and a
--     replace that needs more fails, the old file untouched;
--   * reads that fail (unreadable: EIO/EACCES), per call, with a drawn chance;
--   * append_private's repair: a record after one cut short starts on a line
--     of its own (a "\n" first);
--   * an effect hook called before every write (the kill machinery);
--   * the lock on PATH.lock a state store takes across its read-modify-
--     replace: one process runs at a time here, so it is always free, and
--     a killed process's lock goes with it (`release`); `locks` counts them.
--
--   local d = disk.new(rng, { effect = function(what) ... end })
--   d:register(path); local restore = d:install(); ...; restore()
-- @module sim.disk

local core = require "streamctl.core"

local sub, format = string.sub, string.format

local M = {}
local Disk = {}
Disk.__index = Disk

function M.new(rng, opts)
  return setmetatable({ rng = rng, files = {}, paths = {}, space = math.huge, read_fault = 0,
                        effect = opts and opts.effect or function() end, appends = 0, cut = 0, full = 0,
                        held = {}, locks = 0 }, Disk)
end

--- The paths this disk answers for (every other path goes to the real calls).
function Disk:register(path)
  self.paths[path] = true
end

--- The file's text as written (nil: absent), and its durable prefix.
function Disk:text(path)
  local f = self.files[path]
  return f and f.text, f and sub(f.text, 1, f.synced)
end

--- A machine crash (power lost): every file keeps what was durable.
function Disk:power_loss()
  for _, f in pairs(self.files) do
    f.text = sub(f.text, 1, f.synced)
  end
end

function Disk:append(path, data, sync)
  self.effect("an append to " .. path)
  local f = self.files[path]
  if not f then
    f = { text = "", synced = 0 }
    self.files[path] = f
  end
  local repaired = f.text ~= "" and sub(f.text, -1) ~= "\n"
  if repaired then data = "\n" .. data end
  if #data > self.space then
    local n = math.max(0, math.floor(self.space))
    f.text = f.text .. sub(data, 1, n)
    self.space = self.space - n
    self.full = self.full + 1
    if n > 0 then self.cut = self.cut + 1 end
    if sync then f.synced = #f.text end
    -- (written counts the bytes of `data` as given: the repair's "\n" is not one of them)
    return nil, format("cannot append to %s: No space left on device", path), math.max(0, n - (repaired and 1 or 0))
  end
  self.appends = self.appends + 1
  f.text = f.text .. data
  self.space = self.space - #data
  if sync then f.synced = #f.text end
  return true, repaired
end

function Disk:replace(path, data)
  self.effect("a replace of " .. path)
  local f = self.files[path]
  local old = f and #f.text or 0
  if #data > self.space then
    self.full = self.full + 1
    return nil, format("cannot replace %s: No space left on device", path)
  end
  self.space = self.space - math.max(0, #data - old)
  self.files[path] = { text = data, synced = #data }
  return true
end

function Disk:read(path)
  if self.read_fault > 0 and self.rng:chance(self.read_fault) then
    return nil, format("cannot read %s: Input/output error", path), "unreadable"
  end
  local f = self.files[path]
  if not f then return nil, format("cannot read %s: No such file or directory", path), "absent" end
  return f.text
end

-- The lock on `path` (PATH.lock of a registered PATH): one process runs at
-- a time, so a lock held is one its holder did not give back.
function Disk:lock(path)
  if self.held[path] then return nil, format("%s is locked by another process", path), "busy" end
  self.held[path] = true
  self.locks = self.locks + 1
  return { unlock = function() self.held[path] = nil end }
end

--- A process ended (killed or not): its locks go with it.
function Disk:release()
  self.held = {}
end

--- Puts the disk behind streamctl.core's calls; returns the function that
-- puts the real ones back.
function Disk:install()
  local real = { append_private = core.append_private, replace_file = core.replace_file, read_file = core.read_file,
                 private_file = core.private_file, lock_file = core.lock_file }
  core.append_private = function(path, data, sync)
    if self.paths[path] then return self:append(path, data, sync) end
    return real.append_private(path, data, sync)
  end
  core.replace_file = function(path, data)
    if self.paths[path] then return self:replace(path, data) end
    return real.replace_file(path, data)
  end
  core.read_file = function(path)
    if self.paths[path] then return self:read(path) end
    return real.read_file(path)
  end
  core.private_file = function(path)
    if self.paths[path] then return true end -- (a regular file, made when first appended to)
    return real.private_file(path)
  end
  core.lock_file = function(path, wait_ms)
    if self.paths[(path:gsub("%.lock$", ""))] then return self:lock(path) end
    return real.lock_file(path, wait_ms)
  end
  -- (and io.open, for a library that opens a log to see it can: a handle
  -- that only closes, never a real file)
  local lio = require "io"
  local real_open = lio.open
  lio.open = function(path, mode)
    if self.paths[path] then return { close = function() return true end } end
    return real_open(path, mode)
  end
  return function()
    for k in pairs { append_private = 1, replace_file = 1, read_file = 1, private_file = 1, lock_file = 1 } do
      core[k] = real[k]
    end
    lio.open = real_open
  end
end

return M
