-- count_jobs: flat [state, count, ...] of the non-empty states of a queue.
-- ARGV: prefix, queue
local queue = ARGV[2]
local out = {}
local function add(state)
  local n = redis.call('ZCARD', queue_key(queue, 'state:' .. state))
  if n > 0 then
    table.insert(out, state)
    table.insert(out, n)
  end
end
-- The known states are not recorded in the `states` set (index_state); other states are.
for state in pairs(KNOWN_STATES) do
  add(state)
end
for _, state in ipairs(redis.call('SMEMBERS', queue_key(queue, 'states'))) do
  if not KNOWN_STATES[state] then
    add(state)
  end
end
return out
