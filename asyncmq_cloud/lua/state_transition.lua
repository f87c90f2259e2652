-- transition: conditional state change; clears owner/heartbeat, sets run_at, may replace payload;
-- marks the job unsent when `unsent` = '1' and it becomes 'waiting' (index_state clears the mark).
-- ARGV: prefix, queue, id, to_state, now, run_at ('' = none), has_payload, payload,
--       has_owner, owner, unsent, has_states, expected states...
local queue, id, to_state, now, run_at = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = job_key(queue, id)
local job = read_job(key)
local state, owner = job.state, job.owner
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
local gone = {}
if owner then
  gone[#gone + 1] = 'owner'
end
if job.heartbeat then
  gone[#gone + 1] = 'heartbeat'
end
if job.run_at and run_at == '' then
  gone[#gone + 1] = 'run_at'
end
if #gone > 0 then
  redis.call('HDEL', key, unpack(gone))
end
local fields = { 'state', to_state, 'updated_at', now }
if run_at ~= '' then
  fields[#fields + 1], fields[#fields + 2] = 'run_at', run_at
end
if ARGV[7] == '1' then
  fields[#fields + 1], fields[#fields + 2] = 'payload', ARGV[8]
end
redis.call('HSET', key, unpack(fields))
index_state(queue, id, state, to_state, job.seq, now)
if ARGV[11] == '1' and to_state == 'waiting' then
  redis.call('ZADD', queue_key(queue, 'unsent'), now, id)
end
job.state, job.updated_at, job.owner, job.heartbeat = to_state, now, false, false
job.run_at = run_at ~= '' and run_at or false
if ARGV[7] == '1' then
  job.payload = ARGV[8]
end
local out = job_pairs(job)
-- Lets the lifecycle skip resolve_dependency for a job nobody waits for.
out[#out + 1] = 'has_children'
out[#out + 1] = tostring(redis.call('EXISTS', queue_key(queue, 'children:' .. id)))
return out
