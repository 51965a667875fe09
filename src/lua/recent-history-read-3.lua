--[[
  Reads a page of a key's recent-history tier, newest first.

  Input:
    KEYS[1]  z: sorted set of record ids by timestamp
    KEYS[2]  d: hash of record id -> record (JSON)
    KEYS[3]  m: hash of seen, ft/fid (the floor), bad
    ARGV[1]  the newest timestamp (inclusive)
    ARGV[2]  the oldest timestamp (inclusive, or -inf)
    ARGV[3]  an id: at ARGV[1] only ids before it count ('' for all)
    ARGV[4]  how many records

  Output:
    seen, floor timestamp, floor id, bad ('' when unset), then (id, timestamp, record) of each record, newest first
]]
--- @include "includes/recent-history-helpers.lua"
local meta = redis.call('HMGET', KEYS[3], 'seen', 'ft', 'fid', 'bad')
local out = { meta[1] or '0', meta[2] or '', meta[3] or '', meta[4] or '' }
if meta[4] then return out end
local want = tonumber(ARGV[4])
local ids, scores = {}, {}
local max = ARGV[1]
if ARGV[3] ~= '' then
  local ties = redis.call('ZRANGEBYSCORE', KEYS[1], max, max)
  for i = #ties, 1, -1 do
    if #ids >= want then break end
    if before(ties[i], ARGV[3]) then ids[#ids + 1] = ties[i]; scores[#ids] = max end
  end
  max = '(' .. max
end
if #ids < want then
  local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, ARGV[2], 'WITHSCORES', 'LIMIT', 0, want - #ids)
  for j = 1, #rest, 2 do ids[#ids + 1] = rest[j]; scores[#ids] = rest[j + 1] end
end
if #ids == 0 then return out end
local records = redis.call('HMGET', KEYS[2], unpack(ids))
for i = 1, #ids do
  out[#out + 1] = ids[i]; out[#out + 1] = scores[i]; out[#out + 1] = records[i]
end
return out
