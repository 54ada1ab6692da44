--- The big input matrices under the sanitizers, and in the unit tier: a sampled slice.
--
-- Under Lua 5.4 and LuaJIT a matrix runs whole in make check and make test.
-- In the unit tier (STREAMCTL_SPEC_TIER=unit: make check-unit, the quick
-- loop after an edit) it takes every fourth value, as under ASan. Under valgrind and ASan
-- (STREAMCTL_SPEC_MODE, set by tools/run-specs.sh) each row costs ten to
-- fifty times more, and the C a row reaches is the same for most of them (a
-- flag's value is refused before anything reaches the core), so they take a
-- slice: of the values given to one field, those whose place is the field's
-- own place modulo the mode's stride. Each field keeps at least one value, and over the
-- fields every kind of value is taken (the slice shifts by one per field).
-- The slice is fixed: a run is the same on every machine.
--
--   local matrix = require "spec.helpers.matrix"
--   for _, v in ipairs(matrix.slice(values, field_index)) do ... end
local M = {}

-- Under ASan a row costs about ten times more, under valgrind about fifty:
-- valgrind takes every eighth value, ASan every fourth; the unit tier every
-- fourth too.
M.STRIDES = { asan = 4, valgrind = 8 }
M.UNIT_STRIDE = 4

--- This run's stride: 1 (every value), 4 (ASan, or the unit tier) or 8 (valgrind).
function M.stride()
  local stride = M.STRIDES[os.getenv("STREAMCTL_SPEC_MODE")]
  if stride then return stride end
  return os.getenv("STREAMCTL_SPEC_TIER") == "unit" and M.UNIT_STRIDE or 1
end

--- True when this run samples (under valgrind or ASan, or in the unit tier).
function M.sampled()
  return M.stride() > 1
end

--- `list` whole, or under the sanitizers its slice for the field at `place`
-- (a positive integer: the field's place in its matrix).
function M.slice(list, place)
  assert(type(place) == "number" and place % 1 == 0 and place >= 1, "matrix.slice: place must be a positive integer")
  local stride = M.stride()
  if stride == 1 or #list == 0 then return list end
  local out = {}
  for i, v in ipairs(list) do
    if (i + place) % stride == 0 then out[#out + 1] = v end
  end
  if #out == 0 then out[1] = list[(place - 1) % #list + 1] end
  return out
end

return M
