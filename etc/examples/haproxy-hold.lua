-- asg's scale to zero (docs/scale-to-zero.md): an HAProxy action that
-- holds a request while its backend has no usable server, so that the
-- first request to a group at zero waits for the instance it wakes
-- instead of getting a 503 at once. HAProxy queues a request only when
-- every server is full, never when there is none; this fills that gap.
--
-- In HAProxy's config (HAProxy 2.4 or later, built with Lua, as Debian's):
--   global
--       lua-load /etc/haproxy/asg-hold.lua
--   backend web
--       http-request lua.asg_wait_for_server 60
-- The argument is the longest wait in seconds; past it the request goes
-- on and HAProxy answers 503 as it would have. While a request waits it
-- is a session of the backend (its BACKEND row's scur and stot), which is
-- the demand asg reads to wake the group.

core.register_action("asg_wait_for_server", { "http-req" }, function(txn, wait_s)
    -- Tenths of a second left; a bad or missing argument waits no time.
    local left = math.floor((tonumber(wait_s) or 0) * 10)
    while left > 0 and (tonumber(txn.f:nbsrv()) or 0) == 0 do
        core.msleep(100) -- yields: HAProxy serves everything else meanwhile
        left = left - 1
    end
end, 1)
