-- release_lock: compare-and-delete, so a token can only release its own lock.
-- ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
