-- POST /v1/<bucket> a transaction of 100 sets of new keys: <tag>-<n>-<i>, i = 1..100 (the tag
-- keeps runs apart), each value "value-<n>" as set.lua's.
local n = 0
local tag = os.getenv("BENCH_TAG") or "run"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local ops = {}
  for i = 1, 100 do
    ops[i] = string.format('{"op":"set","key":"%s-%d-%d","value":"value-%d"}', tag, n, i, n)
  end
  return wrk.format(nil, nil, nil, '{"ops":[' .. table.concat(ops, ",") .. "]}")
end
