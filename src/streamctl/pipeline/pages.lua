--- A paged listing, read whole or not at all: the one reader of every
-- listing a provider answers in pages (Alibaba Cloud's block list, the
-- account's domains, relay tasks; docs/clients.md, "Paged listings").
--
-- A page is checked before anything of it is used, by one rule for every
-- listing: its entries a list of at most the size asked, each an entry of
-- the listing (a key: a stream, a domain, a task); its total (TotalNum,
-- TotalCount, Total: the providers always send one) a count, a whole
-- number 0 <= n <= MAX_COUNT, the same on every page; the entries it holds
-- exactly those its total leaves it (the size asked, or the rest on the
-- last page); its page number, when it echoes one, the page asked; no
-- entry listed twice. A page that breaks one is refused naming the
-- listing, the page and the flaw, and the caller sends nothing. A read
-- that would need more than `max_pages` is refused at its first page.
--
-- A look-up reads one page (`page`): it tells a flawed answer (refused)
-- from a valid page that is not the whole listing (`whole` false: what it
-- does not list it cannot prove absent).
-- @module streamctl.pipeline.pages

local errors = require "streamctl.base.errors"

local type, pairs, ipairs, tostring, math_type = type, pairs, ipairs, tostring, math.type
local format, floor, min = string.format, math.floor, math.min

local M = {}

--- The largest count a provider could send: no listing holds a thousand
-- million entries (Alibaba Cloud's block list holds 10,000 places).
M.MAX_COUNT = 1e9

--- `v` as a count (a whole number 0 <= n <= MAX_COUNT), or nil: a text,
-- a fraction, a negative, 1e300, inf or NaN is none.
function M.count(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v > M.MAX_COUNT or floor(v) ~= v then return nil end
  if math_type and math_type(v) == "float" then v = floor(v) end -- (60.0 from a JSON decoder: 60)
  return v
end

-- How a value is shown in a message: a text quoted, a number as Lua writes it.
local function shown(v)
  if type(v) == "string" then return format("%q", v) end
  return tostring(v)
end

-- The entries of a page (`listing.entries(res)`), checked as a list of
-- keys: the keys, or nil and the flaw.
local function keys_of(listing, list)
  local n = #list
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
      return nil, format("has a %s that is not a list (key %s)", listing.list, tostring(k))
    end
  end
  local keys = {}
  for i = 1, n do
    local key, what = listing.key(list[i])
    if type(key) ~= "string" or key == "" then
      return nil, format("has a %s entry %d that is not %s", listing.list, i, what or listing.what)
    end
    keys[i] = key
  end
  return keys
end

--- A listing as `check` takes it, from its fields: `list` (the answer's
-- field holding the entries), `inner` (optional: the field inside it that
-- holds them, as Alibaba Cloud wraps a list, `StreamUrls.StreamUrl`),
-- `total`, `number`, `what` and `key` as below.
function M.listing(f)
  local list, inner = f.list, f.inner
  return { list = list, total = f.total, number = f.number, what = f.what, key = f.key,
    entries = function(res)
      local entries = res[list]
      if inner and type(entries) == "table" and entries[inner] ~= nil then entries = entries[inner] end
      return entries
    end }
end

--- One page of `listing` checked: its keys, its total and, when it holds
-- fewer entries than its total leaves it, the words saying so (a short
-- page: a read refuses it, a look-up cannot prove absence from it); or nil
-- and the flaw (a message fragment). `listing`: `list` (the entries'
-- name, e.g. "StreamUrls"), `entries(res)` (the page's list; nil when the
-- answer has none), `key(entry)` (its key, or nil and what it is not),
-- `what` (an entry, said when it is not one), `total` (the total's field),
-- `number` (the field that echoes the page asked, optional).
-- @tparam table listing the listing
-- @tparam table res the page's answer
-- @tparam int page the page asked (from 1)
-- @tparam int size the entries asked per page
function M.check(listing, res, page, size)
  local raw = res[listing.total]
  if raw == nil then return nil, "has no " .. listing.total end
  local total = M.count(raw)
  if not total then return nil, format("has a %s that is not a count (%s)", listing.total, tostring(raw)) end
  local echoed = listing.number and res[listing.number]
  if echoed ~= nil and M.count(echoed) ~= page then
    return nil, format("answers as page %s where page %d was asked", shown(echoed), page)
  end
  local left = min(size, total - (page - 1) * size)
  if left < 0 then left = 0 end
  local list = listing.entries(res)
  if list == nil and left == 0 then list = {} end
  if type(list) ~= "table" then return nil, "has no " .. listing.list .. " list" end
  local keys, flaw = keys_of(listing, list)
  if not keys then return nil, flaw end
  local n = #keys
  if n > size then return nil, format("holds %d entries, more than the %d asked", n, size) end
  if n > left then
    return nil, format("holds %d entries, but its %s of %d leaves it %d", n, listing.total, total, left)
  end
  if n < left then
    return keys, total, format("ends the list at %d entries, but its %s is %d", (page - 1) * size + n,
      listing.total, total)
  end
  return keys, total
end

-- The refusal of page `page`: the listing and the flaw named, nothing sent.
local function refused(o, res, page, flaw)
  return errors.new {
    provider = o.provider, action = o.action, code = "InvalidResponse", kind = "response", page = page,
    request_id = type(res) == "table" and res.RequestId or nil, listing = o.name,
    message = format("page %d of %s %s: %snothing was sent", page, o.name, flaw, o.context or ""),
  }
end

-- The refusal of a listing longer than `max_pages` of `size`.
local function too_long(o, total, size, max_pages)
  return errors.new {
    provider = o.provider, action = o.action, code = "TooManyPages", kind = "validation", listing = o.name,
    message = format("%s: %d entries (page 1's %s), more than %d pages of %d hold: %snothing was sent%s", o.name,
      total, o.listing.total, max_pages, size, o.context or "", o.hint or ""),
  }
end

--- Every page of a listing, read whole: its keys (and entries) in the
-- order listed; or nil and an error (a page's, refused; or the read's own).
-- @tparam table o `provider`, `action`, `name` (the listing, in messages: "the block list of
--   d.example"), `listing` (as `check` takes it), `fetch(page, size)` (one page's answer, or nil
--   and an error), `size`, `max_pages`, `context` (words before "nothing was sent", e.g. what
--   cannot be done), `hint` (after it, for a listing too long), `on_call()` (told of each request)
-- @return keys, entries; or nil and an error
function M.read(o)
  local keys, entries, seen, size, first = {}, {}, {}, o.size, nil
  for page = 1, o.max_pages do
    local res, err = o.fetch(page, size)
    if o.on_call then o.on_call() end
    if not res then return nil, err end
    local total = M.count(type(res) == "table" and res[o.listing.total])
    if first and total and total ~= first then
      return nil, refused(o, res, page, format("has a %s of %d where page 1 had %d: the listing changed while "
        .. "it was read", o.listing.total, total, first))
    end
    local got, short
    got, total, short = M.check(o.listing, res, page, size)
    if not got then return nil, refused(o, res, page, total) end
    first = first or total
    if short then return nil, refused(o, res, page, short) end
    if page == 1 and total > o.max_pages * size then return nil, too_long(o, total, size, o.max_pages) end
    local list = o.listing.entries(res) or {}
    for i, key in ipairs(got) do
      if seen[key] then
        return nil, refused(o, res, page, format("lists %s again (page %d listed it): the listing moved while it "
          .. "was read", shown(key), seen[key]))
      end
      seen[key] = page
      keys[#keys + 1], entries[#entries + 1] = key, list[i]
    end
    if page * size >= total then return keys, entries end
  end
  error("streamctl.pipeline.pages: read past max_pages") -- (refused at page 1: never reached)
end

--- A listing's total, from its first page (of `o.size` entries, checked
-- as `read` checks it): the count, or nil and an error.
function M.total(o)
  local res, err = o.fetch(1, o.size)
  if o.on_call then o.on_call() end
  if not res then return nil, err end
  local got, total, short = M.check(o.listing, res, 1, o.size)
  if not got then return nil, refused(o, res, 1, total) end
  if short then return nil, refused(o, res, 1, short) end
  return total
end

--- A look-up's one page (page 1 of `size`): its keys and whether it is
-- the whole listing; or nil and the flaw (a message fragment: the answer
-- cannot be trusted for anything).
function M.lookup(listing, res, size)
  local keys, total, short = M.check(listing, res, 1, size)
  if not keys then return nil, total end
  return keys, not short and total <= size
end

return M
