--[[
  Stores a request's answer under its Idempotency-Key only while the key holds this request's in-flight marker: a
  request that stalled past its lease never overwrites a later request's marker or answer.

  Input:
    KEYS[1]  the Idempotency-Key's Redis key
    ARGV[1]  this request's marker
    ARGV[2]  the answer to store
    ARGV[3]  its time to live (s)

  Output:
    1 when stored, 0 when the key holds something else
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
