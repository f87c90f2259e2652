-- list_jobs: the records of one (queue, state), oldest first, read in one consistent step.
-- ARGV: prefix, queue, state
local queue = ARGV[2]
local out = {}
for _, id in ipairs(redis.call('ZRANGE', queue_key(queue, 'state:' .. ARGV[3]), 0, -1)) do
  local fields = redis.call('HGETALL', job_key(queue, id))
  if #fields > 0 then
    table.insert(out, { id, fields })
  end
end
return out
