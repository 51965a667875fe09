--[[
  Adds a key's records to its recent-history tier: each record id once, then trims the tier to its cap (remembering
  the newest trimmed record as the floor). A record at or below the floor may have been here and trimmed, so the
  key is marked bad: the tier stops answering for it.

  Input:
    KEYS[1]  z: sorted set of record ids by timestamp
    KEYS[2]  d: hash of record id -> record (JSON)
    KEYS[3]  m: hash of seen, ft/fid (the floor), bad
    ARGV[1]  the cap: records kept per key
    ARGV[2]  the records, each `id SEP timestamp SEP record END` (SEP is \1, END is \2)

  Output:
    how many records were new
]]
--- @include "includes/recent-history-helpers.lua"
local meta = redis.call('HMGET', KEYS[3], 'ft', 'fid', 'bad')
if meta[3] then return 0 end
local ft, fid = tonumber(meta[1]), meta[2]
local members, records = {}, {}
for id, ts, record in string.gmatch(ARGV[2], '([^\1]*)\1([^\1]*)\1([^\2]*)\2') do
  local t = tonumber(ts)
  if ft and (t < ft or (t == ft and not before(fid, id))) then
    -- At or below the floor: it may have been here and trimmed, so 'seen' can no longer be trusted.
    redis.call('HSET', KEYS[3], 'bad', 1)
    return 0
  end
  members[#members + 1] = ts; members[#members + 1] = id
  records[#records + 1] = id; records[#records + 1] = record
end
local added = in_slices(members, function(...) return redis.call('ZADD', KEYS[1], 'NX', ...) end)
if added == #records / 2 then
  in_slices(records, function(...) return redis.call('HSET', KEYS[2], ...) end)
elseif added > 0 then
  -- A job run again: the records already here keep what they were first written with.
  for j = 1, #records, 2 do redis.call('HSETNX', KEYS[2], records[j], records[j + 1]) end
end
redis.call('HINCRBY', KEYS[3], 'seen', added)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if over > 0 then
  local gone = redis.call('ZRANGE', KEYS[1], 0, over - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  local ids = {}
  for j = 1, #gone, 2 do ids[#ids + 1] = gone[j] end
  in_slices(ids, function(...) return redis.call('HDEL', KEYS[2], ...) end)
  redis.call('HSET', KEYS[3], 'ft', gone[#gone], 'fid', gone[#gone - 1])
end
return added
