-- An alert storm: every request is a new Alertmanager webhook body (version 4, the shape
-- of tests/fixtures/alertmanager/firing-group.json) whose alerts are all distinct, each
-- with its own label set, so nothing is a dedup shortcut.
--
--   STORM_ALERTS  alerts per request (default 1)
--   STORM_SENDS   times each group is sent (default 1): as Alertmanager resends a group
--                 at its repeat_interval, the same alerts again, and on the k-th resend
--                 the alerts whose place i in the group has i % STORM_SENDS < k resolved
--                 (so the last resend of 3 resolves two thirds of them)
--   STORM_OFFSET  added to every instance number; a run uses numbers
--                 [STORM_OFFSET, STORM_OFFSET + 10^10), so advancing it by 10^10 between
--                 runs against the same server never repeats an alert (bench/run.sh
--                 passes slice * 10^10)
--
-- Alert k of a thread's request r (k counts on across the thread's requests) gets
-- instance = "host-<N>:9100" with N = STORM_OFFSET + thread * 10^9 + k; up to 64
-- threads, 10^9 alerts per thread and run. A request is one Alertmanager group: its
-- alerts share alertname (one of 20, e.g. "HighLatency3") and job ("node" for even r,
-- "app" for odd r); severity, namespace, service and region vary per alert.
-- Prints "storm: alerts_built=<n>" when wrk is done (alerts put in requests, including
-- any still in flight when the run stopped).

local alerts_per_request = tonumber(os.getenv("STORM_ALERTS") or "1")
local offset = tonumber(os.getenv("STORM_OFFSET") or "0")
local sends = tonumber(os.getenv("STORM_SENDS") or "1")
assert(sends and sends >= 1, "STORM_SENDS must be a number >= 1")
assert(alerts_per_request and alerts_per_request >= 1, "STORM_ALERTS must be a number >= 1")
assert(offset, "STORM_OFFSET must be a number")

local kinds = { "HighLatency", "DiskFull", "CPUHigh", "MemoryPressure", "TargetDown" }
local names = {}
for i = 0, 19 do names[#names + 1] = kinds[(i % #kinds) + 1] .. tostring(math.floor(i / #kinds)) end
local jobs = { "node", "app" }
local severities = { "critical", "warning", "warning" }
local regions = { "eu-west-1", "eu-central-1", "us-east-1" }

-- setup() runs once per thread in wrk's main Lua state; init() and request() in the
-- thread's own state, where thread:set() puts the values.
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

local base, request_no, alert_no
alerts_built = 0

function init(args)
  assert(thread_id < 64, "storm.lua: at most 64 threads")
  base = offset + thread_id * 1e9
  request_no = 0
  alert_no = 0
end

local starts_at = "2026-11-22T22:39:20.690236145Z"
local headers = { ["Content-Type"] = "application/json" }

-- Numbers below 10^14 print as integers with Lua 5.1's "%.14g".
local function alert(n, alertname, job, resolved)
  local instance = "host-" .. tostring(n) .. ":9100"
  local hi = math.floor(n / 4294967296)
  local lo = n % 4294967296
  local labels = '"alertname":"' .. alertname
    .. '","instance":"' .. instance
    .. '","job":"' .. job
    .. '","severity":"' .. severities[(n % #severities) + 1]
    .. '","namespace":"team-' .. tostring(n % 8)
    .. '","service":"svc-' .. tostring(n % 50)
    .. '","region":"' .. regions[(n % #regions) + 1] .. '"'
  local annotations = '"summary":"' .. alertname .. ' on ' .. instance
    .. '","description":"' .. alertname .. ' has held for 5m on ' .. instance
    .. ' (job ' .. job .. ')"'
  local status, ends_at = "firing", "0001-01-01T00:00:00Z"
  if resolved then status, ends_at = "resolved", "2026-11-22T23:39:20Z" end
  return '{"status":"' .. status .. '","labels":{' .. labels
    .. '},"annotations":{' .. annotations
    .. '},"startsAt":"' .. starts_at
    .. '","endsAt":"' .. ends_at .. '","generatorURL":"http://prometheus.local:9090/graph?g0.expr=' .. alertname
    .. '","fingerprint":"' .. string.format("%08x%08x", (hi * 2654435761 + 40503) % 4294967296, lo)
    .. '"}', labels, annotations
end

function request()
  -- Request r sends group g = r / sends for the (r % sends)-th time.
  local group = math.floor(request_no / sends)
  local resend = request_no % sends
  local alertname = names[(group % #names) + 1]
  local job = jobs[(group % #jobs) + 1]
  request_no = request_no + 1
  local first = base + group * alerts_per_request
  local parts = {}
  local labels, annotations
  local firing = 0
  for i = 1, alerts_per_request do
    local resolved = (i - 1) % sends < resend
    if not resolved then firing = firing + 1 end
    parts[i], labels, annotations = alert(first + i - 1, alertname, job, resolved)
  end
  alert_no = alert_no + alerts_per_request
  alerts_built = alerts_built + alerts_per_request
  local common_labels, common_annotations
  if alerts_per_request == 1 then
    common_labels, common_annotations = labels, annotations
  else
    common_labels = '"alertname":"' .. alertname .. '","job":"' .. job .. '"'
    common_annotations = ""
  end
  local body = '{"receiver":"remediation-webhook","status":"'
    .. (firing > 0 and "firing" or "resolved") .. '","alerts":['
    .. table.concat(parts, ",")
    .. '],"groupLabels":{"alertname":"' .. alertname
    .. '"},"commonLabels":{' .. common_labels
    .. '},"commonAnnotations":{' .. common_annotations
    .. '},"externalURL":"http://alertmanager.local:9093","version":"4","groupKey":"{}:{alertname=\\"'
    .. alertname .. '\\"}","truncatedAlerts":0}'
  return wrk.format("POST", "/api/v1/alertmanager", headers, body)
end

function done(summary, latency, requests)
  local built = 0
  for _, t in ipairs(threads) do built = built + (t:get("alerts_built") or 0) end
  io.write(string.format("storm: alerts_built=%d\n", built))
end
