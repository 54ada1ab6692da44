-- sanitizers: none (the house: files, docs and tools, not our C)
-- Every Lua and shell example in README.md, docs/*.md and docs/development/*.md
-- runs as it is written, and what it shows it prints. The conventions
-- (docs/development/README.md says them in short):
--
--  * ```lua: run as it is, in a fresh `lua5.4` process with this tree's
--    modules (src/, build/5.4), in an empty directory of its own. No text of
--    it is changed and nothing runs before it: it finds the emulator through
--    the environment, as a reader's would: ALIBABA_CLOUD_ACCESS_KEY_ID and
--    _SECRET, ZEGO_APP_ID and ZEGO_SERVER_SECRET (the emulator's accounts),
--    STREAMCTL_ALIYUN_ENDPOINT, STREAMCTL_ZEGO_ENDPOINT (its HTTPS ports) and
--    STREAMCTL_CA_FILE (its CA), STREAMCTL_EMULATOR_DIR; HOME is empty. It
--    must exit 0. A ```text block right after it is its output (standard
--    output and error together), compared as below.
--  * ```sh: run by `bash -e -o pipefail` in the same environment, with
--    `streamctl` and `streamctl-emulator` on PATH (bin/ of this tree under
--    Lua 5.4); exit 0; a ```text block after it is its output. ```sh install
--    and ```sh install-deb blocks (README "Install") are not run here: make
--    check-install runs them.
--  * ```console: the lines that start with `$ ` are commands (a line ending in
--    `\` goes on), run one after the other in one bash, same environment; the
--    lines after each are its output, standard output and error together as
--    a terminal shows them. Each command must exit 0 (an example that shows a
--    failure says so with `; echo "exit $?"`). ```console edge: the OpenResty
--    example (examples/openresty/nginx.conf, its handlers) runs on
--    127.0.0.1:8080, STREAMCTL_EDGE_TOKEN and STREAMCTL_EDGE_ISSUER_TOKEN its tokens.
--  * Output is compared line by line (spec/helpers/docs.lua): `...` stands
--    for any text in a line, and a line of only `...` for any lines; an
--    upper-case hex UUID for any (Aliyun RequestIds), a run of 15 or more
--    digits for any (ZEGO RequestIds), `N.NN s` at a line's end for any
--    duration. Everything else is compared exactly.
--  * Every block runs against the emulator on its default ports (18080,
--    18081, 18443, 18444), as the docs show them, started in a directory of
--    its own before the first block and reset before each; where `unshare`
--    can make one, everything runs in a network (and PID) namespace of its
--    own, so those ports are private and nothing else can be reached (and
--    everything started is gone after). Without it, those ports must be free.
--  * ini, json, nginx and plain blocks are not code and are not run; any other
--    kind fails here, so a block the test cannot run cannot be added.
--
-- The examples run once, in the Lua 5.4 run: they are programs of their own,
-- the same under either interpreter running this spec (pending under LuaJIT
-- and under valgrind/ASan, whose C the other specs exercise). The checks of
-- the docs themselves (kinds, links, docs/performance.md's table against
-- bench/results.json) run under both.
local cjson = require "cjson"
local docs = require "spec.helpers.docs"
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = docs.root

local FILES = docs.files()
local BLOCKS = {}
for _, f in ipairs(FILES) do
  for _, b in ipairs(docs.blocks(f)) do BLOCKS[#BLOCKS + 1] = b end
end

local function where(b) return b.file .. ":" .. b.line end

describe("the docs", function()
  it("are every page under docs/, the development pages' folder too", function()
    local all = { "README.md" }
    for name in process.capture("cd " .. q(ROOT) .. " && find docs -name '*.md' | sort"):gmatch("[^\n]+") do
      all[#all + 1] = name
    end
    table.sort(all, function(a, b) return a == "README.md" or (b ~= "README.md" and a < b) end)
    assert.same(all, FILES)
  end)

  it("hold only blocks of the kinds the doc test knows", function()
    local wrong = {}
    for _, b in ipairs(BLOCKS) do
      local why = docs.check_kind(b)
      if why then wrong[#wrong + 1] = where(b) .. ": " .. why end
    end
    assert.same({}, wrong)
  end)

  it("find the emulator's directory where streamctl puts it, with no USER or LOGNAME (cron's env -i)", function()
    -- README's quick start names the directory in the shell; streamctl.emulator.defaults.dir is where
    -- `streamctl emulator start` puts it
    local block = assert(docs.read(ROOT .. "/README.md"):match("## Quick starts.-```sh\n(.-)```"))
    local line = assert(block:match("\n(dir=[^\n]+)"), "README's quick start sets no dir=")
    local got = process.capture("env -u USER -u LOGNAME -u STREAMCTL_EMULATOR_DIR bash -c "
      .. q(line .. '; printf %s "$dir"'))
    local want = require("streamctl.emulator.defaults").dir(function(k)
      if k ~= "USER" and k ~= "LOGNAME" and k ~= "STREAMCTL_EMULATOR_DIR" then return os.getenv(k) end
    end)
    assert.equal(want, got)
  end)

  it("link only to files and headings that exist", function()
    local broken = {}
    for _, f in ipairs(FILES) do
      local dir = f:match("^(.*)/") or ""
      for _, l in ipairs(docs.links(f)) do
        local target = l.path == "" and f or ((dir ~= "" and dir .. "/" or "") .. l.path)
        target = target:gsub("[^/]+/%.%./", "")
        local exists = docs.read(ROOT .. "/" .. target) or process.run("test -d " .. q(ROOT .. "/" .. target))
        if not exists then
          broken[#broken + 1] = f .. ":" .. l.line .. ": " .. l.target .. " (no " .. target .. ")"
        elseif l.anchor ~= "" and target:match("%.md$") and not docs.anchors(target)[l.anchor] then
          broken[#broken + 1] = f .. ":" .. l.line .. ": " .. l.target .. " (no heading #" .. l.anchor .. ")"
        end
      end
    end
    assert.same({}, broken)
  end)

  it("show the figures of bench/results.json in docs/performance.md: bench/report.lua's table, verbatim",
    function()
      local text = assert(docs.read(ROOT .. "/docs/performance.md"))
      local from = "<!-- lua5.4 bench/report.lua --markdown bench/results.json -->\n"
      local to = "<!-- end of bench/report.lua's table -->\n"
      local i, j = text:find(from, 1, true)
      assert.truthy(i, "docs/performance.md has no " .. from)
      local k = text:find(to, j + 1, true)
      assert.truthy(k, "docs/performance.md has no " .. to)
      local shown = text:sub(j + 1, k - 1)
      local made = process.capture("cd " .. q(ROOT) .. " && LUA_PATH='./?.lua;;' lua5.4 bench/report.lua --markdown "
        .. "bench/results.json 2>&1")
      assert.truthy(made:find("\n| ", 1, true), made)
      assert.equal(made, shown)
    end)
end)

-- The figures are today's (CHANGELOG.md, "A release"): bench/results.json
-- names the commit it measured; at most BENCH_LAG commits that touch src/ (lua/ before it was renamed) or
-- csrc/ may follow it, and none on a release tag.
local BENCH_LAG = 30

-- docs/methods.md is made from the providers' published methods (make doc): a
-- method added to the data, or a family changed, shows here until the page is made again.
describe("docs/methods.md", function()
  it("is the page tools/methods-page.lua makes from the published methods' data", function()
    local page = dofile(ROOT .. "/tools/methods-page.lua").page(ROOT)
    assert.equal(page, docs.read(ROOT .. "/docs/methods.md"), "docs/methods.md is out of date: run make doc")
  end)

  it("names every published method once, under its provider", function()
    local page = docs.read(ROOT .. "/docs/methods.md")
    for _, name in ipairs { "aliyun", "zego" } do
      local data = dofile(ROOT .. "/src/streamctl/" .. name .. "/api.lua")
      local part = name == "aliyun" and page:match("## Alibaba Cloud.-\n## ZEGO") or page:match("## ZEGO.*$")
      for action in pairs(data.methods) do
        local _, n = part:gsub("`" .. action .. "`", "")
        assert.equal(1, n, action)
      end
    end
  end)
end)

describe("bench/results.json", function()
  it("is today's: at most " .. BENCH_LAG .. " commits to src/ or csrc/ since the one it measured, none on a "
    .. "release tag", function()
    local text = assert(docs.read(ROOT .. "/bench/results.json"))
    local commit = text:match('"streamctl":"(%x+)')
    assert.truthy(commit, "bench/results.json names no commit (versions.streamctl)")
    local git = "git -C " .. q(ROOT) .. " "
    if not process.capture(git .. "rev-parse --git-dir 2>/dev/null"):find("%S") then
      pending("not a git checkout: the figures' age cannot be told here (make bench writes them)")
      return
    end
    local known = process.capture(git .. "cat-file -t " .. commit .. " 2>&1")
    assert.truthy(known:find("^commit"), "bench/results.json measured " .. commit .. ", which this history "
      .. "does not have: run make bench")
    local since = tonumber((process.capture(git .. "rev-list --count " .. commit .. "..HEAD -- src lua csrc")))
    local tag = process.capture(git .. "describe --exact-match --tags --match 'v[0-9]*' HEAD 2>/dev/null")
    local allowed = tag:find("%S") and 0 or BENCH_LAG
    assert(since <= allowed, ("bench/results.json measured %s; %d commits to src/ or csrc/ came after it, more "
      .. "than the %d the release rule allows%s: run make bench and paste its table into docs/performance.md")
      :format(commit, since, allowed, allowed == 0 and " on a release tag" or ""))
  end)
end)

describe("the doc test's comparison of output", function()
  local function same(expected, actual) return (docs.compare(expected, actual)) end

  it("takes every byte but the placeholders as it is", function()
    assert.is_true(same({ "exit 1" }, "exit 1\n"))
    assert.is_false(same({ "exit 1" }, "exit 0\n"))
    assert.is_false(same({ "exit 1" }, "exit 1\nmore\n"))
    assert.is_false(same({ "a.c" }, "abc\n"))                 -- no Lua pattern in the text
    assert.is_true(same({ "a ... c" }, "a b b c\n"))
    assert.is_false(same({ "a ... c" }, "a b b d\n"))
    assert.is_true(same({ "x", "...", "y" }, "x\ny\n"))       -- a line of ... stands for none
    assert.is_true(same({ "x", "...", "y" }, "x\n1\n2\ny\n"))
    assert.is_false(same({ "x", "...", "y" }, "x\n1\n"))
    assert.is_true(same({ "1/3" }, "\r0/3\r1/3\n"))             -- as a terminal shows it
  end)

  it("stands a request ID or a duration for any of its shape, and nothing else", function()
    local uuid = "2AEE149A-15F7-EF62-6292-4374302B961C"
    assert.is_true(same({ "ok  " .. uuid }, "ok  04008289-7B7E-12B9-8A9B-613E47E5FA57\n"))
    assert.is_false(same({ "ok  " .. uuid }, "ok  04008289-7b7e-12b9-8a9b-613e47e5fa57\n"))
    assert.is_false(same({ "ok  " .. uuid }, "ok  CodeTaskNotExist\n"))
    assert.is_true(same({ '"request_id":"150623089271709516"' }, '"request_id":"223115883314287851"\n'))
    assert.is_false(same({ '"request_id":"150623089271709516"' }, '"request_id":"2231158833"\n'))
    assert.is_false(same({ "app 1234567890" }, "app 1234567891\n"))   -- 10 digits are compared
    assert.is_true(same({ "3 calls, 0.11 s" }, "3 calls, 12.40 s\n"))
    assert.is_false(same({ "3 calls, 0.11 s" }, "4 calls, 0.11 s\n"))
  end)

  it("takes a JSON line's members in any order, and nothing more or less", function()
    assert.is_true(same({ '{"a":1,"b":[true,"x"]}' }, '{"b":[true,"x"],"a":1}\n'))
    assert.is_false(same({ '{"a":1,"b":[true,"x"]}' }, '{"b":["x",true],"a":1}\n'))
    assert.is_false(same({ '{"a":1}' }, '{"a":1,"b":2}\n'))
    assert.is_false(same({ '{"a":1,"b":2}' }, '{"a":1}\n'))
    assert.is_true(same({ '{"id":"...","n":2}' }, '{"n":2,"id":"F00"}\n'))
  end)
end)

describe("the docs' examples", function()
  if rawget(_G, "jit") then
    pending("run once, in the Lua 5.4 run (make test-5.4): each is a program of its own, not this interpreter's")
    return
  end
  if process.preloaded() then
    pending("run once, in the plain Lua 5.4 run: under valgrind or ASan they would be the same programs again")
    return
  end

  local runnable = {}
  for _, b in ipairs(BLOCKS) do
    local installs = docs.runs(b) and docs.installs(b)
    if installs then
      it(where(b) .. " (```" .. b.info .. ") is not run", function() error(where(b) .. ": " .. installs) end)
    elseif docs.runs(b) then
      if b.lang == "console" then b.commands = docs.console(b) end
      runnable[#runnable + 1] = b
    end
  end

  local results, failure
  lazy_setup(function()
    local leftovers = process.track_tmpnames()
    local dir = process.temp_dir()
    local isolate = "unshare -rnpf --mount-proc --kill-child"
    local isolated = process.run(isolate .. " true >/dev/null 2>&1")
    local blocks = {}
    for i, b in ipairs(runnable) do
      blocks[i] = { lang = b.lang, tags = b.tags, text = b.text, commands = b.commands }
    end
    process.write_file(dir .. "/in.json", cjson.encode({ dir = dir, isolated = isolated, blocks = blocks }))
    local driver = "env LUA_PATH=" .. q(ROOT .. "/?.lua;" .. ROOT .. "/src/?.lua;" .. ROOT .. "/src/?/init.lua;" .. ROOT
      .. "/emulator/src/?.lua;" .. ROOT .. "/emulator/src/?/init.lua;;")
      .. " LUA_CPATH=" .. q(ROOT .. "/build/5.4/lib/lua/5.4/?.so;;") .. " STREAMCTL_ROOT=" .. q(ROOT)
      .. " lua5.4 " .. q(ROOT .. "/spec/helpers/docs_driver.lua") .. " " .. q(dir .. "/in.json") .. " "
      .. q(dir .. "/out.json")
    local cmd = isolated and (isolate .. " bash -c " .. q("ip link set lo up && " .. driver .. "; s=$?; exit $s"))
      or driver
    process.run(cmd .. " >" .. q(dir .. "/driver.log") .. " 2>&1")
    local out = docs.read(dir .. "/out.json")
    local answer = out and cjson.decode(out)
    if not answer then
      failure = "the driver wrote nothing:\n" .. (docs.read(dir .. "/driver.log") or "")
    elseif answer.error then
      failure = answer.error
    else
      results = answer.results
    end
    os.execute("rm -rf " .. q(dir))
    leftovers()
  end)

  for i, b in ipairs(runnable) do
    it(where(b) .. " (```" .. b.info .. ")", function()
      assert(results, failure)
      local r = results[i]
      if b.lang == "console" then
        for n, c in ipairs(b.commands) do
          local got = r.commands[n]
          local at = b.file .. ":" .. c.line .. ": $ " .. c.command
          assert(got and got.status, at .. "\nnot run; the block's output:\n" .. r.output)
          assert(got.status == 0, at .. ("\nexited %d:\n"):format(got.status) .. got.output)
          local same, diff = docs.compare(c.expected, got.output)
          assert(same, at .. "\n" .. tostring(diff))
        end
        assert(r.status == 0, where(b) .. (": the block exited %d:\n"):format(r.status) .. r.output)
      else
        assert(r.status == 0, where(b) .. (": exited %d:\n"):format(r.status) .. r.output)
        if b.output then
          local same, diff = docs.compare(docs.lines(b.output), r.output)
          assert(same, b.file .. ":" .. b.output_line .. ": the output shown differs: " .. tostring(diff))
        end
      end
    end)
  end
end)
