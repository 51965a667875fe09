--[[
  Adds keys' history buckets to their recent tiers, many keys in one call: for each key, each bucket once, then
  trims the oldest buckets (lowest newest point) while the rest still hold the cap, remembering the highest trimmed
  `max` as the floor. A bucket whose newest point is at or below the floor may have been here and trimmed, so the
  key is marked bad: the tier stops answering for it (and only for it).

  Input: (the number of keys first, as for every <name>.lua)
    KEYS[3j-2]  z: sorted set of the j-th key's bucket ids by their newest timestamp
    KEYS[3j-1]  d: hash of bucket id -> `n SEP min SEP bucket JSON`
    KEYS[3j]    m: hash of seen (points ever added), held (points here), floor, bad
    ARGV[1]     the cap: points kept per key
    ARGV[1+j]   the j-th key's buckets, each `id SEP max SEP n SEP min SEP json END` (SEP is \1, END is \2)

  Output:
    the ids of the buckets trimmed, of every key
]]
local cap = tonumber(ARGV[1])
local trimmed = {}

local function add(z, d, m, buckets)
  local meta = redis.call('HMGET', m, 'floor', 'bad', 'held')
  if meta[2] then return end
  local floor = tonumber(meta[1])
  local held = tonumber(meta[3]) or 0
  local added = 0
  for id, max, n, min, json in string.gmatch(buckets, '([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\2]*)\2') do
    if floor and tonumber(max) <= floor then
      redis.call('HSET', m, 'bad', 1)
      return
    end
    -- A job run again: a bucket already here keeps what it was first written with.
    if redis.call('ZADD', z, 'NX', max, id) == 1 then
      redis.call('HSET', d, id, n .. '\1' .. min .. '\1' .. json)
      added = added + tonumber(n)
    end
  end
  held = held + added
  while true do
    local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if #oldest == 0 then break end
    local n = tonumber(string.match(redis.call('HGET', d, oldest[1]), '^(%d+)'))
    if held - n < cap then break end
    redis.call('ZREM', z, oldest[1])
    redis.call('HDEL', d, oldest[1])
    held = held - n
    trimmed[#trimmed + 1] = oldest[1]
    if not floor or tonumber(oldest[2]) > floor then floor = tonumber(oldest[2]) end
    redis.call('HSET', m, 'floor', oldest[2])
  end
  redis.call('HINCRBY', m, 'seen', added)
  redis.call('HSET', m, 'held', held)
end

for j = 1, #KEYS / 3 do
  add(KEYS[3 * j - 2], KEYS[3 * j - 1], KEYS[3 * j], ARGV[1 + j])
end
return trimmed
