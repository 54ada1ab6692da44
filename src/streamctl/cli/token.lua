--- `streamctl zego issue-token` and `streamctl zego read-token`: ZEGO's
-- Token04 (streamctl.edge.token04) from the command line, with the AppId
-- and ServerSecret of the server API's credential chain (the environment,
-- a profile), never from the command line: a secret there is in `ps` for
-- every user. The commands of streamctl.cli.providers.zego's `commands`.
-- @module streamctl.cli.token

local core = require "streamctl.core"
local json = require "streamctl.base.json"
local validate = require "streamctl.base.validate"
local token04 = require "streamctl.edge.token04"
local cli_output = require "streamctl.cli.output"
local number_text = require("streamctl.cli.client").number_text

local type, tostring, tonumber, format, gsub = type, tostring, tonumber, string.format, string.gsub
local concat = table.concat
local EXIT = cli_output.EXIT

local M = {}

-- The field names of token04 as the flags that fill them.
local FLAG_OF = { user_id = "--user-id", room_id = "--room-id", stream_ids = "--stream-id", ttl = "--ttl",
                  app_id = "the AppId", secret = "the ServerSecret" }

-- The credentials, or nil after saying why (exit 2). (--server-secret is
-- not among their flags: `omit`.)
local function credentials(out, opts)
  local id, secret = opts.app_id, opts.server_secret
  if type(id) == "string" then id = tonumber(id) end
  if not id or not secret then
    out:warn("no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET, or name a profile (--profile)")
    return nil
  end
  return id, secret
end

-- A token04 message with its field named as the flag that gave it.
local function as_flag(message)
  return (gsub(message, "field '([%w_]+)'", function(f) return FLAG_OF[f] or ("'" .. f .. "'") end))
end

local function run_issue(out, args, opts, output, env)
  local app_id, secret = credentials(out, opts)
  if not app_id then return EXIT.usage end
  local ttl
  if args.ttl then
    local n, rule = number_text(args.ttl, true, 1)
    if not n then out:warn(format("--ttl must be %s (got '%s')", rule, args.ttl)) return EXIT.usage end
    ttl = n
  end
  local streams = args.stream_id and #args.stream_id > 0 and args.stream_id or nil
  local now = math.floor((env.clock or core.now)())
  local tok, err = token04.issue { app_id = app_id, secret = secret, user_id = args.user_id, room_id = args.room_id,
    login = args.login or nil, publish = args.publish or nil, stream_ids = streams, ttl = ttl, now = now }
  if not tok then out:warn(as_flag(err.message)) return EXIT.usage end
  if output == "json" then
    out:line(format('{"token":%s,"expire":%s}', json.string(tok), validate.decimal(now + (ttl or token04.DEFAULT_TTL))))
  else
    out:line(tok)
  end
  if out.failed then out:lost("the token") return EXIT.failed end
  return EXIT.ok
end

-- The token's fields as one JSON object, in a fixed order.
local function fields_json(t)
  local parts = {}
  local function add(k, v)
    if v == nil then return end
    local text = type(v) == "string" and json.string(v) or type(v) == "boolean" and tostring(v)
      or type(v) == "table" and json.string_array(v) or validate.decimal(v)
    parts[#parts + 1] = json.string(k) .. ":" .. text
  end
  add("app_id", t.app_id)
  add("user_id", t.user_id)
  add("ctime", t.ctime)
  add("expire", t.expire)
  add("nonce", t.nonce)
  add("mode", t.mode)
  if t.payload ~= "" then
    add("room_id", t.room_id)
    add("login", t.login or false)
    add("publish", t.publish or false)
    add("stream_ids", t.stream_ids)
  end
  return "{" .. concat(parts, ",") .. "}"
end

local function run_read(out, args, opts, _, env)
  local app_id, secret = credentials(out, opts)
  if not app_id then return EXIT.usage end
  local text = args.token
  if text == "-" then
    local stdin = env.stdin or io.stdin
    text = stdin:read("l")
    if text == nil then out:warn("read-token -: standard input holds no token") return EXIT.usage end
    text = gsub(text, "%s+$", "")
  end
  local t, err = token04.read(text, { app_id = app_id, secret = secret, legacy_cbc = args.legacy_cbc or nil,
                                      now = (env.clock or core.now)() })
  if not t then
    out:warn(err.code == "TokenExpired" and "the token has expired: " or "the token does not verify: ", err.message)
    return EXIT.failed
  end
  out:line(fields_json(t))
  if out.failed then out:lost("the token's fields") return EXIT.failed end
  return EXIT.ok
end

--- The commands, as streamctl.cli.provider's `commands` takes them.
M.COMMANDS = {
  {
    name = "issue-token",
    summary = "Issue a Token04 for a client.",
    help = "Prints a Token04 for a user on standard output: the token a ZEGO client logs in and publishes with, "
      .. "made with the AppId and ServerSecret of the server API's credentials (ZEGO_APP_ID and "
      .. "ZEGO_SERVER_SECRET, or a profile; never the command line, where ps shows it). With --room-id, --login, "
      .. "--publish and --stream-id it grants those only.",
    example = "streamctl zego issue-token --user-id u1 --room-id room1 --login --publish --stream-id room1-host",
    flags = {
      { "--user-id", "(required) The user: 1 to 64 bytes of digits, letters and ~!@#$%^&*()_+=-`;',.<>.", "<id>" },
      { "--room-id", "The one room it may log in to (1 to 127 bytes, the user ID's characters).", "<room>" },
      { "--login", "Grant logging in to the room.", flag = true },
      { "--publish", "Grant publishing.", flag = true },
      { "--stream-id", "A stream it may publish (repeat for more; none: any).", "<id>", count = "*" },
      { "--ttl", format("Seconds it lives, 1 to %d (24 days; default: %d).", token04.MAX_TTL, token04.DEFAULT_TTL),
        "<seconds>" },
    },
    omit = { ["--server-secret"] = true },
    run = run_issue,
  },
  {
    name = "read-token",
    summary = "Verify a Token04 and print its fields.",
    help = "Verifies a Token04 with the AppId and ServerSecret of the server API's credentials and prints its "
      .. "fields as one JSON object (app_id, user_id, ctime, expire, nonce, mode, and the payload's room_id, "
      .. "login, publish, stream_ids); exits 1, saying why, when it does not verify, is another AppId's or has "
      .. "expired.",
    example = "streamctl zego read-token \"$TOKEN\"",
    flags = {
      { "--legacy-cbc", "Also read the AES-CBC form (zego_server_assistant's generators make it); it "
        .. "authenticates nothing.", flag = true },
    },
    arguments = { { name = "token", help = "The token, or - to read it from standard input." } },
    omit = { ["--server-secret"] = true },
    run = run_read,
  },
}

return M
