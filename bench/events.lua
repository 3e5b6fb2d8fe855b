-- events.lua: wrk script for `make bench-serve`: streams events into
-- POST /v1/events while bench/rank.lua measures ranking. Each request is a
-- batch of BATCH events stamped with the current time; wrk waits DELAY ms
-- between requests. Run it with one connection, so batches arrive in time
-- order. bench_serve.sh measures the rate actually applied (from /metrics).
local GENRES = {"pop", "rock", "hiphop", "electronic", "jazz", "classical", "folk", "country",
                "rnb", "metal", "indie", "latin", "reggae", "blues", "soul", "kpop", "ambient",
                "punk", "disco", "funk"}
local MOODS = {"calm", "happy", "sad", "energetic", "romantic", "dark", "dreamy", "angry"}
local LANGS = {"en", "es", "zh", "ko", "fr"}
local BATCH = tonumber(os.getenv("EVENTS_BATCH") or "100")
local DELAY = tonumber(os.getenv("EVENTS_DELAY_MS") or "95")

function init(args)
  math.randomseed(os.time()) -- a new stream per run: a replayed one would be memorised
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function delay() return DELAY end

function request()
  local now, ev = os.time(), {}
  for i = 1, BATCH do
    local k = math.random(0, 9999)
    local fin = math.random() < 0.6 and 1 or 0
    ev[i] = string.format('{"ts": %d, "user": "u%d", "item": "i%d", "tz": 0, "genre": "%s", ' ..
                          '"mood": "%s", "lang": "%s", "finish": %d, "like": %d, "skip": %d}',
                          now, math.random(0, 1999), k, GENRES[k % #GENRES + 1],
                          MOODS[k % #MOODS + 1], LANGS[k % #LANGS + 1], fin,
                          math.random() < 0.1 and 1 or 0, 1 - fin)
  end
  return wrk.format(nil, "/v1/events", nil, "[" .. table.concat(ev, ", ") .. "]")
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format('{"bench": "serve_events", "batch": %d, "requests": %d, "seconds": %.2f, ' ..
                         '"p50_ms": %.3f, "p99_ms": %.3f, "non_2xx": %d}\n',
                         BATCH, summary.requests, s, latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000, summary.errors.status))
end
