--[[
  Takes every lock or none, so two writers never hold half of each other's locks (no deadlock).

  Input:
    KEYS[1..n]  the locks
    ARGV[1]     the holder's token
    ARGV[2]     time to live (ms)

  Output:
    1 when every lock was taken, 0 when one was held (none is taken then)
]]
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', tonumber(ARGV[2]))
end
return 1
