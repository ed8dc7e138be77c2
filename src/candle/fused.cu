// Fused kernels of the candle engine's hot path (see fused.rs, which also holds the CPU
// versions and the formulas). Built to PTX by build.rs when the `cuda` feature is on.
// Every row kernel exists for float, double and bfloat16 storage (suffixes _f32, _f64,
// _bf16); bfloat16 is loaded into float, computed in float and rounded once on the store
// (Acc<S> is the type of the arithmetic). Inputs are contiguous, row-major.
#include <stdint.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float k_exp(float x) { return expf(x); }
__device__ __forceinline__ double k_exp(double x) { return exp(x); }
__device__ __forceinline__ float k_erf(float x) { return erff(x); }
__device__ __forceinline__ double k_erf(double x) { return erf(x); }
__device__ __forceinline__ float k_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double k_sqrt(double x) { return sqrt(x); }

// The arithmetic type of a storage type, and loads and stores between them.
template <typename S> struct Acc { typedef S T; };
template <> struct Acc<__nv_bfloat16> { typedef float T; };
template <typename S> __device__ __forceinline__ typename Acc<S>::T ld(const S *p, uint64_t i) { return p[i]; }
template <> __device__ __forceinline__ float ld(const __nv_bfloat16 *p, uint64_t i) { return __bfloat162float(p[i]); }
template <typename S> __device__ __forceinline__ void st(S *p, uint64_t i, typename Acc<S>::T v) { p[i] = v; }
template <> __device__ __forceinline__ void st(__nv_bfloat16 *p, uint64_t i, float v) { p[i] = __float2bfloat16(v); }

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
template <typename T> __device__ __forceinline__ T warp_max(T v) {
  for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Grid-stride loops index in 32 bits where n allows (a 64-bit modulo costs several times a
// 32-bit one, and the column i % k is taken per element).
#define INDEXED(n, ...)                                                                             \
  if ((n) + (uint64_t)gridDim.x * blockDim.x <= 0xffffffffull) {                                    \
    typedef uint32_t I;                                                                             \
    __VA_ARGS__                                                                                     \
  } else {                                                                                          \
    typedef uint64_t I;                                                                             \
    __VA_ARGS__                                                                                     \
  }
#define GRID_STRIDE(i, n) for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < (I)(n); i += (I)gridDim.x * blockDim.x)

// y[i] = x[i] + v[i % k] (mul = 0) or x[i] * v[i % k] (mul = 1)
template <typename S>
__device__ void rows_op(const S *x, const S *v, S *y, uint64_t n, uint64_t k, int mul) {
  typedef typename Acc<S>::T T;
  INDEXED(n, GRID_STRIDE(i, n) {
    T b = ld(v, i % (I)k), xi = ld(x, i);
    st(y, i, mul ? xi * b : xi + b);
  })
}

// One warp per row (blockDim = 32 × 8): y = softmax(scale·x + bias[row % period]). The
// exponentials are recomputed in the last pass rather than stored and rescaled, so that a
// bfloat16 output is rounded once.
template <typename S>
__device__ void softmax_fwd(const S *x, const S *bias, S *y, uint64_t rows, uint64_t n, uint64_t period,
                            typename Acc<S>::T scale) {
  typedef typename Acc<S>::T T;
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const S *xr = x + row * n;
  const S *br = bias + (row % period) * n;
  S *yr = y + row * n;
  T m = -INFINITY;
  for (uint64_t j = threadIdx.x; j < n; j += 32) m = max(m, scale * ld(xr, j) + ld(br, j));
  m = warp_max(m);
  T s = 0;
  for (uint64_t j = threadIdx.x; j < n; j += 32) s += k_exp(scale * ld(xr, j) + ld(br, j) - m);
  s = warp_sum(s);
  T inv = T(1) / s;
  for (uint64_t j = threadIdx.x; j < n; j += 32) st(yr, j, k_exp(scale * ld(xr, j) + ld(br, j) - m) * inv);
}

// dx = scale·y ⊙ (g − ⟨g, y⟩) per row.
template <typename S>
__device__ void softmax_bwd(const S *y, const S *g, S *dx, uint64_t rows, uint64_t n, typename Acc<S>::T scale) {
  typedef typename Acc<S>::T T;
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const S *yr = y + row * n;
  const S *gr = g + row * n;
  T dot = 0;
  for (uint64_t j = threadIdx.x; j < n; j += 32) dot += ld(yr, j) * ld(gr, j);
  dot = warp_sum(dot);
  for (uint64_t j = threadIdx.x; j < n; j += 32) st(dx, row * n + j, scale * ld(yr, j) * (ld(gr, j) - dot));
}

// Mean and 1/√(σ² + ε) of one row (biased variance, two passes), reduced over the warp.
template <typename S, typename T>
__device__ __forceinline__ void row_stats(const S *xr, uint64_t d, T eps, T &mean, T &rstd) {
  T s = 0;
  for (uint64_t j = threadIdx.x; j < d; j += 32) s += ld(xr, j);
  mean = warp_sum(s) / T(d);
  T v = 0;
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T c = ld(xr, j) - mean;
    v += c * c;
  }
  rstd = T(1) / k_sqrt(warp_sum(v) / T(d) + eps);
}

// mode 0: y = x̂ ⊙ w + b; mode 1: y = g ⊙ x̂ (for ∂w); with x̂ = (x − μ)·ρ. One warp per row.
template <typename S>
__device__ void ln_rows(const S *x, const S *a, const S *b, S *y, uint64_t rows, uint64_t d, typename Acc<S>::T eps,
                        int mode) {
  typedef typename Acc<S>::T T;
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const S *xr = x + row * d;
  T mean, rstd;
  row_stats(xr, d, eps, mean, rstd);
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T xh = (ld(xr, j) - mean) * rstd;
    st(y, row * d + j, mode == 0 ? xh * ld(a, j) + ld(b, j) : ld(a, row * d + j) * xh);
  }
}

