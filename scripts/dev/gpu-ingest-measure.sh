#!/usr/bin/env bash
# Measures `blt ingest` on a GPU host: GPU memory and utilisation (nvidia-smi every 100 ms) and
# the run's own stage times (run.json) while it ingests
#   small — SMALL_N text documents of 2–8 KB (safetensors + sidecar per document, patch
#           embeddings: the default output; small-none: the same without embeddings),
#   big   — one BIG_MB text document (safetensors + sidecar, --embeddings none),
# with random weights of the released model's shape (made here by random_full_size_checkpoint.py;
# needs python3 + torch), their threshold calibrated on the held-out sample for a mean patch of
# 4.5 bytes (random weights under the default threshold make every byte a patch), and
#   huge  — one HUGE_MB document with the built-in model into Meta's Arrow entropy layout
#           (the 1 GB document of the GPU issue; HUGE_MB=0 skips it).
#
#   scripts/dev/gpu-ingest-measure.sh BLT OUT [extra ingest args...]
#
# BLT: a blt binary built with `--features cuda`; OUT: a folder for the logs. Environment:
# BIG_MB (24), SMALL_N (3000), HUGE_MB (1024), INGEST_TIMEOUT seconds per run (150),
# HUGE_TIMEOUT (420), HUGE_BATCH_TOKENS (65536), MODEL_DIR (/tmp/blt-full), CASES ("small big huge"; also small-none).
# Run from the repository root (the inputs are made from the built-in model's held-out text).
set -u
blt=${1:?usage: gpu-ingest-measure.sh BLT OUT [ingest args...]}
out=${2:?usage: gpu-ingest-measure.sh BLT OUT [ingest args...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
model=${MODEL_DIR:-/tmp/blt-full}
mkdir -p "$out" /tmp/blt-in/small /tmp/blt-in/sample
# the random full-size checkpoint and its calibrated threshold, made when a case first needs them
full_model() {
  [ -f "$model/model.safetensors" ] && return
  python3 "$here/random_full_size_checkpoint.py" "$model"
  cp crates/blt-default-model/heldout-sample.txt /tmp/blt-in/sample/
  timeout 120 "$blt" calibrate --model "$model" --device cuda --dtype bf16 \
    --corpus /tmp/blt-in/sample --target-mean-patch 4.5 > "$out/calibrate.log" 2>&1
  echo "calibrate: exit $?; $(tail -n 1 "$out/calibrate.log")"
}
BIG_MB=${BIG_MB:-24} SMALL_N=${SMALL_N:-3000} HUGE_MB=${HUGE_MB:-1024} python3 - <<'PY'
import os
text = open("crates/blt-default-model/heldout-sample.txt", "rb").read()
def fill(path, size):
    if os.path.exists(path) and os.path.getsize(path) >= size:
        return
    with open(path, "wb") as f:
        n = 0
        while n < size:
            f.write(text); n += len(text)
fill("/tmp/blt-in/big.txt", int(os.environ["BIG_MB"]) << 20)
if int(os.environ["HUGE_MB"]) > 0:
    fill("/tmp/blt-in/huge.txt", int(os.environ["HUGE_MB"]) << 20)
for i in range(int(os.environ["SMALL_N"])):
    a = (i * 7919) % (len(text) - 8192)
    open("/tmp/blt-in/small/%05d.txt" % i, "wb").write(text[a:a + 2048 + (i * 131) % 6144])
PY
for case in ${CASES:-small big huge}; do
  limit=${INGEST_TIMEOUT:-150}
  [ "$case" = huge ] || full_model
  case $case in
    small) args=(--model "$model" --input /tmp/blt-in/small) ;;
    small-none) args=(--model "$model" --input /tmp/blt-in/small --embeddings none) ;;
    big) args=(--model "$model" --file /tmp/blt-in/big.txt --embeddings none) ;;
    huge) [ "${HUGE_MB:-1024}" -gt 0 ] || continue
          args=(--file /tmp/blt-in/huge.txt --format arrow --max-batch-tokens ${HUGE_BATCH_TOKENS:-65536})
          limit=${HUGE_TIMEOUT:-420} ;;
  esac
  rm -rf /tmp/blt-out-$case
  nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 100 > "$out/smi-$case.csv" &
  smi=$!
  # the peak resident memory of the run, from the kernel's accounting of finished children
  python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r)' "$out/rss-$case.txt" env BLT_LOG=${BLT_LOG:-blt_model::estimator=debug} timeout "$limit" "$blt" ingest --device cuda --dtype bf16 \
    "${args[@]}" --output /tmp/blt-out-$case --no-progress "$@" > "$out/ingest-$case.log" 2>&1
  echo "$case: exit $? (124: stopped at the time limit); output $(du -sh /tmp/blt-out-$case | cut -f1); peak host RSS $(($(cat "$out/rss-$case.txt") / 1024)) MiB"
  # how far the model got (the estimator logs the positions it has filed, at debug level)
  grep "positions filed" "$out/ingest-$case.log" | tail -n 1 | sed 's/^/  last: /'
  gzip -f "$out/ingest-$case.log"
  kill $smi
  [ -f /tmp/blt-out-$case/run.json ] && cp /tmp/blt-out-$case/run.json "$out/run-$case.json" && python3 -c "
import json; s = json.load(open('/tmp/blt-out-$case/run.json'))['stats']
print('  stats', {k: round(s[k], 2) if isinstance(s[k], float) else s[k] for k in ('documents', 'written', 'failed', 'bytes', 'patches', 'seconds', 'model_seconds', 'model_wait_seconds', 'model_blocked_seconds', 'postprocess_seconds', 'write_seconds') if k in s})
print('  end to end %.2f MB/s' % (s['bytes'] / 1e6 / max(s['seconds'], 1e-9)))"
  python3 -c "
rows = [l.split(',') for l in open('$out/smi-$case.csv') if l.strip()]
m = [float(r[0]) for r in rows]; u = [float(r[1]) for r in rows]; q = max(1, len(m) // 4)
print('  GPU memory peak %.0f MiB (first quarter %.0f, last quarter %.0f); busy in %.1f%% of %d samples, mean utilisation %.1f%%'
      % (max(m), max(m[:q]), max(m[-q:]), 100 * sum(x > 0 for x in u) / len(u), len(u), sum(u) / len(u)))"
done
# One archive instead of many files (what comes back from a GPU call is limited in count).
( cd "$out" && tar czf ingest-measure.tgz --remove-files calibrate.log smi-*.csv rss-*.txt run-*.json ingest-*.log.gz 2>/dev/null )
