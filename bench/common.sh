# Shell pieces shared by bench/run.sh and bench/run_bus.sh (sourced from the repository root).
# The caller sets PORT, and NOTES, RAW and TMP for the report pieces.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The next free port after $PORT (at most 50 tried).
next_port() {
  PORT=$((PORT + 1))
  local tries=0
  while port_open "$PORT" && [ $tries -lt 50 ]; do PORT=$((PORT + 1)); tries=$((tries + 1)); done
}

# stop_pid PID [CHECKS]: TERM, up to CHECKS (default 60) checks 50 ms apart, then KILL, then wait.
stop_pid() {
  local pid=$1 checks=${2:-60}
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 "$checks"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

# report_notes HEADING: the report's notes (NOTES) and the load client's error summaries
# ($TMP/client.err) under a heading such as "## Notes".
report_notes() {
  echo "$1"
  echo
  if [ -s "$NOTES" ]; then cat "$NOTES"; else echo "- every server ran"; fi
  if [ -s "$TMP/client.err" ]; then
    echo
    echo "Client error summaries:"
    echo
    sed 's/^/    /' "$TMP/client.err" | sort | uniq | head -n 40
  fi
}

# report_raw HEADING: the load client's raw lines (RAW) in a code block under HEADING.
report_raw() {
  echo "$1"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
}