// dx = ρ·(g⊙w − mean(g⊙w) − x̂·mean(g⊙w⊙x̂)). One warp per row.
template <typename S>
__device__ void ln_bwd(const S *x, const S *w, const S *g, S *dx, uint64_t rows, uint64_t d, typename Acc<S>::T eps) {
  typedef typename Acc<S>::T T;
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const S *xr = x + row * d;
  const S *gr = g + row * d;
  T mean, rstd;
  row_stats(xr, d, eps, mean, rstd);
  T mg = 0, mgx = 0;
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T gw = ld(gr, j) * ld(w, j);
    mg += gw;
    mgx += gw * (ld(xr, j) - mean) * rstd;
  }
  mg = warp_sum(mg) / T(d);
  mgx = warp_sum(mgx) / T(d);
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T xh = (ld(xr, j) - mean) * rstd;
    st(dx, row * d + j, rstd * (ld(gr, j) * ld(w, j) - mg - xh * mgx));
  }
}

// act(u), u = m[i] + b[i % k]; act 0 = GELU x·Φ(x), 1 = ReLU. With grad = 1: g ⊙ act'(u).
template <typename S>
__device__ void bias_act(const S *m, const S *b, const S *g, S *y, uint64_t n, uint64_t k, int act, int grad) {
  typedef typename Acc<S>::T T;
  const T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt_2pi = T(0.39894228040143267794);
  INDEXED(n, GRID_STRIDE(i, n) {
    T u = ld(m, i) + ld(b, i % (I)k);
    T out;
    if (act == 0) {
      T cdf = T(0.5) * (T(1) + k_erf(u * inv_sqrt2));
      out = grad ? ld(g, i) * (cdf + u * inv_sqrt_2pi * k_exp(T(-0.5) * u * u)) : u * cdf;
    } else {
      out = grad ? (u > T(0) ? ld(g, i) : T(0)) : (u > T(0) ? u : T(0));
    }
    st(y, i, out);
  })
}

// One Adam update of n parameters: out = [θ', m', v'] from θ, g and mv = [m, v] (see
// fused.rs, AdamUpdate, for the formula).
template <typename T>
__device__ void adam(const T *p, const T *g, const T *mv, T *out, uint64_t n, T clip, T wd, T decay, int decoupled,
                     T b1, T b2, T step_size, T bias2_sqrt, T eps) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    T gi = g[i] * clip, pi = p[i];
    if (decoupled) pi *= decay; else gi += wd * pi;
    T m = b1 * mv[i] + (T(1) - b1) * gi;
    T v = b2 * mv[n + i] + (T(1) - b2) * gi * gi;
    out[i] = pi - step_size * m / (k_sqrt(v) / bias2_sqrt + eps);
    out[n + i] = m;
    out[2 * n + i] = v;
  }
}

// Between rows [rows = b·n, c·d] and heads [b, h, n, d_h] (c of them, d = h·d_h), in units
// of U consecutive elements (U = 1, or 16 bytes when d_h and every operand's address allow):
// one thread per unit of a column run, looping over rows, so that both sides are read and
// written in runs of d_h.
// merge = 0: dst (c heads tensors, one after the other) = src0 + bias[column];
// merge = 1: dst rows = the heads tensors src0, src1, src2 (c ≤ 3).
template <typename S, int U> struct alignas(U * sizeof(S)) Pack { S v[U]; };

