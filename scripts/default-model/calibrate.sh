#!/usr/bin/env bash
# Calibrates the default model's global threshold (mean patch length 4.5 tokens, the maintainers'
# advice for new models) on a fixed sample of its training corpus: every 160th training document in
# sorted order. Run from the repository root after build_corpus.py; writes the threshold into
# crates/blt-default-model/model/config.json.
set -euo pipefail
corpus=${CORPUS:-target/default-corpus/train}
sample=target/default-corpus/calibration-sample
rm -rf "$sample"; mkdir -p "$sample"
find "$corpus" -type f | LC_ALL=C sort | awk 'NR % 160 == 0' | while read -r f; do
  cp "$f" "$sample/$(echo "${f#"$corpus"/}" | tr '/' '_')"
done
du -sh "$sample"
cargo run --release -p blt-cli -- calibrate --model crates/blt-default-model/model \
  --corpus "$sample" --target-mean-patch 4.5
