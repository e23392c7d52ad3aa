-- A broadcast operator kept its exceptions in a field called `except`, which hid the method of
-- that name: io:to(room):except(other) raised "attempt to call a table value".
local socketio = require "ws.socketio"

describe("socketio operator chains", function()
  it("allows except after to, and to after except", function()
    local io = socketio.new({ listen = false })
    assert.has_no.errors(function()
      io:to("a"):except("b"):emit("m", 1)
      io:except("b"):to("a"):except({ "c", "d" }):emit("m", 2)
      io:of("/admin"):to({ "a", "b" }):except("c"):emit("m", 3)
    end)
    local list = io:to("a"):except("b"):fetch_sockets()
    assert.are.same({}, list)
  end)
end)
