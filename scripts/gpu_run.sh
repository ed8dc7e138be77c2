#!/usr/bin/env bash
# Runs on the GPU host, in a copy of the repository that carries the cuda binary gzipped in
# .gpu/urpe.gz (build it with scripts/cuda_toolchain.sh and `cargo build --release
# --features cuda`, then `mkdir -p .gpu && gzip -c target/release/urpe > .gpu/urpe.gz`).
#
# usage: bash scripts/gpu_run.sh check|bench|paper SECONDS
#   check  the candle CUDA engine against the ndarray CPU engine for every family (f32)
#   bench  step time of the paper model, ours and PyTorch eager, in bf16, TF32 and FP32
#   (check also runs the bf16 engine against the f32 CPU engine)
#   paper  experiments/paper.toml into $PAPER_DIR (default /tmp/urpe-paper, outside the copied
#          tree, so it stays on the host while it is held), the shards of PAPER_JOBS one
#          after another (or at once with PAPER_PARALLEL=1), for at most SECONDS, then
#          stop cleanly: stopped jobs keep their
#          state in $PAPER_DIR/partial/ and continue on the next call. The runs' JSONL files
#          and logs come back in $OUT/paper/ (never checkpoints or states); copy them into
#          results/gpu/paper/ here (urpe plot results/gpu/paper redraws its report). At most 8
#          files come back from one call: leave fewer in $OUT than that.
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
      for precision in bf16 tf32 fp32; do
        "$bin" bench --shape paper --backend candle --device cuda:0 --precision $precision
        python3 scripts/torch_bench.py --device cuda --shapes paper --precision $precision
      done ;;
    paper)
      # PAPER_PRECISION: tf32 (default, the runs so far) or bf16.
      # PAPER_JOBS: shards K/N on cuda:${GPU:-0}, each until it is done or the SECONDS run
      # out (default 0/1: every job, in file order). One after another by default; with
      # PAPER_PARALLEL=1 all at once on the same GPU (two processes on one H200 ran at 28 ms
      # a step each against 22.5 ms alone: slower each, but 1.6 times the cells an hour).
      # Saved states are keyed by job, so a later call continues a stopped job whatever the
      # shard list. Several GPUs: one call per GPU, each with its own GPU and PAPER_JOBS.
      store=${PAPER_DIR:-/tmp/urpe-paper}
      deadline=$((SECONDS + seconds))
      run_shard() {
        local shard=$1 left=$((deadline - SECONDS)) status=0
        local tag=${shard/\//-of-}
        [ "$left" -gt 10 ] || return 124
        timeout -s INT "$left" "$bin" sweep experiments/paper.toml --out "$store" --backend candle \
          --device "cuda:${GPU:-0}" --precision "${PAPER_PRECISION:-tf32}" --threads 1 --shard "$shard" \
          >> "results/gpu/paper-$tag.log" 2>&1 || status=$?
        tail -2 "results/gpu/paper-$tag.log"
        case $status in 0 | 2 | 124 | 130) ;; *) echo "shard $shard failed with exit $status" >&2 ;; esac
        return "$status"
      }
      if [ "${PAPER_PARALLEL:-0}" = 1 ]; then
        # Started 10 s apart so that their first appends to the store's logs never meet.
        for shard in ${PAPER_JOBS:-0/1}; do run_shard "$shard" & sleep 10; done
        wait || true
      else
        for shard in ${PAPER_JOBS:-0/1}; do run_shard "$shard" || break; done
      fi
      ls -la "$store" "$store/partial" 2>/dev/null || true
      if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT/paper"
        cp "$store"/*.jsonl results/gpu/paper-*.log "$OUT/paper/" 2>/dev/null || true
      fi ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
} 2>&1 | tee "$log"
[ -n "${OUT:-}" ] && cp "$log" "$OUT/" || true
