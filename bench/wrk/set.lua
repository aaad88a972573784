-- POST a new key each request: /v1/<bucket>/<tag>-<n> (the tag keeps runs apart).
local n = 0
local tag = os.getenv("BENCH_TAG") or "run"
request = function()
  n = n + 1
  return wrk.format("POST", wrk.path .. "/" .. tag .. "-" .. n, nil, "value-" .. n)
end
