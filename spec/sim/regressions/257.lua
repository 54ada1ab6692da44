-- The schedule of seed 257 as the generator drew it when the seed found its bug
-- (see spec/house/25-sim_spec.lua); pinned here, as later generators draw others.
return {
  net = {
    base = 0.0082781625932810479,
    fault_rate = 0.10413304171909862,
    faulty = true,
    jitter = 0.0057631152735679548,
    kinds = {
      "late_delivery",
      "no_answer",
      "late_answer"
    },
    max_late = 0.9548502342820635,
    timeout = 1.3503267807889048
  },
  processes = 2,
  procs = {
    {
      name = "p1",
      ops = {
        {
          kind = "single",
          method = "forbid_cdn_live_stream",
          stream = "p1-s01"
        },
        {
          kind = "single",
          method = "resume_cdn_live_stream",
          stream = "p1-s01"
        },
        {
          kind = "single",
          method = "forbid_rtc_stream",
          stream = "p1-s01"
        },
        {
          kind = "single",
          method = "resume_cdn_live_stream",
          stream = "p1-s01"
        }
      },
      start = 0.63303139818183274
    },
    {
      name = "p2",
      ops = {
        {
          kind = "single",
          method = "forbid_cdn_live_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "forbid_rtc_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "forbid_rtc_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "forbid_rtc_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "resume_cdn_live_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "resume_rtc_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "resume_rtc_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "forbid_cdn_live_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "forbid_cdn_live_stream",
          stream = "p2-s01"
        },
        {
          kind = "single",
          method = "forbid_cdn_live_stream",
          stream = "p2-s01"
        }
      },
      start = 0.82067274984034966
    }
  },
  provider = "zego",
  redis = {
    events = {

    },
    latency = 0.001
  },
  seed = 257,
  signature_version = "v3",
  store = "redis",
  stragglers = true
}
