--- docs/methods.md: every method each provider publishes, by family, made
-- from the published methods' data (src/streamctl/PROVIDER/api.lua).
--
--   lua5.4 tools/methods-page.lua [ROOT] > docs/methods.md   (make doc)
--
-- As a module (spec/house/70 holds the page to it): `page(root)` gives the text.
-- @script methods-page

local M = {}

-- A family is the first whose words one of the method's name holds.
local FAMILIES = {
  aliyun = {
    { "Relays (pull to push)", { "PullToPush" } },
    { "Production studio", { "Caster", "Studio", "Show", "Playlist", "Episode", "Program" } },
    { "Interactive messaging", { "Message", "MuteGroup", "MuteAll", "Like", "OnlineUsers" } },
    { "RTC and mixing", { "Rtc", "RTC", "MPU", "Mpu", "Channel", "Terminal", "MixStream", "RTS",
                                              "Whip", "Room", "Grtn" } },
    { "Transcoding and watermarks", { "Transcode", "Trancode", "Template", "Watermark", "Merge",
                                                 "Package" } },
    { "Recording", { "Record" } },
    { "Snapshots", { "Snapshot" } },
    { "Moderation and AI", { "Audit", "Detect", "Porn", "AI", "VerifyContent", "Asr" } },
    { "Usage data", { "Usage", "Data", "Bill", "TopDomains", "Meter", "Toutiao", "Peak", "IpInfo",
                                  "Duration" } },
    { "Streams", { "Stream" } },
    { "Domains", { "Domain", "Certificate", "Staging", "Shift", "Transfer", "PrivateLine", "Delay" } },
    { "Other", { "" } },
  },
  zego = {
    { "Streams", { "Stream", "CDNTransfer", "RTMP" } },
    { "Rooms", { "Room", "User", "Message", "Command", "Kickout" } },
    { "Stream mixing", { "Mix", "CloudTranscode" } },
    { "Moderation", { "Censor", "Identify" } },
    { "CDN media", { "Media", "CDNRecord" } },
    { "Other", { "" } },
  },
}

local PROVIDERS = {
  { "aliyun", "Alibaba Cloud ApsaraVideo Live (2016-11-01)" },
  { "zego", "ZEGOCLOUD Server API v2" },
}

local function family_of(families, name)
  for i, f in ipairs(families) do
    for _, word in ipairs(f[2]) do
      if name:find(word, 1, true) then return i end
    end
  end
end

function M.page(root)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("# Every method the providers publish")
  w("")
  w("`call` sends any of these, each parameter checked by the provider's own metadata")
  w("([clients](clients.md#prepare-and-call-the-services-own-names)); `streamctl PROVIDER methods")
  w("[PATTERN]` lists their parameters. One whose cap streamctl does not hold is paced at 1 a")
  w("second, under the lowest each provider publishes.")
  w("Made by `make doc` (tools/methods-page.lua).")
  for _, pv in ipairs(PROVIDERS) do
    local name, title = pv[1], pv[2]
    local data = dofile(root .. "/src/streamctl/" .. name .. "/api.lua")
    local families = FAMILIES[name]
    local groups = {}
    local total = 0
    for action in pairs(data.methods) do
      local i = family_of(families, action)
      groups[i] = groups[i] or {}
      table.insert(groups[i], action)
      total = total + 1
    end
    w("")
    w(("## %s: %d methods"):format(title, total))
    w("")
    w(("From %s at %s (%s)."):format(data.source.repository, data.source.commit:sub(1, 12), data.source.date))
    for i, f in ipairs(families) do
      local g = groups[i]
      if g then
        table.sort(g)
        for j, action in ipairs(g) do g[j] = "`" .. action .. "`" end
        w("")
        w(("### %s (%d)"):format(f[1], #g))
        w("")
        w(table.concat(g, ", ") .. ".")
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

if arg and arg[0] and arg[0]:find("methods%-page%.lua$") then
  io.write(M.page(arg[1] or "."))
end

return M
