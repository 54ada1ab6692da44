-- A provider is its own files and one registration line (issue 51): this
-- spec builds a third one, "acme", of one operation, in a directory of its
-- own: its client (streamctl/acme.lua: the rules streamctl.pipeline.provider
-- writes down), its command table (streamctl/cli/providers/acme.lua:
-- streamctl.cli.provider's), and a copy of streamctl/providers.lua with one
-- line more. Put before the build on the path, nothing else changes: the
-- library gives streamctl.acme, the command `streamctl acme ...`, its help,
-- its dry run, a call through the pipeline to a server this spec starts on
-- 127.0.0.1, the audit line the guard writes for a forbid, and the house's
-- layer check places the new module among the providers.
local process = require "spec.helpers.process"
local layers = dofile((os.getenv("STREAMCTL_ROOT") or ".") .. "/tools/layers.lua")

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local q = process.quote

-- The provider's client: one operation, BanStream, that forbids a stream;
-- a JSON body, its key id in a header and in another the SHA-256 of its
-- secret and the body (a fake's signature: streamctl.core's, over OpenSSL).
local ACME = [=[
local client = require "streamctl.pipeline.client"
local core = require "streamctl.core"
local json = require "streamctl.base.json"
local errors = require "streamctl.base.errors"

local rules = {
  provider = "acme",
  defaults = { endpoint = "https://api.acme.example" },
  variables = { { "key_id", "ACME_KEY_ID" }, { "key_secret", "ACME_KEY_SECRET" } },
  options = {
    { name = "key_id", type = "string" },
    { name = "key_secret", type = "string" },
  },
  operations = { BanStream = { effect = "forbid", method = "POST", idempotent = true, cap = 5 } },
  methods = { ban_stream = { action = "BanStream", fields = {
    { name = "stream_name", param = "Stream", type = "string", required = true, max_len = 64 } } } },
  common_params = {},
  redact = { headers = { ["x-acme-signature"] = "all" } },
}
function rules.streams(_, params) return { params.Stream } end
function rules.array(name, list) return name, table.concat(list, ",") end
function rules.configure(_, _, creds) return { key_id = creds.key_id, _secret = creds.key_secret } end
function rules.build(self, action, op, params, _, nonce)
  local body = '{"Action":' .. json.string(action) .. ',"Stream":' .. json.string(params.Stream) .. ',"Nonce":'
    .. json.string(nonce) .. "}"
  return { provider = "acme", action = action, method = op.method, url = self.endpoint.url .. "/",
           headers = { ["content-type"] = "application/json", ["x-acme-key"] = self.key_id,
                       ["x-acme-signature"] = core.sha256_hex(self._secret .. "\n" .. body) },
           body = body }
end
function rules.decode(_, action, res)
  local data = json.decode(res.body)
  if res.status == 200 and type(data) == "table" then return data end
  return nil, errors.new { provider = "acme", action = action, http_status = res.status, code = "HTTP" .. res.status,
                           kind = "service", message = "refused" }
end
function rules.nonce() return core.random_hex(8) end
function rules.nonce_rule(n) return (type(n) ~= "string" or not n:find("^%x+$")) and "is not hex" or nil end
function rules.account(self) return self.key_id end
function rules.secrets(self) return { self._secret } end
return client.define(rules)
]=]

-- Its command table: a title, an example, its credential flags.
local ACME_CLI = [=[
return {
  title = "Acme Live",
  example = "streamctl acme ban-stream --stream-name s1",
  call_example = "BanStream Stream=s1",
  list = { noun = "names", metavar = "STREAM", example = "s1 s2" },
  keys = { "key_id", "key_secret" },
  credentials = {
    title = "Credentials (default: ACME_KEY_ID and ACME_KEY_SECRET)",
    flags = { { "--key-id", "Key ID.", "<id>" }, { "--key-secret", "Key secret.", "<secret>" } },
  },
}
]=]

-- `text` with `line` added before its table's closing brace: the one registration line.
local function registered(text, line)
  local out = text:gsub("\n}\n$", "\n" .. line .. "\n}\n")
  return out
end

describe("a third provider", function()
  local dir, registry
  setup(function()
    dir = process.temp_dir()
    os.execute("mkdir -p " .. q(dir .. "/streamctl/cli/providers"))
    process.write_file(dir .. "/streamctl/acme.lua", ACME)
    process.write_file(dir .. "/streamctl/cli/providers/acme.lua", ACME_CLI)
    local original = assert(process.read_file(ROOT .. "/src/streamctl/providers.lua"))
    registry = registered(original, '  "acme",')
    process.write_file(dir .. "/streamctl/providers.lua", registry)
    -- (the registration is one line more, the others as they were)
    local diff = process.capture("diff " .. q(ROOT .. "/src/streamctl/providers.lua") .. " "
      .. q(dir .. "/streamctl/providers.lua"))
    assert.equal('16a17\n>   "acme",\n', diff)
  end)
  teardown(function() os.execute("rm -rf " .. q(dir)) end)

  -- The command with the new provider's directory first on the path: its
  -- exit status, standard output and standard error. (A program of its
  -- own, on the C modules of the plain build its interpreter's: under the
  -- ASan and valgrind phases this spec's are the sanitizer's, which a
  -- process not started under it cannot load.)
  local jit = rawget(_G, "jit") ~= nil
  local cpath = ROOT .. (jit and "/build/jit/lib/lua/5.1/?.so;;" or "/build/5.4/lib/lua/5.4/?.so;;")
  local function streamctl(args, env)
    local out, err = dir .. "/out", dir .. "/err"
    local status = process.exit_status(os.execute("env -i PATH=/usr/bin:/bin HOME=" .. q(dir) .. " " .. (env or "")
      .. " LUA_PATH=" .. q(dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path)
      .. " LUA_CPATH=" .. q(cpath) .. " " .. (jit and "luajit" or "lua5.4") .. " " .. q(ROOT .. "/bin/streamctl")
      .. " " .. args .. " </dev/null >" .. q(out) .. " 2>" .. q(err)))
    return status, process.read_file(out) or "", process.read_file(err) or ""
  end

  it("is a subcommand of its own, from its table", function()
    local code, out = streamctl("--help")
    assert.equal(0, code)
    assert.truthy(out:find("\n   acme +Acme Live operations%.\n"), out)
    assert.truthy(out:find("streamctl acme ban-stream --stream-name s1", 1, true), out)
    code, out = streamctl("acme ban-stream --help")
    assert.equal(0, code)
    for _, want in ipairs { "--stream-name <stream-name>", "(required) Stream", "--key-id <id>",
                            "Credentials (default: ACME_KEY_ID and ACME_KEY_SECRET)", "--audit-log <file>" } do
      assert.truthy(out:find(want, 1, true), want .. " in " .. out)
    end
    -- (its operation forbids one stream: audited, and no list for a blast-radius guard)
    assert.is_nil(out:find("--max-forbid", 1, true))
  end)

  it("signs and sends through the pipeline, its secret never shown, and the guard audits the forbid", function()
    local child, port = process.httpserver(20, "/echo")
    local ok, err = pcall(function()
      local audit = dir .. "/audit.jsonl"
      local code, out, e = streamctl("acme ban-stream --stream-name match-7 --endpoint http://127.0.0.1:" .. port
        .. " --audit-log " .. q(audit) .. " -o json", "ACME_KEY_ID=k-1 ACME_KEY_SECRET=acme-secret-0123")
      assert.equal(0, code, out .. e)
      assert.is_nil((out .. e):find("acme-secret-0123", 1, true))
      -- the server got one POST, its body the operation's, its headers the key and the body's HMAC
      local sent = assert(out:match('"result":(%b{})'), out)
      assert.truthy(sent:find('"method":"POST"', 1, true), sent)
      local body = assert(sent:match('"body":"(.-[^\\])"'), sent):gsub('\\"', '"')
      assert.equal("BanStream", body:match('"Action":"(%w+)"'))
      assert.equal("match-7", body:match('"Stream":"([%w-]+)"'))
      assert.truthy(sent:find('["x-acme-key","k-1"]', 1, true), sent)
      -- (an answer that quotes the signature shows it redacted; the server saw the bytes)
      assert.truthy(sent:find('["x-acme-signature","<redacted>"]', 1, true), sent)
      local last = assert(require("socket.http").request("http://127.0.0.1:" .. port .. "/last"))
      local mac = require("streamctl.core").sha256_hex("acme-secret-0123\n" .. body)
      assert.truthy(last:find('["x-acme-signature","' .. mac .. '"]', 1, true), last)
      -- the guard read the operation's effect: the run's intent and outcome in the audit log
      local log = assert(process.read_file(audit))
      assert.truthy(log:find('"provider":"acme"', 1, true), log)
      assert.truthy(log:find('"BanStream"', 1, true), log)
      assert.truthy(log:find("match-7", 1, true), log)
    end)
    process.stop(child)
    assert(ok, err)
  end)

  it("prints its signed request on a dry run, the signature redacted, and sends nothing", function()
    local code, out = streamctl("acme ban-stream --stream-name s1 --key-id k-1 --key-secret acme-secret-0123 "
      .. "--dry-run --no-audit-log")
    assert.equal(0, code, out)
    assert.truthy(out:find("POST https://api.acme.example/", 1, true), out)
    assert.truthy(out:find("x-acme-key: k-1", 1, true), out)
    assert.is_nil(out:find("acme-secret-0123", 1, true))
    assert.is_nil(out:find("x-acme-signature: %x%x%x%x"), out)
  end)

  it("is the registry's: a field of the library that is no provider is no command", function()
    for _, word in ipairs { "errors", "credentials", "_VERSION" } do
      local code, _, e = streamctl(word .. " x")
      assert.equal(2, code, e)
      assert.truthy(e:find("unknown command '" .. word .. "'", 1, true), e)
    end
  end)

  it("is refused by its own rules, naming the flag", function()
    local code, _, e = streamctl("acme ban-stream --stream-name " .. string.rep("x", 65)
      .. " --key-id k --key-secret s --no-audit-log --endpoint http://127.0.0.1:9")
    assert.equal(2, code)
    assert.truthy(e:find("--stream-name", 1, true), e)
  end)

  it("is placed among the providers by the house's layer check", function()
    local tree = dir .. "/tree"
    os.execute("mkdir -p " .. q(tree) .. " && cp -r " .. q(ROOT .. "/src") .. " " .. q(tree .. "/src")
      .. " && cp " .. q(dir .. "/streamctl/acme.lua") .. " " .. q(tree .. "/src/streamctl/acme.lua")
      .. " && cp " .. q(dir .. "/streamctl/providers.lua") .. " " .. q(tree .. "/src/streamctl/providers.lua"))
    assert.same({}, layers.check(layers.scan(tree)))
    -- (without its line, the same module is unplaced: the line is what places it)
    process.write_file(tree .. "/src/streamctl/providers.lua",
      assert(process.read_file(ROOT .. "/src/streamctl/providers.lua")))
    assert.same({ "unplaced: streamctl.acme" }, layers.check(layers.scan(tree)))
  end)
end)
