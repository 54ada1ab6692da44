-- The places of ApsaraVideo Live's block list in the emulator: which streams
-- are listed and until when, how many places they take, and their ends in
-- time order, so that a forbid whose end passed frees its place without a
-- scan of every stream. ForbidLiveStream's page: "You can disable up to
-- 10,000 live streams. If the limit is reached, you cannot disable any more
-- live streams." (live_streams.lua applies the limit; the count is over every
-- domain: the emulator's streams are one account's, and one list per account
-- is the strictest reading.)
--
--   places.list(key, ends_at)   listed until ends_at (a new place, or the same
--                               place with a new end)
--   places.unlist(key)          off the list (a resume)
--   places.purge(now, ended)    ends what ended by now, ended(key) for each
--   places.in_use()  places.ends_at(key)  places.reset()

local floor, pairs = math.floor, pairs

local M = {}

local listed = {} -- key -> its end (unix seconds)
local count = 0
-- A binary min-heap of { at, key } by at; an entry whose key is no longer
-- listed with that end is stale and skipped when it comes up.
local heap = {}

local function sift_up(i)
  while i > 1 do
    local parent = floor(i / 2)
    if heap[parent].at <= heap[i].at then
      return
    end
    heap[parent], heap[i] = heap[i], heap[parent]
    i = parent
  end
end

local function sift_down(i)
  local n = #heap
  while true do
    local l, smallest = 2 * i, i
    if l <= n and heap[l].at < heap[smallest].at then
      smallest = l
    end
    if l + 1 <= n and heap[l + 1].at < heap[smallest].at then
      smallest = l + 1
    end
    if smallest == i then
      return
    end
    heap[smallest], heap[i] = heap[i], heap[smallest]
    i = smallest
  end
end

local function pop()
  local top, n = heap[1], #heap
  heap[1] = heap[n]
  heap[n] = nil
  if n > 1 then
    sift_down(1)
  end
  return top
end

-- Rebuilds the heap from the listed ends, when stale entries (re-forbids,
-- resumes) outnumber the live ones: memory stays within a bound of the
-- places in use.
local function compact()
  heap = {}
  for key, at in pairs(listed) do
    heap[#heap + 1] = { at = at, key = key }
  end
  for i = floor(#heap / 2), 1, -1 do
    sift_down(i)
  end
end

function M.list(key, ends_at)
  if listed[key] == nil then
    count = count + 1
  end
  listed[key] = ends_at
  heap[#heap + 1] = { at = ends_at, key = key }
  sift_up(#heap)
  if #heap > 2 * count + 1024 then
    compact()
  end
end

function M.unlist(key)
  if listed[key] ~= nil then
    listed[key] = nil
    count = count - 1
  end
end

-- Ends every listing whose end is at or before now, in the order of their
-- ends, calling ended(key) for each. Moving the clock back afterwards does
-- not list them again.
function M.purge(now, ended)
  while heap[1] and heap[1].at <= now do
    local e = pop()
    if listed[e.key] == e.at then
      listed[e.key] = nil
      count = count - 1
      ended(e.key)
    end
  end
end

function M.in_use()
  return count
end

-- The end of a listed stream, or nil when it is not listed.
function M.ends_at(key)
  return listed[key]
end

function M.reset()
  listed, count, heap = {}, 0, {}
end

return M
