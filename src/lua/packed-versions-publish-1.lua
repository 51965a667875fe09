--[[
  Publishes the versions of packed statistics shards a writer just wrote, each only if it is newer than the one
  published (a writer that lost its lock and publishes late never hides a newer write).

  Input:
    KEYS[1]   the hash of shard -> version
    ARGV[...] pairs of shard, version ("<counter>.<token>": the counter orders versions, the token makes each unique)

  Output:
    how many versions were published
]]
local function counter(version)
  return tonumber(string.match(version or '', '^(%d+)%.')) or -1
end
local published = 0
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if counter(ARGV[i + 1]) > counter(current) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    published = published + 1
  end
end
return published
