-- rank.lua: wrk script for `make bench-serve`: POST /v1/rank with 100
-- candidates for a random user (2,000 users, 10,000 items, the simulator's
-- vocabulary), time omitted (= now, where bench/events.lua streams events).
-- RANK_DELAY_MS > 0 paces each connection (that many ms between its
-- requests) to measure latency at a given load rather than at saturation.
-- Prints one JSON line with throughput and latency percentiles at the end.
local GENRES = {"pop", "rock", "hiphop", "electronic", "jazz", "classical", "folk", "country",
                "rnb", "metal", "indie", "latin", "reggae", "blues", "soul", "kpop", "ambient",
                "punk", "disco", "funk"}
local MOODS = {"calm", "happy", "sad", "energetic", "romantic", "dark", "dreamy", "angry"}
local LANGS = {"en", "es", "zh", "ko", "fr"}
local CANDIDATES, BODIES = 100, 64
local DELAY = tonumber(os.getenv("RANK_DELAY_MS") or "0")
local PHASE = os.getenv("PHASE") or "rank"

local bodies, n = {}, 0

local function item_json(k)
  local g = GENRES[k % #GENRES + 1]
  if k % 7 == 0 then g = g .. "|" .. GENRES[math.floor(k / 7) % #GENRES + 1] end
  return string.format('{"item": "i%d", "genre": "%s", "mood": "%s", "lang": "%s"}',
                       k, g, MOODS[k % #MOODS + 1], LANGS[k % #LANGS + 1])
end

function init(args)
  math.randomseed(12345 + (tonumber(args[1]) or 0))
  for b = 1, BODIES do
    local items = {}
    for c = 1, CANDIDATES do items[c] = item_json(math.random(0, 9999)) end
    bodies[b] = string.format('{"user": "u%d", "items": [%s]}', math.random(0, 1999),
                              table.concat(items, ", "))
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function delay() return DELAY end

function request()
  n = n % BODIES + 1
  return wrk.format(nil, "/v1/rank", nil, bodies[n])
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format('{"bench": "serve_rank", "phase": "%s", "connections": %d, "delay_ms": %d, ' ..
                         '"candidates": %d, "requests": %d, "seconds": %.2f, ' ..
                         '"req_per_s": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
                         '"max_ms": %.3f, "non_2xx": %d, "socket_errors": %d}\n',
                         PHASE, tonumber(os.getenv("CONNECTIONS") or "0"), DELAY,
                         CANDIDATES, summary.requests, s, summary.requests / s,
                         latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                         latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status,
                         summary.errors.connect + summary.errors.read + summary.errors.write +
                         summary.errors.timeout))
end
