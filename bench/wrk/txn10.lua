-- POST /v1/<bucket> a transaction of 10 mixed ops: 4 sets and 3 increments of new keys, the
-- delete of a seeded key, the get of one and the count of a prefix of 100.
-- The bucket holds d0000000.. to delete (DELETES_PER_ROUND for each round: the tag ends in the
-- round's number) and c0000000..c0000999 to read (bench/transactions.py seeds them).
local DELETES_PER_ROUND = 20000
local n = 0
local tag = os.getenv("BENCH_TAG") or "run"
local round = tonumber(tag:match("(%d+)$")) or 0
math.randomseed(42)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local ops = {}
  for i = 1, 4 do
    ops[#ops + 1] = string.format('{"op":"set","key":"%s-%d-s%d","value":"value-%d"}', tag, n, i, n)
  end
  for i = 1, 3 do
    ops[#ops + 1] = string.format('{"op":"increment","key":"%s-%d-i%d","by":1}', tag, n, i)
  end
  ops[#ops + 1] = string.format('{"op":"delete","key":"d%07d"}', round * DELETES_PER_ROUND + n)
  ops[#ops + 1] = string.format('{"op":"get","key":"c%07d"}', math.random(0, 999))
  ops[#ops + 1] = string.format('{"op":"count","prefix":"c0000%d"}', math.random(0, 9))
  return wrk.format(nil, nil, nil, '{"ops":[' .. table.concat(ops, ",") .. "]}")
end
