--[[
  Commits a streamed batch: status queued, with its totals. With a guard key, only while that key still holds the
  expected value, which is then replaced in the same step; otherwise nothing changes. Run again (ioredis resends a
  transaction whose answer a dropped connection lost), it changes nothing and answers 1: the guard key already
  holds the new value, and the batch is past 'receiving' (a worker may have moved it on since).

  Input:
    KEYS[1]   the batch's status hash
    KEYS[2]   (optional) the guard key
    ARGV[1]   the batch's time to live (s)
    ARGV[2]   the value the guard key must hold
    ARGV[3]   the guard key's new value
    ARGV[4]   the guard key's time to live (s)
    ARGV[5..] the batch's fields and values

  Output:
    1 when committed (or committed before), 0 when the guard key held something else
]]
if #KEYS == 2 then
  local current = redis.call('GET', KEYS[2])
  if current == ARGV[3] then return 1 end
  if current ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4]))
end
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'receiving' then return 1 end
redis.call('HSET', KEYS[1], 'status', 'queued', unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
