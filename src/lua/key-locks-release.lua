--[[
  Releases the locks this holder still owns; a lock taken over by another holder stays.

  Input:
    KEYS[1..n]  the locks
    ARGV[1]     the holder's token

  Output:
    1
]]
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
