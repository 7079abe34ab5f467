-- Runs an Argo CD health script the way Argo CD does: the resource in the global `obj`, the script's return value
-- its health. Prints the status and the message, one per line.
-- usage: lua health_harness.lua HEALTH_LUA OBJECT_LUA   (OBJECT_LUA: a chunk returning the resource as a table)
local script, object = arg[1], arg[2]
obj = dofile(object)
local hs = dofile(script)
io.write(tostring(hs.status), "\n", tostring(hs.message), "\n")
