-- delete: remove a job, its index entries and its dependency edges; return what was removed.
-- The pending sets of the job's children are left alone (they still wait for it).
-- ARGV: prefix, queue, id, expected state ('' = any: with one, a job in another state is left alone)
local queue, id, expect = ARGV[2], ARGV[3], ARGV[4]
local key = job_key(queue, id)
if expect and expect ~= '' and redis.call('HGET', key, 'state') ~= expect then
  return {}
end
local fields = redis.call('HGETALL', key)
if #fields > 0 then
  local state = redis.call('HGET', key, 'state')
  if state then
    redis.call('ZREM', queue_key(queue, 'state:' .. state), id)
    mirror_waiting(queue, state, false)
  end
  redis.call('ZREM', active_key, active_member(queue, id))
  redis.call('ZREM', queue_key(queue, 'unsent'), id)
  redis.call('DEL', key)
end
local pending_key = queue_key(queue, 'pending:' .. id)
for _, parent in ipairs(redis.call('SMEMBERS', pending_key)) do
  redis.call('SREM', queue_key(queue, 'children:' .. parent), id)
end
redis.call('DEL', pending_key, queue_key(queue, 'children:' .. id))
return fields
