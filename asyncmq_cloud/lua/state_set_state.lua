-- set_state: unconditional state change of an existing job (owner/heartbeat kept).
-- ARGV: prefix, queue, id, state, now
local queue, id, state, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = job_key(queue, id)
local f = redis.call('HMGET', key, 'state', 'seq')
local old = f[1]
if not old then
  return 0
end
redis.call('HSET', key, 'state', state, 'updated_at', now)
index_state(queue, id, old, state, f[2])
return 1
