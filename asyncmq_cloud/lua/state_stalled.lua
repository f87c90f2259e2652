-- list_stalled: [queue, id, fields] of every active job whose heartbeat is before ARGV[2].
-- ARGV: prefix, older_than
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', active_key, '-inf', '(' .. ARGV[2])) do
  local sep = string.find(member, ':', 1, true)
  local queue, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  local fields = redis.call('HGETALL', job_key(queue, id))
  if #fields > 0 then
    table.insert(out, { queue, id, fields })
  end
end
return out
