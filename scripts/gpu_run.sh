#!/usr/bin/env bash
# Runs on the GPU host, in a copy of the repository that carries the cuda binary gzipped in
# .gpu/urpe.gz (build it with scripts/cuda_toolchain.sh and `cargo build --release
# --features cuda`, then `mkdir -p .gpu && gzip -c target/release/urpe > .gpu/urpe.gz`).
#
# usage: bash scripts/gpu_run.sh check|bench|paper SECONDS
#   check  the candle CUDA engine against the ndarray CPU engine for every family (f32)
#   bench  step time of the paper model, ours and PyTorch eager, TF32 and FP32
#   paper  experiments/paper.toml into results/gpu, one shard per GPU, for at most SECONDS,
#          then stop cleanly: stopped jobs keep their state in results/gpu/partial/ (an
#          ignored folder that stays on the host while it is held) and continue on the next call
# Logs go to results/gpu/*.log (and $OUT when set, so that they come back).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: gpu_run.sh check|bench|paper SECONDS}
seconds=${2:-540}
bin=/tmp/urpe
[ -x "$bin" ] || { gzip -dc .gpu/urpe.gz > "$bin"; chmod +x "$bin"; }
mkdir -p results/gpu
log=results/gpu/$mode.log
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  case $mode in
    check) "$bin" check-device --device cuda:0 ;;
    bench)
      for tf in --tf32 ""; do
        "$bin" bench --shape paper --backend candle --device cuda:0 $tf
        python3 scripts/torch_bench.py --device cuda --shapes paper $tf
      done ;;
    paper)
      # one shard of the 4 jobs per GPU, in parallel; shard files and saved states are keyed
      # by job, so a later call on another number of GPUs continues where this one stopped
      gpus=$(nvidia-smi -L | wc -l)
      pids=()
      for k in $(seq 0 $((gpus - 1))); do
        timeout -s INT "$seconds" "$bin" sweep experiments/paper.toml --out results/gpu --backend candle \
          --device "cuda:$k" --tf32 --threads 1 --shard "$k/$gpus" > "results/gpu/paper-gpu$k.log" 2>&1 &
        pids+=($!)
      done
      for k in "${!pids[@]}"; do
        status=0
        wait "${pids[$k]}" || status=$?
        tail -3 "results/gpu/paper-gpu$k.log"
        case $status in 0 | 124 | 130) ;; *) echo "shard $k failed with exit $status" >&2 ;; esac
      done
      "$bin" plot results/gpu --out results/gpu/figures || true ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
} 2>&1 | tee "$log"
[ -n "${OUT:-}" ] && cp results/gpu/*.log "$OUT/" || true
