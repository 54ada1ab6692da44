-- tier: unit
-- How the command shows a ZEGO stream a later call decided on before this
-- call could leave (issue 66; spec/pipeline/25 holds the engine's side):
-- "SUPERSEDED", not sent, the later Sequence named, in the table and in JSON.
local output = require "streamctl.cli.output"

describe("a superseded stream in the command's output", function()
  it("is a record with superseded_by, its status SUPERSEDED, its JSON in the fixed key order", function()
    local entry_result = { Superseded = true, SupersededBy = "1700000012345" }
    local r = output.record("s1", true, 2, entry_result, nil, nil)
    assert.equal("1700000012345", r.superseded_by)
    assert.equal("SUPERSEDED", output.status_word(r))
    assert.equal('{"stream":"s1","ok":true,"attempts":2,"superseded_by":"1700000012345"}', output.record_json(r))
  end)

  it("a single call's result names the stream's later Sequence", function()
    local r = output.record("b", true, 1, { Superseded = true, SupersededBy = { a = "5", b = "7" } })
    assert.equal("7", r.superseded_by)
  end)

  it("a call that was sent is not superseded", function()
    local r = output.record("s1", true, 1, { RequestId = "z" })
    assert.is_nil(r.superseded_by)
    assert.equal("ok", output.status_word(r))
  end)

  it("the summary counts them among the succeeded", function()
    assert.equal(" (2 of them superseded by a later call, not sent)", output.superseded_text { superseded = 2 })
    assert.equal("", output.superseded_text { superseded = 0 })
    assert.equal("", output.superseded_text {})
  end)

  it("the closing line of when forbids end leaves them out, and says so (issue 89)", function()
    -- (it said "forbidden until resumed" of a forbid this run never sent)
    local tally = output.ends_tally()
    tally.add { ok = true, superseded_by = "1700000012345", ends_by = "until_resumed" }
    assert.equal("1 forbid superseded by a later decision: not sent by this run, its end is that decision's",
      tally.line())
    tally.add { ok = true, ends_by = "until_resumed" }
    tally.add { ok = true, superseded_by = "1700000012399", ends_by = "until_resumed" }
    assert.equal("forbidden until resumed (the provider gives these forbids no end)\n2 forbids superseded by a later "
      .. "decision: not sent by this run, their end is that decision's", tally.line())
  end)
end)
