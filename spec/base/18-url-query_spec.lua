-- tier: unit
-- A query string or form body read by streamctl.base.url.parse_query, exactly: the door reads
-- every nginx-rtmp hook's form with it (issue 88), so it is written with plain finds (LuaJIT
-- compiles them) and held here to what it answered before.
local url = require "streamctl.base.url"

describe("url.parse_query", function()
  -- { text, lenient, what it answers }
  for _, row in ipairs {
    { "", false, {} },
    { "a=1&b=2", false, { a = "1", b = "2" } },
    { "&&a=1&&", false, { a = "1" } },
    { "a", false, { a = "" } },
    { "a=", false, { a = "" } },
    { "=v", false, { [""] = "v" } },
    { "a=1=2", false, { a = "1=2" } },
    { "a=1&a=2&a=3", false, { a = { "1", "2", "3" } } },
    { "n+1=x+y%2Bz", false, { ["n 1"] = "x y+z" } },
    { "tcurl=rtmp%3A%2F%2F127.0.0.1%2Flive&call=publish", false, { tcurl = "rtmp://127.0.0.1/live", call = "publish" } },
    { "a=%zz", false, nil },
    { "a=%4", false, nil },
    { "%zz=1", false, nil },
    { "a=%zz&b=%41", true, { a = "%zz", b = "A" } },
  } do
    it(string.format("reads %q%s", row[1], row[2] and " (lenient)" or ""), function()
      assert.same(row[3], url.parse_query(row[1], row[2]))
    end)
  end

  -- { text, lenient, names kept, what it answers }: a name not kept is not in the answer, its escapes still checked
  for _, row in ipairs {
    { "a=1&b=2&a=3", false, { "a" }, { a = { "1", "3" } } },
    { "a=1&b=%41", false, { "b" }, { b = "A" } },
    { "a=1&b=%zz", false, { "a" }, nil },
    { "a=1&b=%4", false, { "a" }, nil },
    { "a=1&b=x%", false, { "a" }, nil },
    { "a=1&%zz=2", false, { "a" }, nil },
    { "a=1&b=%zz", true, { "a" }, { a = "1" } },
    { "a+b=%20&c=1", false, { "a b" }, { ["a b"] = " " } },
    { "a&b", false, { "b" }, { b = "" } },
    { "c%61ll=x&call=y&cal=z&calls=w", false, { "call", "a" }, { call = { "x", "y" } } },
    { "ab=1&ba=2&a=3", false, { "ba", "a" }, { ba = "2", a = "3" } },
  } do
    it(string.format("reads %q%s keeping some names", row[1], row[2] and " (lenient)" or ""), function()
      assert.same(row[4], url.parse_query(row[1], row[2], row[3]))
    end)
  end
end)
