-- webhooks.lua at a fixed offered load: each connection waits CONNECTIONS / RATE
-- between requests on average, so about RATE requests per second are offered in
-- all, however fast they are answered. The wait is drawn uniformly from 0 to twice
-- that, so the connections do not fire in step (64 callbacks at the same instant
-- every 128 ms would measure the burst, not the rate). wrk only calls delay()
-- when the script defines it, so the unpaced script must not.
-- args: BODIES_FILE PATH NTHREADS RATE CONNECTIONS
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "webhooks.lua")

function delay()
  return math.random(0, 2 * pause_ms)
end
