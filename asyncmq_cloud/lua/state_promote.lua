-- promote: delayed -> waiting for many jobs of one queue, each conditional on
-- still being delayed (a cancelled/removed/already promoted job is skipped).
-- PROMOTABLE is generated from asyncmq_cloud/core/states.py.
-- ARGV: prefix, queue, now, ids...   Returns the ids that moved.
local queue, now = ARGV[2], ARGV[3]
local moved = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = job_key(queue, id)
  local f = redis.call('HMGET', key, 'state', 'seq')
  local state = f[1]
  if PROMOTABLE[state] then
    redis.call('HDEL', key, 'owner', 'heartbeat', 'run_at')
    redis.call('HSET', key, 'state', 'waiting', 'updated_at', now)
    index_state(queue, id, state, 'waiting', f[2])
    moved[#moved + 1] = id
  end
end
return moved
