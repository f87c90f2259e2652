-- acquire_lock: take KEYS[1] for ARGV[2] ms unless another token holds it; the holder
-- itself may re-acquire (which extends the expiry).
-- ARGV: token, ttl_ms
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
