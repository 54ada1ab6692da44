--- Checking of what callers pass: a named method's fields, and the options of
-- `new()` (clients, rate limiters, sequence generators, metrics, stores).
--
-- A schema is an array of specs, in the order they are checked and reported:
--
--   { name = "domain_name", param = "DomainName", type = "string", required = true,
--     max_len = 256 (bytes), max_chars = 2000 (UTF-8 characters), allow_empty = true,
--     enum = {...}, prefix = {"rtmp://"} (case-insensitive), min = n, max = n,
--     shape = "name" | "domain" (see SHAPES), also = {"*"} (values taken beside the shape),
--     min_items = n, max_items = n, default = v,
--     note = "what the help says of its values" (not checked here) }
--
-- Types: "string" (non-empty, no CR/LF/NUL), "integer", "number"
-- (`min_exclusive`), "time" (Unix seconds or "YYYY-MM-DDThh:mm:ssZ"; sent as
-- the UTC string, or as Unix seconds with `as = "unix"`), "strings" (array of
-- non-empty strings), "yesno" (boolean or "yes"/"no"), "boolean", "function",
-- "object" (a table or userdata with the functions named in `methods`, and
-- those in `optional` when present), and "custom" (`check(v) -> value | nil,
-- rule [, true]`, true when the rule is a whole message of its own).
-- `nullable_false = true` also accepts `false`, meaning "switched off".
--
-- `param` is the name the service gives the field; its absence marks
-- a local option (such as `concurrency`): checked, returned in `values`,
-- never sent.
--
-- `fields` returns the service parameters (service names, Lua values ready
-- for the provider's encoder) and the parsed values by field name; `options`
-- returns the parsed values. Both return `nil, message` naming the field or
-- option and the rule; an unknown name is refused with a "did you mean".
-- `construct` is `options` for a library constructor: `nil, err` with an
-- error object (streamctl.base.errors' convention), raising only when the
-- options are not a table at all. `value` checks one value against one
-- spec (what a custom check built on a schema uses).
--
-- `decimal` is the one integer-to-decimal formatting of the library.
-- @module streamctl.base.validate

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring, tonumber, pcall, error
local floor, huge = math.floor, math.huge
local format, sub, byte, find, lower = string.format, string.sub, string.byte, string.find, string.lower
local concat, sort = table.concat, table.sort

local M = {}

local function is_integer(n)
  return type(n) == "number" and n == floor(n) and n > -huge and n < huge
end

--- The decimal digits of an integer-valued number (a minus sign when
-- negative), the same in Lua 5.1 and 5.4: "%.0f" never gives ".0" (5.4's
-- tostring of a float) nor an exponent (%d refuses floats in 5.4, and
-- tostring gives "1e+15"), exact below 2^53.
function M.decimal(v)
  return format("%.0f", v)
end

--- Edit distance, for "did you mean" on misspelt names.
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = byte(a, i) == byte(b, j) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

-- The candidate closest to `name` (an edit distance of at most 3), or nil.
local function closest(name, candidates)
  local best, bestd
  for _, c in ipairs(candidates) do
    local d = distance(name, c)
    if not bestd or d < bestd then best, bestd = c, d end
  end
  if bestd and bestd <= 3 then return best end
  return nil
end

--- " (did you mean 'x'?)" for `name` among `candidates`, or "".
function M.hint(name, candidates)
  local best = closest(name, candidates)
  return best and format(" (did you mean '%s'?)", best) or ""
end

local function quote_list(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = "'" .. tostring(v) .. "'" end
  return concat(out, ", ")
end

--- Parses a time given as Unix seconds or a UTC string: seconds, or nil, rule.
function M.parse_time(v)
  if type(v) == "number" then
    if not is_integer(v) or v < 0 then return nil, "must be whole Unix seconds (>= 0)" end
    if v > 253402300799 then return nil, "is beyond the year 9999" end
    return v
  elseif type(v) == "string" then
    local t, err = core.parse_utc_timestamp(v)
    if not t then return nil, err end
    return t
  end
  return nil, "must be Unix seconds or a UTC time string YYYY-MM-DDThh:mm:ssZ"
end

local checkers = {}

-- Characters of UTF-8 text: the bytes that do not continue a sequence.
local function utf8_length(s)
  local _, continuation = s:gsub("[\128-\191]", "")
  return #s - continuation
end

-- The longest string a field takes unless its spec says otherwise, in
-- bytes: stream names, domains, regions, IDs (the providers document 256
-- and less for theirs). URLs say 2000 characters themselves.
local DEFAULT_MAX_LEN = 256

local text_flaws = core.text_flaws

--- Is `s` valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF)?
function M.is_utf8(s)
  return text_flaws(s) < 4 -- (the UTF-8 flag is the highest: see streamctl.core)
end

-- What an identifier a provider keys its state by may hold, by `shape`.
-- The providers' pages say little; where they are silent streamctl takes the
-- strictest reading (docs/clients.md, "Names and domains"), so a name is
-- refused here, with the field named, rather than stored or matched oddly
-- there. Each returns the rule `v` breaks, or nil.
local SHAPES = {}

-- The character at byte `i` of `v`, said so a reader sees it (a blank as "a space").
local function said_char(v, i)
  local c = sub(v, i, i)
  if c == " " then return "a space" end
  local b = c:byte()
  if b >= 0x80 then
    -- (the code point, so that a look-alike, U+2010 for '-', or an invisible
    -- one, U+200B, is named: the text is UTF-8 by now, see text_rule)
    local n = b >= 0xF0 and 4 or b >= 0xE0 and 3 or 2
    local cp = b % (n == 4 and 8 or n == 3 and 16 or 32)
    for k = i + 1, i + n - 1 do cp = cp * 64 + (byte(v, k) or 0x80) % 64 end
    return format("a non-ASCII character (U+%04X)", cp)
  end
  return "'" .. c .. "'"
end

--- A note for a value that breaks its field's rule with a '#' after its
-- first character: list files take a '#' as a comment only at the start
-- of a line, so "name # why" is a name with a '#' in it, refused rather
-- than cut (docs/reconcile.md). "" when there is none.
function M.comment_hint(v)
  if type(v) == "string" and find(v, "#", 2, true) then
    return " (a '#' after a name is not a comment: a comment is a line of its own that starts with '#')"
  end
  return ""
end

-- AppName, StreamName (Aliyun), StreamId (ZEGO): letters, digits, '-' and '_'.
function SHAPES.name(v)
  local i = find(v, "[^%w_%-]")
  if not i then return nil end
  return format("must hold only letters, digits, '-' and '_' (found %s at byte %d)", said_char(v, i), i)
end

-- DomainName: a host name as the provider's console adds it: lower-case
-- labels of letters, digits and '-' (none first or last), 1-63 bytes each,
-- joined by dots, at most 253 bytes; no scheme, port, path or final dot.
function SHAPES.domain(v)
  if find(v, "^%a[%w+.-]*://") then return "must be a domain name (push.example.com), not a URL" end
  if find(v, "[:/]") then return "must be a domain name alone (push.example.com): no port or path" end
  if find(v, "%u") then return "must be lower case (" .. lower(v) .. ")" end
  if #v > 253 then return format("must be at most 253 bytes (got %d)", #v) end
  if sub(v, -1) == "." then return "must not end with a dot" end
  for label in (v .. "."):gmatch("([^.]*)%.") do
    if label == "" then return "must not hold an empty label (two dots, or a dot first)" end
    if #label > 63 then return format("must hold labels of at most 63 bytes (got %d)", #label) end
    local i = find(label, "[^%l%d%-]")
    if i then return format("must hold only letters, digits, '-' and dots (found %s)", said_char(label, i)) end
    if sub(label, 1, 1) == "-" or sub(label, -1) == "-" then
      return "must not hold a label that starts or ends with '-'"
    end
  end
  return nil
end

-- The shape rule `v` breaks for field `f`, or nil (a value in `f.also` is taken as it is).
local function shape_rule(f, v)
  local shape, also = f.shape, f.also
  if not shape then return nil end
  if also then -- (no table made when there is none: this runs for every ID of a batch)
    for i = 1, #also do if v == also[i] then return nil end end
  end
  return SHAPES[shape](v)
end

-- The rule a text value breaks, or nil: its length (checked first, so a
-- huge value costs nothing more), then CR/LF/NUL, other control characters
-- (TAB, DEL...), UTF-8, and the field's shape.
local function text_rule_of(f, v)
  local limit = f.max_len or (not f.max_chars and DEFAULT_MAX_LEN) or nil
  if limit and #v > limit then return format("must be at most %d bytes (got %d)", limit, #v) end
  if f.max_chars and #v > 4 * f.max_chars then
    return format("must be at most %d characters (got more)", f.max_chars)
  end
  local flaws = text_flaws(v) -- one pass in C: 1 CR/LF/NUL, 2 other control characters, 4 not UTF-8
  if flaws == 0 and not f.max_chars then return shape_rule(f, v) end -- (the usual case)
  if flaws % 2 == 1 then return "must not contain CR, LF or NUL" end
  if flaws % 4 >= 2 then return "must not contain control characters (TAB, DEL...)" end
  if flaws >= 4 then return "must be valid UTF-8" end
  if f.max_chars and #v > f.max_chars and utf8_length(v) > f.max_chars then
    return format("must be at most %d characters (got %d)", f.max_chars, utf8_length(v))
  end
  return shape_rule(f, v)
end

-- The values each field's rule passed lately (field spec -> set of
-- values; `memo_n`: how many): the same domain, app and stream come with
-- call after call, and a rule is a function of the value alone, so one
-- that passed is not walked again. At most MEMO values a field, forgotten
-- all at once when full (a batch of a million names costs one table write
-- each).
local MEMO = 256
local passed, memo_n = setmetatable({}, { __mode = "k" }), setmetatable({}, { __mode = "k" })

--- The length, character and shape rule a text value of field `f` breaks,
-- or nil (what `call` applies to a parameter a named method's field sets).
local function text_rule(f, v)
  local memo = passed[f]
  if memo and memo[v] then return nil end
  local why = text_rule_of(f, v)
  if why == nil then
    local n = memo_n[f] or MEMO
    if n >= MEMO then
      memo, n = {}, 0
      passed[f] = memo
    end
    memo[v], memo_n[f] = true, n + 1
  end
  return why
end
M.text_rule = text_rule

function checkers.string(f, v)
  if type(v) ~= "string" then return nil, "must be a string" end
  if v == "" and not f.allow_empty then return nil, "must not be empty" end
  local why = text_rule(f, v)
  if why then return nil, why end
  if f.enum then
    for _, e in ipairs(f.enum) do if v == e then return v end end
    return nil, "must be one of " .. quote_list(f.enum)
  end
  if f.prefix then -- URL schemes: case-insensitive
    for _, p in ipairs(f.prefix) do if lower(sub(v, 1, #p)) == p then return v end end
    return nil, "must start with " .. quote_list(f.prefix)
  end
  return v
end

-- The largest integer a number holds exactly: beyond it a value is sent
-- with an exponent or rounded.
local MAX_INTEGER = 2 ^ 53 - 1

-- Fields (which may come from text) take numbers written as decimal strings;
-- options (`strict`) take numbers only.
function checkers.integer(f, v, strict)
  if not strict and type(v) == "string" and find(v, "^%-?%d+$") then v = tonumber(v) end
  if not is_integer(v) then return nil, "must be an integer" end
  if v > MAX_INTEGER or v < -MAX_INTEGER then
    return nil, "must be an integer between -(2^53 - 1) and 2^53 - 1"
  end
  if f.min and v < f.min then return nil, "must be at least " .. M.decimal(f.min) end
  if f.max and v > f.max then return nil, "must be at most " .. M.decimal(f.max) end
  return v
end

function checkers.number(f, v, strict)
  if not strict and type(v) == "string" and find(v, "^%-?%d+%.?%d*$") then v = tonumber(v) end
  if type(v) ~= "number" or v ~= v or v == huge or v == -huge then return nil, "must be a finite number" end
  if f.min_exclusive and v <= f.min_exclusive then
    return nil, "must be greater than " .. tostring(f.min_exclusive)
  end
  if f.min and v < f.min then return nil, "must be at least " .. tostring(f.min) end
  if f.max_exclusive and v >= f.max_exclusive then
    return nil, "must be less than " .. tostring(f.max_exclusive)
  end
  return v
end

function checkers.time(_, v)
  return M.parse_time(v)
end

function checkers.strings(f, v)
  if type(v) ~= "table" then return nil, "must be an array of strings" end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or not is_integer(k) then
      return nil, "must be an array of strings (found key " .. tostring(k) .. ")"
    end
  end
  if f.min_items and n < f.min_items then
    return nil, format("must have at least %d item%s (got %d)", f.min_items, f.min_items == 1 and "" or "s", n)
  end
  if f.max_items and n > f.max_items then
    return nil, format("must have at most %d items (got %d)", f.max_items, n)
  end
  for i = 1, n do
    local s = v[i]
    if type(s) ~= "string" or s == "" then return nil, format("item %d must be a non-empty string", i) end
    local why = text_rule(f, s)
    if why then return nil, format("item %d %s", i, why) end
  end
  return v
end

function checkers.yesno(_, v)
  if v == true or v == "yes" then return "yes" end
  if v == false or v == "no" then return "no" end
  return nil, "must be true, false, 'yes' or 'no'"
end

checkers["function"] = function(_, v)
  if type(v) ~= "function" then return nil, "must be a function" end
  return v
end

function checkers.boolean(_, v)
  if type(v) ~= "boolean" then return nil, "must be true or false" end
  return v
end

--- `obj[name]`, or nil where looking it up raises (a userdata without
-- __index would).
function M.method_of(obj, name)
  local ok, m = pcall(function() return obj[name] end)
  return ok and m or nil
end
local method_of = M.method_of

function checkers.object(f, v)
  if type(v) ~= "table" and type(v) ~= "userdata" then
    return nil, "must be an object with methods " .. quote_list(f.methods)
  end
  for _, m in ipairs(f.methods) do
    if type(method_of(v, m)) ~= "function" then
      return nil, format("must be an object with methods %s (it has no '%s')", quote_list(f.methods), m)
    end
  end
  for _, m in ipairs(f.optional or {}) do
    local fn = method_of(v, m)
    if fn ~= nil and type(fn) ~= "function" then return nil, format("has an '%s' that is not a function", m) end
  end
  return v
end

function checkers.custom(f, v)
  return f.check(v)
end

--- Checks one value `v` against one spec `f` (its `type` and rules, as in a
-- schema; `strict` as for options: numbers only). Returns the parsed value,
-- or nil and the rule broken ("must be ...", without the name).
function M.value(f, v, strict)
  return checkers[f.type](f, v, strict)
end

-- A schema's specs by name, made once per schema (and again if it grew).
local known_of, known_size = setmetatable({}, { __mode = "k" }), setmetatable({}, { __mode = "k" })
local function known_names(schema)
  local known = known_of[schema]
  if known and known_size[schema] == #schema then return known end
  known = {}
  for _, f in ipairs(schema) do known[f.name] = f end
  known_of[schema], known_size[schema] = known, #schema
  return known
end

-- The shared loop: unknown names first, then each spec in order. Messages
-- name `prefix .. name` ("retry.attempts" for a nested table of options).
local function check(schema, input, noun, owner, prefix)
  prefix = prefix or ""
  local known, unknown = known_names(schema), nil
  for k in pairs(input) do
    if not known[k] then
      unknown = unknown or {}
      unknown[#unknown + 1] = prefix .. tostring(k)
    end
  end
  if unknown then
    sort(unknown)
    local names = {}
    for i, f in ipairs(schema) do names[i] = prefix .. f.name end
    return nil, format("%s '%s' is not %s of %s%s", noun, unknown[1], noun == "option" and "an option" or "a field",
      owner, M.hint(unknown[1], names))
  end
  local params, values = {}, {}
  for _, f in ipairs(schema) do
    local name, v = f.name, input[f.name]
    if v == nil then v = f.default end
    if v == nil then
      if f.required then return nil, format("%s '%s%s' is required", noun, prefix, name) end
    elseif v == false and f.nullable_false then
      values[name] = false
    else
      -- A custom check may return a whole message (third result true).
      local parsed, rule, whole = checkers[f.type](f, v, noun == "option")
      if parsed == nil then return nil, whole and rule or format("%s '%s%s' %s", noun, prefix, name, rule) end
      values[name] = parsed
      if f.param then
        if f.type == "time" and f.as ~= "unix" then
          params[f.param] = core.utc_timestamp(parsed)
        else
          params[f.param] = parsed
        end
      end
    end
  end
  return params, values
end

--- Checks a named method's `input` against `schema`.
-- @param schema the method's field specs
-- @param input the caller's table of snake_case fields
-- @param method the method name, for messages
-- @return params (service name -> value), values (field -> parsed value); or nil, message
function M.fields(schema, input, method)
  if type(input) ~= "table" then
    return nil, method .. " takes a table of fields"
  end
  return check(schema, input, "field", method)
end

--- Checks the options table `input` (nil is an empty one) given to `owner`.
-- @param schema the options' schema (see above)
-- @param input the options given
-- @param owner the function they were given to, for messages ("streamctl.aliyun.new")
-- @param prefix (optional) put before every option name in messages
-- @return values (option -> parsed value); or nil, message naming the option
function M.options(schema, input, owner, prefix)
  if input == nil then input = {} end
  if type(input) ~= "table" then return nil, "options must be a table" end
  local params, values = check(schema, input, "option", owner, prefix)
  if not params then return nil, values end
  return values
end

--- `options` for a library constructor `fname` (streamctl.base.errors'
-- convention): options that are not a table are a misuse and raise "bad
-- argument #argn to 'fname' (opts must be a table or nil)" (argn: 1 unless
-- given) at `level` (3 unless given: the caller of the constructor that
-- calls this; one more for each helper between them); a bad or unknown
-- option is an expected failure: nil and an InvalidParameter error object
-- whose message names it.
-- @return values (option -> parsed value); or nil, err
function M.construct(schema, input, owner, fname, argn, level)
  if input ~= nil and type(input) ~= "table" then
    error(format("bad argument #%d to '%s' (opts must be a table or nil)", argn or 1, fname), level or 3)
  end
  local values, why = M.options(schema, input, owner)
  if not values then return nil, errors.invalid(nil, nil, why) end
  return values
end

return M
