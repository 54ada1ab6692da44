--- The house's walls, checked: every module's requires (those inside
-- functions too), the layer each module belongs to, and what breaks the
-- rule that dependencies point down only (docs/development/architecture.md, "Layers").
--
--   lua5.4 tools/layers.lua [ROOT]   prints the graph's problems; exit 1 if any
--
-- As a module (spec/71-layers): `scan(root)` reads src/streamctl/ and gives
-- `{ [module] = { [required module] = line } }`; `check(graph)` gives the
-- problems, each a line naming the arrow or the cycle.
--
-- A require is any `require "streamctl..."`, `require("streamctl...")` or
-- `pcall(require, "streamctl...")` outside a comment: where in the file it
-- sits does not matter (one inside a function is a dependency all the same,
-- only a later one). Hand-written: no Debian package reads Lua's requires.
-- @script layers

local M = {}

--- The layers, bottom first, each a folder of src/streamctl (docs/development/architecture.md,
-- "Layers"): a module may require modules of its own layer or of a lower
-- one, never of a higher one, and no cycle anywhere. The optional parts
-- (`optional`: with dependencies of their own, or used by some users only)
-- are never named by a module of the core, whatever their place. A module
-- is placed by the longest prefix listed (`streamctl.store.` for
-- streamctl.store.redis); one in no folder listed, or at the top but not
-- listed there, is unplaced: a new module goes into its layer's folder.
-- At the top sit only the face (`streamctl`, the providers), the version
-- and the C modules (named by the rockspecs, built from csrc/).
M.LAYERS = {
  { name = "base", "streamctl.base.", "streamctl.version",
    "streamctl.core", "streamctl.curl", "streamctl.redis", "streamctl.signal" },
  { name = "engine", "streamctl.engine." },
  { name = "transports", "streamctl.transport." },
  { name = "stores", optional = true, "streamctl.store." },
  { name = "pipeline", "streamctl.pipeline." },
  -- (STS's client is made by the credential chain, which the providers' clients may be given)
  { name = "sts", "streamctl.credentials.sts" },
  { name = "credentials", "streamctl.credentials" },
  -- (the registered ones, streamctl.providers' list, read with the tree: `scan`)
  { name = "providers", "streamctl.aliyun", "streamctl.zego" },
  -- (spans exported by OTLP: the command and the edge set it up; the core hands spans to a hook)
  { name = "tracing", optional = true, "streamctl.trace" },
  { name = "operator", optional = true, "streamctl.operator." },
  { name = "edge", optional = true, "streamctl.edge." },
  { name = "face", "streamctl", "streamctl.providers" },
  -- (the emulator names nothing above the base; the command reads its defaults when it is installed)
  { name = "emulator", optional = true, "streamctl.emulator." },
  { name = "command", optional = true, "streamctl.cli" },
}

--- The programs under bin/, each at the top of its part's layer: what a
-- program requires is held to the same rule as a module of that layer (the
-- emulator's launcher may not name the command); a program not listed is
-- unplaced.
M.PROGRAMS = { ["bin/streamctl"] = "command", ["emulator/bin/streamctl-emulator"] = "emulator" }

--- The core's one door to an optional layer: the module that turns
-- options into store objects names the stores (when an option asks for
-- one); no other module of the core may.
M.GATEWAYS = { ["streamctl.pipeline.stores"] = "stores" }

--- The layer of `module`: its index in LAYERS, its name and whether it is
-- optional; or nil.
function M.layer_of(module)
  if module:find("^[%w/]*bin/") then
    for i, layer in ipairs(M.LAYERS) do
      if layer.name == M.PROGRAMS[module] then return i, layer.name, layer.optional == true end
    end
    return nil
  end
  local best, best_len, name, optional
  for i, layer in ipairs(M.LAYERS) do
    for _, prefix in ipairs(layer) do
      -- (a name ending in '.' holds what is under it; another one itself and its
      -- submodules, but the root, `streamctl`, only itself)
      local fits = module == prefix or (prefix:sub(-1) == "." and module:sub(1, #prefix) == prefix)
        or (prefix:find(".", 1, true) and module:sub(1, #prefix + 1) == prefix .. ".")
      if fits and (not best_len or #prefix > best_len) then
        best, best_len, name, optional = i, #prefix, layer.name, layer.optional == true
      end
    end
  end
  return best, name, optional
end

-- Lua text with its comments blanked (line breaks kept, so lines still
-- count), and its strings kept: a long comment `--[==[ ]==]`, a line
-- comment, a string's `--` not taken for one.
local function strip_comments(text)
  local out, i, n = {}, 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == "-" and text:sub(i + 1, i + 1) == "-" then
      local eq = text:match("^%[(=*)%[", i + 2)
      local stop
      if eq then
        local _, e = text:find("]" .. eq .. "]", i + 4 + #eq, true)
        stop = e or n
      else
        stop = (text:find("\n", i, true) or n + 1) - 1
      end
      out[#out + 1] = text:sub(i, stop):gsub("[^\n]", " ")
      i = stop + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      out[#out + 1] = text:sub(i, j)
      i = j + 1
    elseif c == "[" and text:match("^%[=*%[", i) then
      local eq = text:match("^%[(=*)%[", i)
      local _, e = text:find("]" .. eq .. "]", i + 2 + #eq, true)
      e = e or n
      out[#out + 1] = text:sub(i, e)
      i = e + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end
M.strip_comments = strip_comments

--- The streamctl modules `text` requires: `{ [module] = line }` (the first line).
function M.requires(text)
  local found = {}
  local code = strip_comments(text)
  local line = 1
  local pos = 1
  for start, name in code:gmatch("()require%s*%(?%s*[\"'](streamctl[%w_%.]*)[\"']") do
    line = line + select(2, code:sub(pos, start - 1):gsub("\n", ""))
    pos = start
    -- (`require("streamctl." .. name)`: a name made at run time, the registered providers', placed by `scan`)
    if not found[name] and name:sub(-1) ~= "." then found[name] = line end
  end
  for start, name in code:gmatch("()pcall%(%s*require%s*,%s*[\"'](streamctl[%w_%.]*)[\"']") do
    local l = 1 + select(2, code:sub(1, start - 1):gsub("\n", ""))
    if not found[name] or found[name] > l then found[name] = l end
  end
  return found
end

-- The module name of a file under src/ (or the emulator's emulator/src/).
local function module_name(path)
  return (path:gsub("^emulator/src/", ""):gsub("^src/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

-- The providers layer's modules: streamctl.NAME for each name ROOT's
-- streamctl.providers registers (a provider is placed by that one line).
local function registered(root)
  local layer
  for _, l in ipairs(M.LAYERS) do if l.name == "providers" then layer = l end end
  layer.listed = layer.listed or { table.unpack(layer) } -- (the list above: a root without a registry's)
  local ok, names = pcall(dofile, root .. "/src/streamctl/providers.lua")
  if not ok or type(names) ~= "table" then names = nil end
  for i = #layer, 1, -1 do layer[i] = nil end
  for i, name in ipairs(names or {}) do layer[i] = "streamctl." .. name end
  if not names then for i, m in ipairs(layer.listed) do layer[i] = m end end
end

--- Reads every module under ROOT/src/streamctl and ROOT/emulator/src/streamctl,
-- and every program under ROOT/bin and ROOT/emulator/bin (named by its path):
-- `{ [module] = { [required] = line } }`;
-- the providers layer is the one ROOT's streamctl.providers registers.
function M.scan(root)
  registered(root)
  local graph = {}
  local list = assert(io.popen("cd '" .. root .. "' && { find src/streamctl emulator/src/streamctl -name '*.lua' "
    .. "2>/dev/null; find bin emulator/bin -type f 2>/dev/null; } | LC_ALL=C sort"))
  for path in list:lines() do
    local f = assert(io.open(root .. "/" .. path, "rb"))
    local text = f:read("a")
    f:close()
    local name = path:find("^[%w/]*bin/") and path or module_name(path)
    local reqs = M.requires(text)
    reqs[name] = nil -- (a module naming itself, in an example, is no arrow)
    graph[name] = reqs
  end
  list:close()
  return graph
end

-- The cycles of `graph` (Tarjan's strongly connected components of more
-- than one module), each a sorted list of modules.
local function cycles(graph)
  local index, low, on, stack, out, n = {}, {}, {}, {}, {}, 0
  local function visit(v)
    n = n + 1
    index[v], low[v] = n, n
    stack[#stack + 1], on[v] = v, true
    for w in pairs(graph[v] or {}) do
      if graph[w] then
        if not index[w] then
          visit(w)
          if low[w] < low[v] then low[v] = low[w] end
        elseif on[w] and index[w] < low[v] then
          low[v] = index[w]
        end
      end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack)
        on[w] = nil
        comp[#comp + 1] = w
      until w == v
      if #comp > 1 then table.sort(comp) out[#out + 1] = comp end
    end
  end
  local names = {}
  for v in pairs(graph) do names[#names + 1] = v end
  table.sort(names)
  for _, v in ipairs(names) do if not index[v] then visit(v) end end
  return out
end

--- The problems of `graph`, sorted: "cycle: a b c", "up: a (layer) -> b
-- (layer), line N", "optional: a (layer) -> b (layer), line N" (the core
-- naming an optional part), "unplaced: m" (a module no layer holds).
function M.check(graph)
  local problems = {}
  for _, comp in ipairs(cycles(graph)) do problems[#problems + 1] = "cycle: " .. table.concat(comp, " ") end
  for from, reqs in pairs(graph) do
    local lf, nf, of = M.layer_of(from)
    if not lf then problems[#problems + 1] = "unplaced: " .. from end
    for to, line in pairs(reqs) do
      local lt, nt, ot = M.layer_of(to)
      if not lt then
        problems[#problems + 1] = "unplaced: " .. to
      elseif lf and lt > lf then
        problems[#problems + 1] = string.format("up: %s (%s) -> %s (%s), line %d", from, nf, to, nt, line)
      elseif lf and ot and not of and M.GATEWAYS[from] ~= nt then
        problems[#problems + 1] = string.format("optional: %s (%s) -> %s (%s), line %d", from, nf, to, nt, line)
      end
    end
  end
  table.sort(problems)
  local out, last = {}, nil
  for _, p in ipairs(problems) do if p ~= last then out[#out + 1] = p end last = p end
  return out
end

if arg and arg[0] and arg[0]:match("layers%.lua$") and not package.loaded["tools.layers"] then
  local problems = M.check(M.scan(arg[1] or "."))
  for _, p in ipairs(problems) do print(p) end
  os.exit(#problems == 0 and 0 or 1)
end

return M
