-- One bench scenario for wrk, described by environment variables (bench/loadgen.py sets them):
--
--   BENCH_REQUESTS  file of requests, one a line: METHOD <tab> PATH <tab> AUTHORIZATION <tab> BODY
--   BENCH_MODE      cycle   - send the lines again and again (stateless endpoints, the soak)
--                   consume - send each line once (codes, tokens to revoke); a thread that runs
--                             out stops and says so in the report
--                   chain   - rotating refresh: each answer's refresh_token is sent next
--
-- Lines are shared out between the threads. done() prints one JSON line that the
-- harness reads: requests, duration, errors, latency percentiles (microseconds).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads - 1)
end

-- queue[head .. tail] are the lines not sent yet.
local queue, head, tail, sent, exhausted = {}, 1, 0, 0, 0
local mode = os.getenv("BENCH_MODE") or "cycle"

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields
end

function init(_args)
  local index = wrk.thread:get("index")
  local count = tonumber(os.getenv("BENCH_THREADS"))
  local number = 0
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if number % count == index then
      tail = tail + 1
      queue[tail] = split(line)
    end
    number = number + 1
  end
end

local function format(fields)
  local headers = {}
  if fields[3] ~= "" then
    headers["Authorization"] = fields[3]
  end
  if fields[1] == "POST" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  local body = fields[4] ~= "" and fields[4] or nil
  return wrk.format(fields[1], fields[2], headers, body)
end

-- The last request made, and its fields (a refresh answer reuses its method, path, header).
local last, last_fields

function request()
  if mode == "cycle" then
    local fields = queue[(sent % tail) + 1]
    sent = sent + 1
    return format(fields)
  end
  if head > tail then
    -- Out of fresh inputs: stop this thread rather than send requests bound to fail.
    exhausted = exhausted + 1
    wrk.thread:set("exhausted", exhausted)
    wrk.thread:stop()
    return last
  end
  last_fields = queue[head]
  queue[head] = nil
  head = head + 1
  last = format(last_fields)
  return last
end

function response(status, _headers, body)
  if mode ~= "chain" or status ~= 200 then
    return
  end
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    tail = tail + 1
    queue[tail] = { last_fields[1], last_fields[2], last_fields[3],
                    "grant_type=refresh_token&refresh_token=" .. token }
  end
end

function done(summary, latency, _requests)
  local exhausted_total = 0
  for _, thread in ipairs(threads) do
    exhausted_total = exhausted_total + (thread:get("exhausted") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "exhausted": %d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50), latency:percentile(99), latency.max, exhausted_total))
end
