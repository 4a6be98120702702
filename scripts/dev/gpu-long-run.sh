#!/usr/bin/env bash
# A measurement longer than one device call (10 minutes): `start` launches
# `gpu-ingest-measure.sh` in its own process session, which outlives the call while the machine
# stays held, then waits; `wait` (the next call, issued at once) waits for it to end. Both return
# before DEADLINE seconds (default 560) with what is there so far copied into OUT.
#
#   scripts/dev/gpu-long-run.sh start BLT OUT   (environment as for gpu-ingest-measure.sh)
#   scripts/dev/gpu-long-run.sh wait OUT
#
# The run writes into /tmp/blt-long; its console output is /tmp/blt-long/console.log, and
# /tmp/blt-long/done marks its end. Run from the repository root.
set -u
mode=${1:?usage: gpu-long-run.sh start BLT OUT | wait OUT}
deadline=$((SECONDS + ${DEADLINE:-560}))
dir=/tmp/blt-long
case $mode in
  start)
    blt=${2:?BLT}; out=${3:?OUT}
    rm -rf "$dir"; mkdir -p "$dir" "$out"
    setsid bash -c "scripts/dev/gpu-ingest-measure.sh '$blt' '$dir/measure' > '$dir/console.log' 2>&1; touch '$dir/done'" \
      < /dev/null > /dev/null 2>&1 &
    ;;
  wait)
    out=${2:?OUT}; mkdir -p "$out" ;;
  *) echo "usage: gpu-long-run.sh start BLT OUT | wait OUT"; exit 2 ;;
esac
while [ ! -f "$dir/done" ] && [ $SECONDS -lt $deadline ]; do
  sleep 10
  # progress: the estimator's last "positions filed" line of the run in flight
  last=$(ls -t "$dir"/measure/ingest-*.log 2>/dev/null | head -n 1)
  [ -n "$last" ] && [ $((SECONDS % 60)) -lt 10 ] && echo "[$SECONDS s] $(basename "$last"): $(grep 'positions filed' "$last" | tail -n 1 | grep -o 'filed=[0-9]* total=[0-9]*')"
done
cat "$dir/console.log"
if [ -f "$dir/done" ]; then
  echo "finished"
  cp -r "$dir/measure/." "$out/" 2>/dev/null
else
  echo "still running"
  # what there is so far (the archive is made at the end)
  for f in "$dir"/measure/smi-*.csv "$dir"/measure/ingest-*.log; do
    [ -f "$f" ] && gzip -c "$f" > "$out/$(basename "$f").gz"
  done
fi
