-- create: write (insert or overwrite) many job records and their dependency edges at once,
-- so a whole flow appears atomically. An overwritten job keeps its creation order.
-- With `unsent` = '1', each record written 'waiting' is marked unsent (zset scored by now).
-- ARGV: prefix, now, unsent, n_records,
--       n_records x (queue, id, state, payload, run_at|'', heartbeat|'', has_owner, owner),
--       n_deps, n_deps x (queue, child, n_parents, parents...)
local now, unsent = ARGV[2], ARGV[3]
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local queue, id, state, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local run_at, heartbeat, has_owner, owner = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local key = job_key(queue, id)
  local old = redis.call('HMGET', key, 'state', 'seq', 'created_at')
  local seq = old[2] or redis.call('INCR', prefix .. ':seq')
  if old[1] then
    redis.call('DEL', key)
  end
  local fields = { 'state', state, 'payload', payload, 'seq', seq, 'created_at', old[3] or now, 'updated_at', now }
  if run_at ~= '' then
    fields[#fields + 1], fields[#fields + 2] = 'run_at', run_at
  end
  if heartbeat ~= '' then
    fields[#fields + 1], fields[#fields + 2] = 'heartbeat', heartbeat
  end
  if has_owner == '1' then
    fields[#fields + 1], fields[#fields + 2] = 'owner', owner
  end
  redis.call('HSET', key, unpack(fields))
  index_state(queue, id, old[1], state, seq, heartbeat ~= '' and heartbeat or now)
  if unsent == '1' and state == 'waiting' then
    redis.call('ZADD', queue_key(queue, 'unsent'), now, id)
  end
  redis.call('SADD', prefix .. ':queues', queue)
end
local n_deps = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_deps do
  local queue, child, n_parents = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  add_dependencies(queue, child, ARGV, i + 3, i + 2 + n_parents)
  i = i + 3 + n_parents
end
return 1
