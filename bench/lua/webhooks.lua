-- Signed Twilio webhooks, each thread cycling through its share of a list.
-- args: BODIES_FILE PATH NTHREADS [RATE CONNECTIONS] ; BODIES_FILE lines are "<signature>\t<form body>".
-- RATE and CONNECTIONS are for webhooks_paced.lua, which loads this file.
local sigs, bodies = {}, {}
local threads = {}
local next_id = 0
local path, step, index = "/", 1, 0
statuses = {}
pause_ms = 0 -- global: webhooks_paced.lua's delay() reads it

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    if tab then
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
  end
  path = args[2]
  step = tonumber(args[3])
  index = tid or 0
  if args[4] then
    pause_ms = math.floor(tonumber(args[5]) * 1000 / tonumber(args[4]))
  end
end

function request()
  local i = index % #bodies + 1
  index = index + step
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = sigs[i],
    ["User-Agent"] = "TwilioProxy/1.1",
  }, bodies[i])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do parts[#parts + 1] = string.format('"%d":%d', status, count) end
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,' ..
    '"lat_max_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ",")))
end
