#!/usr/bin/env bash
# `make test`: every test stage of lua-ws, in order, stopping at the first that fails.
#   deps     Debian packages and Node peers (scripts/deps.sh)
#   build    ws.codec and ws.core into lua/ws, warning-free (-Werror)
#   specs    the whole busted suite on Lua 5.4
#   matrix   the codec specs on Lua 5.1, 5.3 and LuaJIT 2.1, each with its own build of ws.codec;
#            then the specs of ws.core and `require "ws"` on LuaJIT 2.1 (`make luajit`'s build)
#   asan     the whole suite again on an AddressSanitizer + UndefinedBehaviorSanitizer build
#   fuzz     every libFuzzer driver for FUZZ_SECONDS (default 60)
#   rock     `luarocks make` of the rockspec into a temporary tree, then require from it
# The last line printed is "N passed, N failed, N skipped": the specs of the Lua 5.4 run, plus one
# failure for a stage that failed outside those specs (or kept them from running).
# STAGES="specs asan" (for example) runs only the named stages; SPEC_TIMEOUT bounds each busted run.
# Stages are called by name (stage_$name), which shellcheck cannot follow:
# shellcheck disable=SC2317
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
export LC_ALL=C.UTF-8
ALL_STAGES="deps build specs matrix asan fuzz rock"
STAGES=${STAGES:-$ALL_STAGES}
JOBS=$(nproc 2>/dev/null || echo 2)
# Upper bound of one busted run, in seconds.
SPEC_TIMEOUT=${SPEC_TIMEOUT:-900}
LOGDIR=build/test
mkdir -p "$LOGDIR"

