--[[
  Claims a job for a guard identity unless a claim exists (a re-run), and moves its batch to processing.

  Input:
    KEYS[1]  the job's claim
    KEYS[2]  the batch's status hash
    ARGV[1]  the guard identity to claim with
    ARGV[2]  the claim's time to live (s)

  Output:
    {the claim that existed, '' if none; the batch status before, '' if unknown}
]]
local existing = redis.call('GET', KEYS[1])
if not existing then redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2])) end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'queued' then redis.call('HSET', KEYS[2], 'status', 'processing') end
return {existing or '', status or ''}
