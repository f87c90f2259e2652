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
-- Every state change also clears the job's unsent mark (set only by create).
local function index_state(queue, id, old, new)
  mirror_waiting(queue, old, new)
  redis.call('ZREM', queue_key(queue, 'unsent'), id)
  if old and old ~= new then
    redis.call('ZREM', queue_key(queue, 'state:' .. old), id)
  end
  local seq = redis.call('HGET', job_key(queue, id), 'seq')
  redis.call('ZADD', queue_key(queue, 'state:' .. new), seq, id)
  redis.call('SADD', queue_key(queue, 'states'), new)
  if new == 'active' then
    touch_active(queue, id)
  else
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
