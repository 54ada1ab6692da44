--- What the command needs of a provider beyond its client: a table per
-- provider, `streamctl.cli.providers.NAME`, written down here and checked
-- when the command first reads it.
--
-- The command is made from tables. Every operation of a provider's client
-- is a subcommand (`class.methods()`: its fields are the flags, its
-- `effect` what the guard and the audit log read); `call` sends any of its
-- actions; the rest of what a provider's subcommands need is this table:
--
--   title        "Alibaba Cloud ApsaraVideo Live" (the help's name of it)
--   example      a command line the help shows
--   call_example what follows `streamctl NAME call` in its help's example
--   list         { noun = "names" | "IDs", metavar = "STREAM" | "ID", example = "a b" }
--                (how a batch's streams are called, for its arguments)
--   keys         { id, secret [, token] }: the client's credential options, each given by
--                its flag (--access-key-id ...); the id and the secret go together
--   credentials  { title = the help's group, flags = { flag, ... } }: the credential flags,
--                each { "--name", help, "<arg>" } (a value), with `choices = { ... }`, or
--                `flag = true` (no value)
--   options      optional { name, ... }: the client options its flags give as they are
--
-- Optional, each the provider's own step where the command has one:
--
--   emulator     { port = the emulator's port name, account = the emulator's account name }
--                (--emulator: streamctl.cli.emulator's)
--   chain(opts) -> credentials, err, warnings, source   (no credential flag given: its
--                credential chain; none: the client's own environment variables)
--   settings(getenv) -> { { option, value, variable }, ... }  (options the environment gives
--                where no flag does; default: streamctl.credentials.settings' for the provider,
--                --redis from STREAMCTL_REDIS_URL for one it has no list for)
--   setting_rules { option = fn(value) -> rule broken | nil }
--   unknown_option(typed) -> hint | nil   (an option other tools take that it has not)
--   fill(m, fields, getenv) -> message | nil  (fields the environment gives)
--   preflight(client, m, fields, long) -> false | found | nil, why  (before a batch's intent:
--                what must hold before anything is sent; false: nothing to check; `found`
--                goes into the audit line as its `places`; `why` = { said = the line to
--                say, refused = true when the run is refused (else it failed), code, places })
--   reconcile    { what, from, example, man, flags, required = { flag = why }, options(args,
--                opts, time_of), action(key, forbid), empty, check(client, opts) -> message |
--                nil (optional: its options by the rules of the calls they fill, before anything
--                is read) }  (`streamctl NAME reconcile`: streamctl.operator.reconcile's NAME)
--   whoami       { flags, identity(opts, args, getenv) -> who | nil, err }: `streamctl NAME
--                whoami` (who its credentials are: account_id, identity_type, arn, principal_id)
--   commands     { { name, summary, help, example, flags, arguments = { { name, help, args } },
--                omit = { ["--flag"] = true } (credential flags it does not take),
--                run(out, args, opts, output, env) -> exit status }, ... }: commands of its own
--                beside its operations, given its credentials (`opts`: the client's options) and
--                nothing else of a client (`streamctl zego issue-token`)
--   configure    { says (what it writes where, for the help), file, section(profile),
--                keys = { { key, prompt, secret }, ... }, fixed,
--                check(current, name, path) -> message | nil }
--                (`streamctl configure NAME`)
-- @module streamctl.cli.provider

local streamctl = require "streamctl"
local credentials = require "streamctl.credentials"
local providers = require "streamctl.providers"

local type, ipairs, pairs, error, format = type, ipairs, pairs, error, string.format

local M = {}

local REQUIRED = { title = "string", example = "string", call_example = "string", list = "table", keys = "table",
                   credentials = "table" }
local OPTIONAL = { options = "table", emulator = "table", chain = "function", settings = "function",
                   setting_rules = "table", unknown_option = "function", fill = "function",
                   preflight = "function", reconcile = "table", whoami = "table", configure = "table",
                   commands = "table" }

-- The keys of an optional table that must then be there, by their type.
local PARTS = {
  emulator = { port = "string", account = "string" },
  reconcile = { what = "string", from = "string", example = "string", man = "string", empty = "string",
                options = "function", action = "function" },
  whoami = { identity = "function" },
  configure = { says = "string", file = "string", section = "function", keys = "table", fixed = "table" },
}

local function broken(name, key, rule)
  error(format("streamctl: streamctl.cli.providers.%s: %s %s", name, key, rule), 0)
end

--- Checks a provider's table (above); raises naming the key and the rule.
function M.check(name, t)
  if type(t) ~= "table" then broken(name, "the module", "must return a table") end
  for key, kind in pairs(REQUIRED) do
    if type(t[key]) ~= kind then broken(name, key, "must be a " .. kind) end
  end
  for key, kind in pairs(OPTIONAL) do
    if t[key] ~= nil and type(t[key]) ~= kind then broken(name, key, "must be a " .. kind .. " or nil") end
  end
  if #t.keys < 2 then broken(name, "keys", "must name the id and the secret") end
  for part, keys in pairs(PARTS) do
    for key, kind in pairs(t[part] and keys or {}) do
      if type(t[part][key]) ~= kind then broken(name, part .. "." .. key, "must be a " .. kind) end
    end
  end
  if type(t.credentials.flags) ~= "table" then broken(name, "credentials.flags", "must be a table") end
  local lists = { { "credentials.flags", t.credentials.flags }, { "reconcile.flags", t.reconcile and
      t.reconcile.flags or {} }, { "whoami.flags", t.whoami and t.whoami.flags or {} } }
  for i, c in ipairs(t.commands or {}) do
    for key, kind in pairs { name = "string", summary = "string", help = "string", example = "string",
                             run = "function" } do
      if type(c[key]) ~= kind then broken(name, "commands[" .. i .. "]." .. key, "must be a " .. kind) end
    end
    lists[#lists + 1] = { "commands[" .. i .. "].flags", c.flags or {} }
  end
  for _, list in ipairs(lists) do
    for i, f in ipairs(list[2]) do
      if type(f[1]) ~= "string" or not f[1]:find("^%-%-%l[%l%d%-]*$") or type(f[2]) ~= "string"
          or (not f.flag and not f.choices and type(f[3]) ~= "string") then
        broken(name, list[1] .. "[" .. i .. "]", "must be { \"--name\", help, \"<arg>\" } (or flag = true)")
      end
    end
  end
  t.settings = t.settings or function(getenv) return credentials.settings(name, { getenv = getenv }) end
  t.setting_rules = t.setting_rules or {}
  t.options = t.options or {}
  return t
end

local cache = {}

--- The command's table of provider `name` (checked), or nil when it is not
-- one of streamctl.providers'.
function M.get(name)
  if cache[name] then return cache[name] end
  local registered = false
  for _, n in ipairs(providers) do registered = registered or n == name end
  if not registered then return nil end -- (streamctl.errors, streamctl.credentials: no provider)
  local t = M.check(name, require("streamctl.cli.providers." .. name))
  t.name, t.class = name, streamctl[name]
  cache[name] = t
  return t
end

--- Every registered provider's table, in streamctl.providers' order.
function M.all()
  local out = {}
  for i, name in ipairs(providers) do out[i] = M.get(name) end
  return out
end

return M
