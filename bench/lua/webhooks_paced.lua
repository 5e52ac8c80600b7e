-- webhooks.lua at a fixed offered load: each connection waits CONNECTIONS / RATE
-- between requests, so about RATE requests per second are offered in all,
-- however fast they are answered. (wrk only calls delay() when the script
-- defines it, so the unpaced script must not.)
-- args: BODIES_FILE PATH NTHREADS RATE CONNECTIONS
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "webhooks.lua")

function delay()
  return pause_ms
end
