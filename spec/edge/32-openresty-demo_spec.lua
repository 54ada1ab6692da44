-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- examples/openresty/run.sh (make openresty-demo): the OpenResty example
-- against an emulator of its own, in a directory and on a port of this spec's
-- (127.0.0.1 only). The curl lines it prints are run as printed, and answer
-- 200 with the per-stream report over HTTPS the emulator's CA verifies; the
-- example's own nginx.conf keeps the system CAs; `stop` stops both servers.

local cjson = require "cjson"
local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local edge_helper = require "spec.helpers.edge"

local q, run, read_file = process.quote, process.run, process.read_file
local SCRIPT = nginx.root .. "/examples/openresty/run.sh"

-- Every command here is a process of its own, run without `make asan`'s
-- preloaded sanitizer runtime (which is for the C in this process: curl under
-- it hangs at start, and run.sh's servers must not inherit it), and within a
-- time limit, so a server that never answers fails the spec instead of hanging it.
local function capture(cmd)
  return process.capture("env -u LD_PRELOAD timeout 60 bash -c " .. q(cmd))
end

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

-- Runs run.sh with `args`; returns its exit status and what it printed.
local function script(args, env)
  local out = capture((env or "") .. " STREAMCTL_ROOT=" .. q(nginx.root) .. " " .. q(SCRIPT) .. " " .. args
    .. " 2>&1; echo \"rc=$?\"")
  local text, rc = out:match("^(.*)rc=(%d+)\n$")
  return tonumber(rc), text
end

local function alive(pid)
  local stat = pid and read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() [ZX]")
end

describe("examples/openresty/run.sh", function()
  local dir, port, rc, out
  lazy_setup(function()
    dir = process.temp_dir()
    port = emu.free_ports(1)[1]
    -- (an edge setting in the environment is passed on, a credential ignored: both said)
    rc, out = script("start --dir " .. q(dir) .. " --port " .. port, "STREAMCTL_EDGE_MAX_FORBID=7 "
      .. "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIfromtheshell")
  end)
  lazy_teardown(function()
    script("stop --dir " .. q(dir))
    run("rm -rf " .. q(dir))
  end)

  local function setting(name)
    return (read_file(dir .. "/demo.env") or ""):match("\n" .. name .. "='([^']*)'")
  end

  it("starts, and the curl lines it prints answer as they say", function()
    assert.equal(0, rc, out)
    local token = out:match("export STREAMCTL_EDGE_TOKEN=(%x+)\n")
    assert.truthy(token, out)
    assert.equal(64, #token)
    local lines = {}
    for line in out:gmatch("\n  (curl [^\n]+)") do
      if not line:find("/callbacks/", 1, true) then lines[#lines + 1] = (line:gsub("%s+#.*$", "")) end
    end
    assert.equal(6, #lines, out)
    local streams = 0
    for _, line in ipairs(lines) do
      local answer = capture("STREAMCTL_EDGE_TOKEN=" .. token .. " bash -c " .. q(line .. " -w '\\n%{http_code}'"))
      local body, status = answer:match("^(.*)\n(%d%d%d)$")
      assert.equal("200", status, line .. "\n" .. answer)
      if line:find("/streams/", 1, true) then
        streams = streams + 1
        local report = cjson.decode(body)
        assert.truthy(report.total > 0, body)
        assert.same({ report.total, 0, 0 }, { report.succeeded, report.failed, report.unknown }, body)
        assert.truthy(report.results[1].request_id, body)
      elseif line:find("/metrics", 1, true) then
        assert.matches('streamctl_requests_total{provider="zego",action="ResumeRTCStreams"} 1', body, 1, true)
      else
        assert.equal("forbidden", cjson.decode(body).aliyun.streams["push.example.com/live/match-7"].status)
      end
    end
    assert.equal(4, streams)
    -- The signed ZEGO callback it prints (three lines, run as printed): rtc-2, forbidden by a line
    -- above, is forbidden again by the edge's reaction, which its audit log records.
    local snippet = assert(out:match("\n  (secret=[^\n]+\n  sig=[^\n]+\n  curl [^\n]+/callbacks/zego)\n"), out)
    local called = capture("bash -c " .. q(snippet:gsub("\n  ", "\n") .. " -w '\\n%{http_code}'"))
    assert.equal('{"ok":true}\n200', called)
    local reacted
    for _ = 1, 50 * process.slowdown() do
      for l in (read_file(dir .. "/logs/audit.jsonl") or ""):gmatch("[^\n]+") do
        local r = cjson.decode(l)
        if r.command == "reaction forbid_again" and r.record == "outcome" then reacted = r end
      end
      if reacted then break end
      run("sleep 0.1")
    end
    assert.truthy(reacted, "no reaction recorded within the wait")
    assert.same({ "ok", "rtc-2" }, { reacted.outcome, reacted.streams[1].stream })
    -- and a request without the token is refused
    local answer = capture("curl -s -o /dev/null -w '%{http_code}' -d '{\"stream_id\":\"x\"}' http://127.0.0.1:"
      .. port .. "/streams/zego/forbid")
    assert.equal("401", answer)
  end)

  it("trusts the emulator's CA in its own copy of nginx.conf; the example keeps the system's", function()
    local conf = assert(read_file(dir .. "/nginx.conf"))
    local ca = setting("DEMO_EMULATOR_DIR") .. "/ca.pem"
    assert.matches('lua_ssl_trusted_certificate "' .. ca .. '";', conf, 1, true)
    assert.matches("listen 127.0.0.1:" .. port .. ";", conf, 1, true)
    assert.equal(ca, setting("STREAMCTL_CA_FILE"))
    assert.matches("^https://127%.0%.0%.1:%d+$", setting("STREAMCTL_ALIYUN_ENDPOINT"))
    local example = assert(read_file(nginx.root .. "/examples/openresty/nginx.conf"))
    assert.matches("lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;", example, 1, true)
    assert.not_matches("ca-certificates.crt", conf, 1, true)
    -- what the example sent went over HTTPS
    local http = require "socket.http"
    local state = http.request(setting("DEMO_EMULATOR_HTTP") .. "/_emulator/log?limit=100")
    local entries = cjson.decode(state).entries
    assert.truthy(#entries >= 5, state)
    for _, e in ipairs(entries) do assert.equal("https", e.scheme) end
  end)

  it("passes the edge's settings on from the environment, and says what it does not use", function()
    assert.matches("passing STREAMCTL_EDGE_MAX_FORBID on to nginx, from the environment", out, 1, true)
    assert.matches("note: ALIBABA_CLOUD_ACCESS_KEY_ID in the environment is not used: the demo runs on the "
      .. "emulator's", out, 1, true)
    assert.equal("7", setting("STREAMCTL_EDGE_MAX_FORBID"))
    assert.equal("LTAIemulatorKey", setting("ALIBABA_CLOUD_ACCESS_KEY_ID"))
    -- and nginx runs with it: a forbid of 8 streams needs confirm
    local names = {}
    for i = 1, 8 do names[i] = '"s' .. i .. '"' end
    local res = edge_helper.post(port, "/streams/aliyun/forbid", '{"domain_name":"push.example.com","app_name":"live",'
      .. '"stream_names":[' .. table.concat(names, ",") .. ']}', setting("STREAMCTL_EDGE_TOKEN"))
    assert.equal(400, res.status, res.body)
    assert.matches('"max_forbid":7', res.body, 1, true)
  end)

  it("starts once: a second start says so and prints the same token", function()
    local again, text = script("start --dir " .. q(dir) .. " --port " .. port)
    assert.equal(0, again, text)
    assert.matches("already running", text, 1, true)
    assert.matches("STREAMCTL_EDGE_TOKEN=" .. setting("STREAMCTL_EDGE_TOKEN"), text, 1, true)
  end)

  it("stop stops nginx and the emulator it started", function()
    local nginx_pid = tonumber(read_file(dir .. "/logs/nginx.pid"))
    local emu_pid = tonumber(read_file(setting("DEMO_EMULATOR_DIR") .. "/nginx.pid"))
    assert.is_true(alive(nginx_pid) and alive(emu_pid))
    local stopped, text = script("stop --dir " .. q(dir))
    assert.equal(0, stopped, text)
    assert.matches("nginx stopped", text, 1, true)
    assert.matches("streamctl emulator stopped", text, 1, true)
    assert.is_false(alive(nginx_pid))
    -- the emulator's launcher waits for its nginx (up to 10 s) before it says stopped
    assert.is_false(alive(emu_pid))
  end)
end)
