--[[
  Adds a group of jobs' rollup buckets, each job once: a job whose lane's guard is at or above its sequence was
  applied before (the guard's rule, src/exactly-once/guard.ts, in Redis: checked and raised in the same script). The jobs not applied yet are merged per bucket first, so each bucket is read and written once; a
  set is trimmed and its expiry pushed back only when a bucket is added to it, the only time it grows.

  Per key and step a sorted set `<prefix>:series:<step>:{<key>}`: score the bucket's start (ms), member
  "start count sum min max". Per time slot a hash `<prefix>:series:guard:<slot>`: lane -> highest sequence applied.

  Input:
    ARGV[1]    the guards' time to live (s)
    ARGV[2]    now (ms)
    ARGV[3..5] retention of 1m, 1h, 1d (ms; -1 keeps them)
    ARGV[6]    the key prefix
    ARGV[7..]  one per job: `slot SEP lane SEP seq END`, then `step SEP start SEP key SEP count SEP sum SEP min SEP
               max END` per bucket (SEP is \1, END is \2)

  Output:
    how many jobs were applied (the others were before)
]]
local ttl, now, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[6]
local kept = { ['1m'] = tonumber(ARGV[3]), ['1h'] = tonumber(ARGV[4]), ['1d'] = tonumber(ARGV[5]) }
local width = { ['1m'] = 60000, ['1h'] = 3600000, ['1d'] = 86400000 }
local function num(x) return string.format('%.17g', x) end
local applied = 0
local merged, order = {}, {}
for j = 7, #ARGV do
  local job = ARGV[j]
  local head = string.find(job, '\2', 1, true)
  local slot, lane, seq = string.match(string.sub(job, 1, head - 1), '^([^\1]*)\1([^\1]*)\1([^\1]*)$')
  seq = tonumber(seq)
  local guard = prefix .. ':series:guard:' .. slot
  local done = tonumber(redis.call('HGET', guard, lane) or '0')
  if done < seq then
    applied = applied + 1
    redis.call('HSET', guard, lane, seq)
    redis.call('EXPIRE', guard, ttl)
    for step, start, key, count, sum, mn, mx in string.gmatch(string.sub(job, head + 1), '([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\2]*)\2') do
      local id = step .. '\1' .. start .. '\1' .. key
      local b = merged[id]
      count, sum, mn, mx = tonumber(count), tonumber(sum), tonumber(mn), tonumber(mx)
      if b then
        b[4], b[5], b[6], b[7] = b[4] + count, b[5] + sum, math.min(b[6], mn), math.max(b[7], mx)
      else
        merged[id] = { step, start, key, count, sum, mn, mx }
        order[#order + 1] = id
      end
    end
  end
end
for _, id in ipairs(order) do
  local step, start, key, count, sum, mn, mx = unpack(merged[id])
  local z = prefix .. ':series:' .. step .. ':{' .. key .. '}'
  local old = redis.call('ZRANGEBYSCORE', z, start, start)
  if old[1] then
    local c, s, a, b = string.match(old[1], '^%S+ (%S+) (%S+) (%S+) (%S+)$')
    count, sum = count + tonumber(c), sum + tonumber(s)
    mn, mx = math.min(mn, tonumber(a)), math.max(mx, tonumber(b))
    redis.call('ZREM', z, old[1])
  end
  redis.call('ZADD', z, start, start .. ' ' .. count .. ' ' .. num(sum) .. ' ' .. num(mn) .. ' ' .. num(mx))
  local keep = kept[step]
  if keep >= 0 and not old[1] then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (now - keep - width[step]))
    redis.call('PEXPIRE', z, keep + width[step] + 86400000)
  end
end
return applied
