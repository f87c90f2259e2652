-- update_payload: replace the payload of an existing job, keeping state and owner.
-- ARGV: prefix, queue, id, payload, now
local queue, id = ARGV[2], ARGV[3]
local key = job_key(queue, id)
if redis.call('EXISTS', key) == 0 then
  return 0
end
redis.call('HSET', key, 'payload', ARGV[4], 'updated_at', ARGV[5])
touch_active(queue, id)
return 1
