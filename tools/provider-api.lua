--- Writes each provider's published methods as data: every method the
-- provider publishes, with its HTTP method, its one-line summary, its cap
-- where its page gives one, and every parameter's name, type and whether it
-- is required, read from the provider's own published metadata.
--
--   lua5.4 tools/provider-api.lua aliyun META_DIR COMMIT DATE > src/streamctl/aliyun/api.lua
--   lua5.4 tools/provider-api.lua zego DOCS_DIR COMMIT DATE > src/streamctl/zego/api.lua
--
-- (make provider-api does both, from the snapshots `fetch` brings:
-- github:aliyun/aliyun-openapi-meta and github:ZEGOCLOUD/docs_all.)
--
-- Alibaba Cloud: META_DIR holds metadatas/live/*.json (each method's
-- parameters: name, position, type, required, sub_parameters) and
-- en-US/live/version.json (each method's summary).
-- ZEGO: DOCS_DIR holds core_products/real-time-voice-video/en/server/
-- api-reference/**.yaml, an OpenAPI 3 file per method; its query parameters
-- (the common ones, `$ref`s to the shared components, left out), or for a
-- POST the top-level properties of its JSON body; its cap from the page's
-- "Rate Limit" note.
--
-- The parameters' types are written in one vocabulary (pipeline/api.lua
-- checks by it): string, integer (32 bits), long (64 bits), number,
-- boolean, json (JSON text), list (Aliyun's RepeatList: Name.N, or
-- Name.N.Field with `fields`; ZEGO's array: the name repeated, `item` the
-- type of each); with ZEGO's limits where its page gives them (`enum`,
-- `min`, `max`, `max_len`, `min_items`, `max_items`, `item_enum`,
-- `item_max_len`). A method whose parameters go in the request's body says
-- how (`body`: "form" for Aliyun's Body parameters, "json" for ZEGO's).
-- The output is sorted: a run on the same snapshot gives the same bytes.
-- Hand-written: the metadata is the providers' own format; no package reads it.
-- @script provider-api

local cjson = require "cjson"

local function fail(msg) io.stderr:write("provider-api: ", msg, "\n") os.exit(1) end

local function read(path)
  local f = io.open(path, "rb")
  if not f then fail("cannot read " .. path) end
  local s = f:read("a")
  f:close()
  return s
end

local function list_files(dir, pattern)
  local p = io.popen("find '" .. dir:gsub("'", "'\\''") .. "' -name '" .. pattern .. "' -type f | LC_ALL=C sort")
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- A Lua string literal for `s` (printable ASCII and UTF-8 as they are).
local function lit(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" end
    if c == '"' or c == "\\" then return "\\" .. c end
    return ("\\%03d"):format(c:byte())
  end) .. '"'
end

-- The first sentence of a description, on one line, markup dropped.
local function first_sentence(text)
  if type(text) ~= "string" then return "" end
  text = ("\n" .. text):gsub("\n#+ [^\n]*", "\n"):gsub("<[^>]*>", " "):gsub("%*%*", "")
  text = text:gsub("%[([^%]]*)%]%b()", "%1"):gsub("%s+", " ")
  text = text:gsub("^%s+", "")
  local s = text:match("^(.-[%.。])%s") or text:match("^(.-[%.。])$") or text
  return (s:gsub("%s+$", ""))
end

local ALIYUN_TYPES = { String = "string", Integer = "integer", Long = "long", Float = "number",
                       Double = "number", Boolean = "boolean", Json = "json", RepeatList = "list" }

local function aliyun_param(p, where)
  local t = ALIYUN_TYPES[p.type]
  if not t then fail(where .. ": parameter " .. tostring(p.name) .. " has type " .. tostring(p.type)) end
  local out = { name = p.name, type = t, required = p.required == true or nil,
                body = p.position == "Body" or nil }
  if p.position ~= "Query" and p.position ~= "Body" then
    fail(where .. ": parameter " .. p.name .. " is in " .. tostring(p.position))
  end
  local subs = p.sub_parameters
  if t == "list" then
    if type(subs) == "table" and #subs > 0 then
      out.fields = {}
      for i, s in ipairs(subs) do out.fields[i] = aliyun_param(s, where .. " " .. p.name) end
      table.sort(out.fields, function(a, b) return a.name < b.name end)
    else
      out.item = "string"
    end
  elseif t == "json" and type(subs) == "table" and #subs > 0 then
    out.fields = {}
    for i, s in ipairs(subs) do out.fields[i] = aliyun_param(s, where .. " " .. p.name) end
    table.sort(out.fields, function(a, b) return a.name < b.name end)
  end
  return out
end

local function aliyun(dir)
  local index = cjson.decode(read(dir .. "/en-US/live/version.json"))
  local methods = {}
  for _, path in ipairs(list_files(dir .. "/metadatas/live", "*.json")) do
    local m = cjson.decode(read(path))
    local name = m.name
    if type(name) ~= "string" or not name:find("^%u%w+$") then fail(path .. ": no method name") end
    local about = index.apis[name]
    if not about then fail(path .. ": " .. name .. " is not in en-US/live/version.json") end
    local method = m.method
    if method ~= "GET" and method ~= "POST" and method ~= "GET|POST" then
      fail(path .. ": method " .. tostring(method))
    end
    local params = {}
    for i, p in ipairs(m.parameters) do params[i] = aliyun_param(p, name) end
    table.sort(params, function(a, b) return a.name < b.name end)
    local body
    for _, p in ipairs(params) do if p.body then body = "form" end end
    methods[name] = { method = method, summary = first_sentence(about.summary), params = params,
                      deprecated = about.deprecated == true or nil, body = body }
  end
  for name in pairs(index.apis) do
    if not methods[name] then fail(name .. " is in version.json but has no metadatas/live/" .. name .. ".json") end
  end
  return methods, index.version
end

-- ZEGO ---------------------------------------------------------------------

local ZEGO_COMMON = { AppId = true, SignatureNonce = true, Timestamp = true, Signature = true,
                      SignatureVersion = true, IsTest = true, Action = true }

-- (`doc`: the page, whose own components a `$ref` names)
local function zego_type(schema, where, doc)
  schema = schema or {}
  local ref = schema["$ref"]
  if ref then
    local name = ref:match("^#/components/schemas/(.+)$")
    schema = name and doc.components and doc.components.schemas and doc.components.schemas[name]
    if type(schema) ~= "table" then fail(where .. ": $ref " .. ref .. " not in the page") end
  end
  local t = schema.type
  if t == nil and schema.properties then t = "object" end
  if t == "string" then return "string" end
  if t == "integer" then return schema.format == "int64" and "long" or "integer" end
  if t == "Int64" then return "long" end
  if t == "number" then return "number" end
  if t == "boolean" then return "boolean" end
  if t == "object" then return "json" end
  if t == "array" then return "list" end
  fail(where .. ": schema type " .. tostring(t))
end

-- A schema's own limits, where the page gives them: its values (`enum`),
-- its range (`min`, `max`), its length in bytes (`max_len`), a list's
-- count (`min_items`, `max_items`).
local function zego_limits(out, schema)
  if type(schema.enum) == "table" then
    out.enum = {}
    for i, v in ipairs(schema.enum) do out.enum[i] = tostring(v) end
  end
  out.min, out.max = tonumber(schema.minimum), tonumber(schema.maximum)
  out.max_len = tonumber(schema.maxLength)
  out.min_items, out.max_items = tonumber(schema.minItems), tonumber(schema.maxItems)
end

local function zego_param(name, schema, required, where, doc)
  local t = zego_type(schema, where .. " " .. name, doc)
  local out = { name = name, type = t, required = required or nil }
  zego_limits(out, schema or {})
  if t == "list" then
    out.item = zego_type(schema.items, where .. " " .. name .. " items", doc)
    if type(schema.items) == "table" and not schema.items["$ref"] then
      local item = {}
      zego_limits(item, schema.items)
      out.item_enum, out.item_max_len = item.enum, item.max_len
    end
  end
  return out
end

-- The cap and the test environment's from a page's Rate Limit note:
-- "... 20 times/second (test environment: 5 times/second)".
local function zego_caps(description)
  local note = type(description) == "string" and description:match('Rate Limit">(.-)</Note>')
  if not note then return nil end
  local cap = note:match("(%d+) times?/second") or note:match("(%d+) requests?/second")
    or note:match("(%d+) times?/1 second")
  local test = note:match("test environment: (%d+) ")
  return tonumber(cap), tonumber(test)
end

local function zego(dir, lyaml)
  local root = dir .. "/core_products/real-time-voice-video/en/server/api-reference"
  local methods = {}
  for _, path in ipairs(list_files(root, "*.yaml")) do
    if not path:find("shared%-components%.yaml$") then
      local doc = lyaml.load(read(path))
      for _, ops in pairs(doc.paths or {}) do
        for verb, op in pairs(ops) do
          local name
          local params = {}
          for _, p in ipairs(op.parameters or {}) do
            if p.name == "Action" then
              name = p.schema and p.schema.enum and p.schema.enum[1]
            elseif p.name and not ZEGO_COMMON[p.name] then
              if p["in"] ~= "query" then fail(path .. ": " .. p.name .. " is in " .. tostring(p["in"])) end
              params[#params + 1] = zego_param(p.name, p.schema, p.required == true, path, doc)
            end
          end
          if type(name) ~= "string" then fail(path .. ": no Action") end
          local body = op.requestBody
          if body then
            local schema = body.content and body.content["application/json"]
              and body.content["application/json"].schema
            local ref = schema and schema["$ref"]
            if ref then
              schema = doc.components.schemas[ref:match("^#/components/schemas/(.+)$")]
            end
            if type(schema) ~= "table" or schema.type ~= "object" then fail(path .. ": a body not a JSON object") end
            local required = {}
            for _, r in ipairs(schema.required or {}) do required[r] = true end
            for pname, s in pairs(schema.properties or {}) do
              local p = zego_param(pname, s, required[pname], path, doc)
              p.body = true
              params[#params + 1] = p
            end
          end
          table.sort(params, function(a, b) return a.name < b.name end)
          local cap, test_cap = zego_caps(op.description)
          if methods[name] then fail(path .. ": " .. name .. " twice") end
          methods[name] = { method = verb:upper(), summary = first_sentence(op.description), params = params,
                            cap = cap, test_cap = test_cap, body = body and "json" or nil }
        end
      end
    end
  end
  return methods
end

-- Output --------------------------------------------------------------------

local function sorted_keys(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = name end
  table.sort(k)
  return k
end

local function values_text(list)
  local v = {}
  for i, s in ipairs(list) do v[i] = lit(s) end
  return "{ " .. table.concat(v, ", ") .. " }"
end

local function param_text(p)
  local parts = { "name = " .. lit(p.name), "type = " .. lit(p.type) }
  if p.item then parts[#parts + 1] = "item = " .. lit(p.item) end
  if p.required then parts[#parts + 1] = "required = true" end
  if p.body then parts[#parts + 1] = "body = true" end
  if p.enum then parts[#parts + 1] = "enum = " .. values_text(p.enum) end
  for _, k in ipairs { "min", "max", "max_len", "min_items", "max_items", "item_max_len" } do
    if p[k] then parts[#parts + 1] = k .. " = " .. ("%.17g"):format(p[k]) end
  end
  if p.item_enum then parts[#parts + 1] = "item_enum = " .. values_text(p.item_enum) end
  if p.fields then
    local f = {}
    for i, s in ipairs(p.fields) do f[i] = "{ " .. param_text(s) .. " }" end
    parts[#parts + 1] = "fields = { " .. table.concat(f, ", ") .. " }"
  end
  return table.concat(parts, ", ")
end

local function write(provider, methods, source)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("--- " .. source.title .. ": every method " .. source.who .. " publishes, as data.")
  w("-- Generated by tools/provider-api.lua (make provider-api) from " .. source.repository)
  w("-- at " .. source.commit .. " (" .. source.date .. "), " .. source.paths .. ".")
  w("-- Do not edit: the facts are the provider's; regenerate from a newer snapshot.")
  w("-- Read by streamctl.pipeline.api (types: string, integer, long, number, boolean, json, list).")
  w("-- @module streamctl." .. provider .. ".api")
  w("")
  w("return {")
  w("  source = { repository = " .. lit(source.repository) .. ", commit = " .. lit(source.commit) .. ", date = "
    .. lit(source.date) .. " },")
  w("  methods = {")
  for _, name in ipairs(sorted_keys(methods)) do
    local m = methods[name]
    local head = "    " .. name .. " = { method = " .. lit(m.method)
    if m.cap then head = head .. ", cap = " .. m.cap end
    if m.test_cap then head = head .. ", test_cap = " .. m.test_cap end
    if m.body then head = head .. ", body = " .. lit(m.body) end
    if m.deprecated then head = head .. ", deprecated = true" end
    w(head .. ",")
    w("      summary = " .. lit(m.summary) .. ",")
    if #m.params == 0 then
      w("      params = {} },")
    else
      w("      params = {")
      for _, p in ipairs(m.params) do w("        { " .. param_text(p) .. " },") end
      w("      } },")
    end
  end
  w("  },")
  w("}")
  return table.concat(out, "\n") .. "\n"
end

local provider, dir, commit, date = arg[1], arg[2], arg[3], arg[4]
if not (provider and dir and commit and date) or not commit:find("^%x+$")
    or not date:find("^%d%d%d%d%-%d%d%-%d%d$") then
  fail("usage: lua5.4 tools/provider-api.lua aliyun|zego DIR COMMIT YYYY-MM-DD")
end
if provider == "aliyun" then
  local methods, version = aliyun(dir)
  if version ~= "2016-11-01" then fail("en-US/live/version.json is version " .. tostring(version)) end
  io.write(write("aliyun", methods, {
    title = "ApsaraVideo Live 2016-11-01", who = "Alibaba Cloud", repository = "github.com/aliyun/aliyun-openapi-meta",
    commit = commit, date = date, paths = "metadatas/live/*.json and en-US/live/version.json" }))
elseif provider == "zego" then
  local methods = zego(dir, require "lyaml")
  io.write(write("zego", methods, {
    title = "ZEGOCLOUD Server API v2 (real-time voice and video)", who = "ZEGO",
    repository = "github.com/ZEGOCLOUD/docs_all", commit = commit, date = date,
    paths = "core_products/real-time-voice-video/en/server/api-reference/**/*.yaml" }))
else
  fail("provider must be aliyun or zego")
end
