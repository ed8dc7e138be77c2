#!/usr/bin/env bash
# Installs CUDA 13.0's compiler from NVIDIA's PyPI wheels (no root, no apt, no GPU needed) so
# that `cargo build --release --features cuda` can build candle's kernels here; the binary
# then runs on a machine with a CUDA 13 driver (≥ 580). Writes PREFIX/env.sh to source.
#
# usage: bash scripts/cuda_toolchain.sh [PREFIX]     (default /tmp/cuda13, about 1.2 GB)
#        source /tmp/cuda13/env.sh && cargo build --release --features cuda
#
# The wheels install into one folder (site-packages/nvidia/cu13) that serves as CUDA_HOME;
# they ship versioned libraries only, so the linker gets unversioned links; no wheel ships
# libcuda.so, so a link-time stub exporting cudarc's driver symbols is generated (each
# returns CUDA_ERROR_NO_DEVICE; never ship it: the GPU machine's own libcuda.so.1 is used).
# There is no nvidia-smi here to ask for the GPU's compute capability: 90 (Hopper) is set.
set -euo pipefail
PREFIX=${1:-/tmp/cuda13}
cd "$(dirname "$0")/.."
cargo fetch --quiet
mkdir -p "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q \
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
  nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cublas==13.0.0.19 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
CU=$("$PREFIX/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -x "$CU/bin/nvcc" ] || { echo "nvcc not found under $CU" >&2; exit 1; }
(cd "$CU/lib" && for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done \
  && ln -sf libcurand.so.10 libcurand.so)
REG=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ | head -1)
SYS=$(ls -d "$REG"cudarc-*/src/driver/sys/mod.rs 2>/dev/null | sort -V | tail -1 || true)
[ -n "$SYS" ] || { echo "cudarc's source is missing from the cargo registry (cargo fetch failed?)" >&2; exit 1; }
mkdir -p "$CU/lib/stubs"
grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+' "$SYS" | awk '{print $4}' | sort -u \
  | awk '{print "int "$1"(void){return 100;}"}' > "$PREFIX/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" "$PREFIX/libcuda_stub.c"
cat > "$PREFIX/env.sh" <<ENV
export CUDA_HOME=$CU
export PATH=$CU/bin:\$PATH
export CUDA_COMPUTE_CAP=90
ENV
"$CU/bin/nvcc" --version | tail -1
echo "ready: source $PREFIX/env.sh && cargo build --release --features cuda   (cold: 11-17 min on 2 cores)"
