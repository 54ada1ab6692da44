-- streamctl emulator: the nginx-lua entry points (init, the ticker, the
-- request handler, the Date header). One nginx worker; all state lives in
-- Lua module tables. A request goes to a control endpoint under /_emulator/
-- (control_endpoints.lua, which lists them, and the state's shape) or to
-- its port's provider (provider_request.lua, which says the request log's
-- entry; its faults: fault_answer.lua); request_io.lua reads requests and
-- sends answers.
--
-- Provider ports (set $emu_provider in nginx.conf): "aliyun" ports answer as
-- ApsaraVideo Live and STS (aliyun.lua, sts.lua) and serve the credentials
-- URI (credentials_uri.lua), "zego" ports as ZEGOCLOUD Server API v2
-- (zego.lua), and the "imds" port, when the launcher is given one, as the ECS
-- instance metadata service (imds.lua). The HTTP and HTTPS port of a provider
-- share one state. Providers listed in the state, the faults and the log
-- filter: aliyun and zego, and imds only when it is served.
--
-- Callbacks (callbacks.lua): each attempt is a log entry (kind "callback",
-- action "callback:<event>"), pending ones are the state's "callbacks", a
-- reset drops them. A ticker (TICK_S, 200 ms) brings the pull-to-push tasks
-- up to the emulator clock (task_events.lua) and starts waiting attempts.
--
-- Every response carries a Date header from the emulator clock (shifted by a
-- "skew" fault when one applies).

local version = require "streamctl.version"
local config = require "streamctl.emulator.config"
local clock = require "streamctl.emulator.clock"
local faults = require "streamctl.emulator.faults"
local requestlog = require "streamctl.emulator.requestlog"
local aliyun = require "streamctl.emulator.aliyun"
local zego = require "streamctl.emulator.zego"
local imds = require "streamctl.emulator.imds"
local callbacks = require "streamctl.emulator.callbacks"
local control = require "streamctl.emulator.control_endpoints"
local provider_request = require "streamctl.emulator.provider_request"

local ngx = ngx
local ngx_var, ngx_header, ngx_log, ngx_ERR, ngx_http_time = ngx.var, ngx.header, ngx.log, ngx.ERR, ngx.http_time

local pcall, tostring = pcall, tostring
local floor, randomseed = math.floor, math.randomseed
local match = string.match

-- The version is written once, in streamctl.version (pure Lua, on the same
-- lua_package_path as the emulator's modules).
local M = { _VERSION = version._VERSION }

-- Called from init_by_lua with { config_file = path|nil, dir = DIR, ports = {...},
-- imds_listen = "addr:port"|nil }.
function M.init(opts)
  local options = opts or {}
  local settings = config.load(options.config_file)
  aliyun.init(settings)
  zego.init(settings)
  -- after the providers: it sets the config's strangers on their budgets
  control.init(settings, options)
  imds.init(settings, options.imds_listen)
  faults.set_providers(imds.served() and { "imds" } or nil)
  requestlog.set_limit(settings.log_limit)
end

-- The ticker: every TICK_S seconds (real time) it brings the pull-to-push
-- tasks up to the emulator clock (their health transitions and callbacks go
-- out without a request) and starts callbacks waiting for a connection.
local TICK_S = 0.2

local function tick(premature)
  if premature then
    return
  end
  local ok, err = pcall(function()
    aliyun.tick(clock.now())
    callbacks.tick()
  end)
  if not ok then
    ngx_log(ngx_ERR, "emulator: tick failed: ", tostring(err))
  end
end

-- The collector's pause: how large the heap may grow, in percent of what
-- the last cycle left live, before the next cycle begins (LuaJIT's default
-- is 200, twice as large); at 100 each cycle begins as the last ends.
-- Every request makes strings of 128 bytes or more that differ from the
-- last request's only in a nonce, a timestamp or a signature (its query,
-- the string to sign and its parts). OpenResty's LuaJIT hashes such a
-- string from samples of it, so those of one length that differ only
-- between the samples share one hash, and making the next one compares it
-- with each not yet swept. At the default pause they pile up for a whole
-- cycle, which grows with the heap (the nonces kept, the request log): on
-- 2026-11-28 the worker spent ~60% of its CPU in those comparisons, and
-- its CPU a request rose from 0.44 ms (the first 20,000 ResumeLiveStream)
-- to 0.98 ms (the fifth 20,000). At 100: 0.27 ms, then 0.34-0.40 ms.
local GC_PAUSE = 100

-- Called from init_worker_by_lua.
function M.init_worker()
  collectgarbage("setpause", GC_PAUSE)
  randomseed(floor(clock.real_now() * 1000) % 2147483647 + ngx.worker.pid())
  local ok, err = ngx.timer.every(TICK_S, tick)
  if not ok then
    ngx_log(ngx_ERR, "emulator: cannot start the ticker: ", tostring(err))
  end
end

-- content_by_lua: every request on a provider port.
function M.handle()
  local provider = ngx_var.emu_provider
  local uri = ngx_var.uri or "/"
  local name = match(uri, "^/_emulator/([%w_]*)/?$")
  if name or uri == "/_emulator" then
    return control.serve(provider, name or "")
  end
  return provider_request.serve(provider)
end

-- header_filter_by_lua: the Date header from the emulator clock.
function M.header_filter()
  local skew = ngx.ctx.date_skew or 0
  ngx_header["Date"] = ngx_http_time(floor(clock.now() + skew))
end

return M
