--[[
  Renews an Idempotency-Key's in-flight marker only while it is this request's own.

  Input:
    KEYS[1]  the Idempotency-Key's Redis key
    ARGV[1]  this request's marker
    ARGV[2]  lease (ms)

  Output:
    1 when renewed, 0 when the key holds something else
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
