-- `streamctl configure` writes exactly where the credential chain reads
-- (issue 66): the file and section the chain would read, found the way the
-- chain finds them; refused, naming what would be read instead, when
-- another source comes first; proved by reading it back through the chain;
-- its own directory made 0700. A row per member, each in a home of its own
-- (never the real one).
local lfs = require "lfs"
local process = require "spec.helpers.process"
local checks = require "spec.helpers.checks"

local ROOT = process.temp_dir()
teardown(function() process.run("rm -rf " .. process.quote(ROOT)) end)

local ALI = { id = "LTAInew0001", secret = "new-secret-5678" }
local ZEGO = { id = "1234567890", secret = "0123456789abcdef0123456789abcdef" }
local OLD_ALI = "[default]\ntype = access_key\naccess_key_id = LTAIold0001\naccess_key_secret = old-secret-1234\n"
local OLD_ZEGO = "[zego]\napp_id = 1111111111\nserver_secret = ffffffffffffffffffffffffffffffff\n"
local CLI_JSON = '{\n  "current": "default",\n  "profiles": [\n    {"name": "default", "mode": "AK", '
  .. '"access_key_id": "LTAIcli0001", "access_key_secret": "cli-secret-1234"}\n  ]\n}\n'

local n = 0
-- A new home of its own under ROOT, with `files` ({ [relative path] = text }) in it, its directories 0700.
local function new_home(files)
  n = n + 1
  local home = ROOT .. "/h" .. n
  for rel, text in pairs(files or {}) do
    local dir = (home .. "/" .. rel):match("^(.*)/")
    assert(process.run("umask 077 && mkdir -p " .. process.quote(dir))) -- (0755 only where a row says so)
    process.write_file(home .. "/" .. rel, text)
  end
  assert(process.run("umask 077 && mkdir -p " .. process.quote(home)))
  return home
end

-- `streamctl configure ARGV...` in environment `env`, answering `answers`:
-- its status, standard output and standard error.
local function configure(env, answers, ...)
  local out, err = checks.buffer(), checks.buffer()
  local i = 0
  local stdin = { read = function() i = i + 1 return answers[i] end }
  local status = require("streamctl.cli").main({ "configure", ... }, { stdout = out, stderr = err, stdin = stdin,
    getenv = function(name) return env[name] end })
  return status, out:text(), err:text()
end

-- What the chain a command uses gives in `env` (its keys and where from), or its error.
local function chain(provider, env, profile)
  local c, err, _, source = require("streamctl.credentials")[provider] {
    profile = profile, getenv = function(name) return env[name] end }
  if not c then return { error = err.message } end
  if provider == "aliyun" then return { c.access_key_id, c.access_key_secret, source } end
  return { c.app_id, c.server_secret, source }
end

local function perms(path) return lfs.attributes(path, "permissions") end

