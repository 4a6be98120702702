#!/usr/bin/env bash
# Trains the project's default entropy model on one NVIDIA GPU. Run from the repository root on the
# GPU machine; this is the exact command that produced crates/blt-default-model/model/.
#
# Inputs (built here, carried to the GPU machine, never committed):
#   .gpu/blt.gz          the release binary: CUDARC_CUDA_VERSION=13000 cargo build --release -p blt-cli --features cuda
#   .gpu/train.tar.gz    scripts/default-model/build_corpus.py → target/default-corpus/train.tar.gz
#   .gpu/heldout.tar.gz  the held-out prose, same script
# Usage: STEPS=N BATCH=B LR=X scripts/default-model/train-on-gpu.sh OUTDIR
set -euo pipefail
out=${1:?usage: train-on-gpu.sh OUTDIR}
work=${WORK:-/tmp/blt-default}
mkdir -p "$work" "$out"
gunzip -c .gpu/blt.gz > "$work/blt"
chmod +x "$work/blt"
tar xzf .gpu/train.tar.gz -C "$work"
tar xzf .gpu/heldout.tar.gz -C "$work"
# Minimal autotuning: the small model's shapes tune in seconds instead of minutes.
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
"$work/blt" --version | tee -a "$out/gpu.txt"
set -x
time "$work/blt" train \
  --corpus "$work/train" --eval-corpus "$work/heldout" --output "$work/model" \
  --config small --steps "${STEPS:-3000}" --batch-size "${BATCH:-64}" --seq-len 512 \
  --lr "${LR:-2e-3}" --warmup-steps "${WARMUP:-200}" --min-lr-ratio 0.1 --weight-decay 0.1 \
  --grad-clip 1.0 --eval-every "${EVAL_EVERY:-500}" --eval-windows 256 --seed 42 \
  --save-bf16 --device cuda --no-progress 2>&1 | tee "$out/train.log"
set +x
cp "$work/model/config.json" "$work/model/model.safetensors" "$work/model/train_log.jsonl" \
   "$work/model/train_summary.json" "$out/"
