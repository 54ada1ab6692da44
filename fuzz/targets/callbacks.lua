-- Callbacks as they arrive from the network (streamctl.edge.callbacks): any
-- method, headers, query and body give the event or nil and an error with
-- one of the documented codes, never a raise; the C core's digests agree
-- with themselves (a sorted digest is the digest of the parts sorted here,
-- a streamctl.secret hashes as its string); core.equal is string equality.
local core = require "streamctl.core"
local callbacks = require "streamctl.edge.callbacks"
local u = require "targets.util"

local CODES = { MalformedCallback = true, StaleCallback = true, InvalidSignature = true, ReplayedCallback = true,
                ReplayStoreFull = true }
local replay = callbacks.memory_replay { max = 64 }

local function checked(event, err)
  if event then
    u.check(type(event) == "table", "an event that is not a table")
    return
  end
  u.check(type(err) == "table" and CODES[err.code], "refused as %s", tostring(err and err.code))
  u.check(not tostring(err):find("fuzzkey", 1, true), "the key in a message")
end

return function(data)
  local p = u.pieces(data, 4)
  local now = 1519375990 + (#data % 700) - 350
  -- Alibaba Cloud: the query and the two headers from the input
  checked(callbacks.aliyun.check({ method = #p[1] % 3 == 0 and "POST" or "GET", query = p[2],
    headers = { ["ali-live-timestamp"] = p[3], ["ali-live-signature"] = p[4] } },
    { key = "fuzzkey", domain = "learn.aliyundoc.com", now = now, replay = replay }))
  -- ZEGO: the body as JSON or as a form
  checked(callbacks.zego.check({ method = "POST", body = p[2],
    headers = { ["content-type"] = #p[1] % 2 == 0 and "application/x-www-form-urlencoded" or "application/json" } },
    { secret = "fuzzkey", now = now, replay = replay, form = #p[1] % 4 == 0 }))
  -- digests
  local parts = { p[1], p[2], p[3] }
  local sorted = { p[1], p[2], p[3] }
  table.sort(sorted)
  local a = core.digest_hex("sha1", "", true, p[1], p[2], core.secret(p[3]))
  u.check(a == core.digest_hex("sha1", "", false, sorted[1], sorted[2], sorted[3]), "sorting differs")
  u.check(core.digest_hex("md5", "|", false, parts[1], parts[2], parts[3])
    == core.digest_hex("md5", "", false, parts[1] .. "|" .. parts[2] .. "|" .. parts[3]), "joining differs")
  u.check(core.equal(p[1], p[2]) == (p[1] == p[2]), "equal differs from ==")
end