describe("configure writes where the chain reads (a row per member)", function()
  it("zego with XDG_CONFIG_HOME set: into $XDG_CONFIG_HOME/streamctl/config, which the chain reads", function()
    local home = new_home { ["xdg/streamctl/config"] = OLD_ZEGO }
    local env = { HOME = home, XDG_CONFIG_HOME = home .. "/xdg" }
    local path = home .. "/xdg/streamctl/config"
    local status, out, err = configure(env, { ZEGO.id, ZEGO.secret }, "zego")
    assert.same({ 0, "[zego] written to " .. path .. " (mode 0600)\n", "" }, { status, out, err })
    assert.same({ ZEGO.id, ZEGO.secret, path .. " [zego]" }, chain("zego", env))
    assert.is_nil(process.read_file(home .. "/.config/streamctl/config"))
  end)

  it("zego without HOME but with XDG_CONFIG_HOME: written there (the chain reads it)", function()
    local home = new_home()
    local env = { XDG_CONFIG_HOME = home .. "/xdg" }
    local status, out, err = configure(env, { ZEGO.id, ZEGO.secret }, "zego", "--profile", "live")
    assert.same({ 0, "[zego.live] written to " .. home .. "/xdg/streamctl/config (mode 0600)\n", "" },
      { status, out, err })
    assert.same({ ZEGO.id, ZEGO.secret, home .. "/xdg/streamctl/config [zego.live]" }, chain("zego", env, "live"))
  end)

  it("aliyun with ALIBABA_CLOUD_CREDENTIALS_FILE set: into that file, which the chain reads alone", function()
    local home = new_home { ["named/creds.ini"] = OLD_ALI }
    local file = home .. "/named/creds.ini"
    local env = { HOME = home, ALIBABA_CLOUD_CREDENTIALS_FILE = file }
    local status, out, err = configure(env, { ALI.id, ALI.secret }, "aliyun")
    assert.same({ 0, "[default] written to " .. file .. " (mode 0600)\n", "" }, { status, out, err })
    assert.same({ ALI.id, ALI.secret, file .. " [default]" }, chain("aliyun", env))
    assert.is_nil(process.read_file(home .. "/.alibabacloud/credentials"))
    assert.equal("rw-------", perms(file))
  end)

  it("aliyun into a file ALIBABA_CLOUD_CREDENTIALS_FILE names in a 0755 directory: that mode said, not changed",
    function()
      local home = new_home { ["shared/creds.ini"] = OLD_ALI }
      assert(process.run("chmod 755 " .. process.quote(home .. "/shared")))
      local env = { HOME = home, ALIBABA_CLOUD_CREDENTIALS_FILE = home .. "/shared/creds.ini" }
      local status, out = configure(env, { ALI.id, ALI.secret }, "aliyun")
      assert.same({ 0, home .. "/shared: mode 0755, left as it is (not streamctl's own directory; the file is 0600)\n"
        .. "[default] written to " .. home .. "/shared/creds.ini (mode 0600)\n" }, { status, out })
      assert.same({ "rwxr-xr-x", "rw-------" }, { perms(home .. "/shared"), perms(home .. "/shared/creds.ini") })
    end)

  it("aliyun without HOME but with ALIBABA_CLOUD_CREDENTIALS_FILE: written there", function()
    local home = new_home()
    local env = { ALIBABA_CLOUD_CREDENTIALS_FILE = home .. "/c.ini" }
    local status, out = configure(env, { ALI.id, ALI.secret }, "aliyun")
    assert.same({ 0, "[default] written to " .. home .. "/c.ini (mode 0600)\n" }, { status, out })
    assert.same({ ALI.id, ALI.secret, home .. "/c.ini [default]" }, chain("aliyun", env))
  end)

  it("aliyun with ALIBABA_CLOUD_PROFILE set: into the section it names, said", function()
    local home = new_home { [".alibabacloud/credentials"] = OLD_ALI:gsub("default", "prod") }
    local env = { HOME = home, ALIBABA_CLOUD_PROFILE = "prod" }
    local path = home .. "/.alibabacloud/credentials"
    local status, out, err = configure(env, { ALI.id, ALI.secret }, "aliyun")
    assert.same({ 0, "[prod] (named by ALIBABA_CLOUD_PROFILE) written to " .. path .. " (mode 0600)\n", "" },
      { status, out, err })
    assert.same({ ALI.id, ALI.secret, path .. " [prod]" }, chain("aliyun", env))
  end)

  -- Another source first: refused naming what the chain would read instead, nothing written.
  local FIRST = {
    { "aliyun with aliyun-cli's config.json present", "aliyun", { [".aliyun/config.json"] = CLI_JSON }, {}, {},
      "%s/.aliyun/config.json [default]", "default", "/.alibabacloud/credentials" },
    { "aliyun --profile NAME that aliyun-cli's config.json also holds", "aliyun",
      { [".aliyun/config.json"] = CLI_JSON:gsub('"name": "default"', '"name": "staging"') }, {},
      { "--profile", "staging" }, "%s/.aliyun/config.json [staging]", "staging", "/.alibabacloud/credentials" },
    { "aliyun with ALIBABA_CLOUD_ACCESS_KEY_ID set", "aliyun", {},
      { ALIBABA_CLOUD_ACCESS_KEY_ID = "LTAIenv0001", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "env-s" }, {},
      "the environment (ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are set)", "default",
      "/.alibabacloud/credentials" },
    { "zego with ZEGO_APP_ID set", "zego", {},
      { ZEGO_APP_ID = "2222222222", ZEGO_SERVER_SECRET = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" }, {},
      "the environment (ZEGO_APP_ID and ZEGO_SERVER_SECRET are set)", "zego", "/.config/streamctl/config" },
  }
  for _, row in ipairs(FIRST) do
    it(row[1] .. ": refused naming what the chain reads first, nothing written", function()
      local home = new_home(row[3])
      local env = checks.copy(row[4], { HOME = home })
      local keys = row[2] == "aliyun" and ALI or ZEGO
      local status, out, err = configure(env, { keys.id, keys.secret }, row[2], table.unpack(row[5]))
      assert.same({ 1, "" }, { status, out })
      assert.equal("streamctl: configure: the credential chain would read " .. row[6]:format(home) .. ", not ["
        .. row[7] .. "] of " .. home .. row[8] .. ", which comes after it: nothing was written\n", err)
      assert.is_nil(lfs.attributes(home .. row[8]:match("^(/[^/]*)")))
    end)
  end

  it("aliyun-cli's config.json turned off (ALIBABA_CLOUD_CLI_PROFILE_DISABLED): the file written, and read",
    function()
      local home = new_home { [".aliyun/config.json"] = CLI_JSON }
      local env = { HOME = home, ALIBABA_CLOUD_CLI_PROFILE_DISABLED = "true" }
      assert.equal(0, (configure(env, { ALI.id, ALI.secret }, "aliyun")))
      assert.same({ ALI.id, ALI.secret, home .. "/.alibabacloud/credentials [default]" }, chain("aliyun", env))
    end)

  it("aliyun into a section turned off (enable = false): refused naming it, the file as it was", function()
    local text = OLD_ALI .. "enable = false\n"
    local home = new_home { [".alibabacloud/credentials"] = text }
    local path = home .. "/.alibabacloud/credentials"
    local status, out, err = configure({ HOME = home }, { ALI.id, ALI.secret }, "aliyun")
    assert.same({ 1, "" }, { status, out })
    assert.equal("streamctl: configure: " .. path .. ":5: [default] is turned off (enable = false), so the "
      .. "credential chain skips it: remove that line first, or name another --profile\n", err)
    assert.equal(text, process.read_file(path))
  end)

  it("an existing 0755 directory of its own is made 0700 (aliyun's and zego's), said", function()
    local home = new_home { [".alibabacloud/credentials"] = OLD_ALI, [".config/streamctl/config"] = OLD_ZEGO }
    for _, d in ipairs { "/.alibabacloud", "/.config/streamctl", "/.config" } do
      assert(process.run("chmod 755 " .. process.quote(home .. d)))
    end
    local status, out = configure({ HOME = home }, { ALI.id, ALI.secret }, "aliyun")
    assert.same({ 0, home .. "/.alibabacloud: mode 0700 (was 0755)\n[default] written to " .. home
      .. "/.alibabacloud/credentials (mode 0600)\n" }, { status, out })
    assert.equal("rwx------", perms(home .. "/.alibabacloud"))
    status, out = configure({ HOME = home }, { ZEGO.id, ZEGO.secret }, "zego")
    assert.same({ 0, home .. "/.config/streamctl: mode 0700 (was 0755)\n[zego] written to " .. home
      .. "/.config/streamctl/config (mode 0600)\n" }, { status, out })
    assert.equal("rwx------", perms(home .. "/.config/streamctl"))
    assert.equal("rwxr-xr-x", perms(home .. "/.config")) -- (XDG's base: every program's, not streamctl's)
    -- and one made new is 0700 from the start
    local fresh = new_home()
    assert.equal(0, (configure({ HOME = fresh }, { ZEGO.id, ZEGO.secret }, "zego")))
    assert.equal("rwx------", perms(fresh .. "/.config/streamctl"))
  end)

  it("a directory of its own that cannot be made 0700: said, nothing written", function()
    local home = new_home { [".alibabacloud/credentials"] = OLD_ALI }
    assert(process.run("chmod 755 " .. process.quote(home .. "/.alibabacloud")))
    local core = require "streamctl.core"
    local real = core.private_dir
    -- (root may chmod anything: the refusal a user meets, stood in for)
    core.private_dir = function(p) return nil, "cannot make private (mode 0700) " .. p .. ": Operation not permitted" end
    local ok, status, out, err = pcall(configure, { HOME = home }, { ALI.id, ALI.secret }, "aliyun")
    core.private_dir = real
    assert.is_true(ok, status)
    assert.same({ 1, "" }, { status, out })
    assert.equal("streamctl: configure: " .. home .. "/.alibabacloud is mode 0755 and could not be made 0700: cannot "
      .. "make private (mode 0700) " .. home .. "/.alibabacloud: Operation not permitted: nothing was written\n", err)
    assert.equal(OLD_ALI, process.read_file(home .. "/.alibabacloud/credentials"))
  end)

  it("an ALIBABA_CLOUD_PROFILE that is no section name: the chain's refusal said, nothing written", function()
    local home = new_home()
    local status, out, err = configure({ HOME = home, ALIBABA_CLOUD_PROFILE = "a]b" }, { ALI.id, ALI.secret },
      "aliyun")
    assert.same({ 1, "" }, { status, out })
    assert.equal("streamctl: configure: the credential chain would not read [a]b] of " .. home .. "/.alibabacloud/"
      .. "credentials: " .. home .. "/.alibabacloud/credentials:1: expected '[section]', optionally followed by a ; or "
      .. "# comment: nothing was written\n", err)
    assert.is_nil(lfs.attributes(home .. "/.alibabacloud"))
  end)

  it("no file to write (neither HOME nor an absolute XDG_CONFIG_HOME): a usage error naming both", function()
    local status, out, err = configure({ XDG_CONFIG_HOME = "relative/xdg" }, { ZEGO.id, ZEGO.secret }, "zego")
    assert.same({ 2, "", "streamctl: configure: HOME is not set, nor XDG_CONFIG_HOME (an absolute path): there is no "
      .. "file to write the profile into\n" }, { status, out, err })
  end)

  it("a file that is a symbolic link: its target replaced (the chain reads through the link), the link kept",
    function()
      local home = new_home { ["dotfiles/alibabacloud"] = OLD_ALI }
      assert(process.run("umask 077 && mkdir -p " .. process.quote(home .. "/.alibabacloud") .. " && ln -s ../dotfiles/alibabacloud "
        .. process.quote(home .. "/.alibabacloud/credentials")))
      local path = home .. "/.alibabacloud/credentials"
      local status, out, err = configure({ HOME = home }, { ALI.id, ALI.secret }, "aliyun")
      assert.same({ 0, "[default] written to " .. home .. "/.alibabacloud/../dotfiles/alibabacloud (the link " .. path
        .. " points to it) (mode 0600)\n", "" }, { status, out, err })
      assert.equal("link", lfs.symlinkattributes(path, "mode"))
      assert.same({ ALI.id, ALI.secret, path .. " [default]" }, chain("aliyun", { HOME = home }))
      -- a link to nothing: its target made (nothing anywhere else)
      local h2 = new_home()
      assert(process.run("umask 077 && mkdir -p " .. process.quote(h2 .. "/.config/streamctl") .. " && ln -s " ..
        process.quote(h2 .. "/elsewhere/config") .. " " .. process.quote(h2 .. "/.config/streamctl/config")))
      status = configure({ HOME = h2 }, { ZEGO.id, ZEGO.secret }, "zego")
      assert.equal(0, status)
      assert.same({ ZEGO.id, ZEGO.secret, h2 .. "/.config/streamctl/config [zego]" }, chain("zego", { HOME = h2 }))
    end)

  it("a write the chain does not read back is said, exit 1 (never 'written')", function()
    local core = require "streamctl.core"
    local home = new_home { [".config/streamctl/config"] = OLD_ZEGO }
    local real = core.replace_file
    core.replace_file = function() return true end -- (a write that lands nowhere the chain reads)
    local ok, status, out, err = pcall(configure, { HOME = home }, { ZEGO.id, ZEGO.secret }, "zego")
    core.replace_file = real
    assert.is_true(ok, status)
    assert.same({ 1, "" }, { status, out })
    assert.equal("streamctl: configure: [zego] was written to " .. home .. "/.config/streamctl/config, but the "
      .. "credential chain reads other keys from it\n", err)
  end)
end)

describe("a key or a profile given twice in a profile file is refused naming the file and the line", function()
  local P = '    {"name": "default", "mode": "AK", "access_key_id": "LTAIcli0001", "access_key_secret": "s-1234"}'
  -- JSON rows (aliyun-cli's config.json: before issue 66, the last of a key was taken and the first of two
  -- profiles, without a word) and INI rows (the credentials file, streamctl's own config: refused before)
  local ROWS = {
    { "a profile's key twice", ".aliyun/config.json", '{\n  "current": "default",\n  "profiles": [\n'
      .. '    {"name": "default", "mode": "AK", "access_key_id": "LTAIcli0001",\n'
      .. '     "access_key_secret": "s-1234", "access_key_id": "LTAIcli0002"}\n  ]\n}\n',
      "/.aliyun/config.json:5: 'access_key_id' is given twice in one object (first at line 4)" },
    { "the top's current twice", ".aliyun/config.json", '{\n  "current": "default",\n  "profiles": [\n' .. P
      .. '\n  ],\n  "current": "other"\n}\n',
      "/.aliyun/config.json:6: 'current' is given twice in one object (first at line 2)" },
    { "two profiles of one name", ".aliyun/config.json", '{\n  "current": "default",\n  "profiles": [\n' .. P
      .. ',\n' .. P:gsub("LTAIcli0001", "LTAIcli0002") .. '\n  ]\n}\n',
      "/.aliyun/config.json:5: profiles[1] and profiles[2] are both named 'default'" },
    { "an escaped key twice", ".aliyun/config.json", '{\n  "current": "default",\n  "profiles": [\n'
      .. '    {"name": "default", "mode": "AK", "access_key_id": "LTAIcli0001", "access_key_secret": "s-1234",\n'
      .. '     "access_key_\\u0069d": "LTAIcli0002"}\n  ]\n}\n',
      "/.aliyun/config.json:5: 'access_key_id' is given twice in one object (first at line 4)" },
    { "a credentials file's key twice", ".alibabacloud/credentials", OLD_ALI .. "ACCESS_KEY_ID = LTAIold0002\n",
      "/.alibabacloud/credentials:5: access_key_id is set twice in [default] (first at line 3)" },
    { "a credentials file's section twice", ".alibabacloud/credentials", OLD_ALI .. "[default]\n",
      "/.alibabacloud/credentials:5: section [default] appears twice (first at line 1)" },
  }
  for _, row in ipairs(ROWS) do
    it(row[1] .. ": the chain refuses it, and so does configure (nothing written)", function()
      local home = new_home { [row[2]] = row[3] }
      assert.same({ error = home .. row[4] }, chain("aliyun", { HOME = home }))
      local status, out, err = configure({ HOME = home }, { ALI.id, ALI.secret }, "aliyun")
      assert.same({ 1, "" }, { status, out })
      assert.truthy(err:find(home .. row[4], 1, true), err)
      assert.equal(row[3], process.read_file(home .. "/" .. row[2]))
    end)
  end

  it("streamctl's own config: a [defaults] key twice, or [zego] twice, refused by the command", function()
    for text, want in pairs {
      ["[defaults]\noutput = json\noutput = text\n"] = "/.config/streamctl/config:3: output is set twice in "
        .. "[defaults] (first at line 2)",
      [OLD_ZEGO .. "[zego]\n"] = "/.config/streamctl/config:4: section [zego] appears twice (first at line 1)",
    } do
      local home = new_home { [".config/streamctl/config"] = text }
      local status, out, err = checks.run_cli({ "zego", "forbid-rtc-streams", "s1", "--dry-run" },
        { getenv = function(name) return name == "HOME" and home or nil end, home = home })
      assert.same({ 2, "" }, { status, out })
      assert.truthy(err:find(home .. want, 1, true), err)
    end
  end)
end)
