-- The signature nonces the Aliyun ports have seen (SignatureNonceUsed: a
-- nonce may be used once per key within nonce_ttl_s).
--
-- Used nonces: key -> expiry (emulator time), plus a FIFO of {key, expiry} in
-- insertion order. Each insert drops entries from the FIFO's head while they
-- have expired or while more than MAX_NONCES are kept, so memory stays bounded
-- under benchmark load: replay detection covers nonce_ttl_s (15 minutes) or the
-- last MAX_NONCES requests, whichever is less.

local M = {}

local MAX_NONCES = 200000
local nonces = {}
local fifo = {}
local fifo_head, fifo_tail = 1, 0

-- Records the nonce of key `ak` for `ttl` seconds from `now`; false when it
-- was already used and has not expired.
function M.use(ak, nonce, now, ttl)
  local key = ak .. "\n" .. nonce
  local exp = nonces[key]
  if exp and exp > now then
    return false
  end
  exp = now + ttl
  nonces[key] = exp
  fifo_tail = fifo_tail + 1
  fifo[fifo_tail] = { key, exp }
  while fifo_head <= fifo_tail do
    local e = fifo[fifo_head]
    if fifo_tail - fifo_head + 1 <= MAX_NONCES and e[2] > now then
      break
    end
    if nonces[e[1]] == e[2] then
      nonces[e[1]] = nil
    end
    fifo[fifo_head] = nil
    fifo_head = fifo_head + 1
  end
  return true
end

-- Forgets every nonce.
function M.reset()
  nonces, fifo, fifo_head, fifo_tail = {}, {}, 1, 0
end

return M
