-- The schedule of seed 3747 as the generator drew it when the seed found its bug
-- (see spec/house/25-sim_spec.lua); pinned here, as later generators draw others.
return {
  is_test = true,
  net = {
    base = 0.022348732778195976,
    fault_rate = 0.083517680828010366,
    faulty = true,
    jitter = 0.016595928166150981,
    kinds = {
      "refused",
      "duplicate",
      "late_delivery",
      "no_answer",
      "late_answer",
      "reset_after",
      "reset_lost",
      "5xx_before",
      "5xx_after",
      "throttle",
      "malformed"
    },
    max_late = 4.6064841410671216,
    timeout = 2.3387491254496844
  },
  processes = 3,
  procs = {
    {
      name = "p1",
      ops = {
        {
          kind = "sleep",
          seconds = 10.374720894149245
        },
        {
          concurrency = 1,
          kind = "batch",
          method = "resume_rtc_streams",
          streams = {
            "zegotest-1234567890-p1-s20",
            "zegotest-1234567890-p1-s04",
            "zegotest-1234567890-p1-s19",
            "zegotest-1234567890-p1-s22",
            "zegotest-1234567890-p1-s11",
            "zegotest-1234567890-p1-s01",
            "zegotest-1234567890-p1-s13",
            "zegotest-1234567890-p1-s12",
            "zegotest-1234567890-p1-s16",
            "zegotest-1234567890-p1-s23",
            "zegotest-1234567890-p1-s25",
            "zegotest-1234567890-p1-s10",
            "zegotest-1234567890-p1-s08",
            "zegotest-1234567890-p1-s21",
            "zegotest-1234567890-p1-s27",
            "zegotest-1234567890-p1-s15",
            "zegotest-1234567890-p1-s26",
            "zegotest-1234567890-p1-s07",
            "zegotest-1234567890-p1-s09",
            "zegotest-1234567890-p1-s17",
            "zegotest-1234567890-p1-s14",
            "zegotest-1234567890-p1-s05",
            "zegotest-1234567890-p1-s02",
            "zegotest-1234567890-p1-s03",
            "zegotest-1234567890-p1-s18",
            "zegotest-1234567890-p1-s06"
          }
        },
        {
          kind = "single",
          method = "forbid_rtc_stream",
          stream = "zegotest-1234567890-p1-s07"
        },
        {
          concurrency = 4,
          kind = "batch",
          method = "resume_rtc_streams",
          streams = {
            "zegotest-1234567890-p1-s16",
            "zegotest-1234567890-p1-s17",
            "zegotest-1234567890-p1-s26",
            "zegotest-1234567890-p1-s12",
            "zegotest-1234567890-p1-s22",
            "zegotest-1234567890-p1-s08",
            "zegotest-1234567890-p1-s15",
            "zegotest-1234567890-p1-s19",
            "zegotest-1234567890-p1-s03",
            "zegotest-1234567890-p1-s10",
            "zegotest-1234567890-p1-s09",
            "zegotest-1234567890-p1-s14",
            "zegotest-1234567890-p1-s20",
            "zegotest-1234567890-p1-s01",
            "zegotest-1234567890-p1-s24",
            "zegotest-1234567890-p1-s07",
            "zegotest-1234567890-p1-s05",
            "zegotest-1234567890-p1-s23",
            "zegotest-1234567890-p1-s21",
            "zegotest-1234567890-p1-s04",
            "zegotest-1234567890-p1-s13",
            "zegotest-1234567890-p1-s11",
            "zegotest-1234567890-p1-s18"
          }
        },
        {
          concurrency = 3,
          kind = "batch",
          method = "resume_rtc_streams",
          nested = {
            at = 3,
            op = {
              kind = "single",
              method = "resume_cdn_live_stream",
              stream = "zegotest-1234567890-p1-s11"
            }
          },
          streams = {
            "zegotest-1234567890-p1-s20",
            "zegotest-1234567890-p1-s14",
            "zegotest-1234567890-p1-s07",
            "zegotest-1234567890-p1-s02"
          }
        },
        {
          kind = "single",
          method = "forbid_cdn_live_stream",
          stream = "zegotest-1234567890-p1-s11"
        }
      },
      start = 0.48478019655196014
    },
    {
      name = "p2",
      ops = {
        {
          concurrency = 3,
          kind = "batch",
          method = "resume_rtc_streams",
          streams = {
            "zegotest-1234567890-p2-s08",
            "zegotest-1234567890-p2-s12",
            "zegotest-1234567890-p2-s19",
            "zegotest-1234567890-p2-s14",
            "zegotest-1234567890-p2-s17",
            "zegotest-1234567890-p2-s05",
            "zegotest-1234567890-p2-s03",
            "zegotest-1234567890-p2-s07"
          }
        },
        {
          kind = "sleep",
          seconds = 5.7324250133078776
        },
        {
          concurrency = 3,
          kind = "batch",
          method = "forbid_rtc_streams",
          nested = {
            at = 3,
            op = {
              concurrency = 3,
              kind = "batch",
              method = "forbid_rtc_streams",
              streams = {
                "zegotest-1234567890-p2-s04",
                "zegotest-1234567890-p2-s12",
                "zegotest-1234567890-p2-s13",
                "zegotest-1234567890-p2-s14",
                "zegotest-1234567890-p2-s05",
                "zegotest-1234567890-p2-s08",
                "zegotest-1234567890-p2-s06",
                "zegotest-1234567890-p2-s10",
                "zegotest-1234567890-p2-s15",
                "zegotest-1234567890-p2-s11",
                "zegotest-1234567890-p2-s17",
                "zegotest-1234567890-p2-s09",
                "zegotest-1234567890-p2-s18",
                "zegotest-1234567890-p2-s07",
                "zegotest-1234567890-p2-s03",
                "zegotest-1234567890-p2-s19",
                "zegotest-1234567890-p2-s01",
                "zegotest-1234567890-p2-s16",
                "zegotest-1234567890-p2-s02"
              }
            }
          },
          streams = {
            "zegotest-1234567890-p2-s17",
            "zegotest-1234567890-p2-s06",
            "zegotest-1234567890-p2-s19",
            "zegotest-1234567890-p2-s16"
          }
        },
        {
          kind = "single",
          method = "resume_rtc_stream",
          stream = "zegotest-1234567890-p2-s18"
        }
      },
      skew = 853.58385076148807,
      start = 0.43476148176450419
    },
    {
      name = "p3",
      ops = {
        {
          kind = "single",
          method = "resume_cdn_live_stream",
          stream = "zegotest-1234567890-p3-s09"
        },
        {
          concurrency = 3,
          kind = "batch",
          method = "forbid_rtc_streams",
          streams = {
            "zegotest-1234567890-p3-s03",
            "zegotest-1234567890-p3-s02",
            "zegotest-1234567890-p3-s04"
          }
        }
      },
      start = 1.0072525329955411
    }
  },
  provider = "zego",
  redis = {
    events = {

    },
    latency = 0.0024108437438596446
  },
  seed = 3747,
  signature_version = "v3",
  store = "redis"
}
