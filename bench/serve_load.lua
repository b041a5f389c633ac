-- wrk script for bench/serve_load.sh: POSTs BODY (JSON; "%d" becomes a fresh seed each request)
-- until each of THREADS threads has REQUESTS / THREADS answers, then prints one line of figures.
-- A thread that has its share leaves the file MARK<id>; the harness then stops wrk with SIGINT
-- (wrk's main thread otherwise sleeps out its whole -d duration).
local template = os.getenv("BODY")
local total = tonumber(os.getenv("REQUESTS"))
local nthreads = tonumber(os.getenv("THREADS"))
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  seed = id * 1000000
  answered = 0
  share = math.ceil(total / nthreads)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  seed = seed + 1
  return wrk.format(nil, nil, nil, string.format(template, seed))
end

function response(status, headers, body)
  answered = answered + 1
  if answered == share then
    local f = io.open(os.getenv("MARK") .. id, "w")
    f:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.1f p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
