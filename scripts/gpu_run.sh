#!/usr/bin/env bash
# Runs on the GPU host, in a copy of the repository that carries the cuda binary gzipped in
# .gpu/urpe.gz (build it with scripts/cuda_toolchain.sh and `cargo build --release
# --features cuda`, then `mkdir -p .gpu && gzip -c target/release/urpe > .gpu/urpe.gz`).
#
# usage: bash scripts/gpu_run.sh check|bench|paper SECONDS
#   check  the candle CUDA engine against the ndarray CPU engine for every family (f32)
#   bench  step time of the paper model, ours and PyTorch eager, TF32 and FP32
#   paper  experiments/paper.toml into $PAPER_DIR (default /tmp/urpe-paper, outside the copied
#          tree, so it stays on the host while it is held), SHARDS_PER_GPU shards (default 1:
#          two processes on one H200 ran 10k steps at 28 ms a step each pair, slower than
#          one process alone at 22.5 ms) on every GPU at once, for at most SECONDS, then stop cleanly: stopped jobs keep their
#          state in $PAPER_DIR/partial/ and continue on the next call. The runs' JSONL files
#          and logs come back in $OUT/paper/ (never checkpoints or states); copy them into
#          results/gpu/ here.
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
      # SHARDS_PER_GPU shards of the jobs per GPU, in parallel; each shard runs its jobs in
      # file order; saved states are keyed by job, so a later call with another number of
      # shards continues where this one stopped
      store=${PAPER_DIR:-/tmp/urpe-paper}
      gpus=$(nvidia-smi -L | wc -l)
      shards=$((gpus * ${SHARDS_PER_GPU:-1}))
      pids=()
      for k in $(seq 0 $((shards - 1))); do
        timeout -s INT "$seconds" "$bin" sweep experiments/paper.toml --out "$store" --backend candle \
          --device "cuda:$((k % gpus))" --tf32 --threads 1 --shard "$k/$shards" > "results/gpu/paper-shard$k.log" 2>&1 &
        pids+=($!)
      done
      for k in "${!pids[@]}"; do
        status=0
        wait "${pids[$k]}" || status=$?
        tail -3 "results/gpu/paper-shard$k.log"
        case $status in 0 | 124 | 130) ;; *) echo "shard $k failed with exit $status" >&2 ;; esac
      done
      if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT/paper"
        cp "$store"/*.jsonl results/gpu/paper-shard*.log "$OUT/paper/" 2>/dev/null || true
      fi ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
} 2>&1 | tee "$log"
[ -n "${OUT:-}" ] && cp results/gpu/*.log "$OUT/" || true
