-- heartbeat: refresh a claimed job's heartbeat (only the owner's, when a token is given).
-- CLAIMED ('active') is generated from asyncmq_cloud/core/states.py.
-- ARGV: prefix, queue, id, now, has_token, token
local queue, id, now = ARGV[2], ARGV[3], ARGV[4]
local key = job_key(queue, id)
local f = redis.call('HMGET', key, 'state', 'owner')
if f[1] ~= CLAIMED or (ARGV[5] == '1' and f[2] ~= ARGV[6]) then
  return 0
end
redis.call('HSET', key, 'heartbeat', now)
redis.call('ZADD', active_key, now, active_member(queue, id))
return 1
