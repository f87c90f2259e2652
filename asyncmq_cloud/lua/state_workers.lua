-- list_workers: drop the entries that expired before ARGV[2] (now) and return the others.
-- ARGV: prefix, now
local hash_key, expiry_key = ARGV[1] .. ':workers', ARGV[1] .. ':workers:expiry'
for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiry_key, '-inf', '(' .. ARGV[2])) do
  redis.call('HDEL', hash_key, id)
  redis.call('ZREM', expiry_key, id)
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiry_key, ARGV[2], '+inf')) do
  local entry = redis.call('HGET', hash_key, id)
  if entry then
    table.insert(out, entry)
  end
end
return out
