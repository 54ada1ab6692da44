--- The emulator's CA and server certificate, made once into its directory
-- with the openssl command (made again when one is missing or was made
-- with other extensions).
-- @module streamctl.emulator.launcher.certs

local sys = require "streamctl.emulator.launcher.sys"

local file_exists, read_file, write_file, run, die, tail = sys.file_exists, sys.read_file, sys.write_file, sys.run,
  sys.die, sys.tail
local shell_quote = sys.shell_quote

local M = {}

-- The server certificate's extensions. 127.0.0.1 is also a DNS name: nginx's
-- cosockets check a peer's name with X509_check_host, which never matches an
-- IP address entry, so a client inside nginx (streamctl.transport.ngx) could
-- not otherwise verify https://127.0.0.1.
local SERVER_EXTENSIONS = table.concat({
  "basicConstraints=CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth",
  "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:127.0.0.1",
  "subjectKeyIdentifier=hash",
  "authorityKeyIdentifier=keyid,issuer",
}, "\n") .. "\n"

-- Are the CA and the server's key and certificate there, made with these
-- extensions? (Else they are made again: one is missing, or an older release
-- made them with other names.)
local function certificates_current(dir)
  return file_exists(dir .. "/ca.pem") and file_exists(dir .. "/server.key") and file_exists(dir .. "/server.pem")
    and read_file(dir .. "/server.ext") == SERVER_EXTENSIONS
end

local function ensure_certificates(dir)
  local ca, key, cert = dir .. "/ca.pem", dir .. "/server.key", dir .. "/server.pem"
  local ext = dir .. "/server.ext"
  if certificates_current(dir) then
    return
  end
  local q = shell_quote
  local logf = dir .. "/openssl.log"
  write_file(ext, SERVER_EXTENSIONS)
  math.randomseed(os.time())
  local serial = string.format("0x%x%04x", os.time(), math.random(0, 0xffff))
  local steps = {
    "openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      .. " -keyout " .. q(dir .. "/ca.key") .. " -out " .. q(ca) .. " -days 3650"
      .. " -subj '/CN=streamctl emulator CA'"
      .. " -addext 'basicConstraints=critical,CA:TRUE'"
      .. " -addext 'keyUsage=critical,keyCertSign,cRLSign'",
    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      .. " -keyout " .. q(key) .. " -out " .. q(dir .. "/server.csr") .. " -subj '/CN=localhost'",
    "openssl x509 -req -in " .. q(dir .. "/server.csr") .. " -CA " .. q(ca)
      .. " -CAkey " .. q(dir .. "/ca.key") .. " -set_serial " .. serial
      .. " -days 825 -out " .. q(cert) .. " -extfile " .. q(ext),
  }
  for _, cmd in ipairs(steps) do
    if not run(cmd .. " >>" .. q(logf) .. " 2>&1") then
      os.remove(ca)
      os.remove(cert)
      die(1, "certificate generation failed (is the openssl CLI installed?):\n", tail(logf, 10))
    end
  end
  os.remove(dir .. "/server.csr")
  run("chmod 600 " .. q(dir .. "/ca.key") .. " " .. q(key))
  run("chmod 644 " .. q(ca) .. " " .. q(cert))
end

M.current, M.ensure = certificates_current, ensure_certificates

return M
