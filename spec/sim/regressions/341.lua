-- The schedule of seed 341 as the generator drew it when it took over seed 304's case (an
-- interrupted verification; see spec/house/25-sim_spec.lua); pinned here, as later generators draw others.
return {
  credentials = {
    fails = 0.26964895466309874,
    life = {
      40,
      743
    },
    near = 0,
    stale = 0.11106652450847115
  },
  net = {
    base = 0.022434346908176639,
    fault_rate = 0.17041813626458696,
    faulty = true,
    jitter = 0.0025100699849520533,
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
    max_late = 0.4049209048086041,
    timeout = 2.6209771219836338
  },
  processes = 3,
  procs = {
    {
      name = "p1",
      ops = {
        {
          kind = "sleep",
          seconds = 6.8841914989838298
        },
        {
          concurrency = 7,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p1-s04",
            "p1-s03",
            "p1-s07"
          }
        },
        {
          kind = "single",
          method = "forbid_live_stream",
          stream = "p1-s10"
        },
        {
          concurrency = 4,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p1-s10",
            "p1-s06"
          }
        },
        {
          concurrency = 8,
          kind = "batch",
          method = "resume_live_streams",
          nested = {
            at = 2,
            op = {
              concurrency = 8,
              kind = "batch",
              method = "resume_live_streams",
              streams = {
                "p1-s06",
                "p1-s07",
                "p1-s08",
                "p1-s10",
                "p1-s02",
                "p1-s03",
                "p1-s04",
                "p1-s05",
                "p1-s01",
                "p1-s09"
              }
            }
          },
          streams = {
            "p1-s03",
            "p1-s06",
            "p1-s01",
            "p1-s04",
            "p1-s08",
            "p1-s05",
            "p1-s10",
            "p1-s09",
            "p1-s07"
          }
        },
        {
          kind = "sleep",
          seconds = 4.8113022621826289
        },
        {
          dst = "rtmp://push.sim.example/app/p1-t1",
          kind = "create"
        },
        {
          dst = "rtmp://push.sim.example/app/p1-t2",
          foreign = "other",
          kind = "create"
        }
      },
      start = 1.4574246466694629
    },
    {
      name = "p2",
      ops = {
        {
          dst = "rtmp://push.sim.example/app/p2-t1",
          kind = "create"
        },
        {
          concurrency = 2,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p2-s13",
            "p2-s10",
            "p2-s02",
            "p2-s09",
            "p2-s07",
            "p2-s03",
            "p2-s04",
            "p2-s11",
            "p2-s08",
            "p2-s12"
          }
        },
        {
          dst = "rtmp://push.sim.example/app/p2-t2",
          kind = "create"
        }
      },
      start = 0.81541538500731381
    },
    {
      cancel_at = 7.2316313304301643,
      name = "p3",
      ops = {
        {
          kind = "sleep",
          seconds = 2.5848447630040763
        },
        {
          dst = "rtmp://push.sim.example/app/p3-t1",
          foreign = "stopped",
          kind = "create"
        },
        {
          concurrency = 5,
          kind = "batch",
          method = "resume_live_streams",
          nested = {
            at = 4,
            op = {
              concurrency = 7,
              kind = "batch",
              method = "forbid_live_streams",
              streams = {
                "p3-s02",
                "p3-s07",
                "p3-s06",
                "p3-s26",
                "p3-s18",
                "p3-s23",
                "p3-s08",
                "p3-s04",
                "p3-s25",
                "p3-s01",
                "p3-s24",
                "p3-s03",
                "p3-s21",
                "p3-s14",
                "p3-s11",
                "p3-s10",
                "p3-s09",
                "p3-s27",
                "p3-s13",
                "p3-s12",
                "p3-s16",
                "p3-s20",
                "p3-s17",
                "p3-s22"
              }
            }
          },
          streams = {
            "p3-s22",
            "p3-s14",
            "p3-s17",
            "p3-s06",
            "p3-s12"
          }
        },
        {
          concurrency = 7,
          kind = "batch",
          method = "forbid_live_streams",
          nested = {
            at = 12,
            op = {
              kind = "single",
              method = "resume_live_stream",
              stream = "p3-s03"
            }
          },
          streams = {
            "p3-s21",
            "p3-s10",
            "p3-s20",
            "p3-s19",
            "p3-s13",
            "p3-s27",
            "p3-s23",
            "p3-s24",
            "p3-s18",
            "p3-s11",
            "p3-s16",
            "p3-s14",
            "p3-s04",
            "p3-s17",
            "p3-s07",
            "p3-s01",
            "p3-s05",
            "p3-s08",
            "p3-s26",
            "p3-s06",
            "p3-s22",
            "p3-s12",
            "p3-s02",
            "p3-s25",
            "p3-s03",
            "p3-s09",
            "p3-s15"
          }
        },
        {
          concurrency = 4,
          kind = "batch",
          method = "forbid_live_streams",
          streams = {
            "p3-s08",
            "p3-s13",
            "p3-s10",
            "p3-s09",
            "p3-s20",
            "p3-s04",
            "p3-s12",
            "p3-s01",
            "p3-s06",
            "p3-s14"
          }
        }
      },
      skew = -1159.6270098906261,
      start = 0.43621048465018208
    }
  },
  provider = "aliyun",
  redis = {
    events = {
      {
        duration = 1.9401560267807507,
        kind = "gone",
        t = 25.708950952588534
      }
    },
    latency = 0.0037422102411670708,
    up = 0
  },
  seed = 341,
  signature_version = "v1",
  store = "redis"
}
