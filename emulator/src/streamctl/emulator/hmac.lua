-- SHA-256 and HMAC-SHA256 from nginx-lua's own primitives.
--
-- The emulator must never borrow streamctl's C core to check a signature (a bug
-- there would then be mirrored instead of caught). nginx-lua ships HMAC-SHA1
-- (ngx.hmac_sha1) and MD5 (ngx.md5) but no HMAC-SHA256, so it is built here from
-- the plain SHA-256 of lua-nginx-string (`nginx.sha256`) following RFC 2104:
--
--   HMAC(K, m) = H((K' xor opad) || H((K' xor ipad) || m))
--
-- where K' is K hashed when longer than the block size (64 bytes for SHA-256)
-- and then right-padded with zero bytes to 64 bytes; ipad = 0x36 repeated,
-- opad = 0x5c repeated.

local sha256 = require "nginx.sha256"
local nginx_string = require "nginx.string"
local bit = require "bit"

local bxor = bit.bxor
local byte, char, rep = string.byte, string.char, string.rep
local concat = table.concat
local to_hex = nginx_string.to_hex

local BLOCK = 64

local M = {}

-- Binary SHA-256 digest (32 bytes) of s.
function M.sha256(s)
  local h = sha256:new()
  h:update(s)
  return h:final()
end

-- Lowercase hex SHA-256 of s.
function M.sha256_hex(s)
  return to_hex(M.sha256(s))
end

-- Binary HMAC-SHA256 (32 bytes) of msg under key.
function M.hmac_sha256(key, msg)
  if #key > BLOCK then
    key = M.sha256(key)
  end
  key = key .. rep("\0", BLOCK - #key)
  local ipad, opad = {}, {}
  for i = 1, BLOCK do
    local b = byte(key, i)
    ipad[i] = char(bxor(b, 0x36))
    opad[i] = char(bxor(b, 0x5c))
  end
  local inner = M.sha256(concat(ipad) .. msg)
  return M.sha256(concat(opad) .. inner)
end

-- Lowercase hex HMAC-SHA256.
function M.hmac_sha256_hex(key, msg)
  return to_hex(M.hmac_sha256(key, msg))
end

M.to_hex = to_hex

return M
