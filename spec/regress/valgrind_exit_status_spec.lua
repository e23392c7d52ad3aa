-- Objects the modules keep for the whole process (the SHA-1 implementation fetched for accept
-- keys, the socket BIO method, interned TLS error texts) were never freed: once Lua closed its
-- state and unloaded the modules, valgrind counted them as definitely lost, so every
-- `valgrind --error-exitcode` run failed. They are freed when the last Lua state that uses a
-- module closes. valgrind cannot run a sanitized build: the ASan stage leaves this spec out.
local helper = require "helper"
local certs = require "support.certs"

local it_valgrind = os.getenv("WS_TEST_SANITIZE") and pending or it

describe("valgrind", function()
  it_valgrind("finds no definite leak in a run of servers, clients and TLS (exit status 0)", function()
    local C = certs.make()
    local ok, code, out, err = helper.run({
      "valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99",
      helper.lua, helper.root .. "/spec/support/valgrind_echo.lua", C.cert, C.key, C.ca,
    }, {
      timeout = 180,
      env = { LUA_PATH = helper.lpath .. ";;", LUA_CPATH = helper.cpath .. ";;",
              LUA_PATH_5_4 = helper.lpath .. ";;", LUA_CPATH_5_4 = helper.cpath .. ";;" },
    })
    assert(ok, "exit " .. tostring(code) .. "\n" .. tostring(out) .. tostring(err))
    assert.truthy(out:find("echo plain\necho secure\n", 1, true), out)
    assert.truthy(out:find("refused wss://127.0.0.1:%d+/: tls: certificate verify failed"), out)
    assert.truthy(out:find("refused tls: cannot load CA file", 1, true), out)
    assert.truthy(out:find("logged tls: handshake with 127%.0%.0%.1:%d+ failed: tlsv1 alert unknown ca"), out)
    assert.truthy(out:find("accept s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n", 1, true), out)
    assert.truthy(err:find("ERROR SUMMARY: 0 errors", 1, true), err)
  end)
end)
