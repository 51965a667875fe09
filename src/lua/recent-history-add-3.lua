--[[
  Adds a key's history buckets to its recent tier: each bucket once, then trims the oldest buckets (lowest newest
  point) while the rest still hold the cap, remembering the highest trimmed `max` as the floor. A bucket whose
  newest point is at or below the floor may have been here and trimmed, so the key is marked bad: the tier stops
  answering for it.

  Input:
    KEYS[1]  z: sorted set of bucket ids by their newest timestamp
    KEYS[2]  d: hash of bucket id -> `n SEP min SEP bucket JSON`
    KEYS[3]  m: hash of seen (points ever added), held (points here), floor, bad
    ARGV[1]  the cap: points kept per key
    ARGV[2]  the buckets, each `id SEP max SEP n SEP min SEP json END` (SEP is \1, END is \2)

  Output:
    how many points were new, then the ids of the buckets trimmed
]]
local meta = redis.call('HMGET', KEYS[3], 'floor', 'bad', 'held')
if meta[2] then return { 0 } end
local floor = tonumber(meta[1])
local held = tonumber(meta[3]) or 0
local added = 0
for id, max, n, min, json in string.gmatch(ARGV[2], '([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\2]*)\2') do
  if floor and tonumber(max) <= floor then
    redis.call('HSET', KEYS[3], 'bad', 1)
    return { 0 }
  end
  -- A job run again: a bucket already here keeps what it was first written with.
  if redis.call('ZADD', KEYS[1], 'NX', max, id) == 1 then
    redis.call('HSET', KEYS[2], id, n .. '\1' .. min .. '\1' .. json)
    added = added + tonumber(n)
  end
end
held = held + added
local cap = tonumber(ARGV[1])
local out = { 0 }
while true do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #oldest == 0 then break end
  local n = tonumber(string.match(redis.call('HGET', KEYS[2], oldest[1]), '^(%d+)'))
  if held - n < cap then break end
  redis.call('ZREM', KEYS[1], oldest[1])
  redis.call('HDEL', KEYS[2], oldest[1])
  held = held - n
  out[#out + 1] = oldest[1]
  if not floor or tonumber(oldest[2]) > floor then floor = tonumber(oldest[2]) end
  redis.call('HSET', KEYS[3], 'floor', oldest[2])
end
redis.call('HINCRBY', KEYS[3], 'seen', added)
redis.call('HSET', KEYS[3], 'held', held)
out[1] = added
return out
