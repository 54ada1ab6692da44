-- The providers' caps as the emulator enforces them by default: requests
-- per second per account (Aliyun) or AppId (ZEGO) and action, each from the
-- page that publishes it; where a page publishes none, the emulator's
-- choice is said beside it (the strictest reading). A config's `qps`
-- overrides them (config.lua); docs/emulator.md lists them.

local M = {}

-- Aliyun: PROVIDERS.md where it gives one, the operation's doc page
-- otherwise (Describe*PullToPush, Update-, Restart- and
-- DeleteLivePullToPush: 10, BlockList: 50; ForbidLiveStream: 20, its page
-- of June 2026, not an older table's 200).
function M.aliyun()
  return {
    ResumeLiveStream = 30,
    ForbidLiveStream = 20,
    CreateLivePullToPush = 10,
    UpdateLivePullToPush = 10,
    RestartLivePullToPush = 10,
    DeleteLivePullToPush = 10,
    StopLivePullToPush = 10,
    DescribeLivePullToPush = 10,
    DescribeLivePullToPushList = 10,
    DescribeLiveStreamsBlockList = 50,
    DescribeLiveUserDomains = 100,
    -- 10000 per minute (the QPS table); counted per second, the
    -- strictest reading: at most 166 in any 1 s.
    DescribeLiveStreamsOnlineList = 10000 / 60,
    -- The stream ingest callbacks' configuration: Set is 15 (its page);
    -- Describe and Delete publish none in the notes: 15 like Set, the
    -- emulator's (strict) choice.
    SetLiveStreamsNotifyUrlConfig = 15,
    DescribeLiveStreamsNotifyUrlConfig = 15,
    DeleteLiveStreamsNotifyUrlConfig = 15,
    -- Stream-level region blocks and the control history: 50 (their pages); the publish list's cap
    -- is not known here: 1, under the lowest any Live page gives (streamctl's own choice too).
    SetLiveStreamBlock = 50,
    DeleteLiveStreamBlock = 50,
    DescribeStreamLocationBlock = 50,
    DescribeLiveStreamsControlHistory = 50,
    DescribeLiveStreamsPublishList = 1,
    -- STS, per account too: AssumeRole 100/s (the RAM notice of
    -- 2022-08-29), AssumeRoleWithOIDC 100/s (its page); GetCallerIdentity
    -- publishes none: 100/s like its neighbours, the emulator's choice.
    AssumeRole = 100,
    AssumeRoleWithOIDC = 100,
    GetCallerIdentity = 100,
  }
end

-- ZEGO: each action's page.
function M.zego()
  return {
    ForbidRTCStream = 20,
    ResumeRTCStream = 20,
    ForbidRTCStreams = 20,
    ResumeRTCStreams = 20,
    ForbidCDNLiveStream = 20,
    ResumeCDNLiveStream = 20,
    DescribeRTCStreamState = 40,
    -- A room's stream rules: 10 (their pages); DescribeForbidStreamRules publishes none: 1, the
    -- lowest any page gives (CloseRoom's), the strictest reading
    SetForbidStreamRule = 10,
    DelForbidStreamRule = 10,
    DescribeForbidStreamRules = 1,
    -- A room's users: CloseRoom 1 (test environment 1 too), KickoutUser 50 (their pages)
    CloseRoom = 1,
    KickoutUser = 50,
  }
end

return M
