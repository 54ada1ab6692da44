-- Independent digests for specs: the openssl command line, fed through temp
-- files, so expected signatures never come from streamctl's own C core.
local M = {}

local function tmpfile(data)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(data)
  f:close()
  return name
end

local function run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- openssl dgst prints "NAME(stdin)= hex" or "(stdin)= hex"; take the hex.
local function dgst(args, data)
  local name = tmpfile(data)
  local out = run("openssl dgst " .. args .. " < " .. name)
  os.remove(name)
  return (out:match("([%x]+)$"))
end

function M.sha256_hex(data) return dgst("-sha256", data) end
function M.md5_hex(data) return dgst("-md5", data) end

function M.hmac_sha256_hex(key, data)
  return dgst("-sha256 -mac HMAC -macopt hexkey:" .. (key:gsub(".", function(c)
    return string.format("%02x", c:byte()) end)), data)
end

function M.hmac_sha1_base64(key, data)
  local name = tmpfile(data)
  local out = run("openssl dgst -sha1 -mac HMAC -macopt hexkey:" .. (key:gsub(".", function(c)
    return string.format("%02x", c:byte()) end)) .. " -binary < " .. name .. " | openssl base64 -A")
  os.remove(name)
  return out
end

M.shell_quote = shell_quote
return M
