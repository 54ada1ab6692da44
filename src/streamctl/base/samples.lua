--- The last few samples of a measure, with their lowest and highest: a
-- ring of `size` numbers whose `lo` and `hi` are kept as values come and
-- counted again only when one that falls out was one of them (a sample a
-- request: cheap on the hot path). Pacing's round trips and send delays,
-- and the Redis store's round trips, are kept this way.
--
--   local r = samples.new(64)
--   samples.push(r, 0.003)   -- r.n, r.lo, r.hi
-- @module streamctl.base.samples

local huge = math.huge

local M = {}

--- An empty ring of `size` samples (`n` 0, `lo` math.huge, `hi` 0).
function M.new(size)
  return { size = size, n = 0, pos = 0, lo = huge, hi = 0 }
end

--- Adds `v` to `ring`, the oldest falling out when it is full.
function M.push(ring, v)
  local size = ring.size
  local pos = ring.pos % size + 1
  local out = ring.n == size and ring[pos] or nil
  ring.pos, ring[pos] = pos, v
  if ring.n < size then ring.n = ring.n + 1 end
  if out and (out <= ring.lo or out >= ring.hi) then
    local lo, hi = huge, 0
    for i = 1, ring.n do
      local x = ring[i]
      if x < lo then lo = x end
      if x > hi then hi = x end
    end
    ring.lo, ring.hi = lo, hi
  else
    if v < ring.lo then ring.lo = v end
    if v > ring.hi then ring.hi = v end
  end
end

return M
