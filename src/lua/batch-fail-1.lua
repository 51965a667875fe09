--[[
  Fails a batch once; a batch already completed or failed stays as it is.

  Input:
    KEYS[1]  the batch's status hash
    ARGV[1]  now (ms)
    ARGV[2]  what went wrong, as users see it

  Output:
    {''} when nothing changed, else {'failed', points, keys, receivedAt}
]]
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'completed' or status == 'failed' then return {''} end
redis.call('HSET', KEYS[1], 'status', 'failed', 'completedAt', ARGV[1], 'error', ARGV[2])
return {'failed', redis.call('HGET', KEYS[1], 'points'), redis.call('HGET', KEYS[1], 'keys'), redis.call('HGET', KEYS[1], 'receivedAt')}
