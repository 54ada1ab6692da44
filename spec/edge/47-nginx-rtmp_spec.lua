-- sanitizers: none (what it tests runs in nginx and ffmpeg, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- load: heavy (an edge, the emulator, an nginx-rtmp and ffmpeg publishing)
-- Issue 88, end to end with real parts: Debian's nginx-rtmp (libnginx-mod-rtmp) asks the edge's
-- door before each publish (on_publish pointed at /admission?domain=...), and ffmpeg publishes. A
-- stream banned through the edge is refused, another publishes; after a resume through the edge
-- its next publish is admitted. A forbid through the edge also drops the stream's live publisher
-- now (nginx-rtmp's control module, STREAMCTL_EDGE_RTMP_CONTROL), said in the answer. Verdicts
-- only: what was admitted, refused and dropped, never how fast.
local cjson = require "cjson"
local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local edge_helper = require "spec.helpers.edge"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"

local TOKEN, post = edge_helper.TOKEN, edge_helper.post
local q = process.quote
local RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails
assert(io.open(RTMP_MODULE), "no " .. RTMP_MODULE .. ": apt-get install libnginx-mod-rtmp (make deps does)")
assert(process.run("command -v ffmpeg >/dev/null"), "no ffmpeg: apt-get install ffmpeg (make deps does)")

-- An nginx-rtmp on ports[2] (RTMP) whose application "live" asks the edge on `edge_port`; its
-- control and statistics on ports[1] (HTTP).
local function rtmp_conf(ports, dir, edge_port)
  return table.concat({
    "load_module " .. RTMP_MODULE .. ";",
    nginx.as_root() and "user root;" or "",
    "daemon off;", "worker_processes 1;", -- (one worker: control reaches every session)
    "error_log " .. nginx.conf_quoted(dir .. "/error.log") .. " info;",
    "pid " .. nginx.conf_quoted(dir .. "/nginx.pid") .. ";",
    "events { worker_connections 64; }",
    "rtmp { server { listen 127.0.0.1:" .. ports[2] .. "; application live { live on;",
    "  on_publish http://127.0.0.1:" .. edge_port .. "/admission?domain=push.example.com; } } }",
    "http { access_log off;", nginx.temp_paths(dir),
    "  server { listen 127.0.0.1:" .. ports[1] .. ";",
    "    location /control { rtmp_control all; }",
    "    location /stat { rtmp_stat all; } } }",
  }, "\n")
end

describe("nginx-rtmp asking the edge's door, ffmpeg publishing", function()
  local emulator, edge, rtmp
  local publishers = {}

  lazy_setup(function()
    emulator = emu.start {}
    local ports = nginx.free_ports(2)
    edge = edge_helper.start_edge(emulator, { env = {
      STREAMCTL_EDGE_RTMP_CONTROL = "http://127.0.0.1:" .. ports[1] .. "/control" } })
    rtmp = nginx.start { ports = ports, ready = { 1, 2 }, conf = function(p, dir) return rtmp_conf(p, dir,
      edge.ports[1]) end }
  end)
  -- a publisher stopped and reaped, once
  local function stop(p)
    if p.pipe then process.stop(p) end
    p.pipe = nil
  end
  lazy_teardown(function()
    for _, p in ipairs(publishers) do stop(p) end
    for _, s in ipairs { rtmp, edge, emulator } do if s then s:stop() end end
  end)

  -- ffmpeg publishing a test picture to live/<stream> until stopped or refused. (Its progress goes
  -- to the pipe this process holds: once this process is gone, ffmpeg's next write ends it.)
  local function publish(stream)
    local p = process.spawn("ffmpeg -hide_banner -loglevel error -stats -re -f lavfi -i "
      .. "testsrc=size=160x120:rate=10 -c:v flv1 -f flv " .. q("rtmp://127.0.0.1:" .. rtmp.ports[2] .. "/live/"
      .. stream) .. " 2>&1")
    publishers[#publishers + 1] = p
    return p
  end
  -- nginx-rtmp's statistics say `stream` is being published
  local function live(stream)
    local _, body = rtmp:get("/stat", 1)
    local s = body and body:match("<stream>%s*<name>" .. stream:gsub("%p", "%%%0") .. "</name>(.-)</stream>")
    return s ~= nil and s:find("<publishing/>", 1, true) ~= nil
  end
  -- the publisher ended (refused or dropped): reaped, and its exit status
  local function ended(p)
    if not checks.wait_until(function() return not process.alive(p.pid) end, 30) then return false end
    local _, _, code = p.pipe:close()
    p.pipe = nil
    return true, code
  end
  local function aliyun(operation, stream)
    return post(edge.ports[1], "/streams/aliyun/" .. operation, cjson.encode { domain_name = "push.example.com",
      app_name = "live", stream_name = stream }, TOKEN)
  end

  it("refuses a stream banned through the edge, admits another, and the banned one once resumed", function()
    local res = aliyun("forbid", "banned-1")
    assert.equal(200, res.status, res.body)
    local ok, code = ended(publish("banned-1"))
    assert.is_true(ok, "ffmpeg went on publishing a banned stream")
    assert.is_not.equal(0, code)
    assert.truthy(edge:error_log():find("admission refused (nginx-rtmp): Forbidden: aliyun stream "
      .. "push.example.com/live/banned-1 is on the forbid list", 1, true), edge:error_log())
    local free = publish("free-1")
    assert(checks.wait_until(function() return live("free-1") end, 30), "free-1 was never published")
    stop(free)
    res = aliyun("resume", "banned-1")
    assert.equal(200, res.status, res.body)
    -- (the first publish after the resume's answer is admitted)
    local again = publish("banned-1")
    assert(checks.wait_until(function() return live("banned-1") or not process.alive(again.pid) end, 30))
    assert.is_true(live("banned-1"), "banned-1 was refused after its resume")
    stop(again)
  end)

  it("drops the live publisher of a stream forbidden through the edge, said in the answer", function()
    local p = publish("live-1")
    assert(checks.wait_until(function() return live("live-1") end, 30), "live-1 was never published")
    local res = aliyun("forbid", "live-1")
    assert.equal(200, res.status, res.body)
    local v = cjson.decode(res.body)
    assert.same({ ["live-1"] = 1 }, v.dropped)
    assert.is_nil(v.drop_errors)
    assert.is_true((ended(p)), "the publisher was not dropped")
    -- and its next publish is refused at the door
    assert.is_true((ended(publish("live-1"))), "ffmpeg published a forbidden stream again")
    assert.is_false(live("live-1"))
    -- a stream with no publisher: none dropped, said as 0
    v = cjson.decode(aliyun("forbid", "idle-1").body)
    assert.same({ ["idle-1"] = 0 }, v.dropped)
  end)
end)
