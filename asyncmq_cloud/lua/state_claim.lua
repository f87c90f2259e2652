-- claim: waiting (or delayed and due) -> active, owned by a token; returns the new record.
-- ARGV: prefix, queue, id, token, now
local queue, id, token, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = job_key(queue, id)
local f = redis.call('HMGET', key, 'state', 'run_at')
local state, run_at = f[1], f[2]
if state ~= 'waiting' then
  if state ~= 'delayed' or not run_at or tonumber(run_at) > tonumber(now) then
    return false
  end
end
redis.call('HSET', key, 'state', 'active', 'owner', token, 'heartbeat', now, 'updated_at', now)
redis.call('HDEL', key, 'run_at')
index_state(queue, id, state, 'active')
return redis.call('HGETALL', key)
