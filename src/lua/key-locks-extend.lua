--[[
  Renews the locks this holder still owns.

  Input:
    KEYS[1..n]  the locks
    ARGV[1]     the holder's token
    ARGV[2]     time to live (ms)

  Output:
    how many of the locks the holder still owned (and renewed)
]]
local owned = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, tonumber(ARGV[2]))
    owned = owned + 1
  end
end
return owned
