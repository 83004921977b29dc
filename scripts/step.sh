# step NAME COMMAND...: run COMMAND with its output in $LOGS/NAME.log, print its wall time,
# and the log's end on failure. While it runs, the newest progress line of the recsys library
# ("recsys.model.train: ensemble member 3/5 ...") is printed under the step as it appears,
# so a 15-minute training is not 15 minutes of silence. Sourced by scripts/pipeline.sh.
STEP_POLL_S=${STEP_POLL_S:-5}

# The newest info/warning line of a recsys.* logger in a log: Airflow's console format
# ("<time> [info     ] message   [recsys.model.train] loc=...") or the CLI's
# ("<time> INFO recsys.model.train: message").
progress_line() {
  grep -E '(\[(info|warning) *\] .*\[recsys[.a-z_]*\])|( (INFO|WARNING) recsys[.a-z_]*: )' "$1" | tail -n 1 |
    sed -E -e 's/^.*\[(info|warning) *\] (.*[^ ]) +\[recsys[.a-z_]*\].*$/\2/' -e 's/^.* (INFO|WARNING) recsys[.a-z_]*: //' |
    cut -c1-110
}

step() {
  local name=$1; shift
  local log="$LOGS/$name.log" started=$SECONDS last="" line status
  printf '%-28s\n' "$name"
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep "$STEP_POLL_S"
    line=$(progress_line "$log") || true
    if [ -n "$line" ] && [ "$line" != "$last" ]; then
      printf '    %4d s  %s\n' "$((SECONDS - started))" "$line"
      last=$line
    fi
  done
  if wait "$pid"; then status=0; else status=$?; fi
  if [ "$status" = 0 ]; then
    printf '%-28s%s\n' "" "ok   $((SECONDS - started)) s"
  else
    echo "$name FAILED after $((SECONDS - started)) s; last lines of $log:"
    tail -n 40 "$log" | grep -v -i graphviz >&2
    exit 1
  fi
}
