-- 90% GET of one of the 1,000 seeded keys, 10% POST of a new key.
local n = 0
local tag = os.getenv("BENCH_TAG") or "run"
math.randomseed(42)
request = function()
  n = n + 1
  if math.random() < 0.9 then
    return wrk.format("GET", wrk.path .. string.format("/m%04d", math.random(0, 999)))
  end
  return wrk.format("POST", wrk.path .. "/" .. tag .. "-" .. n, nil, "value-" .. n)
end
