-- Atomically take up to ARGV[2] ids whose run_at (score) <= ARGV[1] from the
-- delay sorted set KEYS[1] and remove them: with any number of concurrent
-- scanners each id is returned to exactly one caller.
-- Returns a flat list: id1, run_at1, id2, run_at2, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then
  return due
end
local ids = {}
for i = 1, #due, 2 do
  ids[#ids + 1] = due[i]
end
-- ZREM takes many members; unpack in slices to stay below Lua's stack limit.
for i = 1, #ids, 1000 do
  redis.call('ZREM', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
end
return due
