--- The habits operators bring from aws and aliyun-cli, made the command's:
-- an action's own name as its command (`ForbidLiveStream`), a parameter's
-- name as its flag (`--DomainName`), options before the provider
-- (`streamctl --emulator -o json aliyun ...`), and the commands an unknown
-- one may have meant.
-- @module streamctl.cli.habits

local provider_tables = require "streamctl.cli.provider"
local cli_output = require "streamctl.cli.output"
local cli_parser = require "streamctl.cli.parser"
local validate = require "streamctl.base.validate"

local ipairs, type, gsub = ipairs, type, string.gsub
local flag, command_name = cli_output.flag, cli_output.command_name
local SKIP = cli_parser.SKIP

local M = {}

-- A provider's subcommands (its methods', call, its reconcile and whoami, and its own).
local function command_names(provider)
  local t = provider_tables.get(provider)
  local names = {}
  for _, m in ipairs(t.class.methods()) do names[#names + 1] = command_name(m.name) end
  names[#names + 1] = "call"
  if t.reconcile then names[#names + 1] = "reconcile" end
  if t.whoami then names[#names + 1] = "whoami" end
  for _, c in ipairs(t.commands or {}) do names[#names + 1] = c.name end
  return names
end

-- The words of a command or an API name, lower case: ForbidLiveStream,
-- forbid_live_stream and forbid-live-stream are forbid, live, stream.
local function words_of(text)
  local out = {}
  for w in gsub(gsub(text, "(%l)(%u)", "%1-%2"), "_", "-"):lower():gmatch("[^%-]+") do out[#out + 1] = w end
  return out
end

--- The command `word` names for `provider` when it is an action's own name
-- (aliyun-cli's habit: `ForbidLiveStream`, any case, or `forbid_live_stream`):
-- the action's single command, else its batch (ZEGO's ForbidRTCStreams is
-- forbid-rtc-streams); nil for anything else.
function M.command_for(provider, word)
  local t = provider_tables.get(provider)
  if type(word) ~= "string" or not t then return nil end
  -- (compared in lower case without separators: forbidlivestream too)
  local function key(text) return (gsub(text:lower(), "[-_]", "")) end
  local want = key(word)
  local single, batch
  for _, m in ipairs(t.class.methods()) do
    if key(m.action) == want then
      if m.list then batch = batch or command_name(m.name) else single = command_name(m.name) end
    end
  end
  return single or batch
end

-- The flags of a leaf command that take no value (every other option
-- takes one): the command's own, and each provider's (--is-test).
local NO_VALUE = { ["--emulator"] = true, ["--dry-run"] = true, ["--no-progress"] = true, ["--debug"] = true,
                   ["--no-audit-log"] = true, ["--yes"] = true, ["--remove-extra"] = true, ["--allow-empty"] = true }
for _, t in ipairs(provider_tables.all()) do
  for _, f in ipairs(t.credentials.flags) do if f.flag then NO_VALUE[f[1]] = true end end
end
M.NO_VALUE = NO_VALUE

-- `argv` with the options before the provider (aws' habit: `streamctl
-- --emulator -o json aliyun resume-live-stream ...`) moved after its
-- command, where they belong; as it is when there are none, or no command.
local function options_first(argv)
  local lead, i = {}, 1
  while argv[i] and argv[i]:find("^%-") and argv[i] ~= "-h" and argv[i] ~= "--help" and argv[i] ~= "--version" do
    local a = argv[i]
    lead[#lead + 1] = a
    if not a:find("=", 1, true) and not NO_VALUE[a] and argv[i + 1] ~= nil then
      lead[#lead + 1], i = argv[i + 1], i + 1
    end
    i = i + 1
  end
  if #lead == 0 or not provider_tables.get(argv[i]) or argv[i + 1] == nil
      or argv[i + 1]:find("^%-") then
    return argv
  end
  local out = { argv[i], argv[i + 1] }
  for _, a in ipairs(lead) do out[#out + 1] = a end
  for k = i + 2, #argv do out[#out + 1] = argv[k] end
  return out
end

--- `argv` with the options given before the provider moved after its
-- command (aws' habit), and the service's own names made the command's:
-- an action's name its command (M.command_for), and after it a flag written
-- as a parameter's name (`--DomainName d`, `--ResumeTime=t`: a capital in
-- it) that field's flag. The table given is left as it is.
function M.canonical(argv)
  argv = options_first(argv)
  local provider = argv[1]
  local command = M.command_for(provider, argv[2])
  if not command then return argv end
  local fields, list
  for _, m in ipairs(provider_tables.get(provider).class.methods()) do
    if command_name(m.name) == command then fields, list = m.fields, m.list end
  end
  local out = { provider, command }
  for i = 3, #argv do
    local a = argv[i]
    local name, rest = a:match("^%-%-(%w*%u%w*)(=?.*)$")
    if name then
      for _, f in ipairs(fields) do
        -- (a page's `StreamId[]` is `--StreamId`)
        local param = f.param and f.param:gsub("%[%]$", "")
        if param and param:lower() == name:lower() and not SKIP[f.name] then
          -- (a batch's list is its arguments: --StreamId a is the argument a)
          if f.name == list then a = rest ~= "" and rest:sub(2) or nil else a = flag(f.name) .. rest end
          break
        end
      end
    end
    if a ~= nil then out[#out + 1] = a end
  end
  return out
end

--- The commands of `provider` that `word` (an unknown command) may have
-- meant: those holding its words in order (forbid-stream: forbid-live-stream,
-- forbid-rtc-stream...), those starting with its first word first, else the
-- closest by edit distance; at most 3.
function M.commands_like(provider, word)
  local want, out = words_of(word), {}
  if #want == 0 or not provider_tables.get(provider) then return out end
  local names = command_names(provider)
  for pass = 1, 2 do
    for _, name in ipairs(names) do
      local have, i = words_of(name), 1
      for _, w in ipairs(have) do
        if want[i] and (w == want[i] or w == want[i] .. "s") then i = i + 1 end
      end
      local first = have[1] == want[1] or have[1] == want[1] .. "s"
      if i > #want and #out < 3 and first == (pass == 1) then out[#out + 1] = name end
    end
  end
  if #out == 0 then
    local hint = validate.hint(word, names):match("'([^']+)'")
    if hint then out[1] = hint end
  end
  return out
end

return M