# Busted's own runner, started with the interpreter under test (it is a plain Lua script).
BUSTED=/usr/bin/busted
# Specs of the sans-I/O codec, which must pass on every supported Lua.
CODEC_SPECS=(spec/codec_*_spec.lua spec/utf8_spec.lua)
# ...and the regression specs that load ws.codec and nothing of the runtime (ws, ws.core, servers).
mapfile -t CODEC_REGRESS < <(grep -L -e 'require "ws"' -e 'require "ws.core"' -e 'require "support' \
  spec/regress/*_spec.lua 2>/dev/null | xargs -r grep -l 'require "ws.codec"')
CODEC_SPECS+=("${CODEC_REGRESS[@]}")
# Specs left out of the LuaJIT run of the runtime: the codec's (run on every Lua above) and nginx's
# (ws.resty runs on nginx's LuaJIT in the 5.4 run, whose LuaJIT matrix_luajit_spec checks).
JIT_SKIP=(spec/openresty_spec.lua spec/matrix_luajit_spec.lua)

passed=0 failed=0 skipped=0 spec_counted=0 failed_stage=""
timings=()

now() { date +%s.%N; }

# Runs busted with interpreter $1 and cpath $2 on the remaining arguments (spec files, or none for
# all of spec/), logging to $LOGDIR/busted-<tag>.log; sets b_passed/b_failed/b_skipped. The run is
# bounded by SPEC_TIMEOUT seconds (KILL follows TERM, which a server under test may catch), and a
# run stopped that way names the test it was in.
run_busted() {
  local lua=$1 cpath=$2 tag=$3
  shift 3
  local log=$LOGDIR/busted-$tag.log progress=$LOGDIR/busted-$tag.progress
  rm -f "$progress"
  WS_TEST_LUA=$lua WS_TEST_CPATH=$cpath WS_TEST_PROGRESS=$ROOT/$progress \
    timeout -k 10 "$SPEC_TIMEOUT" "$lua" "$BUSTED" --output="$ROOT/spec/support/progress_output.lua" \
    --cpath="$cpath" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
    grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
  if [ -z "$line" ]; then
    echo
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "busted ($tag) stopped after its limit of ${SPEC_TIMEOUT}s, in: $(cat "$progress" 2>/dev/null)"
    else
      echo "busted ($tag) ended without its summary (exit $rc), in: $(cat "$progress" 2>/dev/null)"
    fi
    b_passed=0 b_failed=1 b_skipped=0
    return 1
  fi
  read -r b_passed _ _ f _ _ e _ _ b_skipped _ <<<"$line"
  b_failed=$((f + e))
  [ "$rc" -eq 0 ] && [ "$b_failed" -eq 0 ]
}

stage_deps() {
  bash scripts/deps.sh
}

stage_build() {
  # An object directory of its own, only ever compiled with -Werror, so every object was checked;
  # the modules land in lua/ws, where the specs and examples load them.
  make --no-print-directory -j"$JOBS" all BUILD=build/werror/lua5.4 EXTRA_CFLAGS=-Werror
}

stage_specs() {
  local ok=0
  run_busted lua5.4 "$ROOT/lua/?.so" lua5.4 || ok=1
  passed=$b_passed failed=$b_failed skipped=$b_skipped spec_counted=1
  return "$ok"
}

stage_matrix() {
  local f lua v ok=0 rc p fl sk
  make --no-print-directory -j"$JOBS" matrix-5.1 matrix-5.3 matrix-luajit || return 1
  make --no-print-directory -j"$JOBS" luajit EXTRA_CFLAGS=-Werror || return 1
  # The three runs are independent (no sockets): run them side by side, print them one after another.
  for v in 5.1 5.3 luajit; do
    lua=lua$v
    [ "$v" = luajit ] && lua=luajit
    (
      echo "---- codec specs on $("$lua" -v 2>&1 | head -n 1)"
      run_busted "$lua" "$ROOT/build/matrix/$v/?.so" "$v" "${CODEC_SPECS[@]}"
      echo "$? $b_passed $b_failed $b_skipped" >"$LOGDIR/matrix-$v.result"
    ) >"$LOGDIR/matrix-$v.out" 2>&1 &
  done
  wait
  for v in 5.1 5.3 luajit; do
    cat "$LOGDIR/matrix-$v.out"
    read -r rc p fl sk <"$LOGDIR/matrix-$v.result" || { rc=1 p=0 fl=1 sk=0; }
    if [ "$rc" -eq 0 ]; then
      echo "---- $v: $p passed, $fl failed, $sk skipped"
    else
      echo "---- $v: FAILED: $p passed, $fl failed, $sk skipped"
      ok=1
    fi
  done
  # The runtime on LuaJIT, after the codec runs: its specs use sockets and timing, kept off a busy CPU.
  local jit_files=() skip
  for f in spec/*_spec.lua spec/regress/*_spec.lua; do
    for skip in "${CODEC_SPECS[@]}" "${JIT_SKIP[@]}"; do [ "$f" = "$skip" ] && continue 2; done
    jit_files+=("$f")
  done
  echo "---- ws.core specs on $(luajit -v 2>&1 | head -n 1)"
  if run_busted luajit "$ROOT/build/luajit/?.so" luajit-core "${jit_files[@]}"; then
    echo "---- luajit (ws.core): $b_passed passed, $b_failed failed, $b_skipped skipped"
  else
    echo "---- luajit (ws.core): FAILED: $b_passed passed, $b_failed failed, $b_skipped skipped"
    ok=1
  fi
  return "$ok"
}

stage_asan() {
  make --no-print-directory -j"$JOBS" asan || return 1
  # Leak checking is off: the interpreter and busted keep their state until exit by design.
  # WS_TEST_SANITIZE lets a spec that measures memory know the allocator is ASan's.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  WS_TEST_SANITIZE=address,undefined \
    run_busted "$ROOT/build/asan/lua5.4" "$ROOT/build/asan/?.so" asan
  local rc=$?
  echo "---- asan: $b_passed passed, $b_failed failed, $b_skipped skipped"
  return "$rc"
}

stage_fuzz() {
  make --no-print-directory -j"$JOBS" fuzz-build || return 1
  bash scripts/fuzz.sh
}

stage_rock() {
  local tree
  tree=$(mktemp -d /tmp/lua-ws-rock.XXXXXX)
  rock_check "$tree"
  local rc=$?
  rm -rf "$tree"
  return "$rc"
}

rock_check() {
  local tree=$1
  luarocks --lua-version=5.4 make --tree "$tree" rockspecs/lua-ws-scm-1.rockspec || return 1
  # From another directory and with only the tree on the paths, so nothing comes from the checkout.
  (cd /tmp && LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
    LUA_CPATH="$tree/lib/lua/5.4/?.so;;" lua5.4 -e "
      require 'ws.codec'; require 'ws'
      for _, m in ipairs({ 'ws.codec', 'ws', 'ws.core' }) do
        local p = assert(package.searchpath(m, package.path) or package.searchpath(m, package.cpath), m .. ' not found')
        print(m, p)
        assert(p:find('$tree', 1, true) == 1, m .. ' not from the tree')
      end")
}

stage_title() {
  case $1 in
    deps) echo "dependencies (Debian packages, Node peers)" ;;
    build) echo "build ws.codec and ws.core, warning-free (-Werror)" ;;
    specs) echo "busted spec suite on Lua 5.4" ;;
    matrix) echo "codec specs on Lua 5.1, 5.3 and LuaJIT 2.1; ws.core specs on LuaJIT 2.1" ;;
    asan) echo "whole suite on an ASan + UBSan build" ;;
    fuzz) echo "libFuzzer drivers, ${FUZZ_SECONDS:-60}s each" ;;
    rock) echo "luarocks make into a temporary tree" ;;
  esac
}

summary() {
  echo
  echo "==== timings"
  local t
  for t in "${timings[@]}"; do echo "  $t"; done
  if [ -n "$failed_stage" ]; then
    echo "FAILED at stage: $failed_stage"
    # A failure outside the counted specs still shows in the count.
    if [ "$failed_stage" != specs ] || [ "$spec_counted" -eq 0 ]; then failed=$((failed + 1)); fi
  fi
  echo "$passed passed, $failed failed, $skipped skipped"
}
trap summary EXIT

n=0 total=$(wc -w <<<"$STAGES")
for stage in $STAGES; do
  n=$((n + 1))
  case " $ALL_STAGES " in *" $stage "*) ;; *) echo "unknown stage: $stage"; failed_stage=$stage; exit 2 ;; esac
  echo
  echo "==== [$n/$total] $stage: $(stage_title "$stage")"
  start=$(now)
  "stage_$stage"
  rc=$?
  secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  timings+=("$(printf '%-7s %7ss  %s' "$stage" "$secs" "$([ $rc -eq 0 ] && echo ok || echo FAILED)")")
  if [ "$rc" -ne 0 ]; then
    echo "==== $stage FAILED (exit $rc) after ${secs}s"
    failed_stage=$stage
    exit 1
  fi
  echo "==== $stage ok (${secs}s)"
done
exit 0
