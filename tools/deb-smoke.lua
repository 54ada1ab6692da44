-- The packages' own check, under whichever interpreter runs it (lua5.4,
-- luajit): streamctl loads from where that interpreter looks, signs every
-- published vector of VECTORS (spec/vectors/signing-vectors.json) byte for
-- byte, and its other C modules load. debian/rules runs it on the build
-- (LUA_PATH/LUA_CPATH naming the build's files); tools/check-deb.sh on the
-- installed packages, with no path set at all.
--
--   lua5.4 tools/deb-smoke.lua VECTORS [streamctl.redis]
--
-- Prints one line saying what it checked; exits 1 naming the first mismatch.

local cjson = require "cjson"

local vectors_file = assert(arg[1], "usage: deb-smoke.lua VECTORS [MODULE...]")
local f = assert(io.open(vectors_file, "rb"))
local V = cjson.decode(f:read("*a"))
f:close()

local streamctl = require "streamctl"
local core = require "streamctl.core"
local failures = {}
local function check(what, want, got)
  if want ~= got then
    failures[#failures + 1] = string.format("%s: want %q, got %q", what, tostring(want), tostring(got))
  end
end

local n = 0
for i, v in ipairs(V.aliyun_rpc_v1) do
  check("aliyun_rpc_v1 #" .. i, v.signature, (core.aliyun_sign_v1(v.method, v.params, v.access_key_secret)))
  n = n + 1
end
for i, v in ipairs(V.aliyun_v3) do
  local auth, sig = core.aliyun_sign_v3 { method = v.method, path = v.path, query = v.query, headers = v.headers,
    body = v.body, access_key_id = v.access_key_id, access_key_secret = v.access_key_secret }
  check("aliyun_v3 #" .. i .. " signature", v.signature, sig)
  check("aliyun_v3 #" .. i .. " Authorization", v.authorization, auth)
  n = n + 1
end
for i, z in ipairs(V.zego_v2) do
  check("zego_v2 #" .. i, z.signature, core.zego_sign(z.app_id, z.signature_nonce, z.server_secret, z.timestamp))
  n = n + 1
end

-- the other C modules: each loads (the transport and the signal watcher of
-- the core package; the Redis client when named)
local loaded = { "streamctl.core" }
for _, name in ipairs { "streamctl.curl", "streamctl.signal", arg[2] } do
  local ok, err = pcall(require, name)
  if ok then loaded[#loaded + 1] = name else failures[#failures + 1] = name .. ": " .. tostring(err) end
end

local where = package.searchpath and package.searchpath("streamctl", package.path) or "?"
if #failures > 0 then
  io.stderr:write(string.format("deb-smoke (%s): %d of the checks failed:\n  %s\n", _VERSION,
    #failures, table.concat(failures, "\n  ")))
  os.exit(1)
end
print(string.format("%s: streamctl %s from %s signs the %d published vectors byte for byte; %s load",
  jit and jit.version .. " (the Lua 5.1 API)" or _VERSION, streamctl._VERSION, where, n, table.concat(loaded, ", ")))
