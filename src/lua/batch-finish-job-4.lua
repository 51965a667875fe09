--[[
  Counts a job's chunk once (the set of done chunks guards it), completes the batch after its last chunk, and drops
  the job's claim.

  Input:
    KEYS[1]  the batch's status hash
    KEYS[2]  the batch's set of done chunks
    KEYS[3]  the job's claim
    KEYS[4]  the service's counters hash
    ARGV[1]  the chunk number
    ARGV[2]  the chunk's points
    ARGV[3]  now (ms)
    ARGV[4]  the batch's time to live (s)

  Output:
    {status} ('' for an unknown batch), or {'completed', points, keys, receivedAt} when this chunk completed it
]]
redis.call('DEL', KEYS[3])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {''} end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {status} end
redis.call('HINCRBY', KEYS[4], 'processedPoints', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'processedPoints', ARGV[2])
local done = redis.call('HINCRBY', KEYS[1], 'doneChunks', 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if done >= tonumber(redis.call('HGET', KEYS[1], 'chunks')) and status ~= 'failed' and status ~= 'completed' then
  redis.call('HSET', KEYS[1], 'status', 'completed', 'completedAt', ARGV[3])
  return {'completed', redis.call('HGET', KEYS[1], 'points'), redis.call('HGET', KEYS[1], 'keys'), redis.call('HGET', KEYS[1], 'receivedAt')}
end
return {status}
