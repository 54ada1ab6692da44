-- The command line's bad-input matrix and its secrets sweep, run in this
-- process through streamctl.cli.main (so the sanitizer build sees it too)
-- against an emulator and a scripted server on 127.0.0.1.
--
-- Matrix: every flag of every command of both providers (made from the
-- methods' schemas, like the commands themselves), given every kind of wrong
-- text a shell can pass (empty, 10 MB, CR/LF, TAB, DEL, invalid UTF-8,
-- numbers that are not, out of range, NaN and infinities, values outside a
-- choice), the connection and credential flags likewise, unknown flags,
-- missing required flags and empty stream lists. Each row must exit 2
-- (usage), name the flag on standard error in a short message, print nothing
-- on standard output, and send nothing (the emulator's log stays empty).
--
-- Secrets: every command, both outputs, answered by the emulator (success and
-- a refused signature), by a server that echoes the request, and as a dry
-- run: no secret, token or signature the request carried is printed.
--
-- Under ASan both take a fixed slice (spec/helpers/matrix.lua): every
-- field and flag, a quarter of its values, one output per command.
local cjson = require "cjson"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local process = require "spec.helpers.process"
local matrix = require "spec.helpers.matrix"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"

-- A text far over every limit: 10 MiB; 256 KiB under valgrind or ASan (the
-- same C on every byte, over 30 times the largest limit, and minutes less).
local BIG = string.rep("x", (process.preloaded() and 256 or 10 * 1024) * 1024)
local NOW = os.time()
local HOME = nginx.temp_dir() -- empty: no profile or config file is read

local function getenv(name) if name == "HOME" then return HOME end end

-- Runs the command line `argv`; returns the exit status, stdout and stderr.
local function run(argv) return require("spec.helpers.checks").run_cli(argv, { getenv = getenv }) end

local function flag(name) return "--" .. name:gsub("_", "-") end
local function command(name) return (name:gsub("_", "-")) end

-- A valid value of each field, as text.
local GOOD = {
  domain_name = "push.example.com", app_name = "live", stream_name = "s", region = "cn-shanghai",
  task_id = "T1", source_type = "url", source_urls = "https://cdn.example.com/a.mp4",
  dst_url = "rtmp://push.example.com/live/y", start_time = tostring(NOW + 60), end_time = tostring(NOW + 3600),
  stream_id = "s", function_names = "aliauth", block_type = "blacklist", location_list = "CN", room_id = "r1",
  user_ids = "u1", stream_ids = "s",
}

-- The fields that hold a stream's, an app's or a stream ID's name.
local NAMES = { app_name = true, stream_name = true, stream_names = true, stream_id = true, stream_ids = true }

-- Wrong text for a field of the schema `f`.
local function bad_texts(f)
  local out = {}
  local function add(v) out[#out + 1] = v end
  if f.type == "string" or f.type == "strings" then
    if not f.allow_empty then add("") end
    for _, v in ipairs { BIG, "a\r\nb", "a\nb", "a\tb", "a\127b", "\255\254", "caf\233" } do add(v) end
  elseif f.type == "integer" then
    for _, v in ipairs { "", "abc", "1.5", "1e999", "nan", "inf", "-inf", "99999999999999999999" } do add(v) end
    if f.min then add(tostring(f.min - 1)) end
    if f.max then add(tostring(f.max + 1)) end
  elseif f.type == "time" then
    for _, v in ipairs { "", "tomorrow", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "-1", "1.5", BIG } do
      add(v)
    end
  elseif f.type == "yesno" then
    add("maybe")
  end
  if f.enum then add("not-" .. f.enum[1]) end
  -- (the names' and domains' shapes, by the field's name, whatever its schema
  -- says: streamctl.base.validate; each of these was sent before)
  if NAMES[f.name] then
    for _, v in ipairs { "match 1/../x", "room 1#host", " b ", "b ", "a/b", "a.b", "m80f{" } do
      add(v)
    end
  elseif f.name == "domain_name" then
    for _, v in ipairs { "https://push.example.com", "push.example.com:1935", "push.example.com/live",
                          "PUSH.example.com", "push.example.com.", "push..example.com", "-push.example.com",
                          "push_1.example.com", " push.example.com" } do
      add(v)
    end
  end
  return out
end

local function show(v)
  if #v > 40 then return "a text of " .. #v .. " bytes" end
  return string.format("%q", v)
end

local PROVIDERS = {
  { name = "aliyun", mod = aliyun, keys = { "--access-key-id", "LTAIemulatorKey", "--access-key-secret",
    "emulator-secret" } },
  { name = "zego", mod = zego, keys = { "--app-id", "1234567890", "--server-secret",
    "0123456789abcdef0123456789abcdef" } },
}

local server
local function connection(p) return { "--endpoint", p.name == "zego" and server.zego_url or server.aliyun_url } end

-- argv for method `m` with its required fields good, `spoil` replacing one
-- (nil: left out), and `extra` arguments.
local function argv_for(p, m, spoil, extra)
  local argv = { p.name, command(m.name) }
  for _, f in ipairs(m.fields) do
    local needed = f.required or (m.name == "update_live_pull_to_push" and f.name == "end_time")
    if f.name == m.list then
      if not (spoil and spoil.name == f.name) then argv[#argv + 1] = "one" end
    elseif f.type ~= "function" and f.name ~= "concurrency" then
      local value = needed and GOOD[f.name] or nil
      if spoil and spoil.name == f.name then value = spoil.value end
      if value ~= nil then
        argv[#argv + 1] = flag(f.name)
        argv[#argv + 1] = value
      end
    end
  end
  if spoil and spoil.name == m.list and spoil.value ~= nil then argv[#argv + 1] = spoil.value end
  for _, list in ipairs { connection(p), p.keys, extra or {} } do
    for _, a in ipairs(list) do argv[#argv + 1] = a end
  end
  return argv
end

describe("streamctl's command line, every flag given bad text", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. nginx.quote(HOME))
  end)

  local total = 0
  -- One row: exit 2, `name` (a flag) on stderr in a short message, no stdout, nothing sent.
  local function refused(argv, name, label)
    local status, out, err = run(argv)
    assert.equal(2, status, label .. ": exit " .. tostring(status) .. "\n" .. err:sub(1, 400))
    assert.truthy(err:find(name, 1, true), label .. ": does not name " .. name .. ": " .. err:sub(1, 400))
    assert.is_true(#err < 4096, label .. ": a message of " .. #err .. " bytes")
    assert.equal("", out, label)
    total = total + 1
  end
  local function nothing_sent(label)
    assert.same({}, server:log({ limit = 5 }), label .. ": something was sent")
  end

  for _, p in ipairs(PROVIDERS) do
    for _, m in ipairs(p.mod.methods()) do
      it(p.name .. " " .. command(m.name) .. ": the valid base runs, each field's bad values are refused by flag",
        function()
          server:reset()
          local status, _, err = run(argv_for(p, m))
          assert.is_true(status == 0 or status == 1, "the base: exit " .. status .. " " .. err)
          assert.is_true(#server:log({ limit = 5 }) >= 1, "the base sent nothing")
          server:reset()
          for fi, f in ipairs(m.fields) do
            if f.type ~= "function" and f.name ~= "concurrency" then
              local name = f.name == m.list and "the stream list" or flag(f.name)
              for _, v in ipairs(matrix.slice(bad_texts(f), fi)) do
                refused(argv_for(p, m, { name = f.name, value = v }), name,
                  command(m.name) .. " " .. name .. " " .. show(v))
              end
              if f.required then
                refused(argv_for(p, m, { name = f.name }), f.name == m.list and "stream" or flag(f.name),
                  command(m.name) .. " without " .. name)
              end
            end
          end
          refused(argv_for(p, m, nil, { "--no-such-flag", "x" }), "--no-such-flag", "an unknown flag")
          if not m.list then
            refused(argv_for(p, m, nil, { "stray" }), "stray", "a stray argument")
          else
            refused(argv_for(p, m, nil, { "--from", HOME .. "/no-such-file" }), "no-such-file", "--from, no file")
          end
          nothing_sent(m.name)
        end)
    end

    -- The flags every command takes, on one command and on a batch.
    local COMMON = {
      { "--timeout", { "", "0", "-5", "abc", "1.5", "inf", "nan", "1e999" } },
      { "--concurrency", { "", "0", "-1", "abc", "2.5", "inf", "nan" } },
      { "--rate", { "", "0", "-1", "abc", "inf", "nan" } },
      { "--cap", { "", "0", "-1", "abc", "inf", "nan", "1e3", "0.00001" } },
      { "--deadline", { "", "0", "-1", "abc", "1.5", "inf", "nan", "1e3", "2147484" } },
      { "--endpoint", { "", "ftp://127.0.0.1/", "not a url", "http://127.0.0.1:1/\r\nX-Injected: 1",
        "http://127.0.0.1:1/\0", "https://" .. BIG } },
      { "--output", { "xml", "" } },
      { "--redis", { "", "http://127.0.0.1:6379", "redis://127.0.0.1:0", "redis://127.0.0.1:6379/x",
        "redis://127.0.0.1:6379\r\nX: 1", "redis://:pw\0@127.0.0.1", "redis://" .. BIG } },
    }
    if p.name == "aliyun" then
      COMMON[#COMMON + 1] = { "--signature-version", { "v9", "" } }
      COMMON[#COMMON + 1] = { "--access-key-id", { "", BIG, "LTAI\r\nX: 1", "LTAI\tx", "LTAI\255" }, true }
      COMMON[#COMMON + 1] = { "--access-key-secret", { "", BIG, "s\r\nX: 1", "s\0s", "s\255" }, true }
      COMMON[#COMMON + 1] = { "--security-token", { "t\r\nX: 1", "t\0t", "t\255", string.rep("t", 17 * 1024) } }
    else
      COMMON[#COMMON + 1] = { "--app-id", { "", "abc", "-1", "0", "1.5", "1e999", "99999999999999999999" }, true }
      COMMON[#COMMON + 1] = { "--server-secret", { "", BIG, "s\r\nX: 1", "s\0s", "s\255" }, true }
    end
    local single = p.mod.methods()[1]
    local batch
    for _, m in ipairs(p.mod.methods()) do
      if m.name == "resume_live_stream" or m.name == "resume_cdn_live_stream" then single = m end
      if m.list then batch = m end
    end
    it(p.name .. ": connection, credential and output flags given bad text are refused by flag", function()
      server:reset()
      for ri, row in ipairs(COMMON) do
        for _, m in ipairs { single, batch } do
          for _, v in ipairs(matrix.slice(row[2], ri)) do
            local argv = argv_for(p, m)
            local replaced = false
            for i = 1, #argv - 1 do
              if argv[i] == row[1] then argv[i + 1], replaced = v, true end
            end
            if not replaced then
              argv[#argv + 1] = row[1]
              argv[#argv + 1] = v
            end
            refused(argv, row[1], command(m.name) .. " " .. row[1] .. " " .. show(v))
          end
        end
        if row[3] then -- a key without its partner
          local argv = argv_for(p, single)
          argv[#argv], argv[#argv - 1] = nil, nil
          refused(argv, p.keys[3], "only " .. p.keys[1])
        end
      end
      -- `call`: a parameter that is not Key=Value, an unknown action, a bad value.
      local call = { p.name, "call", p.name == "zego" and "ResumeCDNLiveStream" or "ResumeLiveStream" }
      if p.name == "aliyun" then -- (its other required parameters, so that the bad one is the one named)
        for _, kv in ipairs { "DomainName=push.example.com", "AppName=live", "LiveStreamType=publisher" } do
          call[#call + 1] = kv
        end
      end
      local function with(extra)
        local argv = {}
        for _, a in ipairs(call) do argv[#argv + 1] = a end
        for _, a in ipairs(extra) do argv[#argv + 1] = a end
        for _, list in ipairs { connection(p), p.keys } do
          for _, a in ipairs(list) do argv[#argv + 1] = a end
        end
        return argv
      end
      local key = p.name == "zego" and "StreamId" or "StreamName"
      refused(with { key }, key, "call, no '='")
      refused(with { key .. "=a\r\nb" }, key, "call, CR/LF")
      refused(with { key .. "=" .. BIG }, key, "call, 10 MB")
      call[3] = "NoSuchAction"
      refused(with {}, "NoSuchAction", "call, unknown action")
      nothing_sent(p.name .. " common flags")
    end)
  end

  it("says once, after its report, which flag fixes a certificate it cannot verify", function()
    server:reset()
    -- A CA of its own that did not sign the emulator's certificate. (Not the
    -- system's bundle, the default, which spec/transports/05 holds: under
    -- valgrind on a loaded machine, reading it and the handshake outlast the
    -- connect phase's 5 s, and the row saw a Timeout where it meant a TLSError.)
    local dir = process.temp_dir()
    local other = dir .. "/other-ca"
    assert(process.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      .. " -subj /CN=streamctl-other-ca -keyout " .. process.quote(other .. ".key") .. " -out "
      .. process.quote(other .. ".pem") .. " >/dev/null 2>&1"), "openssl req failed")
    local status, out, err = run { "aliyun", "resume-live-streams", "--endpoint", server.aliyun_tls_url,
      "--ca-file", other .. ".pem", "--domain-name", "push.example.com", "--app-name", "live", "a", "b", "c",
      "--access-key-id", "LTAIemulatorKey", "--access-key-secret", "emulator-secret", "--no-audit-log" }
    assert.equal(1, status)
    assert.equal("streamctl: hint: the server's certificate is not signed by a CA this client trusts: name the CA "
      .. "that signed it with '--ca-file' (the default is the system's CAs)\n", err)
    local _, rows = out:gsub("  TLSError: ", "")
    assert.equal(3, rows, out)
    -- with its CA: no failure, no hint
    status, out, err = run { "aliyun", "resume-live-streams", "--endpoint", server.aliyun_tls_url, "--ca-file",
      server.ca_file, "--domain-name", "push.example.com", "--app-name", "live", "a", "--access-key-id",
      "LTAIemulatorKey", "--access-key-secret", "emulator-secret", "--no-audit-log" }
    assert.same({ 0, "" }, { status, err }, out)
    process.run("rm -rf " .. process.quote(dir))
  end)

  it("leaves the count of rows in the output", function()
    print(string.format("\n  [cli matrix: %d rows%s]", total, matrix.sampled() and ", a slice" or ""))
    assert.is_true(total > (matrix.sampled() and 150 or 400), total)
  end)
end)

describe("streamctl's command line keeps secrets out of its output", function()
  local SECRET, TOKEN, ZSECRET = "SECRET-ali-7f3a9c", "TOKEN-sts-5e1d2b", "ZEGOSECRET-9a8b7c6d5e4f3a2b1c0de"
  local ALI_KEYS = { "--access-key-id", "LTAIsecretsweep", "--access-key-secret", SECRET, "--security-token", TOKEN }
  local ZEGO_KEYS = { "--app-id", "424242", "--server-secret", ZSECRET }
  local emulator, echo, echo_port
  lazy_setup(function()
    emulator = emu.start { config = {
      aliyun = { accounts = { LTAIsecretsweep = { secret = SECRET, security_token = TOKEN } } },
      zego = { apps = { ["424242"] = { secret = ZSECRET } } },
    } }
    -- (its life, a bound for when this process dies without stopping it, outlasts the sweep: about 5 s
    -- in a plain run, and under valgrind on a busy machine, slower many times over, more than the 120 s
    -- it had; process.slowdown() scales it there)
    echo, echo_port = process.httpserver(2000, "/echo")
  end)
  lazy_teardown(function()
    if emulator then emulator:stop() end
    process.stop(echo)
  end)

  -- What the last request carried that must never be printed.
  local function carried()
    local http = require "socket.http"
    local body = assert(http.request("http://127.0.0.1:" .. echo_port .. "/last"))
    local last = cjson.decode(body)
    local out = {}
    local target = last.target or ""
    for v in target:gmatch("[?&]Signature=([^&]+)") do out[#out + 1] = v end
    for _, h in ipairs(last.headers or {}) do
      local name = h[1]:lower()
      if name == "authorization" then out[#out + 1] = h[2]:match("Signature=(%x+)") end
    end
    return out
  end

  local function clean(text, extra, label)
    for _, s in ipairs { SECRET, TOKEN, ZSECRET } do
      assert.is_nil(text:find(s, 1, true), label .. ": " .. s .. " in " .. text:sub(1, 600))
    end
    for _, s in ipairs(extra or {}) do
      assert.is_nil(text:find(s, 1, true), label .. ": the signature " .. s .. " in " .. text:sub(1, 600))
    end
    assert.is_nil(text:find("Signature=%x%x%x%x"), label)
    assert.is_nil(text:find("Signature=[%w%%]+&"), label)
  end

  local kinds = 0
  for _, p in ipairs(PROVIDERS) do
    for mi, m in ipairs(p.mod.methods()) do
      it(p.name .. " " .. command(m.name) .. ": answered, refused, echoed and dry-run, in both outputs", function()
        local keys = p.name == "zego" and ZEGO_KEYS or ALI_KEYS
        for _, output in ipairs(matrix.slice({ "table", "json" }, mi)) do
          local base = argv_for(p, m)
          -- argv_for put the emulator account last: use the sweep's own.
          for _ = 1, 4 do base[#base] = nil end
          base[#base] = nil
          base[#base] = nil
          local function argv(endpoint, which_keys, extra)
            local a = {}
            for _, x in ipairs(base) do a[#a + 1] = x end
            for _, x in ipairs { "--endpoint", endpoint, "--output", output } do a[#a + 1] = x end
            for _, x in ipairs(which_keys) do a[#a + 1] = x end
            for _, x in ipairs(extra or {}) do a[#a + 1] = x end
            return a
          end
          local url = p.name == "zego" and emulator.zego_url or emulator.aliyun_url
          -- answered by the emulator (success or the provider's refusal)
          local _, out, err = run(argv(url, keys))
          clean(out .. err, nil, m.name .. " " .. output .. " (emulator)")
          assert.truthy(#out > 0, m.name .. ": no output")
          -- a wrong secret: SignatureDoesNotMatch / ZEGO's signature error
          local wrong = {}
          for i, x in ipairs(keys) do wrong[i] = (x == SECRET or x == ZSECRET) and (x:sub(1, -2) .. "Z") or x end
          local status
          status, out, err = run(argv(url, wrong, { "--timeout", "2000" }))
          assert.equal(1, status, m.name .. ": a wrong secret was accepted")
          clean(out .. err, nil, m.name .. " " .. output .. " (wrong secret)")
          -- echoed back
          _, out, err = run(argv("http://127.0.0.1:" .. echo_port, keys))
          local sigs = carried()
          assert.is_true(#sigs >= 1, m.name .. ": the echo server saw no signature")
          clean(out .. err, sigs, m.name .. " " .. output .. " (echo)")
          -- dry run
          status, out, err = run(argv(url, keys, { "--dry-run" }))
          assert.equal(0, status, err)
          clean(out .. err, sigs, m.name .. " " .. output .. " (dry run)")
          kinds = kinds + 4
        end
      end)
    end
  end
  it("covered every kind", function()
    print(string.format("\n  [cli secrets sweep: %d runs]", kinds))
    assert.is_true(kinds >= (matrix.sampled() and 4 or 8) * (#aliyun.methods() + #zego.methods()))
  end)
end)
