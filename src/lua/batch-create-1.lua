--[[
  Creates a batch's status hash only if it does not exist: a resend of a batch whose first attempt was stored keeps
  its progress.

  Input:
    KEYS[1]   the batch's status hash
    ARGV[1]   its time to live (s)
    ARGV[2..] its fields and values

  Output:
    1 when created, 0 when it existed
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
