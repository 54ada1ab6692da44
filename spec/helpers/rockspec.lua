-- The repository's rockspecs, read as luarocks reads them (spec/00, spec/72).
local M = {}

--- The environment a rockspec `rockspecs/NAME-scm-1.rockspec` leaves (its
-- package, dependencies, build...), read from `root` (STREAMCTL_ROOT, else ".").
function M.load(name, root)
  root = root or os.getenv("STREAMCTL_ROOT") or "."
  local env = {}
  local chunk = assert(loadfile(root .. "/rockspecs/" .. name .. "-scm-1.rockspec", "t", env))
  if setfenv then setfenv(chunk, env) end
  chunk()
  return env
end

--- The Lua modules rockspec `name` installs: `{ [module] = file }`.
function M.lua_modules(name, root)
  local out = {}
  for module, m in pairs(M.load(name, root).build.modules) do
    if type(m) == "string" then out[module] = m end
  end
  return out
end

return M
