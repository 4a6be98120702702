#!/usr/bin/env bash
# One GPU call: the CUDA kernel tests, the CUDA parity tests, the whole-model benchmark (f32 and
# bf16, with and without reading results back) and the PyTorch baseline in the same call.
#
#   scripts/dev/gpu-check.sh BIN OUT
#
# BIN holds gzipped executables built here (none needs a Rust toolchain there):
#   kernels-test.gz  `cargo test --release --no-run -p blt-kernels --test kernels --features cuda`
#   parity-test.gz   `cargo test --release --no-run -p blt-model --test parity --features cuda`
#   forward.gz       `cargo bench --no-run -p blt-model --bench forward --features blt-model/cuda`
# (CUDARC_CUDA_VERSION=13000 for driver 580). Environment: STEPS ("tests bench torch", run in that order),
# DTYPES ("f32 bf16"), SHAPES (32x512,8x4096), TEST_TIMEOUT (300), TORCH_BUDGET_S (150),
# TORCH_TIMEOUT (240); STEPS may add "ab" (the bench with one switch off: AB_ENV).
# Run from the repository root.
set -u
bin=${1:?usage: gpu-check.sh BIN OUT}
out=${2:?usage: gpu-check.sh BIN OUT}
mkdir -p "$out" /tmp/blt-bin
for f in "$bin"/*.gz; do
  n=$(basename "$f" .gz)
  [ -x /tmp/blt-bin/$n ] || { gunzip -c "$f" > /tmp/blt-bin/$n && chmod +x /tmp/blt-bin/$n; }
done
# cuBLAS for blt-kernels (loaded at run time): the CUDA toolkit's, or the one PyTorch's wheels ship.
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64:$(python3 -c "import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], 'lib'))" 2>/dev/null)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
git rev-parse --short HEAD 2>/dev/null | tee "$out/commit.txt"
steps=${STEPS:-tests bench torch}
shapes=${SHAPES:-32x512,8x4096}
tests() {
  timeout ${TEST_TIMEOUT:-300} /tmp/blt-bin/kernels-test --test-threads 1 > "$out/kernels-test.log" 2>&1
  echo "kernel tests: exit $?; $(grep -E '^test result' "$out/kernels-test.log" | tail -n 1)"
  BLT_MODEL_FIXTURES=$PWD/crates/blt-model/tests/fixtures timeout ${TEST_TIMEOUT:-300} /tmp/blt-bin/parity-test \
    --test-threads 1 --nocapture > "$out/parity-test.log" 2>&1
  echo "parity tests: exit $?; $(grep -E '^test result' "$out/parity-test.log" | tail -n 1)"
  grep -E "agreement|worst|FAILED|panicked" "$out/parity-test.log" | head -n 12
}
bench() {
  for dt in ${DTYPES:-f32 bf16}; do
    BLT_BENCH_DEVICE=cuda BLT_BENCH_DTYPE=$dt BLT_BENCH_SHAPES=$shapes BLT_BENCH_ESTIMATE=1 \
      CRITERION_HOME="$out/criterion" timeout 300 /tmp/blt-bin/forward --bench \
      > "$out/forward-$dt.log" 2>&1
    echo "forward $dt: exit $?"
    grep -E "^model/|thrpt:" "$out/forward-$dt.log" | paste - - | sed 's/  */ /g'
  done
}
# One switch off, to compare (same call; first shape only): AB_ENV, default
# BLT_KERNELS_FUSED_ADD_NORM=0 (the fused residual add + norm); BLT_KERNELS_PINNED_UPLOAD=0 uploads
# token ids from pageable memory.
ab() {
  for dt in ${DTYPES:-f32 bf16}; do
    env ${AB_ENV:-BLT_KERNELS_FUSED_ADD_NORM=0} BLT_BENCH_DEVICE=cuda BLT_BENCH_DTYPE=$dt BLT_BENCH_SHAPES=${shapes%%,*} \
      BLT_BENCH_ESTIMATE=1 CRITERION_HOME="$out/criterion-ab" timeout 120 /tmp/blt-bin/forward --bench > "$out/forward-ab-$dt.log" 2>&1
    echo "forward $dt, ${AB_ENV:-BLT_KERNELS_FUSED_ADD_NORM=0}: exit $?"
    grep -E "^model/|thrpt:" "$out/forward-ab-$dt.log" | paste - - | sed 's/  */ /g'
  done
}
torch() {
  OUT="$out" TORCH_SHAPES=$shapes TORCH_DTYPES=$(echo ${DTYPES:-f32 bf16} | tr ' ' ,) TORCH_BUDGET_S=${TORCH_BUDGET_S:-150} timeout ${TORCH_TIMEOUT:-240} python3 bench/torch_entropy_baseline.py model \
    > "$out/torch.log" 2>&1
  echo "torch: exit $?"
  grep RESULT "$out/torch.log" || tail -n 5 "$out/torch.log"
}
for step in $steps; do "$step"; done
