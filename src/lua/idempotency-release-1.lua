--[[
  Deletes an Idempotency-Key only while it holds this request's in-flight marker: never a stored response, never
  the marker of a later request.

  Input:
    KEYS[1]  the Idempotency-Key's Redis key
    ARGV[1]  this request's marker

  Output:
    1 when deleted, 0 when the key holds something else
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
