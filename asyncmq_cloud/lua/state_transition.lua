-- transition: conditional state change; clears owner/heartbeat, sets run_at, may replace payload;
-- marks the job unsent when `unsent` = '1' and it becomes 'waiting' (index_state clears the mark).
-- ARGV: prefix, queue, id, to_state, now, run_at ('' = none), has_payload, payload,
--       has_owner, owner, unsent, has_states, expected states...
local queue, id, to_state, now, run_at = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = job_key(queue, id)
local f = redis.call('HMGET', key, 'state', 'owner')
local state, owner = f[1], f[2]
if not state then
  return false
end
if ARGV[12] == '1' then
  local expected = false
  for i = 13, #ARGV do
    if ARGV[i] == state then
      expected = true
      break
    end
  end
  if not expected then
    return false
  end
end
if ARGV[9] == '1' and owner ~= ARGV[10] then
  return false
end
redis.call('HDEL', key, 'owner', 'heartbeat', 'run_at')
redis.call('HSET', key, 'state', to_state, 'updated_at', now)
if run_at ~= '' then
  redis.call('HSET', key, 'run_at', run_at)
end
if ARGV[7] == '1' then
  redis.call('HSET', key, 'payload', ARGV[8])
end
index_state(queue, id, state, to_state)
if ARGV[11] == '1' and to_state == 'waiting' then
  redis.call('ZADD', queue_key(queue, 'unsent'), now, id)
end
local out = redis.call('HGETALL', key)
-- Lets the lifecycle skip resolve_dependency for a job nobody waits for.
out[#out + 1] = 'has_children'
out[#out + 1] = tostring(redis.call('EXISTS', queue_key(queue, 'children:' .. id)))
return out
