--- How a call reaches one Redis node, for streamctl.store.redisconn: a
-- session runs a function of `cmd(argv)` on a connection to the node,
-- greeted when it is new, outside nginx through the blocking C module
-- streamctl.redis (hiredis), inside nginx through a cosocket from nginx's
-- pool (`nginx.redis`, Debian's lua-nginx-redis; OpenResty's `resty.redis`);
-- each over TLS when the configuration says `tls` (a rediss:// URL).
--
-- TLS outside nginx is the C module's (csrc/redis_tls.c, over OpenSSL: the
-- CAs of `tls_ca_file` or OpenSSL's default paths; the certificate's name
-- checked against `tls_server_name` or the node's host, an IP address
-- against its IP entries; a client certificate from `tls_cert_file` and
-- `tls_key_file`, read by OpenSSL, never into a Lua string). Inside nginx it
-- is nginx's (`sslhandshake(false, name, true)`): the CAs of
-- `lua_ssl_trusted_certificate` (so `tls_ca_file` must name that file),
-- and nginx checks the name against the certificate's DNS names (a node
-- named by an IP address needs that address among them, or a
-- `tls_server_name` that is); a client certificate is parsed once, when
-- the connection object is made (`ngx.ssl`), and set on each new socket
-- (`setclientcert`, lua-resty-core). Pooled connections are separated by
-- their TLS settings as by their logins.
-- @module streamctl.store.redissession

-- luacheck: globals ngx
local type, tostring, pairs, ipairs, setmetatable, require, pcall, rawget =
  type, tostring, pairs, ipairs, setmetatable, require, pcall, rawget
local find, lower, match = string.find, string.lower, string.match
local unpack = table.unpack or unpack -- luacheck: ignore 143

local redisconfig = require "streamctl.store.redisconfig"

local M = {}

--- What a nil bulk or nil array reply becomes in `conn:eval`'s results,
-- whichever backend answered.
M.null = setmetatable({}, { __tostring = function() return "streamctl.store.redis.null" end })

--- nginx's connection pool: how long an idle connection is kept (ms) and how
-- many per worker and pool.
M.POOL_IDLE_MS = 10000
M.POOL_SIZE = 100

-- Outside nginx (and in its init phase) Redis is reached through the C module
-- streamctl.redis, which is a rock of its own (it needs hiredis).
M.NO_HIREDIS = "Redis outside nginx needs the streamctl.redis module, which is not installed: it is the "
  .. "streamctl-redis rock (apt-get install libhiredis-dev; luarocks --lua-version=5.4 make --deps-mode=none "
  .. "rockspecs/streamctl-redis-scm-1.rockspec)"

