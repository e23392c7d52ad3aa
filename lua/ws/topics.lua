-- ws.topics: publish/subscribe on a server. The topics, the subscriber lists and the fan-out are
-- in C (csrc/runtime/ws_topic.c): a publish builds the frame once and queues that one buffer on
-- every subscriber, without waiting for any of them. This file checks the server options and
-- gives the server object its methods; the connection methods (conn:subscribe, conn:unsubscribe,
-- conn:topics, conn:publish) and conn.dropped come straight from ws.core.
--
-- Server options:
--   slow_subscriber = "drop" (default) | "close"
--     what a publish does with a subscriber whose queued bytes are over max_backlog:
--     "drop" skips the message for it (conn.dropped counts them), "close" closes it with 1008
--     (policy violation: it did not keep up; 1013 would tell it to come back and try again).
--     Control frames and conn:send are never dropped.
--   max_backlog = bytes (default: send_high_water)
--     a subscriber's queue limit for published messages. conn:send waits at send_high_water;
--     a publish never waits, so this is where a slow reader stops costing memory.
local core = require "ws.core"

local M = {}

local POLICIES = { drop = true, close = true }

-- Applies the options to a listening server; on a bad option the server is closed and the
-- error raised at the caller of ws.server.
function M.configure(l, opts)
  local policy, backlog = opts.slow_subscriber, opts.max_backlog
  local err
  if policy ~= nil and not POLICIES[policy] then
    err = 'ws.server: slow_subscriber must be "drop" or "close"'
  elseif backlog ~= nil and (type(backlog) ~= "number" or backlog ~= backlog or backlog < 0) then
    err = "ws.server: max_backlog must be a number of bytes"
  end
  if err then
    core.server_close(l)
    error(err, 3)
  end
  core.topics_configure(l, policy or "drop", backlog)
end

-- server:publish(topic, data [, kind]) -> how many subscribers it was queued for.
-- server:subscribers(topic) -> how many connections subscribe to topic.
function M.install(Server)
  Server.publish = core.server_publish
  Server.subscribers = core.server_subscribers
  Server.broadcast = core.server_broadcast -- server:broadcast(data [, kind]): every connection
end

return M
