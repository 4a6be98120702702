#!/bin/bash
# Entropy-patch FineWeb-Edu (sample-10BT) on one host with several GPUs: one process per GPU,
# started by GNU parallel. The same contract as a cluster: rank = GPU index, world size = the
# number of GPUs; run the script again after a crash and every rank resumes (finished ranks
# exit at once).
#
#   examples/cluster/parallel-one-host.sh /scratch/out 8
set -euo pipefail

OUT=${1:?output folder}
GPUS=${2:-$(nvidia-smi -L | wc -l)}
export HF_HOME=${HF_HOME:-$HOME/.cache/huggingface}

# Fetch the split's file list and the model once, so the ranks do not race for the same files.
blt ingest --model facebook/blt-entropy --hf-dataset HuggingFaceFW/fineweb-edu \
    --hf-config sample-10BT --split train --limit 0 --output "$OUT/.warmup" --no-progress

seq 0 $((GPUS - 1)) | parallel --jobs "$GPUS" --line-buffer --tagstring 'rank {}' \
    blt ingest \
        --model facebook/blt-entropy --device cuda:{} \
        --hf-dataset HuggingFaceFW/fineweb-edu --hf-config sample-10BT --split train \
        --id-column id \
        --format arrow \
        --rank {} --world-size "$GPUS" \
        --output "$OUT" \
        --no-progress

blt merge-stats "$OUT"
