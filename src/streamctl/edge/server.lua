--- streamctl at the edge: the handlers an nginx.conf routes to, resuming
-- and forbidding streams from inside nginx, never blocking a worker.
--
--   init_by_lua_block        { require("streamctl.edge.server").init() }  -- settings: the environment
--   init_worker_by_lua_block { require("streamctl.edge.server").init_worker() }
--   location = /streams/aliyun/forbid { content_by_lua_block {
--     require("streamctl.edge.server").streams("aliyun", "forbid") } }
--
-- `init(settings)` takes the settings (streamctl.edge.settings: a table, or
-- none to read them from the variables nginx's `env` directives pass) and
-- checks them, each by its rule, so a mistake stops nginx at start, named.
-- The handlers, by location (examples/openresty/nginx.conf routes them all):
--
--   streams(provider, operation)  POST /streams/<aliyun|zego>/<resume|forbid>: the moderation API
--                                 (streamctl.edge.moderation; Bearer `token`)
--   both(operation)               POST /streams/<resume|forbid>: both providers in one request
--   aliyun_callback, zego_callback, relay_callback(token)
--                                 the providers' callbacks (streamctl.edge.reactions)
--   admission, aliyun_admission   the door every ingest server asks, and Alibaba Cloud's remote
--                                 authentication (streamctl.edge.door)
--   zego_token                    POST /tokens/zego (Bearer `issuer_token`)
--   metrics                       Prometheus text
--
-- Worker 0 of the edge holding the list's lease keeps the forbid list
-- (streamctl.edge.keeper). See docs/openresty.md.
-- @module streamctl.edge.server

-- luacheck: globals ngx

-- nginx's master reads LUA_PATH and LUA_CPATH from the shell that starts it,
-- and puts them where nginx.conf's `;;` (or no lua_package_*path) says: a
-- shell set up for Lua 5.4 then has LuaJIT load Lua 5.4's C modules (cjson:
-- "undefined symbol: lua_newuserdatauv"). Refused here, before any C module
-- is loaded, naming the variable (docs/openresty.md, "Lua 5.4's paths").
if _VERSION == "Lua 5.1" and package.searchpath then
  for _, m in ipairs { { "cjson", "cpath", "LUA_CPATH" }, { "streamctl.core", "cpath", "LUA_CPATH" },
                       { "streamctl", "path", "LUA_PATH" } } do
    local file = package.searchpath(m[1], package[m[2]])
    if file and (file:find("lua/5%.4") or file:find("lua5%.4")) then
      local from = os.getenv(m[3]) and m[3] .. " in nginx's environment (" .. os.getenv(m[3]) .. ")"
        or "lua_package_" .. m[2] .. " in nginx.conf"
      error(string.format("streamctl.edge.server: require %q would load %s, Lua 5.4's, into LuaJIT: %s names a "
        .. "Lua 5.4 tree. Start nginx without it (env -u LUA_PATH -u LUA_CPATH nginx ...), and give Lua 5.4 "
        .. "its paths in LUA_PATH_5_4 and LUA_CPATH_5_4", m[1], file, from), 0)
    end
  end
end

local tracing = require "streamctl.trace"
local metrics_mod = require "streamctl.operator.metrics"
local audit = require "streamctl.operator.audit"
local callbacks = require "streamctl.edge.callbacks"
local settings = require "streamctl.edge.settings"
local W = require "streamctl.edge.worker"
local moderation = require "streamctl.edge.moderation"
local reactions = require "streamctl.edge.reactions"
local door = require "streamctl.edge.door"
local keeper = require "streamctl.edge.keeper"

local ipairs, error = ipairs, error

local M = {}

--- init_by_lua: the settings checked (`s`: a table, or nil for the
-- environment's), and what the workers will need, so a mistake stops nginx
-- at start instead of failing requests.
function M.init(s)
  local checked, why = settings.check(s or settings.from_env())
  if not checked then error("streamctl.edge: " .. why, 0) end
  if checked.redis_url then
    local ok, rwhy = require("streamctl.store.redis").config(checked.redis_url)
    if not ok then error("streamctl.edge: " .. settings.name(checked, "redis_url") .. " " .. rwhy, 0) end
  end
  local _, twhy = tracing.from_env { service_name = "streamctl-edge" }
  if twhy then error("streamctl.edge: " .. twhy, 0) end
  for _, dict in ipairs { W.SHARED_DICT, W.METRICS_DICT, W.CALLBACKS_DICT, W.DESIRED_DICT } do
    if not ngx.shared[dict] then error("streamctl.edge: nginx.conf needs 'lua_shared_dict " .. dict .. " ...;'", 0) end
  end
  -- (the callbacks' dict began when nginx did: a callback whose window began before cannot have been
  -- seen by it; a reload keeps the dict and its first mark)
  assert(callbacks.shdict_started(ngx.shared[W.CALLBACKS_DICT], ngx.now()))
  W.settings = checked
end

--- init_worker_by_lua: the metrics, the tracer and the audit log, and on
-- worker 0 the forbid list's keeper.
function M.init_worker()
  if not W.settings then error("streamctl.edge: init_worker before init (init_by_lua must call init)", 0) end
  W.metrics = assert(metrics_mod.new { dict = ngx.shared[W.METRICS_DICT] }) -- (nil, err only for a bad option)
  -- (nil when none is asked for; a bad variable was refused in init)
  W.tracer = tracing.from_env { service_name = "streamctl-edge", metrics = W.metrics }
  W.host = audit.who().host
  W.audit_write, W.audit_why = audit.writer(W.settings.audit_log or (ngx.config.prefix() .. "logs/audit.jsonl"),
    { warn = function(text) ngx.log(ngx.WARN, "streamctl.edge: ", text) end }) -- (a torn tail, said once)
  if not W.audit_write then ngx.log(ngx.ERR, "streamctl.edge: the audit log: ", W.audit_why) end
  door.start()
  if ngx.worker.id() == 0 then keeper.start() end
end

M.streams = moderation.streams
M.both = moderation.both
M.aliyun_callback = reactions.aliyun
M.zego_callback = reactions.zego
M.relay_callback = reactions.relay
M.admission = door.ingest
M.aliyun_admission = door.aliyun
M.zego_token = door.zego_token

--- content_by_lua for GET /metrics.
function M.metrics()
  door.flush()
  ngx.header.content_type = "text/plain; version=0.0.4"
  ngx.print(W.metrics:render())
end

return M
