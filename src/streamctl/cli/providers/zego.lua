--- The command's side of ZEGOCLOUD Server API v2 (streamctl.zego): its
-- credential flags and chain, `reconcile` (against a state file: ZEGO
-- cannot be asked which streams are forbidden), `configure`, and the
-- token commands (streamctl.cli.token). The
-- table's keys: streamctl.cli.provider.
-- @module streamctl.cli.providers.zego

local credentials = require "streamctl.credentials"
local reconcile = require "streamctl.operator.reconcile"
local token = require "streamctl.cli.token"

local find = string.find

local M = {
  title = "ZEGOCLOUD Server API v2",
  example = "streamctl zego forbid-rtc-streams --from ids.txt",
  call_example = "DescribeRTCStreamState StreamId=room1-host",
  list = { noun = "IDs", metavar = "ID", example = "room1-host room2-host" },
  emulator = { port = "zego_tls", account = "ZEGO" },
  keys = { "app_id", "server_secret" },
  credentials = {
    title = "Credentials (default: ZEGO_APP_ID and ZEGO_SERVER_SECRET, then ~/.config/streamctl/config)",
    flags = {
      { "--app-id", "AppId.", "<id>" },
      { "--server-secret", "ServerSecret (visible to other users in ps: prefer the environment or the config "
        .. "file).", "<secret>" },
      { "--profile", "Profile in ~/.config/streamctl/config: section [zego.NAME].", "<name>" },
      { "--is-test", "Send IsTest=true (the test environment of projects made before 2021-11-16).", flag = true },
    },
  },
  options = { "is_test" },
  chain = credentials.zego,
  -- (issue-token, read-token: ZEGO's Token04, with these credentials)
  commands = token.COMMANDS,
}

M.reconcile = {
  what = "Makes the forbidden streams those of a desired state, as far as --state knows them: ZEGO "
    .. "cannot be asked which streams are forbidden, so the state file holds what this command last "
    .. "applied (a change made elsewhere is not seen).",
  from = "The desired state: one stream ID a line, RTC unless written cdn:ID (rtc:ID also reads as RTC; "
    .. "'-': standard input; blank lines and lines starting with # skipped; a # after an ID is refused, not a "
    .. "comment; every ID checked as the forbid checks it, the whole list before anything is sent), or a JSON "
    .. "array of {stream_id, kind} (kind rtc or cdn).",
  example = "streamctl zego reconcile --from forbidden.txt --state ~/.local/state/streamctl/zego-state.json",
  man = "(as the state file knows them)",
  empty = "in --state",
  required = { state = "--state FILE is required: ZEGO cannot be asked which streams are forbidden, so the file "
    .. "keeps what this command applied (see --help)" },
  flags = {
    { "--state", "(required) The file holding what this command last applied (JSON, made with mode 0600).",
      "<file>" },
    { "--cdn-resume-time", "CDN forbids last until this time (YYYY-MM-DDThh:mm:ssZ, Unix seconds, or a duration "
      .. "from now: +2h, 90m, 2d; at most 30 days ahead; default: a day).", "<time>" },
  },
}

-- The reconciler's options from the flags.
function M.reconcile.options(args, opts, time_of)
  opts.state = reconcile.file_store(args.state)
  opts.cdn_resume_time = time_of(args.cdn_resume_time)
end

-- --cdn-resume-time by ForbidCDNLiveStream's own rule (at most 30 days
-- ahead, in the future), before anything is read or sent: the message, or
-- nil. (Checked by the forbid alone, a round sent its RTC forbids and then
-- failed each CDN one, naming a field, 'resume_time'.)
function M.reconcile.check(client, opts)
  if opts.cdn_resume_time == nil then return nil end
  local ok, err = client:check("forbid_cdn_live_stream", { stream_id = "x", resume_time = opts.cdn_resume_time })
  local message = not ok and tostring(err.message) or ""
  if message:find("field 'resume_time'", 1, true) then -- (its time's rule; a test project's prefix is not this one's)
    return (message:gsub("field 'resume_time'", "'--cdn-resume-time'"))
  end
  return nil
end

-- The action that changes a reconcile's stream one way or the other.
function M.reconcile.action(key, forbid)
  if find(key, "^cdn:") then return forbid and "ForbidCDNLiveStream" or "ResumeCDNLiveStream" end
  return forbid and "ForbidRTCStreams" or "ResumeRTCStreams"
end

M.configure = {
  says = "ZEGO's AppId and ServerSecret into ~/.config/streamctl/config, or $XDG_CONFIG_HOME/streamctl/config "
    .. "([zego], or [zego.NAME])",
  file = "/.config/streamctl/config",
  section = function(profile) return profile and "zego." .. profile or "zego" end,
  keys = {
    { key = "app_id", prompt = "AppId" },
    { key = "server_secret", prompt = "ServerSecret", secret = true },
  },
  fixed = {},
}

return M
