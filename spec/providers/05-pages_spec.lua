-- tier: unit
-- A paged listing is read whole or not at all (issue 66), by one reader
-- (streamctl.pipeline.pages) for every listing: the account's domains and
-- the block list (a forbid batch's places, a reconcile round), a domain's
-- count, the look-ups after a forbid, a resume or a create whose outcome
-- is unknown. Each row is what a provider could answer that no provider
-- should: a short page before its total, a missing or changing total, a
-- number no provider could send. Every one is refused naming the page, and
-- nothing is sent. A transport written here plays the service.
local aliyun = require "streamctl.aliyun"
local pages = require "streamctl.pipeline.pages"
local reconcile = require "streamctl.operator.reconcile"
local acs_request = require "spec.helpers.acs_request"

local NOW = 1788170400

local action_of, query, count = acs_request.action_of, acs_request.query, acs_request.count

local function json_list(items)
  local out = {}
  for i, v in ipairs(items) do out[i] = v end
  return table.concat(out, ",")
end

-- The domains d1..dN, as DescribeLiveUserDomains lists them (JSON objects).
local function domains(from, to)
  local out = {}
  for i = from, to do out[#out + 1] = string.format('{"DomainName":"d%d.example.com"}', i) end
  return out
end

-- A service whose every answer is scripted: `script[action](req, page, size)`
-- gives the JSON body (its RequestId added); what was sent is kept.
local function service(script)
  local sent, mono = {}, 0
  local client = assert(aliyun.new {
    access_key_id = "AKID", access_key_secret = "secret", clock = function() return NOW end,
    monotonic = function() return mono end, sleep = function(s) mono = mono + s end,
    retry = { random = function() return 0 end },
    transport = function(req)
      local action = action_of(req)
      sent[#sent + 1] = action
      local page = tonumber(query(req, "PageNumber") or query(req, "PageNum") or "1")
      local size = tonumber(query(req, "PageSize") or "0")
      local f = script[action]
      if not f then return { status = 200, headers = {}, body = '{"RequestId":"ok-' .. #sent .. '"}' } end
      local body, status = f(req, page, size)
      if body == nil then return nil, { code = "Timeout", message = "timed out", sent = true } end
      return { status = status or 200, headers = {}, body = '{"RequestId":"r-' .. #sent .. '",' .. body .. "}" }
    end,
  })
  return client, sent
end


-- A block list answer: `urls` (entries) and the TotalNum text (nil: none).
local function block(urls, total)
  local quoted = {}
  for i, u in ipairs(urls) do quoted[i] = '"' .. u .. '"' end
  return (total and '"TotalNum":' .. total .. "," or "") .. '"StreamUrls":{"StreamUrl":[' .. json_list(quoted) .. "]}"
end

local function domains_page(list, total, page)
  return (total and '"TotalCount":' .. total .. "," or "") .. (page and '"PageNumber":' .. page .. "," or "")
    .. '"Domains":{"PageData":[' .. json_list(list) .. "]}"
end

-- A forbid batch of one new stream on a.example.com with its places checked.
local function forbid_batch(cli)
  return cli:forbid_live_streams { domain_name = "a.example.com", app_name = "live", stream_names = { "n1" },
                                   check_places = true }
end

local PLACES = ": the block list's places cannot be counted; nothing was sent"

describe("the account's domains, read whole or not at all (a forbid batch's places)", function()
  local empty_list = function() return block({}, 0) end
  for _, row in ipairs {
    { "20 of 50 asked, TotalCount 60 (the issue's row: one page read, places miscounted)",
      function() return domains_page(domains(1, 20), 60) end,
      "page 1 of the account's domains ends the list at 20 entries, but its TotalCount is 60" .. PLACES },
    { "20 of 50 asked and no TotalCount (the issue's row)",
      function() return domains_page(domains(1, 20), nil) end,
      "page 1 of the account's domains has no TotalCount" .. PLACES },
    { "TotalCount 1e300", function() return domains_page(domains(1, 20), "1e300") end,
      "page 1 of the account's domains has a TotalCount that is not a count (1e+300)" .. PLACES },
    { "TotalCount -1", function() return domains_page({}, "-1") end,
      "page 1 of the account's domains has a TotalCount that is not a count (-1)" .. PLACES },
    { "TotalCount 20.5", function() return domains_page(domains(1, 20), "20.5") end,
      "page 1 of the account's domains has a TotalCount that is not a count (20.5)" .. PLACES },
    { "TotalCount a text", function() return domains_page(domains(1, 20), '"20"') end,
      "page 1 of the account's domains has a TotalCount that is not a count (20)" .. PLACES },
    { "51 entries where 50 were asked", function() return domains_page(domains(1, 51), 51) end,
      "page 1 of the account's domains holds 51 entries, more than the 50 asked" .. PLACES },
    { "20 entries where TotalCount 10 leaves 10", function() return domains_page(domains(1, 20), 10) end,
      "page 1 of the account's domains holds 20 entries, but its TotalCount of 10 leaves it 10" .. PLACES },
    { "a TotalCount that shrinks between pages (120, then 100)",
      function(_, page) return domains_page(domains(page * 50 - 49, page * 50), page == 1 and 120 or 100) end,
      "page 2 of the account's domains has a TotalCount of 100 where page 1 had 120: the listing changed while "
        .. "it was read" .. PLACES },
    { "page 2 answering page 1's domains again",
      function() return domains_page(domains(1, 50), 100) end,
      "page 2 of the account's domains lists \"d1.example.com\" again (page 1 listed it): the listing moved "
        .. "while it was read" .. PLACES },
    { "page 2 echoing PageNumber 1", function(_, page) return domains_page(domains(page * 50 - 49, page * 50), 100, 1) end,
      "page 2 of the account's domains answers as page 1 where page 2 was asked" .. PLACES },
    { "an entry without a DomainName", function() return domains_page({ '{"Name":"x"}' }, 1) end,
      "page 1 of the account's domains has a Domains entry 1 that is not a domain (no DomainName)" .. PLACES },
  } do
    it(row[1] .. ": refused naming the page, no forbid sent", function()
      local cli, sent = service { DescribeLiveUserDomains = row[2], DescribeLiveStreamsBlockList = empty_list }
      local report, err = forbid_batch(cli)
      assert.is_nil(report)
      assert.same({ "InvalidResponse", "DescribeLiveUserDomains", row[3] }, { err.code, err.action, err.message })
      assert.equal(0, count(sent, "ForbidLiveStream"))
    end)
  end

  it("more domains than 200 pages of 50 hold: refused at the first page, not after 200 reads", function()
    local cli, sent = service { DescribeLiveStreamsBlockList = empty_list,
      DescribeLiveUserDomains = function(_, page) return domains_page(domains(page * 50 - 49, page * 50), 20000) end }
    local report, err = forbid_batch(cli)
    assert.is_nil(report)
    assert.same({ "TooManyPages", "the account's domains: 20000 entries (page 1's TotalCount), more than 200 pages "
      .. "of 50 hold" .. PLACES }, { err.code, err.message })
    assert.same({ 1, 0 }, { count(sent, "DescribeLiveUserDomains"), count(sent, "ForbidLiveStream") })
  end)

  it("a whole listing over two pages is counted whole (every domain's TotalNum read)", function()
    local cli, sent = service {
      DescribeLiveUserDomains = function(_, page) return domains_page(domains(page * 50 - 49, math.min(60, page * 50)),
        60, page) end,
      DescribeLiveStreamsBlockList = function() return block({ "x/live/s" }, 1) end }
    local report = assert(forbid_batch(cli))
    -- (a.example.com's list, read whole, holds "x/live/s" by this script: 1 + 60 domains' 1 each)
    assert.same({ used = 61, limit = 10000, needed = 1, domains = 61 }, report.places)
    assert.same({ 2, 61, 1 }, { count(sent, "DescribeLiveUserDomains"), count(sent, "DescribeLiveStreamsBlockList"),
                                count(sent, "ForbidLiveStream") })
  end)
end)

describe("the block list, read whole or not at all", function()
  local one_domain = function() return domains_page({ '{"DomainName":"a.example.com"}' }, 1) end
  local other_domain = function() return domains_page({ '{"DomainName":"b.example.com"}' }, 1) end
  for _, row in ipairs {
    { "TotalNum 1e300 (the issue's row: a Lua traceback)", one_domain, function() return block({}, "1e300") end,
      "page 1 of the block list of a.example.com has a TotalNum that is not a count (1e+300): nothing was sent" },
    { "another domain's TotalNum 1e300 (its count: a traceback)", other_domain,
      function(req) return block({}, query(req, "DomainName") == "b.example.com" and "1e300" or 0) end,
      "page 1 of the block list of b.example.com has a TotalNum that is not a count (1e+300)" .. PLACES },
    { "another domain's count page holding 2 where 1 was asked", other_domain,
      function(req) return query(req, "DomainName") == "b.example.com" and block({ "b/l/x", "b/l/y" }, 2) or block({}, 0) end,
      "page 1 of the block list of b.example.com holds 2 entries, more than the 1 asked" .. PLACES },
    { "a short page and no TotalNum", one_domain, function() return block({ "a.example.com/live/x" }, nil) end,
      "page 1 of the block list of a.example.com has no TotalNum: nothing was sent" },
    { "TotalNum -0.5", one_domain, function() return block({}, "-0.5") end,
      "page 1 of the block list of a.example.com has a TotalNum that is not a count (-0.5): nothing was sent" },
  } do
    it(row[1] .. ": refused naming the page, no forbid sent", function()
      local cli, sent = service { DescribeLiveUserDomains = row[2], DescribeLiveStreamsBlockList = row[3] }
      local ok, report, err = pcall(forbid_batch, cli)
      assert.is_true(ok, report)
      assert.is_nil(report)
      assert.same({ "InvalidResponse", "DescribeLiveStreamsBlockList", row[4] }, { err.code, err.action, err.message })
      assert.equal(0, count(sent, "ForbidLiveStream"))
    end)
  end
end)

describe("a reconcile round reads its block lists whole or not at all", function()
  local D = "push.example.com"
  local WANT = { { domain_name = D, app_name = "live", stream_name = "a" } }
  -- A client whose block list answers `pages[n]` (tables) and whose account has D alone.
  local function fake(block_pages, domain_pages)
    local c = { sent = 0, reads = 0 }
    function c.describe_live_streams_block_list(self, f) self.reads = self.reads + 1 return block_pages[f.page_number] end
    function c.describe_live_user_domains(_, f)
      return (domain_pages or { { TotalCount = 1, Domains = { PageData = { { DomainName = D } } } } })[f.page_number]
    end
    function c.forbid_live_streams(self, f) self.sent = self.sent + #f.stream_names return { calls = 1, results = {} } end
    function c.resume_live_streams(self, f) self.sent = self.sent + #f.stream_names return { calls = 1, results = {} } end
    return c
  end
  local function urls(...) return { StreamUrl = { ... } } end
  for _, row in ipairs {
    { "TotalNum 1e300 (a traceback)", { { TotalNum = 1e300, StreamUrls = urls(D .. "/live/x") } },
      "page 1 of the block list of push.example.com has a TotalNum that is not a count (1e+300): nothing was sent" },
    { "a TotalNum that shrinks between pages (5, then 4)",
      { { TotalNum = 5, StreamUrls = urls(D .. "/live/x", D .. "/live/y") },
        { TotalNum = 4, StreamUrls = urls(D .. "/live/z", D .. "/live/w") } },
      "page 2 of the block list of push.example.com has a TotalNum of 4 where page 1 had 5: the listing changed "
        .. "while it was read: nothing was sent" },
    { "a stream listed on two pages (the list moved under the read)",
      { { TotalNum = 3, StreamUrls = urls(D .. "/live/x", D .. "/live/y") },
        { TotalNum = 3, StreamUrls = urls(D .. "/live/y") } },
      "page 2 of the block list of push.example.com lists \"push.example.com/live/y\" again (page 1 listed it): "
        .. "the listing moved while it was read: nothing was sent" },
    { "the account's domains short of their TotalCount (the places)",
      { { TotalNum = 0, StreamUrls = urls() } },
      "page 1 of the account's domains ends the list at 1 entries, but its TotalCount is 60" .. PLACES,
      { { TotalCount = 60, Domains = { PageData = { { DomainName = D } } } } } },
  } do
    it(row[1] .. ": refused, nothing sent", function()
      local c = fake(row[2], row[4])
      local ok, report, err = pcall(reconcile.aliyun, c, WANT, { remove_extra = true, page_size = 2 })
      assert.is_true(ok, report)
      assert.is_nil(report)
      assert.same({ "InvalidResponse", row[3], 0 }, { err.code, err.message, c.sent })
    end)
  end

  it("a TotalNum past max_pages: refused at the first page, not read to the end", function()
    local c = fake { { TotalNum = 9, StreamUrls = urls(D .. "/live/x", D .. "/live/y") } }
    local report, err = reconcile.aliyun(c, WANT, { page_size = 2, max_pages = 2 })
    assert.is_nil(report)
    assert.same({ "TooManyPages", "the block list of push.example.com: 9 entries (page 1's TotalNum), more than 2 "
      .. "pages of 2 hold: nothing was sent (raise max_pages)", 1, 0 }, { err.code, err.message, c.reads, c.sent })
  end)
end)

describe("a look-up proves nothing from a page it cannot trust", function()
  local TASK = '{"TaskId":"T-%d","TaskStatus":1,"TaskInfo":{"DstUrl":"rtmp://push.example/live/s1","TaskName":"x%d"}}'
  local function tasks(n)
    local out = {}
    for i = 1, n do out[i] = string.format(TASK, i, i) end
    return out
  end
  local CREATE = { region = "cn-shanghai", start_time = NOW, end_time = NOW + 3600, source_type = "url",
                   source_urls = { "https://a.example/b.flv" }, dst_url = "rtmp://push.example/live/s1" }
  local function create_after(list_body)
    local n = 0
    local cli, sent = service {
      CreateLivePullToPush = function()
        n = n + 1
        if n == 1 then return nil end -- (sent, no answer: the outcome unknown)
        return '"RetCode":0,"TaskId":"T-again"'
      end,
      DescribeLivePullToPushList = list_body,
    }
    return cli, sent
  end
  for _, row in ipairs {
    { "100 tasks for the DstUrl of a Total of 150, none ours (the look-up cannot see them all)",
      function() return '"Total":150,"TaskList":[' .. json_list(tasks(100)) .. "]" end,
      "lists 100 of the 150 tasks for it (one page of 100)" },
    { "a full page of 100 and no Total", function() return '"TaskList":[' .. json_list(tasks(100)) .. "]" end,
      "has no Total" },
    { "Total 1e300", function() return '"Total":1e300,"TaskList":[]' end, "has a Total that is not a count (1e+300)" },
    { "Total 3 and one task (a short page)", function() return '"Total":3,"TaskList":[' .. tasks(1)[1] .. "]" end,
      "lists 1 of the 3 tasks for it (one page of 100)" },
  } do
    it("create: " .. row[1] .. ": unknown, said, not sent again", function()
      local cli, sent = create_after(row[2])
      local res, err = cli:create_live_pull_to_push(CREATE)
      assert.is_nil(res)
      assert.same({ true, 1 }, { err.outcome_unknown, count(sent, "CreateLivePullToPush") })
      assert.truthy(err.message:find("the look-up by DescribeLivePullToPushList failed too: streamctl: aliyun "
        .. "DescribeLivePullToPushList: InvalidResponse: page 1 of the relay tasks for the create's DstUrl " .. row[3]
        .. ": the create may have been applied and the look-up cannot tell; not sent again", 1, true), err.message)
    end)
  end

  it("create: a whole page without ours: sent again (the create was not applied)", function()
    local cli, sent = create_after(function() return '"Total":2,"TaskList":[' .. json_list(tasks(2)) .. "]" end)
    assert.equal("T-again", assert(cli:create_live_pull_to_push(CREATE)).TaskId)
    assert.equal(2, count(sent, "CreateLivePullToPush"))
  end)

  -- A forbid (or resume) whose first answer is lost, then the block list's page.
  local function after(method, page)
    local n = 0
    local cli, sent = service {
      ForbidLiveStream = function() n = n + 1 if n == 1 then return nil end return '"Ok":1' end,
      ResumeLiveStream = function() n = n + 1 if n == 1 then return nil end return '"Ok":1' end,
      DescribeLiveStreamsBlockList = page,
    }
    local res, err = cli[method](cli, { domain_name = "d.example", app_name = "live", stream_name = "s" })
    return res, err, sent
  end
  for _, row in ipairs {
    { "forbid", "forbid_live_stream", "ForbidLiveStream", "TotalNum 1e300 listing the stream",
      function() return block({ "d.example/live/s" }, "1e300") end, "has a TotalNum that is not a count (1e+300)" },
    { "resume", "resume_live_stream", "ResumeLiveStream", "TotalNum -1 listing nothing (it read as whole)",
      function() return block({}, "-1") end, "has a TotalNum that is not a count (-1)" },
    { "resume", "resume_live_stream", "ResumeLiveStream", "4 entries where TotalNum 2 leaves 2",
      function() return block({ "d.example/live/a", "d.example/live/b", "d.example/live/c", "d.example/live/e" }, 2) end,
      "holds 4 entries, but its TotalNum of 2 leaves it 2" },
  } do
    it(row[1] .. ": " .. row[4] .. ": the look-up refused, unknown, said", function()
      local res, err, sent = after(row[2], row[5])
      assert.is_nil(res)
      assert.same({ true, 1 }, { err.outcome_unknown, count(sent, row[3]) })
      assert.truthy(err.message:find("page 1 of the block list of d.example " .. row[6] .. ": it cannot tell "
        .. "whether the earlier attempt took effect; not sent again", 1, true), err.message)
    end)
  end

  it("resume: a valid page that is not the whole list cannot prove the stream gone: sent again", function()
    local res, _, sent = after("resume_live_stream", function() return block({ "d.example/live/x" }, 5000) end)
    assert.truthy(res)
    assert.equal(2, count(sent, "ResumeLiveStream"))
  end)
end)

describe("pages.count: a number a provider could send", function()
  for _, row in ipairs {
    { 0, 0 }, { 60, 60 }, { 1e9, 1e9 }, { 1e9 + 1, nil }, { 1e300, nil }, { -1, nil }, { 20.5, nil },
    { 1 / 0, nil }, { 0 / 0, nil }, { "60", nil }, { true, nil },
  } do
    local function said(v) return type(v) == "string" and string.format("%q", v) or string.format("%.17g", v) end
    it((type(row[1]) == "boolean" and tostring(row[1]) or said(row[1])) .. " -> " .. (row[2] and said(row[2]) or "none"),
      function()
      assert.equal(row[2], pages.count(row[1]))
    end)
  end
end)
