#!/usr/bin/env bash
# Measures `blt ingest` on a GPU host: GPU memory and utilisation (nvidia-smi every 100 ms) while
# it ingests one large text document and a folder of small ones, with random weights of the
# released model's shape (made here by random_full_size_checkpoint.py; needs python3 + torch).
#
#   scripts/dev/gpu-ingest-measure.sh BLT OUT [extra ingest args...]
#
# BLT: a blt binary built with `--features cuda`; OUT: a folder for the logs. Environment:
# BIG_MB (24), SMALL_N (3000), INGEST_TIMEOUT seconds per run (150), MODEL_DIR (/tmp/blt-full).
# Run from the repository root (the inputs are made from the built-in model's held-out text).
set -u
blt=${1:?usage: gpu-ingest-measure.sh BLT OUT [ingest args...]}
out=${2:?usage: gpu-ingest-measure.sh BLT OUT [ingest args...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
model=${MODEL_DIR:-/tmp/blt-full}
mkdir -p "$out" /tmp/blt-in/small
[ -f "$model/model.safetensors" ] || python3 "$here/random_full_size_checkpoint.py" "$model"
BIG_MB=${BIG_MB:-24} SMALL_N=${SMALL_N:-3000} python3 - <<'PY'
import os
text = open("crates/blt-default-model/heldout-sample.txt", "rb").read()
big = int(os.environ["BIG_MB"]) << 20
with open("/tmp/blt-in/big.txt", "wb") as f:
    n = 0
    while n < big:
        f.write(text); n += len(text)
for i in range(int(os.environ["SMALL_N"])):
    a = (i * 7919) % (len(text) - 8192)
    open("/tmp/blt-in/small/%05d.txt" % i, "wb").write(text[a:a + 2048 + (i * 131) % 6144])
PY
for case in big small; do
  if [ $case = big ]; then src="--file /tmp/blt-in/big.txt"; else src="--input /tmp/blt-in/small"; fi
  rm -rf /tmp/blt-out-$case
  nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 100 > "$out/smi-$case.csv" &
  smi=$!
  timeout "${INGEST_TIMEOUT:-150}" "$blt" ingest --model "$model" --device cuda --dtype bf16 $src \
    --output /tmp/blt-out-$case "$@" > "$out/ingest-$case.log" 2>&1
  echo "$case: exit $? (124: stopped at the time limit); output $(du -sh /tmp/blt-out-$case | cut -f1)"
  kill $smi
  [ -f /tmp/blt-out-$case/run.json ] && python3 -c "
import json; s = json.load(open('/tmp/blt-out-$case/run.json'))['stats']
print('  stats', {k: s[k] for k in ('documents', 'written', 'failed', 'bytes', 'seconds', 'model_wait_seconds')})"
  python3 -c "
rows = [l.split(',') for l in open('$out/smi-$case.csv') if l.strip()]
m = [float(r[0]) for r in rows]; u = [float(r[1]) for r in rows]; q = max(1, len(m) // 4)
print('  GPU memory peak %.0f MiB (first quarter %.0f, last quarter %.0f); busy in %.1f%% of %d samples, mean utilisation %.1f%%'
      % (max(m), max(m[:q]), max(m[-q:]), 100 * sum(x > 0 for x in u) / len(u), len(u), sum(u) / len(u)))"
done
