-- PATCH +1 to a new key each request: counters from 0, one statement each.
local n = 0
local tag = os.getenv("BENCH_TAG") or "run"
request = function()
  n = n + 1
  return wrk.format("PATCH", wrk.path .. "/" .. tag .. "-" .. n, nil, "+1")
end
