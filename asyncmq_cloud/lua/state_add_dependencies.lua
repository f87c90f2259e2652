-- add_dependencies: child waits for more parents (pending set and reverse edges together).
-- ARGV: prefix, queue, child, parents...
add_dependencies(ARGV[2], ARGV[3], ARGV, 4, #ARGV)
return 1
