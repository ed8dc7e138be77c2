// Fused kernels of the candle engine's hot path (see fused.rs, which also holds the CPU
// versions and the formulas). Built to PTX by build.rs when the `cuda` feature is on.
// Every kernel exists for float and double; inputs are contiguous, row-major.
#include <stdint.h>

__device__ __forceinline__ float k_exp(float x) { return expf(x); }
__device__ __forceinline__ double k_exp(double x) { return exp(x); }
__device__ __forceinline__ float k_erf(float x) { return erff(x); }
__device__ __forceinline__ double k_erf(double x) { return erf(x); }
__device__ __forceinline__ float k_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double k_sqrt(double x) { return sqrt(x); }

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
template <typename T> __device__ __forceinline__ T warp_max(T v) {
  for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// y[i] = x[i] + v[i % k] (mul = 0) or x[i] * v[i % k] (mul = 1)
template <typename T>
__device__ void rows_op(const T *x, const T *v, T *y, uint64_t n, uint64_t k, int mul) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    T b = v[i % k];
    y[i] = mul ? x[i] * b : x[i] + b;
  }
}

// One warp per row (blockDim = 32 × 8): y = softmax(scale·x + bias[row % period]).
template <typename T>
__device__ void softmax_fwd(const T *x, const T *bias, T *y, uint64_t rows, uint64_t n, uint64_t period, T scale) {
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const T *xr = x + row * n;
  const T *br = bias + (row % period) * n;
  T *yr = y + row * n;
  T m = -INFINITY;
  for (uint64_t j = threadIdx.x; j < n; j += 32) m = max(m, scale * xr[j] + br[j]);
  m = warp_max(m);
  T s = 0;
  for (uint64_t j = threadIdx.x; j < n; j += 32) {
    T e = k_exp(scale * xr[j] + br[j] - m);
    yr[j] = e;
    s += e;
  }
  s = warp_sum(s);
  T inv = T(1) / s;
  for (uint64_t j = threadIdx.x; j < n; j += 32) yr[j] *= inv;
}

// dx = scale·y ⊙ (g − ⟨g, y⟩) per row.
template <typename T>
__device__ void softmax_bwd(const T *y, const T *g, T *dx, uint64_t rows, uint64_t n, T scale) {
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const T *yr = y + row * n;
  const T *gr = g + row * n;
  T dot = 0;
  for (uint64_t j = threadIdx.x; j < n; j += 32) dot += yr[j] * gr[j];
  dot = warp_sum(dot);
  for (uint64_t j = threadIdx.x; j < n; j += 32) dx[row * n + j] = scale * yr[j] * (gr[j] - dot);
}

// Mean and 1/√(σ² + ε) of one row (biased variance, two passes), reduced over the warp.
template <typename T> __device__ __forceinline__ void row_stats(const T *xr, uint64_t d, T eps, T &mean, T &rstd) {
  T s = 0;
  for (uint64_t j = threadIdx.x; j < d; j += 32) s += xr[j];
  mean = warp_sum(s) / T(d);
  T v = 0;
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T c = xr[j] - mean;
    v += c * c;
  }
  rstd = T(1) / k_sqrt(warp_sum(v) / T(d) + eps);
}

// mode 0: y = x̂ ⊙ w + b; mode 1: y = g ⊙ x̂ (for ∂w); with x̂ = (x − μ)·ρ. One warp per row.
template <typename T>
__device__ void ln_rows(const T *x, const T *a, const T *b, T *y, uint64_t rows, uint64_t d, T eps, int mode) {
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const T *xr = x + row * d;
  T mean, rstd;
  row_stats(xr, d, eps, mean, rstd);
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T xh = (xr[j] - mean) * rstd;
    y[row * d + j] = mode == 0 ? xh * a[j] + b[j] : a[row * d + j] * xh;
  }
}

// dx = ρ·(g⊙w − mean(g⊙w) − x̂·mean(g⊙w⊙x̂)). One warp per row.
template <typename T>
__device__ void ln_bwd(const T *x, const T *w, const T *g, T *dx, uint64_t rows, uint64_t d, T eps) {
  uint64_t row = blockIdx.x * (uint64_t)blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const T *xr = x + row * d;
  const T *gr = g + row * d;
  T mean, rstd;
  row_stats(xr, d, eps, mean, rstd);
  T mg = 0, mgx = 0;
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T gw = gr[j] * w[j];
    mg += gw;
    mgx += gw * (xr[j] - mean) * rstd;
  }
  mg = warp_sum(mg) / T(d);
  mgx = warp_sum(mgx) / T(d);
  for (uint64_t j = threadIdx.x; j < d; j += 32) {
    T xh = (xr[j] - mean) * rstd;
    dx[row * d + j] = rstd * (gr[j] * w[j] - mg - xh * mgx);
  }
}

