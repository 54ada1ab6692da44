-- Small helpers shared by the unit specs.
local assert = require "luassert" -- busted gives specs its assert; a required module asks for it

local M = {}

--- A clock the spec moves by hand: `c.now()` returns `c.t`.
function M.fake_clock(t)
  local c = { t = t or 0 }
  function c.now() return c.t end
  return c
end

--- Asserts that `fn` raises an error mentioning `fragment`, blamed on the
-- spec file `file` (so argument errors point at the caller's line).
function M.raises(fn, fragment, file)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  err = tostring(err)
  assert.truthy(err:find(fragment, 1, true), "error '" .. err .. "' lacks '" .. fragment .. "'")
  assert.truthy(err:find(file, 1, true), "error not blamed on the caller: " .. err)
end

return M
