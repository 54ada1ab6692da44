--- `streamctl NAME methods [PATTERN]`: every method the provider publishes
-- (streamctl.pipeline.api), what it does, its cap and its parameters, read
-- from the provider's own metadata. It needs no credentials and sends nothing.
-- @module streamctl.cli.methods

local json = require "streamctl.base.json"

local ipairs, tostring, format, concat = ipairs, tostring, string.format, table.concat

local M = {}

local EXIT = { ok = 0, failed = 1, usage = 2 }

-- Why a published method cannot be called, or nil.
local function not_callable(m)
  if m.unsent_body then return "its parameters go in a body streamctl does not send" end
  if m.key then
    return "it requires " .. m.key .. ", a key streamctl never sends as a parameter (set it in the console)"
  end
  return nil
end

-- A parameter as a person reads it: Name (type, required); a list's items
-- or fields after it.
local function param_text(p)
  local t = p.type
  if p.type == "list" then
    if p.fields then
      local f = {}
      for i, s in ipairs(p.fields) do f[i] = s.name end
      t = "list of " .. concat(f, "/") .. ", written " .. p.name .. ".N." .. p.fields[1].name
    else
      t = "list of " .. (p.item or "string")
    end
  end
  local limits = {}
  if p.enum then limits[#limits + 1] = concat(p.enum, "|") end
  if p.min or p.max then limits[#limits + 1] = format("%s..%s", p.min or "", p.max or "") end
  if p.max_len then limits[#limits + 1] = format("at most %d bytes", p.max_len) end
  if p.min_items or p.max_items then
    limits[#limits + 1] = format("%s..%s items", p.min_items or "", p.max_items or "")
  end
  return format("%s (%s%s%s)", p.name, t, #limits > 0 and ", " .. concat(limits, ", ") or "",
    p.required and ", required" or "")
end

local function param_json(p)
  local parts = { '"name":' .. json.string(p.name), '"type":' .. json.string(p.type),
                  '"required":' .. (p.required and "true" or "false") }
  if p.item then parts[#parts + 1] = '"item":' .. json.string(p.item) end
  if p.enum then
    local e = {}
    for i, v in ipairs(p.enum) do e[i] = json.string(v) end
    parts[#parts + 1] = '"enum":[' .. concat(e, ",") .. "]"
  end
  for _, k in ipairs { "min", "max", "max_len", "min_items", "max_items" } do
    if p[k] then parts[#parts + 1] = format('"%s":%s', k, tostring(p[k])) end
  end
  if p.fields then
    local f = {}
    for i, s in ipairs(p.fields) do f[i] = param_json(s) end
    parts[#parts + 1] = '"fields":[' .. concat(f, ",") .. "]"
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- One method as a JSON object, its keys in a fixed order.
local function method_json(m)
  local params = {}
  for i, p in ipairs(m.params) do params[i] = param_json(p) end
  local why = not_callable(m)
  return "{" .. concat({
    '"action":' .. json.string(m.action), '"effect":' .. json.string(m.effect or "change"),
    '"method":' .. json.string(m.method), '"cap":' .. (m.cap and tostring(m.cap) or "null"),
    '"callable":' .. (why and "false" or "true"), '"declared":' .. (m.declared and "true" or "false"),
    '"summary":' .. json.string(m.summary), '"params":[' .. concat(params, ",") .. "]",
  }, ",") .. "}"
end

local function method_lines(out, m)
  local why = not_callable(m)
  local head = format("%s  %s, %s, %s", m.action, m.effect or "change", m.method,
    m.cap and format("%s/s", tostring(m.cap)) or "not paced")
  if not out:line(head) then return nil end
  if m.summary ~= "" and not out:line("    ", m.summary) then return nil end
  if why and not out:line("    not callable: ", why) then return nil end
  local params = {}
  for i, p in ipairs(m.params) do params[i] = param_text(p) end
  return out:line("    ", #params > 0 and concat(params, "; ") or "no parameters")
end

--- Runs the command: `args.pattern` (plain text, any case), `args.output`
-- (table or json); `provider` the provider's command table (its `class`).
-- @return the exit status
function M.run(out, args, provider)
  local class = provider.class
  local list = class.published(args.pattern)
  local source = class.published_source()
  if not source then
    out:warn(provider.name, " publishes no metadata to streamctl: its actions are ",
      concat(class.actions(), ", "))
    return EXIT.usage
  end
  if #list == 0 then
    out:warn(format("no method of %s's has '%s' in its name (streamctl %s methods lists them all)",
      provider.name, tostring(args.pattern), provider.name))
    return EXIT.failed
  end
  local json_lines = (args.output or "table") == "json"
  for _, m in ipairs(list) do
    local ok
    if json_lines then ok = out:line(method_json(m)) else ok = method_lines(out, m) end
    if not ok then out:lost("the list of methods") return EXIT.failed end
  end
  if not json_lines then
    out:line(format("%d method%s, from %s at %s (%s)", #list, #list == 1 and "" or "s", source.repository,
      source.commit:sub(1, 12), source.date))
  end
  if not out:flush() then out:lost("the list of methods") return EXIT.failed end
  return EXIT.ok
end

return M
