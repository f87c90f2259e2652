-- summarize: for each state of ARGV[4..], { count, { {id, created_at}, ... } } with the
-- ARGV[3] most recently created jobs of that state, newest first (the state sets, and only the
-- created_at field of each of those jobs).
-- ARGV: prefix, queue, newest, state...
local queue = ARGV[2]
local newest = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local key = queue_key(queue, 'state:' .. ARGV[i])
  local latest = {}
  if newest > 0 then
    for _, id in ipairs(redis.call('ZREVRANGE', key, 0, newest - 1)) do
      table.insert(latest, { id, redis.call('HGET', job_key(queue, id), 'created_at') or '0' })
    end
  end
  table.insert(out, { redis.call('ZCARD', key), latest })
end
return out
