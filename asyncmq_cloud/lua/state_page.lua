-- list_page / list_jobs: the records of one (queue, state) at ranks ARGV[4] .. ARGV[4] + ARGV[5] - 1
-- in creation order (newest first when ARGV[6] == '1'), read in one consistent step; ARGV[5] == 0:
-- every record from ARGV[4] on.
-- ARGV: prefix, queue, state, offset, limit, newest_first
local queue = ARGV[2]
local key = queue_key(queue, 'state:' .. ARGV[3])
local first = tonumber(ARGV[4])
local last = -1
if tonumber(ARGV[5]) > 0 then
  last = first + tonumber(ARGV[5]) - 1
end
local ids
if ARGV[6] == '1' then
  ids = redis.call('ZREVRANGE', key, first, last)
else
  ids = redis.call('ZRANGE', key, first, last)
end
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', job_key(queue, id))
  if #fields > 0 then
    table.insert(out, { id, fields })
  end
end
return out
