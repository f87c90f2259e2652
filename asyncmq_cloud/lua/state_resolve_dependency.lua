-- resolve_dependency: a parent completed; drop it from each child's pending set and
-- return the children whose set became empty in this call (each exactly once overall).
-- ARGV: prefix, queue, parent
local queue, parent = ARGV[2], ARGV[3]
local children_key = queue_key(queue, 'children:' .. parent)
local children = redis.call('SMEMBERS', children_key)
redis.call('DEL', children_key)
local ready = {}
for _, child in ipairs(children) do
  local pending_key = queue_key(queue, 'pending:' .. child)
  if redis.call('SREM', pending_key, parent) == 1 and redis.call('SCARD', pending_key) == 0 then
    table.insert(ready, child)
  end
end
return ready
