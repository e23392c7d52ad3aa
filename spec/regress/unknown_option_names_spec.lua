-- A misspelled option name was ignored without a word: ws.server({ max_mesage = 1e6 }) ran
-- with the default limit, ws.connect({ protocol = "chat" }) offered no subprotocol. Every
-- function that takes an options table now refuses a name it does not know, at the caller's
-- line, and names the option it probably meant.
local ws = require "ws"
local resty = require "ws.resty"

local raised_at = require "support.raised"
local raised = raised_at.at("unknown_option_names_spec")

local function handler() end

describe("unknown option names", function()
  it("are refused, with the option meant when one is close", function()
    local cases = {
      { function() local s = ws.server({ port = 0, max_mesage = 1e6 }, handler) return s end,
        "ws.server: unknown option 'max_mesage' (did you mean 'max_message'?)" },
      { function() local s = ws.server({ port = 0, colour = "red" }, handler) return s end,
        "ws.server: unknown option 'colour'" },
      { function() local s = ws.server({ port = 0, tls = { certificate = "a.crt" } }, handler) return s end,
        "ws.server: unknown option 'tls.certificate'" },
      { function() local s = ws.server({ port = 0, compression = { mode = "shared", levle = 3 } }, handler) return s end,
        "ws.server: unknown option 'compression.levle' (did you mean 'compression.level'?)" },
      { function() local c = ws.connect("ws://127.0.0.1:1/", { protocol = "chat" }) return c end,
        "ws.connect: unknown option 'protocol' (did you mean 'protocols'?)" },
      { function() local c = ws.connect("wss://127.0.0.1:1/", { tls = { verfy = false } }) return c end,
        "ws.connect: unknown option 'tls.verfy' (did you mean 'tls.verify'?)" },
      { function() local c = ws.connect("ws://127.0.0.1:1/", { reconnect = { atempts = 3 } }) return c end,
        "ws.connect: unknown option 'reconnect.atempts' (did you mean 'reconnect.attempts'?)" },
      { function() local c = ws.reconnecting("ws://127.0.0.1:1/", { on_opne = print }) return c end,
        "ws.reconnecting: unknown option 'on_opne' (did you mean 'on_open'?)" },
      { function() ws.run({ signal = false }) end,
        "ws.run: unknown option 'signal' (did you mean 'signals'?)" },
      { function() local c = resty.accept({ orgins = { "https://a.example" } }) return c end,
        "ws.resty.accept: unknown option 'orgins' (did you mean 'origins'?)" },
      { function() local c = resty.connect("ws://127.0.0.1:1/", { handshake_timout = 1 }) return c end,
        "ws.resty.connect: unknown option 'handshake_timout' (did you mean 'handshake_timeout'?)" },
      { function() local c = resty.wrap({}, { rol = "server" }) return c end,
        "ws.resty.wrap: unknown option 'rol' (did you mean 'role'?)" },
    }
    raised_at.cases(raised, cases)
  end)

  it("leave the options of ws.resty's accept and connect to wrap alone", function()
    -- accept hands its connection options to wrap, without its own (protocols, origins)
    local ok, err = pcall(resty.accept, { protocols = { "chat" }, max_message = 10 })
    assert.is_false(ok) -- no ngx here: it fails, but not on an option name
    assert.is_nil(tostring(err):find("unknown option", 1, true), err)
  end)
end)
