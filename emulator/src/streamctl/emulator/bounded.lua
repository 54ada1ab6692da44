-- A map that keeps at most `max` keys, forgetting the oldest first, so that
-- what clients can make the emulator remember (issued STS sessions, metadata
-- tokens) stays bounded under load. Keys are remembered in the order first put.
--
--   local b = bounded.new(100000)
--   b:put(key, value)   b:get(key)   for key, value in b:each() do ... end   b:size()

local setmetatable = setmetatable

local M = {}
M.__index = M

function M.new(max)
  return setmetatable({ max = max, values = {}, order = {}, head = 1, tail = 0 }, M)
end

function M:put(key, value)
  if self.values[key] == nil then
    self.tail = self.tail + 1
    self.order[self.tail] = key
  end
  self.values[key] = value
  while self.tail - self.head + 1 > self.max do
    self.values[self.order[self.head]] = nil
    self.order[self.head] = nil
    self.head = self.head + 1
  end
end

function M:get(key)
  return self.values[key]
end

function M:size()
  return self.tail - self.head + 1
end

-- The keys and values, oldest first.
function M:each()
  local i = self.head - 1
  return function()
    i = i + 1
    local key = self.order[i]
    if key ~= nil then
      return key, self.values[key]
    end
  end
end

return M
