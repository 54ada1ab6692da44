-- The schedule of seed 18 as the generator drew it when the seed found its bug
-- (see spec/house/25-sim_spec.lua); pinned here, as later generators draw others.
return {
  net = {
    base = 0.016562516835110744,
    fault_rate = 0.13436224763222249,
    faulty = true,
    jitter = 0.0023495051496191933,
    kinds = {
      "5xx_after",
      "malformed"
    },
    max_late = 2.9037788152264232,
    timeout = 2.440403483752537
  },
  processes = 2,
  procs = {
    {
      name = "p1",
      ops = {
        {
          kind = "single",
          method = "resume_live_stream",
          stream = "p1-s03"
        },
        {
          kind = "sleep",
          seconds = 2.5934588951929092
        },
        {
          concurrency = 4,
          kind = "batch",
          method = "resume_live_streams",
          nested = {
            at = 1,
            op = {
              kind = "single",
              method = "forbid_live_stream",
              stream = "p1-s02"
            }
          },
          streams = {
            "p1-s08",
            "p1-s11",
            "p1-s10",
            "p1-s03",
            "p1-s06",
            "p1-s02",
            "p1-s05",
            "p1-s09"
          }
        }
      },
      start = 1.9296655868456378
    },
    {
      name = "p2",
      ops = {
        {
          dst = "rtmp://push.sim.example/app/p2-t1",
          kind = "create"
        },
        {
          kind = "single",
          method = "forbid_live_stream",
          stream = "p2-s03"
        },
        {
          concurrency = 6,
          kind = "batch",
          method = "forbid_live_streams",
          nested = {
            at = 2,
            op = {
              concurrency = 3,
              kind = "batch",
              method = "resume_live_streams",
              streams = {
                "p2-s09",
                "p2-s06",
                "p2-s11",
                "p2-s05",
                "p2-s13",
                "p2-s03",
                "p2-s04",
                "p2-s08",
                "p2-s07",
                "p2-s01",
                "p2-s12"
              }
            }
          },
          streams = {
            "p2-s10",
            "p2-s02",
            "p2-s07",
            "p2-s08",
            "p2-s06",
            "p2-s12",
            "p2-s04",
            "p2-s14",
            "p2-s09",
            "p2-s05",
            "p2-s03",
            "p2-s01",
            "p2-s11",
            "p2-s13"
          }
        }
      },
      start = 0.61522049886660701
    }
  },
  provider = "aliyun",
  redis = {
    events = {
      {
        duration = 1.2266546861982484,
        kind = "slow",
        latency = 0.32966600344950892,
        t = 14.239748949873958
      }
    },
    latency = 0.00047288260317676016
  },
  seed = 18,
  signature_version = "v3",
  store = "redis"
}
