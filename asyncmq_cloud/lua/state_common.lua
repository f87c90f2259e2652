-- Helpers shared by the RedisStateStore job scripts (asyncmq_cloud/stores/redis.py
-- prepends this file to each of them). ARGV[1] is always the key prefix; key names
-- are derived here from it and from the queue name, which is why the store needs a
-- single Redis (not Cluster). See the module docstring for the key layout.
local prefix = ARGV[1]
local active_key = prefix .. ':active'

local function queue_key(queue, suffix)
  return prefix .. ':q:' .. queue .. ':' .. suffix
end

local function job_key(queue, id)
  return queue_key(queue, 'job:' .. id)
end

local function active_member(queue, id)
  return queue .. ':' .. id
end

-- Every field a job hash holds (the key layout in stores/redis.py).
local JOB_FIELDS = { 'state', 'payload', 'seq', 'created_at', 'updated_at', 'run_at', 'owner', 'heartbeat' }

-- A job's fields in one read, by name (false: not set).
local function read_job(key)
  local values = redis.call('HMGET', key, unpack(JOB_FIELDS))
  local job = {}
  for i, name in ipairs(JOB_FIELDS) do
    job[name] = values[i]
  end
  return job
end

-- A job table as HGETALL returns the hash: a script that read every field and knows what it
-- changed answers without reading the job back.
local function job_pairs(job)
  local out = {}
  for _, name in ipairs(JOB_FIELDS) do
    if job[name] then
      out[#out + 1] = name
      out[#out + 1] = job[name]
    end
  end
  return out
end

-- An active job is stalled when its heartbeat (or, without one, its last write)
-- is old: keep its score in the global active index equal to that time.
local function touch_active(queue, id)
  local f = redis.call('HMGET', job_key(queue, id), 'state', 'heartbeat', 'updated_at')
  if f[1] == 'active' then
    redis.call('ZADD', active_key, f[2] or f[3], active_member(queue, id))
  end
end

-- The number of waiting jobs of a queue, mirrored as the length of a list of
-- placeholders: KEDA's redis scaler reads LLEN and cannot count a sorted set.
-- O(1) per state change; LLEN(waiting-depth) == ZCARD(state:waiting) at all times.
local function mirror_waiting(queue, old, new)
  if old == new then
    return
  end
  if old == 'waiting' then
    redis.call('RPOP', queue_key(queue, 'waiting-depth'))
  end
  if new == 'waiting' then
    redis.call('LPUSH', queue_key(queue, 'waiting-depth'), '1')
  end
end

-- Move `id` from the index of state `old` (false for a new job) to that of `new`.
-- `seq` is the job's creation order (its score in the state indexes). `lease`, when
-- `new` is active: its score in the active index (nil: read from the job).
-- Only what the change needs is written (issue 19, decision 70):
-- * a job is marked unsent only while waiting (create and transition mark it as they
--   make it waiting; every state change clears it), so only a change from waiting clears;
-- * a job is in the active index only while active (heartbeat refreshes it only then);
-- * the states of KNOWN_STATES are not recorded in the `states` set: count reads them all.
local function index_state(queue, id, old, new, seq, lease)
  mirror_waiting(queue, old, new)
  if old == 'waiting' then
    redis.call('ZREM', queue_key(queue, 'unsent'), id)
  end
  if old and old ~= new then
    redis.call('ZREM', queue_key(queue, 'state:' .. old), id)
  end
  redis.call('ZADD', queue_key(queue, 'state:' .. new), seq, id)
  if not KNOWN_STATES[new] then
    redis.call('SADD', queue_key(queue, 'states'), new)
  end
  if new == 'active' then
    if lease then
      redis.call('ZADD', active_key, lease, active_member(queue, id))
    else
      touch_active(queue, id)
    end
  elseif old == 'active' then
    redis.call('ZREM', active_key, active_member(queue, id))
  end
end

-- Record that `child` waits for parents[first..last].
local function add_dependencies(queue, child, parents, first, last)
  for i = first, last do
    redis.call('SADD', queue_key(queue, 'pending:' .. child), parents[i])
    redis.call('SADD', queue_key(queue, 'children:' .. parents[i]), child)
  end
end
