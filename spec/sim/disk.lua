--- A simulated disk for the operator's layer: the files the audit log and
-- the reconcile state live in, held in memory, behind the three calls of
-- streamctl.core the library writes and reads them with (append_private,
-- replace_file, read_file), for the paths registered here only.
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
--   * an effect hook called before every write (the kill machinery).
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
                        effect = opts and opts.effect or function() end, appends = 0, cut = 0, full = 0 }, Disk)
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

--- Puts the disk behind streamctl.core's calls; returns the function that
-- puts the real ones back.
function Disk:install()
  local real = { append_private = core.append_private, replace_file = core.replace_file, read_file = core.read_file }
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
  return function()
    for k, v in pairs(real) do core[k] = v end
  end
end

return M
