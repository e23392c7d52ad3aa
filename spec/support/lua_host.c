/* A minimal stand-alone Lua interpreter for the sanitizer run of the spec suite.
 * Linking the ASan/UBSan runtimes into the executable lets the sanitized ws.codec / ws.core modules load
 * into it without LD_PRELOAD, so the programs the specs start (python3, node, chromium) stay untouched.
 * Usage: lua_host [-e chunk]... [script [args...]]   (the subset of lua(1) that busted and the specs use) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        fprintf(stderr, "lua_host: %s\n", lua_tostring(L, -1));
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

static int docall(lua_State *L, int nargs)
{
    int base = lua_gettop(L) - nargs;
    int status;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, 0, base);
    lua_remove(L, base);
    return status;
}

/* arg[0] is the script, arg[1..] its arguments, negative indices the interpreter and its options,
 * as lua(1) sets them; busted reads them to find its own command line. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    int i;
    lua_createtable(L, argc - script - 1, script + 1);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int i, script = argc, status, nargs;

    luaL_checkversion(L);
    luaL_openlibs(L);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-e") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        script = i;
        break;
    }
    create_arg_table(L, argv, argc, script < argc ? script : 0);
    for (i = 1; i < script; i++) {
        if (strcmp(argv[i], "-e") == 0) {
            i++;
            status = luaL_loadbuffer(L, argv[i], strlen(argv[i]), "=(command line)");
            if (status == LUA_OK)
                status = docall(L, 0);
            if (report(L, status) != LUA_OK)
                return 0;
        }
    }
    if (script < argc) {
        status = luaL_loadfile(L, strcmp(argv[script], "-") == 0 ? NULL : argv[script]);
        if (status == LUA_OK) {
            nargs = argc - script - 1;
            luaL_checkstack(L, nargs, "too many arguments to script");
            for (i = script + 1; i < argc; i++)
                lua_pushstring(L, argv[i]);
            status = docall(L, nargs);
        }
        if (report(L, status) != LUA_OK)
            return 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    int status, ok;
    if (L == NULL) {
        fprintf(stderr, "lua_host: cannot create state: not enough memory\n");
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    status = lua_pcall(L, 2, 1, 0);
    ok = lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    return (status == LUA_OK && ok) ? EXIT_SUCCESS : EXIT_FAILURE;
}
