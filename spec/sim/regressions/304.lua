-- The schedule of seed 304 as the generator drew it when the seed found its bug
-- (see spec/house/25-sim_spec.lua); pinned here, as later generators draw others.
return {
  net = {
    base = 0.0030558400489909951,
    fault_rate = 0.18922907163317229,
    faulty = true,
    jitter = 0.0096805316015896696,
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
    max_late = 0.63048667160839467,
    timeout = 3.9934810711941506
  },
  processes = 3,
  procs = {
    {
      cancel_at = 25.016381296810117,
      name = "p1",
      ops = {
        {
          kind = "single",
          method = "forbid_live_stream",
          stream = "p1-s14"
        },
        {
          concurrency = 7,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p1-s08",
            "p1-s03",
            "p1-s09",
            "p1-s07",
            "p1-s10",
            "p1-s02",
            "p1-s16",
            "p1-s14",
            "p1-s17"
          }
        },
        {
          concurrency = 4,
          kind = "batch",
          method = "resume_live_streams",
          streams = {
            "p1-s09",
            "p1-s02",
            "p1-s14"
          }
        },
        {
          concurrency = 3,
          kind = "batch",
          method = "resume_live_streams",
          nested = {
            at = 1,
            op = {
              concurrency = 5,
              kind = "batch",
              method = "resume_live_streams",
              streams = {
                "p1-s05",
                "p1-s04",
                "p1-s10",
                "p1-s02",
                "p1-s08",
                "p1-s03",
                "p1-s09"
              }
            }
          },
          streams = {
            "p1-s15",
            "p1-s07",
            "p1-s14",
            "p1-s11",
            "p1-s02",
            "p1-s05",
            "p1-s06",
            "p1-s04"
          }
        },
        {
          concurrency = 3,
          kind = "batch",
          method = "forbid_live_streams",
          nested = {
            at = 12,
            op = {
              concurrency = 6,
              kind = "batch",
              method = "forbid_live_streams",
              streams = {
                "p1-s17",
                "p1-s05",
                "p1-s10",
                "p1-s08",
                "p1-s11",
                "p1-s04",
                "p1-s14"
              }
            }
          },
          streams = {
            "p1-s12",
            "p1-s15",
            "p1-s10",
            "p1-s16",
            "p1-s08",
            "p1-s01",
            "p1-s13",
            "p1-s09",
            "p1-s11",
            "p1-s07",
            "p1-s06",
            "p1-s05"
          }
        }
      },
      start = 0.13284605847005365
    },
    {
      name = "p2",
      ops = {
        {
          kind = "sleep",
          seconds = 0.77327706550553166
        },
        {
          kind = "single",
          method = "resume_live_stream",
          stream = "p2-s05"
        },
        {
          kind = "single",
          method = "resume_live_stream",
          stream = "p2-s07"
        }
      },
      start = 1.9255366203612989
    },
    {
      name = "p3",
      ops = {
        {
          dst = "rtmp://push.sim.example/app/p3-t1",
          kind = "create"
        },
        {
          kind = "single",
          method = "forbid_live_stream",
          stream = "p3-s07"
        },
        {
          kind = "stop",
          of = 1
        },
        {
          concurrency = 7,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p3-s25",
            "p3-s08",
            "p3-s17",
            "p3-s10",
            "p3-s06",
            "p3-s11",
            "p3-s05",
            "p3-s23",
            "p3-s16",
            "p3-s13",
            "p3-s21",
            "p3-s18",
            "p3-s02",
            "p3-s12",
            "p3-s28",
            "p3-s03",
            "p3-s26",
            "p3-s27",
            "p3-s09",
            "p3-s20",
            "p3-s19",
            "p3-s07",
            "p3-s15",
            "p3-s29",
            "p3-s24"
          }
        },
        {
          concurrency = 1,
          kind = "batch",
          method = "resume_live_streams",
          streams = {
            "p3-s10",
            "p3-s24",
            "p3-s18",
            "p3-s04",
            "p3-s11",
            "p3-s02",
            "p3-s17",
            "p3-s09",
            "p3-s27",
            "p3-s07",
            "p3-s05",
            "p3-s19",
            "p3-s13",
            "p3-s21",
            "p3-s22",
            "p3-s28",
            "p3-s26",
            "p3-s20",
            "p3-s01",
            "p3-s06",
            "p3-s12",
            "p3-s23",
            "p3-s14",
            "p3-s03",
            "p3-s25",
            "p3-s29",
            "p3-s16"
          }
        },
        {
          concurrency = 3,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p3-s14",
            "p3-s21",
            "p3-s24",
            "p3-s17",
            "p3-s10",
            "p3-s13",
            "p3-s07",
            "p3-s03",
            "p3-s01",
            "p3-s28",
            "p3-s19",
            "p3-s16",
            "p3-s18",
            "p3-s25",
            "p3-s12"
          }
        }
      },
      start = 1.0985888411277802
    }
  },
  provider = "aliyun",
  redis = {
    events = {
      {
        kind = "clock",
        step = -0.72357983582055185,
        t = 30.850501730666032
      },
      {
        kind = "restart_keep",
        t = 21.018337466305436
      }
    },
    latency = 0.002087483615975346
  },
  seed = 304,
  signature_version = "v1",
  store = "redis"
}
