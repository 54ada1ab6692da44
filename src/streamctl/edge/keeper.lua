--- The forbid list's keeper at the edge (streamctl.edge.server): on worker
-- 0 of the one edge that holds the list's lease, it makes the list whole
-- when it may have forgotten (its seed file loaded again, else Alibaba
-- Cloud's block lists adopted when asked, else taken as it stands, said)
-- and reconciles it every reconcile_s seconds with the providers' view
-- (streamctl.operator.reconcile: Aliyun's block lists; ZEGO's, which cannot
-- be read, as last applied), sending only the difference, counted in the
-- metrics (streamctl_drift_total) and audited.
-- @module streamctl.edge.keeper

-- luacheck: globals ngx

local cjson = require "cjson.safe"
local reconcile = require "streamctl.operator.reconcile"
local aliyun_places = require "streamctl.aliyun.places"
local settings = require "streamctl.edge.settings"
local W = require "streamctl.edge.worker"

local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall
local format = string.format

local M = {}

-- How often worker 0 looks at the lease and whether the list is whole (s; rounds every reconcile_s).
local TICK_S = 5

-- The desired state from the list file (worker 0, when the list may have forgotten): added to what the
-- store holds.
local function load_list(path)
  -- (absent, unreadable or not a file: said, never taken for an empty list)
  local text, ferr = require("streamctl.core").read_file(path)
  if not text then return nil, ferr end
  -- The file is read whole and valid, or not at all: an entry skipped, or a name no forbid could take kept in
  -- the store, would be streams never forbidden, unsaid (or a store every later round refuses).
  local list = cjson.decode(text)
  if type(list) ~= "table" then return nil, path .. " is not a JSON object" end
  local flaw = require("streamctl.base.json").strict_flaw(text) -- (a key twice, a NUL: cjson shows neither)
  if flaw then return nil, path .. " " .. flaw end
  local function is_list(t) -- (positions 1..n only: {"0": ...} or a single object is not a list)
    if type(t) ~= "table" then return false end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n == #t
  end
  for k in pairs(list) do
    if k ~= "aliyun" and k ~= "zego" then
      return nil, format("%s: unknown key %q (it holds \"aliyun\" and \"zego\")", path, tostring(k))
    end
    if not is_list(list[k]) then return nil, format("%s: %s must be a list", path, k) end
  end
  local keys = {}
  -- (each stream by its provider's field rules, as a reconcile round would read it; `where` names it in the file)
  local function add(provider, item, where)
    local ok, err = reconcile.check(provider, { item })
    if not ok then return nil, format("%s: %s: %s", path, where, (err.message:gsub("^desired%[1%] ", ""))) end
    keys[#keys + 1] = W.desired_key(provider, item, item.stream_name or item.stream_id)
    return true
  end
  for i, entry in ipairs(list.aliyun or {}) do
    if type(entry) ~= "table" or not is_list(entry.stream_names) then
      return nil, format("%s: aliyun[%d] must be {domain_name, app_name, stream_names: [...]}", path, i)
    end
    for j, name in ipairs(entry.stream_names) do
      local ok, err = add("aliyun", { domain_name = entry.domain_name, app_name = entry.app_name, stream_name = name },
        format("aliyun[%d].stream_names[%d]", i, j))
      if not ok then return nil, err end
    end
  end
  for i, id in ipairs(list.zego or {}) do
    local ok, err = add("zego", { stream_id = id, kind = "rtc" }, format("zego[%d]", i))
    if not ok then return nil, err end
  end
  if #keys == 0 then return true end
  return W.store():add(keys)
end

-- The desired state as the reconcilers take it; or nil and why it cannot be read.
local function desired_lists()
  local keys, err = W.store():members()
  if not keys then return nil, err end
  local aliyun, zego = {}, {}
  for _, key in ipairs(keys) do
    local d, a, st = key:match("^aliyun|([^|]+)|([^|]+)|(.+)$")
    local id = not d and key:match("^zego|(.+)$")
    if d then
      aliyun[#aliyun + 1] = { domain_name = d, app_name = a, stream_name = st }
    elseif id then
      zego[#zego + 1] = { stream_id = id, kind = "rtc" }
    else
      -- (read whole and valid, or not at all: a key dropped would be a stream left unforbidden unsaid; each
      -- item is then checked by the providers' field rules in the reconcilers)
      return nil, format("the desired store holds %q, which is neither aliyun|DOMAIN|APP|STREAM nor zego|ID: "
        .. "nothing was reconciled", key)
    end
  end
  return aliyun, zego
end

-- One provider's round: true, or nil and why (logged by the caller).
local function reconcile_provider(provider, desired)
  local c, cerr = W.client(provider)
  if not c then return nil, "no client: " .. tostring(cerr) end
  -- (confirm: the list was built by requests the guard passed, or by the operator's file)
  local opts = { confirm = true }
  if provider == "zego" then opts.state = W.store() end
  -- (the list read again once the provider's state was read: a resume or forbid through the edge
  -- changes the list before it sends, so a stream it moved meanwhile is left as it decided)
  opts.desired_now = function()
    local aliyun, zego = desired_lists()
    if not aliyun then return nil, zego end
    return provider == "aliyun" and aliyun or zego
  end
  -- the difference, as the round's intent, before any of it is sent
  local run
  opts.before_send = function(plan)
    local streams = {}
    for _, key in ipairs(plan.missing) do streams[#streams + 1] = { stream = key, action = "forbid" } end
    for _, key in ipairs(plan.extra) do streams[#streams + 1] = { stream = key, action = "resume" } end
    local ok
    ok, run = W.write_intent({ provider = provider, command = "reconcile", guard = plan.guard }, streams)
    return ok, not ok and "the audit log cannot be written" or nil
  end
  local report, err = reconcile[provider](c, desired, opts)
  if not report then
    W.metrics:count("drift", { provider = provider, state = "unreadable" })
    return nil, err
  end
  local found = #report.found.missing
  W.metrics:count("drift", { provider = provider, state = "found" }, found)
  W.metrics:count("drift", { provider = provider, state = "fixed" }, report.fixed)
  W.metrics:count("drift", { provider = provider, state = "failed" }, #report.failed)
  W.metrics:count("drift", { provider = provider, state = "extra" }, #report.found.extra)
  if found > 0 or #report.failed > 0 then
    ngx.log(ngx.WARN, "streamctl.edge: reconciled (", provider, "): ", found, " missing, ", report.fixed,
      " fixed, ", #report.failed, " failed, ", #report.found.extra, " extra left alone")
    W.write_audit { record = run and "outcome" or nil, run = run, provider = provider, command = "reconcile",
                  outcome = report.in_sync and "ok" or "failed", exit = report.in_sync and 0 or 1,
                  calls = report.calls, streams = W.audit_streams(report) }
  end
  return true
end

-- Adds every stream Alibaba Cloud's block lists hold (every domain of the account) to the forbid list
-- `st`: how many, and of how many domains; or nil, nil and why (nothing is taken from a list read in part).
local function adopt_block_lists(st)
  local c, cerr = W.client("aliyun")
  if not c then return nil, nil, "the client cannot be made: " .. tostring(cerr) end
  local domains, derr = aliyun_places.account_domains(c)
  if not domains then return nil, nil, derr end
  local keys = {}
  for _, d in ipairs(domains) do
    local list, lerr = aliyun_places.block_list(c, d)
    if not list then return nil, nil, lerr end
    for _, entry in ipairs(list) do
      local domain, app, name = entry:match("^([^/]+)/([^/]+)/(.+)$")
      if domain then keys[#keys + 1] = W.desired_key("aliyun", { domain_name = domain, app_name = app }, name) end
    end
  end
  if #keys > 0 then
    local ok, err = st:add(keys)
    if not ok then return nil, nil, err end
  end
  return #keys, #domains
end

-- The forbid list made whole when it may have forgotten (its first use, nginx started anew, Redis
-- restarted or failed over: streamctl.operator.desired): its seed file loaded again, else (asked)
-- Alibaba Cloud's block lists adopted, and the rest taken as it stands, said. Until then the door answers
-- ListUnavailable (on_list_error) and no round runs.
local function make_whole()
  local st = W.store()
  local whole, why = st:whole()
  if whole == nil then return nil, "the forbid list cannot be read: " .. tostring(why) end
  if whole then return true end
  local s = W.settings
  local seed, adopt = settings.name(s, "forbids"), settings.name(s, "adopt")
  if s.forbids then
    local done, lerr = load_list(s.forbids)
    if not done then
      return nil, format("%s: %s (the forbid list may have forgotten streams, %s: the door answers ListUnavailable "
        .. "until the file loads)", seed, tostring(lerr), why)
    end
    ngx.log(ngx.WARN, "streamctl.edge: the forbid list may have forgotten streams (", why, "): loaded again from ",
      seed, " (", s.forbids, ")")
    return st:made_whole("the seed " .. s.forbids)
  end
  -- (no seed: with adopt "aliyun", Alibaba Cloud's own block lists, every domain of the account, are
  -- adopted; ZEGO's API cannot say which streams it forbids, so that part is taken as it stands, said)
  if s.adopt ~= "aliyun" then
    ngx.log(ngx.WARN, "streamctl.edge: the forbid list may have forgotten streams (", why, "): taken as it ",
      "stands, there being no ", seed, ": a stream forbidden before and lost is admitted at the door until ",
      "forbidden again (the provider's ban stands): give ", seed, " a seed file, or ", adopt, " \"aliyun\" to ",
      "adopt Alibaba Cloud's block lists (docs/openresty.md)")
    return st:made_whole("as it stood: no seed")
  end
  local n, domains, aerr = adopt_block_lists(st)
  if not n then
    return nil, "the forbid list may have forgotten streams (" .. why .. "), and Alibaba Cloud's block lists "
      .. "cannot be adopted: " .. tostring(aerr)
  end
  local adopted = format("Alibaba Cloud's block lists adopted (%d streams, %d domains)", n, domains)
  ngx.log(ngx.WARN, "streamctl.edge: the forbid list may have forgotten streams (", why, "): ", adopted, "; ZEGO's ",
    "part taken as it stands, there being no ", seed, ": a ZEGO stream forbidden before and lost is admitted at ",
    "the door until forbidden again (ZEGO's ban stands): give ", seed, " a seed file (docs/openresty.md)")
  return st:made_whole(adopted .. "; ZEGO's as it stood: no seed")
end

-- One reconciler for every edge on one list: the list's lease (streamctl.operator.desired), held by
-- this nginx (its host and master's pid: a reload keeps it) for two rounds' time and renewed at each
-- tick; another edge's worker 0 runs no round while it is held, and takes over once it lapses.
local lease_said -- (the holder last said, so a change is said once)
local function lease_held()
  local master = require("ngx.process").get_master_pid()
  local owner = tostring(W.host) .. ":" .. tostring(master or ngx.worker.pid())
  local held, holder = W.store():lease("reconciler", owner, math.min(2 * W.settings.reconcile_s, 86400))
  if held == nil then
    ngx.log(ngx.ERR, "streamctl.edge: the reconciler's lease cannot be read: ", tostring(holder), "; no round")
    return false
  end
  local now = held and owner or holder
  if now ~= lease_said then
    lease_said = now
    if held then ngx.log(ngx.NOTICE, "streamctl.edge: this edge reconciles the list (", owner, " holds the lease)")
    else ngx.log(ngx.NOTICE, "streamctl.edge: another edge reconciles the list (", tostring(holder), " holds the ",
      "lease): no round here while it does") end
  end
  return held
end

-- Each tick: the lease, the list made whole when it may have forgotten (within a tick of a Redis
-- restart or failover, not a round), and a round when reconcile_s has passed since the last.
local reconciling, last_round = false, nil
-- A list that cannot be made whole is said when what stops it changes, else once a round's time
-- (the ticks that find it so between are not said again).
local unmade, unmade_at = nil, nil
local function say_unmade(why)
  if why ~= unmade or ngx.now() - unmade_at >= W.settings.reconcile_s then
    ngx.log(ngx.ERR, "streamctl.edge: ", why)
    unmade, unmade_at = why, ngx.now()
  end
end
local function tick(premature)
  if premature or reconciling then return end
  reconciling = true
  -- (Redis needs this timer's cosockets)
  local lok, lheld = pcall(lease_held)
  if not (lok and lheld) then
    if not lok then ngx.log(ngx.ERR, "streamctl.edge: the reconciler's lease: ", tostring(lheld)) end
    reconciling = false
    return
  end
  local made, whole, lost = pcall(make_whole)
  if not (made and whole) then
    say_unmade(tostring(made and lost or whole))
    reconciling = false
    return
  end
  unmade = nil
  if last_round and ngx.now() - last_round < W.settings.reconcile_s - 0.5 then
    reconciling = false
    return
  end
  last_round = ngx.now()
  local aliyun, zego = desired_lists()
  if not aliyun then
    ngx.log(ngx.ERR, "streamctl.edge: reconciling: the desired state cannot be read: ", tostring(zego))
    reconciling = false
    return
  end
  for _, job in ipairs { { "aliyun", aliyun }, { "zego", zego } } do
    local provider, desired = job[1], job[2]
    -- (an empty list sends nothing and has no extras to report unless the provider is in use)
    if #desired > 0 or W.clients[provider] then
      local ok, done, why = pcall(reconcile_provider, provider, desired)
      if not ok or not done then
        ngx.log(ngx.ERR, "streamctl.edge: reconciling (", provider, "): ", tostring(ok and why or done))
      end
    end
  end
  reconciling = false
end


--- Starts the keeper's timer (worker 0's init_worker: no call is made there, init_worker having no
-- cosockets; the timer's callbacks make them).
function M.start()
  assert(ngx.timer.at(0, tick))
  assert(ngx.timer.every(math.min(TICK_S, W.settings.reconcile_s), tick))
end

return M
