-- A ZEGO reconciler's state as any text (a file edited by hand, a disk's
-- garbage): streamctl.base.json.strict_flaw and the state loader
-- (reconcile.zego_forget over a store holding it, which reads the state as
-- zego does) never raise; the loader takes it or refuses it as InvalidState,
-- sending nothing; and what strict_flaw lets through holds no key twice in
-- any object (counted here another way: the text's key tokens against the
-- keys of what lua-cjson decoded) and no NUL, after which lua-cjson reads
-- nothing.
local cjson = require "cjson.safe"
local json = require "streamctl.base.json"
local reconcile = require "streamctl.operator.reconcile"
local u = require "targets.util"

local KEY = "streamctl:reconcile:zego:1"

-- How many object keys and arrays `v` holds, all levels.
local function tally(v)
  if type(v) ~= "table" then return 0 end
  local n = 0
  for k, x in pairs(v) do
    if type(k) == "string" then n = n + 1 end
    n = n + tally(x)
  end
  return n
end

-- How many `"...":` key tokens `text` holds (strings followed by a colon).
local function key_tokens(text)
  local n, pos = 0, 1
  while true do
    local i = text:find('"', pos, true)
    if not i then return n end
    local j = i + 1
    while true do
      local k = text:find('["\\]', j)
      if not k then return n end
      if text:byte(k) == 92 then j = k + 2 else j = k break end
    end
    if text:find("^[ \t\r\n]*:", j + 1) then n = n + 1 end
    pos = j + 1
  end
end

return function(data)
  local flaw = json.strict_flaw(data, true)
  u.check(flaw == nil or (type(flaw) == "string" and flaw:find("^has ")), "a flaw said otherwise: %s", tostring(flaw))
  local loose = json.strict_flaw(data)
  u.check(loose == nil or loose:find("^has the key ") or loose:find("^has a NUL byte"), "an array refused without "
    .. "no_arrays: %s", tostring(loose))
  local v = cjson.decode(data)
  if loose == nil and type(v) == "table" then
    -- no key twice: every key token of the text is a key of the decoded table
    u.check(key_tokens(data) == tally(v), "a duplicate let through (%d key tokens, %d keys)", key_tokens(data),
      tally(v))
  end
  local ok, took, err = pcall(reconcile.zego_forget, { get = function() return data end,
    set = function() return true end }, KEY, {})
  u.check(ok, "the loader raised: %s", tostring(took))
  u.check(took == true or (took == nil and type(err) == "table" and err.code == "InvalidState" and err.sent == false),
    "the loader answered %s", tostring(err and err.code))
end
