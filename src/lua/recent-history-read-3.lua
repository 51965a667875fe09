--[[
  Reads the buckets of a key's recent tier that a page may need, newest `max` first. It stops once the buckets it
  returned hold, between the bounds, at least the page's records, and the next bucket's newest point is older than
  the oldest of those: no bucket further down can hold a record of the page.

  Input:
    KEYS[1]  z: sorted set of bucket ids by their newest timestamp
    KEYS[2]  d: hash of bucket id -> `n SEP min SEP bucket JSON`
    KEYS[3]  m: hash of seen, held, floor, bad
    ARGV[1]  the highest `max` a bucket may have (or +inf)
    ARGV[2]  the oldest timestamp of the page (or -inf)
    ARGV[3]  the newest timestamp of the page (or +inf)
    ARGV[4]  how many records the page needs

  Output:
    seen, floor, bad ('' when unset), then each bucket's JSON
]]
local meta = redis.call('HMGET', KEYS[3], 'seen', 'floor', 'bad')
local out = { meta[1] or '0', meta[2] or '', meta[3] or '' }
if meta[3] then return out end
local lower, upper, want = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- Points of whole buckets between the bounds, and the oldest point among them.
local whole, oldest = 0, nil
local offset = 0
while true do
  local chunk = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES', 'LIMIT', offset, 32)
  if #chunk == 0 then return out end
  for j = 1, #chunk, 2 do
    local max = tonumber(chunk[j + 1])
    if whole >= want and max < oldest then return out end
    local n, min, json = string.match(redis.call('HGET', KEYS[2], chunk[j]), '^(%d+)\1([^\1]*)\1(.*)$')
    min = tonumber(min)
    if min <= upper then
      out[#out + 1] = json
      -- Strictly below `upper`: at `upper` itself the cursor may leave some points out.
      if min >= lower and max < upper then
        whole = whole + tonumber(n)
        if not oldest or min < oldest then oldest = min end
      end
    end
  end
  offset = offset + 32
end