template <typename S, int U>
__device__ void heads(const S *src0, const S *src1, const S *src2, const S *bias, S *dst, uint32_t rows, uint32_t n,
                      uint32_t h, uint32_t dh, uint32_t c, int merge) {
  typedef Pack<S, U> P;
  uint32_t d = h * dh, cols = c * d;
  uint32_t j = (blockIdx.x * blockDim.x + threadIdx.x) * U;
  if (j >= cols) return;
  uint32_t s = j / d, rem = j - s * d, hh = rem / dh, e = rem - hh * dh;
  uint64_t part = (uint64_t)rows * d;
  const S *src = s == 0 ? src0 : (s == 1 ? src1 : src2);
  P b;
  if (!merge) b = *reinterpret_cast<const P *>(bias + j);
  for (uint32_t row = blockIdx.y; row < rows; row += gridDim.y) {
    uint32_t bb = row / n, i = row - bb * n;
    uint64_t headed = (((uint64_t)bb * h + hh) * n + i) * dh + e;
    uint64_t flat = (uint64_t)row * cols + j;
    if (merge) {
      *reinterpret_cast<P *>(dst + flat) = *reinterpret_cast<const P *>(src + headed);
    } else {
      P x = *reinterpret_cast<const P *>(src0 + flat), y;
#pragma unroll
      for (int u = 0; u < U; u++) st(y.v, u, ld(x.v, u) + ld(b.v, u));
      *reinterpret_cast<P *>(dst + s * part + headed) = y;
    }
  }
}

// Partial sums of squares, in double, one per block (gridDim.x ≤ 64): out[block] =
// Σ g[i]² over the block's grid-stride share (a fixed order, so the result is reproducible).
template <typename T> __device__ void sum_squares(const T *g, double *out, uint64_t n) {
  __shared__ double warps[32];
  double s = 0;
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    double v = (double)g[i];
    s += v * v;
  }
  s = warp_sum(s);
  unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warps[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < blockDim.x / 32 ? warps[lane] : 0.0;
    s = warp_sum(s);
    if (lane == 0) out[blockIdx.x] = s;
  }
}

#define BOTH(name, params, args)                                                                    \
  extern "C" __global__ void name##_f32 params(float, float) { name<float> args; }                 \
  extern "C" __global__ void name##_f64 params(double, double) { name<double> args; }
#define ALL3(name, params, args)                                                                    \
  BOTH(name, params, args)                                                                          \
  extern "C" __global__ void name##_bf16 params(__nv_bfloat16, float) { name<__nv_bfloat16> args; }

// Parameter lists by (S, C): S the storage type of the tensors, C of the scalars.
#define P_ROWS(S, C) (const S *x, const S *v, S *y, uint64_t n, uint64_t k, int mul)
ALL3(rows_op, P_ROWS, (x, v, y, n, k, mul))
#define P_SMF(S, C) (const S *x, const S *bias, S *y, uint64_t rows, uint64_t n, uint64_t period, C scale)
ALL3(softmax_fwd, P_SMF, (x, bias, y, rows, n, period, scale))
#define P_SMB(S, C) (const S *y, const S *g, S *dx, uint64_t rows, uint64_t n, C scale)
ALL3(softmax_bwd, P_SMB, (y, g, dx, rows, n, scale))
#define P_LNR(S, C) (const S *x, const S *a, const S *b, S *y, uint64_t rows, uint64_t d, C eps, int mode)
ALL3(ln_rows, P_LNR, (x, a, b, y, rows, d, eps, mode))
#define P_LNB(S, C) (const S *x, const S *w, const S *g, S *dx, uint64_t rows, uint64_t d, C eps)
ALL3(ln_bwd, P_LNB, (x, w, g, dx, rows, d, eps))
#define P_ACT(S, C) (const S *m, const S *b, const S *g, S *y, uint64_t n, uint64_t k, int act, int grad)
ALL3(bias_act, P_ACT, (m, b, g, y, n, k, act, grad))
#define P_ADAM(S, C) (const S *p, const S *g, const S *mv, S *out, uint64_t n, C clip, C wd, C decay, int decoupled, \
                       C b1, C b2, C step_size, C bias2_sqrt, C eps)
BOTH(adam, P_ADAM, (p, g, mv, out, n, clip, wd, decay, decoupled, b1, b2, step_size, bias2_sqrt, eps))
#define P_HEADS(S) (const S *src0, const S *src1, const S *src2, const S *bias, S *dst, uint32_t rows, uint32_t n, \
                     uint32_t h, uint32_t dh, uint32_t c, int merge)
#define A_HEADS (src0, src1, src2, bias, dst, rows, n, h, dh, c, merge)
// heads_<type> moves one element a thread, heads16_<type> 16 bytes (4, 2 or 8 elements).
extern "C" __global__ void heads_f32 P_HEADS(float) { heads<float, 1> A_HEADS; }
extern "C" __global__ void heads_f64 P_HEADS(double) { heads<double, 1> A_HEADS; }
extern "C" __global__ void heads_bf16 P_HEADS(__nv_bfloat16) { heads<__nv_bfloat16, 1> A_HEADS; }
extern "C" __global__ void heads16_f32 P_HEADS(float) { heads<float, 4> A_HEADS; }
extern "C" __global__ void heads16_f64 P_HEADS(double) { heads<double, 2> A_HEADS; }
extern "C" __global__ void heads16_bf16 P_HEADS(__nv_bfloat16) { heads<__nv_bfloat16, 8> A_HEADS; }
extern "C" __global__ void sum_squares_f32(const float *g, double *out, uint64_t n) { sum_squares<float>(g, out, n); }
extern "C" __global__ void sum_squares_f64(const double *g, double *out, uint64_t n) { sum_squares<double>(g, out, n); }
