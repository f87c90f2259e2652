-- count_jobs: flat [state, count, ...] of the non-empty states of a queue.
-- ARGV: prefix, queue
local queue = ARGV[2]
local out = {}
for _, state in ipairs(redis.call('SMEMBERS', queue_key(queue, 'states'))) do
  local n = redis.call('ZCARD', queue_key(queue, 'state:' .. state))
  if n > 0 then
    table.insert(out, state)
    table.insert(out, n)
  end
end
return out