// act(u), u = m[i] + b[i % k]; act 0 = GELU x·Φ(x), 1 = ReLU. With grad = 1: g ⊙ act'(u).
template <typename T>
__device__ void bias_act(const T *m, const T *b, const T *g, T *y, uint64_t n, uint64_t k, int act, int grad) {
  const T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt_2pi = T(0.39894228040143267794);
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x) {
    T u = m[i] + b[i % k];
    T out;
    if (act == 0) {
      T cdf = T(0.5) * (T(1) + k_erf(u * inv_sqrt2));
      out = grad ? g[i] * (cdf + u * inv_sqrt_2pi * k_exp(T(-0.5) * u * u)) : u * cdf;
    } else {
      out = grad ? (u > T(0) ? g[i] : T(0)) : (u > T(0) ? u : T(0));
    }
    y[i] = out;
  }
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

// Between rows [rows = b·n, c·d] and heads [b, h, n, d_h] (c of them, d = h·d_h): one
// thread per (row, column), so both sides are read and written in runs of d_h.
// merge = 0: dst (c heads tensors, one after the other) = src0 + bias[column];
// merge = 1: dst rows = the heads tensors src0, src1, src2 (c ≤ 3).
template <typename T>
__device__ void heads(const T *src0, const T *src1, const T *src2, const T *bias, T *dst, uint32_t rows, uint32_t n,
                      uint32_t h, uint32_t dh, uint32_t c, int merge) {
  uint32_t d = h * dh, cols = c * d;
  uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  uint32_t s = j / d, rem = j - s * d, hh = rem / dh, e = rem - hh * dh;
  uint64_t part = (uint64_t)rows * d;
  for (uint32_t row = blockIdx.y; row < rows; row += gridDim.y) {
    uint32_t bb = row / n, i = row - bb * n;
    uint64_t headed = (((uint64_t)bb * h + hh) * n + i) * dh + e;
    uint64_t flat = (uint64_t)row * cols + j;
    if (merge) {
      const T *src = s == 0 ? src0 : (s == 1 ? src1 : src2);
      dst[flat] = src[headed];
    } else {
      dst[s * part + headed] = src0[flat] + bias[j];
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
  extern "C" __global__ void name##_f32 params(float) { name<float> args; }                        \
  extern "C" __global__ void name##_f64 params(double) { name<double> args; }

#define P_ROWS(T) (const T *x, const T *v, T *y, uint64_t n, uint64_t k, int mul)
BOTH(rows_op, P_ROWS, (x, v, y, n, k, mul))
#define P_SMF(T) (const T *x, const T *bias, T *y, uint64_t rows, uint64_t n, uint64_t period, T scale)
BOTH(softmax_fwd, P_SMF, (x, bias, y, rows, n, period, scale))
#define P_SMB(T) (const T *y, const T *g, T *dx, uint64_t rows, uint64_t n, T scale)
BOTH(softmax_bwd, P_SMB, (y, g, dx, rows, n, scale))
#define P_LNR(T) (const T *x, const T *a, const T *b, T *y, uint64_t rows, uint64_t d, T eps, int mode)
BOTH(ln_rows, P_LNR, (x, a, b, y, rows, d, eps, mode))
#define P_LNB(T) (const T *x, const T *w, const T *g, T *dx, uint64_t rows, uint64_t d, T eps)
BOTH(ln_bwd, P_LNB, (x, w, g, dx, rows, d, eps))
#define P_ACT(T) (const T *m, const T *b, const T *g, T *y, uint64_t n, uint64_t k, int act, int grad)
BOTH(bias_act, P_ACT, (m, b, g, y, n, k, act, grad))
#define P_ADAM(T) (const T *p, const T *g, const T *mv, T *out, uint64_t n, T clip, T wd, T decay, int decoupled, \
                    T b1, T b2, T step_size, T bias2_sqrt, T eps)
BOTH(adam, P_ADAM, (p, g, mv, out, n, clip, wd, decay, decoupled, b1, b2, step_size, bias2_sqrt, eps))
#define P_HEADS(T) (const T *src0, const T *src1, const T *src2, const T *bias, T *dst, uint32_t rows, uint32_t n, \
                     uint32_t h, uint32_t dh, uint32_t c, int merge)
BOTH(heads, P_HEADS, (src0, src1, src2, bias, dst, rows, n, h, dh, c, merge))
extern "C" __global__ void sum_squares_f32(const float *g, double *out, uint64_t n) { sum_squares<float>(g, out, n); }
extern "C" __global__ void sum_squares_f64(const double *g, double *out, uint64_t n) { sum_squares<double>(g, out, n); }
