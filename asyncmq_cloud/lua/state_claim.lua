-- claim: states.claimable (asyncmq_cloud/core/states.py) -> active, owned by a token;
-- returns the new record. CLAIMABLE, CLAIMABLE_WHEN_DUE and CLAIMABLE_WHEN_STALE are
-- generated from states.py (stores/_redis_scripts.py). The lease of an active job is
-- its heartbeat, else (no heartbeat: made active by set_state) its last write.
-- ARGV: prefix, queue, id, token, now, stale_before ('' = never take over)
local queue, id, token, now, stale_before = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = job_key(queue, id)
local job = read_job(key)
local state, run_at = job.state, job.run_at
local claimable = false
if not state then
  claimable = false
elseif CLAIMABLE[state] then
  claimable = true
elseif CLAIMABLE_WHEN_DUE[state] then
  claimable = run_at and tonumber(run_at) <= tonumber(now)
elseif CLAIMABLE_WHEN_STALE[state] and stale_before and stale_before ~= '' then
  claimable = tonumber(job.heartbeat or job.updated_at) < tonumber(stale_before)
end
if not claimable then
  return false
end
redis.call('HSET', key, 'state', CLAIMED, 'owner', token, 'heartbeat', now, 'updated_at', now)
if run_at then
  redis.call('HDEL', key, 'run_at')
end
index_state(queue, id, state, CLAIMED, job.seq, now)
job.state, job.owner, job.heartbeat, job.updated_at, job.run_at = CLAIMED, token, now, now, false
return job_pairs(job)
