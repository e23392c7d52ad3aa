#!/usr/bin/env bash
# Runs every built libFuzzer driver (fuzz/bin/fuzz_*) for FUZZ_SECONDS (default 60) each, FUZZ_JOBS
# (default: the number of cores) at a time, over a temporary copy of its seed corpus
# fuzz/corpus/<name without fuzz_>/ (or fuzz/corpus/<name>/); the committed corpus is never written. Extra libFuzzer flags for
# a driver go one per line in fuzz/<driver>.options (for example -dict=fuzz/http.dict or -max_len=20000).
# A crash keeps its input under fuzz/artifacts/<driver>/ (and prints it in base64) and fails the run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
shopt -s nullglob
drivers=(fuzz/bin/fuzz_*)
if [ "${#drivers[@]}" -eq 0 ]; then
  echo "fuzz: no drivers in fuzz/bin (make fuzz-build builds them)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/lua-ws-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Leaks in the protocol core are bugs too, so LeakSanitizer stays on here.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

seed_dir() {
  if [ -d "fuzz/corpus/${1#fuzz_}" ]; then echo "fuzz/corpus/${1#fuzz_}"; else echo "fuzz/corpus/$1"; fi
}

run_driver() {
  local bin=$1 name=${1##*/}
  local seed dir=$work/$name
  seed=$(seed_dir "$name")
  mkdir -p "$dir/corpus" "$dir/artifacts"
  [ -d "$seed" ] && cp -R "$seed/." "$dir/corpus/"
  local opts=()
  if [ -f "fuzz/$name.options" ]; then
    while read -r line; do
      case $line in ''|'#'*) ;; *) opts+=("$line") ;; esac
    done < "fuzz/$name.options"
  fi
  # The outer timeout only guards against a hung driver; libFuzzer stops itself at max_total_time.
  timeout -k 10 $((seconds + 120)) "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${opts[@]}" "$dir/corpus" \
    >"$dir/log" 2>&1
  echo $? >"$dir/rc"
}

echo "fuzz: ${#drivers[@]} drivers, ${seconds}s each, $jobs at a time"
running=0
for bin in "${drivers[@]}"; do
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  run_driver "$bin" &
  running=$((running + 1))
done
wait

failed=0
printf '%-24s %12s %10s %8s %8s  %s\n' driver executions exec/s seeds corpus result
for bin in "${drivers[@]}"; do
  name=${bin##*/}
  dir=$work/$name
  rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
  seed=$(seed_dir "$name")
  nseed=0; [ -d "$seed" ] && nseed=$(find "$seed" -type f | wc -l)
  ncorp=$(find "$dir/corpus" -type f | wc -l)
  result=ok
  if [ "$rc" -ne 0 ]; then
    result="FAILED (exit $rc)"
    failed=$((failed + 1))
  fi
  [ -d "$seed" ] || result="$result, no seed corpus (fuzz/corpus/${name#fuzz_}/)"
  printf '%-24s %12s %10s %8s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "$nseed" "$ncorp" "$result"
done

for bin in "${drivers[@]}"; do
  name=${bin##*/}
  dir=$work/$name
  [ "$(cat "$dir/rc" 2>/dev/null || echo 1)" -eq 0 ] && continue
  echo
  echo "---- $name: its report"
  # From the sanitizer's or libFuzzer's first word about the failure (or the last lines if none).
  first=$(grep -n -m1 -E 'ERROR: |runtime error|deadly signal|ALARM|Timeout|out-of-memory|check failed' "$dir/log" | cut -d: -f1)
  if [ -n "$first" ]; then tail -n +"$first" "$dir/log" | head -n 150; else tail -n 60 "$dir/log"; fi
  for a in "$dir"/artifacts/*; do
    mkdir -p "fuzz/artifacts/$name"
    cp "$a" "fuzz/artifacts/$name/"
    echo "---- $name: input kept at fuzz/artifacts/$name/${a##*/} (reproduce: $bin fuzz/artifacts/$name/${a##*/}); base64:"
    head -c 65536 "$a" | base64
  done
done
[ "$failed" -eq 0 ]