-- v with every occurrence of `null` (the backend's) replaced by M.null.
local function convert(v, null)
  if v == null then return M.null end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = convert(x, null) end
  end
  return v
end

-- ---- TLS

-- A file's text (at most 1 MiB, opened without blocking on a FIFO), or
-- nil, message: the client certificate and key inside nginx.
local function read_all(path)
  return require("streamctl.core").read_file(path, 1024 * 1024)
end

--- The TLS state of a connection object for config `cfg` (nil without
-- `tls`): its files loaded now, so a bad one is refused when the object is
-- made, not at a call. `hiredis`: the C module's table; inside nginx
-- `cert` and `key`, parsed. `pool`: the suffix of its nginx pool names.
-- Returns the state, or nil and a message naming the option.
function M.tls(cfg)
  if not cfg.tls then return nil end
  local t = { server_name = cfg.tls_server_name,
              hiredis = { ca_file = cfg.tls_ca_file, server_name = cfg.tls_server_name,
                          cert_file = cfg.tls_cert_file, key_file = cfg.tls_key_file } }
  local ok_mod, mod = pcall(require, "streamctl.redis")
  if ok_mod then
    local ok, why = mod.tls_check(t.hiredis)
    if not ok then
      local field, rest = match(why, "^(tls_[%w_]+) (.*)$")
      return nil, field and "option 'redis." .. field .. "' " .. rest or "TLS: " .. why
    end
  end
  if rawget(_G, "ngx") and cfg.tls_cert_file then
    local ok_ssl, ssl = pcall(require, "ngx.ssl")
    if not ok_ssl then return nil, "option 'redis.tls_cert_file' inside nginx needs ngx.ssl (lua-resty-core)" end
    for _, f in ipairs { { "tls_cert_file", "cert", ssl.parse_pem_cert },
                        { "tls_key_file", "key", ssl.parse_pem_priv_key } } do
      local text, err = read_all(cfg[f[1]])
      local parsed = text and f[3](text)
      if not parsed then
        return nil, "option 'redis." .. f[1] .. "' " .. (text and "holds no PEM " .. f[2] .. " nginx can parse"
          or "cannot be read: " .. tostring(err))
      end
      t[f[2]] = parsed
    end
  end
  -- (pools apart by CA file, name and client certificate; a login's key never holds two '\0')
  t.pool = ":tls" .. redisconfig.id_of("tls\0" .. (cfg.tls_ca_file or "") .. "\0" .. (cfg.tls_server_name or "")
    .. "\0" .. (cfg.tls_cert_file or ""))
  return t
end

-- The handshake on a new cosocket of `red` (an nginx.redis object) to
-- `node`: nil, or a message. (lua-nginx-redis 0.27 has no `ssl` option of
-- its own: the handshake is made on its socket, as resty.redis 0.28's
-- `connect` makes it when given one.)
local function cosocket_tls(t, red, node)
  local sock = rawget(red, "_sock")
  if not sock or not sock.sslhandshake then return "TLS: this nginx.redis keeps no socket to secure" end
  if t.cert then
    if not sock.setclientcert then
      return "TLS: a client certificate inside nginx needs lua-resty-core's setclientcert"
    end
    local ok, err = sock:setclientcert(t.cert, t.key)
    if not ok then return "TLS client certificate: " .. tostring(err) end
  end
  local name = t.server_name or node.host
  -- (nil is a failure; a handshake done at once answers false. lua-nginx-module 0.10.23 answers
  -- true to a certificate that does not show the name, after closing the socket and saying so
  -- in the error log: a socket closed by the handshake is that failure)
  local ok, err = sock:sslhandshake(false, name, true)
  if ok == nil then return "TLS handshake: " .. tostring(err) end
  if not sock:getreusedtimes() then
    return "TLS handshake: the certificate was refused for '" .. name .. "' (nginx's error log says why)"
  end
end

local hiredis_module -- streamctl.redis, loaded on first use

-- A new hiredis connection to `node`, greeted; or nil, err, kind.
local function hiredis_open(self, node, greet)
  if not hiredis_module then
    local ok, mod = pcall(require, "streamctl.redis")
    if not ok then return nil, M.NO_HIREDIS .. " (" .. tostring(mod):match("^[^\n]*") .. ")", "io" end
    hiredis_module = mod
  end
  local c, err, kind = hiredis_module.connect(node.host, node.port, self.config.timeout_ms, self._tls
    and self._tls.hiredis)
  if not c then return nil, "connect: " .. tostring(err), kind or "io" end
  local gerr, gkind = greet(self, node, function(argv) return c:command(unpack(argv, 1, #argv)) end)
  if gerr then
    c:close()
    return nil, gerr, gkind
  end
  self.setups = self.setups + 1
  return c
end

-- A connection that failed on its first command after it was reused (not
-- a timeout) had gone stale (the server restarted, a proxy dropped it): the
-- sessions below then try once more on a new one.
local function is_stale(err)
  return not find(tostring(err), "^timeout")
end

--- Runs fn(cmd) with the hiredis connection to `node` of connection object
-- `self` (made and greeted by `greet(self, node, send)` when there is none);
-- cmd(argv) -> reply | nil, err, kind. Returns fn's results; or nil, err,
-- kind, true when the connection or its greeting failed (nothing of fn ran).
function M.hiredis(self, node, fn, greet)
  local res, err, kind
  for _ = 1, 2 do
    local c = node.link
    local reused, stale = c ~= nil, false
    if not c then
      c, err, kind = hiredis_open(self, node, greet)
      if not c then return nil, err, kind, true end
      node.link = c
    end
    local sent = 0
    local function cmd(argv)
      sent = sent + 1
      local r, cerr, ckind = c:command(unpack(argv, 1, #argv))
      if r == nil then
        if ckind == "io" then
          node.link = nil -- closed by the module; made again next time
          stale = reused and sent == 1 and is_stale(cerr)
        end
        return nil, cerr, ckind
      end
      return convert(r, hiredis_module.null)
    end
    res, err, kind = fn(cmd)
    if not stale then break end
  end
  return res, err, kind
end

--- Runs fn(cmd) as `hiredis` does, with a cosocket connection to `node`
-- from nginx's pool.
function M.cosocket(self, node, fn, greet)
  -- Debian's lua-nginx-redis is nginx.redis; OpenResty bundles the same as resty.redis
  local ok_mod, redis_ngx = pcall(require, "nginx.redis")
  if not ok_mod then ok_mod, redis_ngx = pcall(require, "resty.redis") end
  if not ok_mod then
    return nil, "neither nginx.redis (Debian: lua-nginx-redis) nor resty.redis (OpenResty) can be loaded", "io"
  end
  local res, err, kind
  for _ = 1, 2 do
    local red, nerr = redis_ngx:new()
    if not red then return nil, "nginx.redis: " .. tostring(nerr), "io" end
    red:set_timeout(self.config.timeout_ms)
    local ok, cerr = red:connect(node.host, node.port, { pool = node.pool })
    if not ok then return nil, "connect: " .. tostring(cerr), "io", true end
    local reused = (red:get_reused_times() or 0) > 0
    if self._tls and not reused then
      local terr = cosocket_tls(self._tls, red, node)
      if terr then
        red:close()
        return nil, terr, "io", true
      end
    end
    -- (nginx.redis sends any command by its lower-case name: red:auth(user,
    -- password), red:asking(); nil is an I/O failure, false an error reply)
    local function send(argv)
      local r, rerr = red[lower(argv[1])](red, unpack(argv, 2, #argv))
      if r == nil then return nil, tostring(rerr), "io" end
      if r == false then return nil, tostring(rerr), "server" end
      return r
    end
    if not reused then
      local gerr, gkind = greet(self, node, send)
      if gerr then
        red:close()
        return nil, gerr, gkind, true
      end
      self.setups = self.setups + 1
    end
    local broken, stale, sent = false, false, 0
    local function cmd(argv)
      sent = sent + 1
      local r, rerr, rkind = send(argv)
      if r == nil and rkind == "io" then
        broken = true
        stale = reused and sent == 1 and is_stale(rerr)
      end
      if r == nil then return nil, rerr, rkind end
      return convert(r, ngx.null)
    end
    res, err, kind = fn(cmd)
    if broken then
      red:close()
    else
      red:set_keepalive(M.POOL_IDLE_MS, M.POOL_SIZE)
    end
    if not stale then break end
  end
  return res, err, kind
end

return M
