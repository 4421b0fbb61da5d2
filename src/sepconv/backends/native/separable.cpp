// sepconv's native CPU kernel: a depthwise separable conv (depthwise -> activation -> pointwise -> activation)
// on channels_last float32 tensors, in one call, with the intermediate kept in cache.
//
// The output pixels are cut into tiles of rows. For each tile, the depthwise step (bias and activation fused)
// writes a (rows, K) block into a per-thread buffer; a register-blocked GEMM multiplies that block by the
// prepacked pointwise weights and writes the output rows with the pointwise bias and activation applied in
// registers. Tiles run in parallel. Nothing but the input, the weights and the output touches memory.
//
// The same GEMM also runs standard convs with few input channels (`dense`: a network's stem, the patches read in
// place from the input, an implicit im2col), and the file has the depthwise step alone (`depthwise`) and max
// pooling (`max_pool`), all on channels_last outputs.
//
// Vectors are GCC vector extensions of V floats; each kernel is compiled for AVX-512 (V = 16), AVX2+FMA (V = 8)
// and baseline x86-64 / any CPU (V = 4), and the caller picks one (`isa`), so every variant can be tested on a
// machine that has the widest. Activations keep NaN as torch does: `v < 0 ? 0 : v` is false for NaN.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace {

struct Geometry {
  int64_t batch, height, width, channels, mult, depth;  // depth = channels * mult: the pointwise K
  int64_t kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w;
};

enum Act : int64_t { kNone = 0, kRelu = 1, kRelu6 = 2 };

#define INLINE inline __attribute__((always_inline))

template <typename T>
INLINE T activate(T v, int64_t act) {
  if (act == kNone) return v;
  // made here, opaque to the optimizer: GCC otherwise kept 0 and 6 in two vector registers through the GEMM's whole
  // k loop, one register short for the AVX-512 GEMM's 28 accumulators, and kept one of them on the stack, loaded
  // and stored every k (the 14 x 2 GEMM 2-6% slower)
  T zero{};
#if defined(__x86_64__)
  asm volatile("" : "+v"(zero));
#endif
  v = v < zero ? zero : v;
  if (act == kRelu6) v = v > zero + 6.f ? zero + 6.f : v;
  return v;
}

typedef float v4 __attribute__((vector_size(16)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
template <int V> struct VecType;
template <> struct VecType<4> { using type = v4; };
template <> struct VecType<8> { using type = v8; };
template <> struct VecType<16> { using type = v16; };

template <int V>
struct Vec {
  using type = typename VecType<V>::type;
  static INLINE type load(const float* p) { type v; std::memcpy(&v, p, sizeof v); return v; }
  static INLINE void store(float* p, type v) { std::memcpy(p, &v, sizeof v); }
  // a broadcast shuffle of lane 0, not `type{} + f` (the add, kept for signed zeros, put a vaddss and a register
  // broadcast on the FP pipes before every FMA of the GEMM) nor a lane-by-lane fill (16 masked broadcasts):
  // this compiles to one broadcast load.
  static INLINE type splat(float f) {
    typedef int lanes __attribute__((vector_size(sizeof(type))));
    return __builtin_shuffle(type{f}, lanes{});
  }
};

// The valid taps of one output pixel: input offsets (in floats) and weight offsets.
struct Taps {
  int64_t count = 0;
  int64_t input[64];
  int64_t weight[64];
};

// Taps of output pixel (b, oh, ow); `shift` is added to every input offset.
inline void taps_of(const Geometry& g, int64_t b, int64_t oh, int64_t ow, Taps& t) {
  const int64_t ih0 = oh * g.sh - g.pad_top, iw0 = ow * g.sw - g.pad_left;
  t.count = 0;
  for (int64_t i = 0; i < g.kh; ++i) {
    const int64_t ih = ih0 + i * g.dh;
    if (ih < 0 || ih >= g.height) continue;
    for (int64_t j = 0; j < g.kw; ++j) {
      const int64_t iw = iw0 + j * g.dw;
      if (iw < 0 || iw >= g.width) continue;
      t.input[t.count] = ((b * g.height + ih) * g.width + iw) * g.channels;
      t.weight[t.count++] = (i * g.kw + j) * g.depth;
    }
  }
}

// The first and last interior output columns [lo, hi] (hi < lo: none): those whose horizontal taps are all
// inside the image, ow * sw - pad_left >= 0 and ow * sw - pad_left + (kw - 1) * dw < width.
inline std::pair<int64_t, int64_t> interior_columns(const Geometry& g) {
  const int64_t lo = std::min(g.out_w, (g.pad_left + g.sw - 1) / g.sw);
  const int64_t span = g.width - 1 - (g.kw - 1) * g.dw + g.pad_left;
  return {lo, std::min(g.out_w - 1, span < 0 ? -1 : span / g.sw)};
}

// The input channel of each output channel k of a depth multiplier M, as lane indices per vector of V outputs:
// output block [k0, k0 + V) reads input channels base[k0 / V] + lane[k], all within V of the base.
struct Multiplied {
  std::vector<int32_t> lane;
  std::vector<int64_t> base;
  Multiplied(int64_t K, int64_t M, int V) : lane(static_cast<size_t>(K)), base(static_cast<size_t>(K / V + 1)) {
    for (int64_t k = 0, c = 0, q = 0; k < K; ++k) {  // c = k / M without a division
      if (k % V == 0) base[k / V] = c;
      lane[k] = static_cast<int32_t>(c - base[k / V]);
      if (++q == M) q = 0, ++c;
    }
  }
};

// One output pixel's depthwise row for a depth multiplier M > 1: per vector of V output channels and tap, one
// load of the V input channels from the block's base, a lane shuffle (each output lane picks its input channel)
// and one multiply-add; the last partial vector runs with scalars.
template <int V>
INLINE void depthwise_pixel_multiplied(const float* __restrict x, const float* __restrict w,
                                       const float* __restrict bias, float* __restrict row, const Geometry& g,
                                       const Taps& t, int64_t shift, int64_t act, const Multiplied& map) {
  using vec = typename Vec<V>::type;
  typedef int32_t lanes __attribute__((vector_size(sizeof(vec))));
  const int64_t C = g.channels, M = g.mult, K = g.depth;
  int64_t k = 0;
  for (; k + V <= K; k += V) {
    const int64_t base = map.base[k / V];
    lanes pick;
    std::memcpy(&pick, map.lane.data() + k, sizeof pick);
    vec a = bias ? Vec<V>::load(bias + k) : Vec<V>::splat(0.f);
    for (int64_t s = 0; s < t.count; ++s) {
      const float* xs = x + t.input[s] + shift + base;
      vec xv;
      if (base + V <= C) {
        xv = Vec<V>::load(xs);
      } else {  // the pixel's last channels: never read past them
        float tmp[V] = {};
        std::memcpy(tmp, xs, sizeof(float) * (C - base));
        xv = Vec<V>::load(tmp);
      }
      a += __builtin_shuffle(xv, pick) * Vec<V>::load(w + t.weight[s] + k);
    }
    Vec<V>::store(row + k, activate(a, act));
  }
  for (; k < K; ++k) {
    float a = bias ? bias[k] : 0.f;
    for (int64_t s = 0; s < t.count; ++s) a += x[t.input[s] + shift + k / M] * w[t.weight[s] + k];
    row[k] = activate(a, act);
  }
}

// One output pixel's depthwise row (depth values) from its taps, channels from c0 on; `shift` is added to the
// input offsets. The channels left after the last full vector run with half and quarter vectors, then scalars.
template <int V>
INLINE void depthwise_pixel(const float* __restrict x, const float* __restrict w, const float* __restrict bias,
                            float* __restrict row, const Geometry& g, const Taps& t, int64_t shift, int64_t act,
                            int64_t c0 = 0, const Multiplied* map = nullptr) {
  using vec = typename Vec<V>::type;
  const int64_t C = g.channels, M = g.mult, K = g.depth;
  if (M != 1) {  // depth multiplier: output channel k reads input channel k / M
    depthwise_pixel_multiplied<V>(x, w, bias, row, g, t, shift, act, *map);
    return;
  }
  int64_t c = c0;
  for (; c + 2 * V <= C; c += 2 * V) {
    vec a0 = bias ? Vec<V>::load(bias + c) : Vec<V>::splat(0.f);
    vec a1 = bias ? Vec<V>::load(bias + c + V) : Vec<V>::splat(0.f);
    for (int64_t s = 0; s < t.count; ++s) {
      const float* xs = x + t.input[s] + shift + c;
      const float* ws = w + t.weight[s] + c;
      a0 += Vec<V>::load(xs) * Vec<V>::load(ws);
      a1 += Vec<V>::load(xs + V) * Vec<V>::load(ws + V);
    }
    Vec<V>::store(row + c, activate(a0, act));
    Vec<V>::store(row + c + V, activate(a1, act));
  }
  for (; c + V <= C; c += V) {
    vec a0 = bias ? Vec<V>::load(bias + c) : Vec<V>::splat(0.f);
    for (int64_t s = 0; s < t.count; ++s)
      a0 += Vec<V>::load(x + t.input[s] + shift + c) * Vec<V>::load(w + t.weight[s] + c);
    Vec<V>::store(row + c, activate(a0, act));
  }
  if constexpr (V > 4) {
    if (c < C) depthwise_pixel<V / 2>(x, w, bias, row, g, t, shift, act, c);
    return;
  }
  for (; c < C; ++c) {
    float a = bias ? bias[c] : 0.f;
    for (int64_t s = 0; s < t.count; ++s) a += x[t.input[s] + shift + c] * w[t.weight[s] + c];
    row[c] = activate(a, act);
  }
}

// The next quad's last tap row (channels from c), read from memory for the first time there: asked one quad ahead
// (a prefetch past the end of the input is harmless: it never faults). `step`: the input offset between pixels.
INLINE void prefetch_next_quad(const float* x, const Taps& t, int64_t shift, int64_t step, int64_t c) {
  const float* ahead = x + t.input[t.count - 1] + shift + 4 * step + c;
  __builtin_prefetch(ahead);
  __builtin_prefetch(ahead + step);
  __builtin_prefetch(ahead + 2 * step);
  __builtin_prefetch(ahead + 3 * step);
}

// Four neighbouring interior pixels of one row at once (depth multiplier 1): each weight vector is loaded once
// for the four, which halves the loads per multiply-add of depthwise_pixel. `step` is the input offset between
// neighbours (stride * channels); rows of the output are `depth` apart. Channels from c0 on; the channels left
// after the last full vector run with half and quarter vectors, then scalars.
template <int V>
INLINE void depthwise_quad(const float* __restrict x, const float* __restrict w, const float* __restrict bias,
                           float* __restrict row, const Geometry& g, const Taps& t, int64_t shift, int64_t step,
                           int64_t act, int64_t c0 = 0) {
  using vec = typename Vec<V>::type;
  const int64_t C = g.channels, K = g.depth;
  int64_t c = c0;
  for (; c + V <= C; c += V) {
    const vec b = bias ? Vec<V>::load(bias + c) : Vec<V>::splat(0.f);
    vec a0 = b, a1 = b, a2 = b, a3 = b;
    prefetch_next_quad(x, t, shift, step, c);
    for (int64_t s = 0; s < t.count; ++s) {
      const vec wv = Vec<V>::load(w + t.weight[s] + c);
      const float* xs = x + t.input[s] + shift + c;
      a0 += Vec<V>::load(xs) * wv;
      a1 += Vec<V>::load(xs + step) * wv;
      a2 += Vec<V>::load(xs + 2 * step) * wv;
      a3 += Vec<V>::load(xs + 3 * step) * wv;
    }
    Vec<V>::store(row + c, activate(a0, act));
    Vec<V>::store(row + K + c, activate(a1, act));
    Vec<V>::store(row + 2 * K + c, activate(a2, act));
    Vec<V>::store(row + 3 * K + c, activate(a3, act));
  }
  if constexpr (V > 4) {
    if (c < C) depthwise_quad<V / 2>(x, w, bias, row, g, t, shift, step, act, c);
    return;
  }
  for (; c < C; ++c) {
    for (int64_t q = 0; q < 4; ++q) {
      float a = bias ? bias[c] : 0.f;
      for (int64_t s = 0; s < t.count; ++s) a += x[t.input[s] + shift + q * step + c] * w[t.weight[s] + c];
      row[q * K + c] = activate(a, act);
    }
  }
}

// depthwise_quad for the common kernel: 3 taps wide, no horizontal dilation, stride S = 1 or 2. Along each tap row
// the four pixels' 3 S + 3 input columns are loaded once each and feed every tap that reads them (stride 1: 6 loads
// for 12 multiply-adds, where depthwise_quad makes 12 and reads the tap offsets from memory); the 3 weights of the
// row stay in registers. Same order of the multiply-adds per output as depthwise_quad. The taps are those of the
// first pixel, row by row, 3 per row (interior pixels: all columns valid; rows outside the image left out).
template <int V, int S>
INLINE void depthwise_quad3(const float* __restrict x, const float* __restrict w, const float* __restrict bias,
                            float* __restrict row, const Geometry& g, const Taps& t, int64_t shift, int64_t act,
                            int64_t c0 = 0) {
  using vec = typename Vec<V>::type;
  const int64_t C = g.channels, K = g.depth, step = S * C;
  int64_t c = c0;
  for (; c + V <= C; c += V) {
    const vec b = bias ? Vec<V>::load(bias + c) : Vec<V>::splat(0.f);
    vec acc[4] = {b, b, b, b};
    prefetch_next_quad(x, t, shift, step, c);
    for (int64_t s = 0; s < t.count; s += 3) {
      const float* xs = x + t.input[s] + shift + c;
      const float* ws = w + t.weight[s] + c;
      const vec taps[3] = {Vec<V>::load(ws), Vec<V>::load(ws + K), Vec<V>::load(ws + 2 * K)};
#pragma GCC unroll 16
      for (int m = 0; m < 3 * S + 3; ++m) {  // input column m feeds pixel q through tap j = m - q S
        const vec in = Vec<V>::load(xs + m * C);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q)
          if (m - q * S >= 0 && m - q * S < 3) acc[q] += in * taps[m - q * S];
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) Vec<V>::store(row + q * K + c, activate(acc[q], act));
  }
  if constexpr (V > 4) {
    if (c < C) depthwise_quad3<V / 2, S>(x, w, bias, row, g, t, shift, act, c);
  } else if (c < C) {  // fewer channels than a vector left: depthwise_quad's scalars
    depthwise_quad<V>(x, w, bias, row, g, t, shift, step, act, c);
  }
}

// Depthwise output of pixels [p0, p1) (flattened over batch, out_h, out_w) into buf (p1 - p0, depth). Along a
// row, the pixels whose horizontal taps are all inside the image share one tap list, shifted per pixel, and run
// four at a time.
template <int V>
INLINE void depthwise_body(const float* __restrict x, const float* __restrict w, const float* __restrict bias,
                           float* __restrict buf, const Geometry& g, int64_t p0, int64_t p1, int64_t act) {
  const auto [lo, hi] = interior_columns(g);
  Taps edge, inner;
  std::optional<Multiplied> map;
  if (g.mult != 1) map.emplace(g.depth, g.mult, V);
  const Multiplied* multiplied = map ? &*map : nullptr;
  // depthwise_quad3 (with stride 1 or 2); measured on AVX2 hardware only, so AVX-512 keeps depthwise_quad until an
  // A/B on an AVX-512 machine says otherwise
  const bool three_taps = V <= 8 && g.kw == 3 && g.dw == 1;
  int64_t p = p0;
  while (p < p1) {
    const int64_t ow0 = p % g.out_w, t = p / g.out_w, oh = t % g.out_h, b = t / g.out_h;
    const int64_t row_end = std::min(p1, p + (g.out_w - ow0));
    bool have_inner = false;
    for (int64_t q = p; q < row_end; ++q) {
      const int64_t ow = ow0 + (q - p);
      float* row = buf + (q - p0) * g.depth;
      if (ow >= lo && ow <= hi) {
        if (!have_inner) {
          taps_of(g, b, oh, lo, inner);
          have_inner = true;
        }
        const int64_t shift = (ow - lo) * g.sw * g.channels;
        if (g.mult == 1 && ow + 3 <= hi && q + 3 < row_end) {
          if (three_taps && g.sw == 1)
            depthwise_quad3<V, 1>(x, w, bias, row, g, inner, shift, act);
          else if (three_taps && g.sw == 2)
            depthwise_quad3<V, 2>(x, w, bias, row, g, inner, shift, act);
          else
            depthwise_quad<V>(x, w, bias, row, g, inner, shift, g.sw * g.channels, act);
          q += 3;
        } else {
          depthwise_pixel<V>(x, w, bias, row, g, inner, shift, act, 0, multiplied);
        }
      } else {
        taps_of(g, b, oh, ow, edge);
        depthwise_pixel<V>(x, w, bias, row, g, edge, 0, act, 0, multiplied);
      }
    }
    p = row_end;
  }
}

// Element strides of a (B, C, H, W) tensor in any memory format.
struct Strides {
  int64_t b, c, h, w;
};

// The patches of output pixels [ow0, ow1) of output line (b, oh) of a standard conv (im2col) into buf
// (ow1 - ow0, kh * kw * C), taps in (i, j, c) order, zeros outside the image; x read through its strides. For the
// pixels the implicit im2col (conv_line) cannot take: those whose taps cross the border.
inline void patch_rows(const float* __restrict x, const Strides& st, float* __restrict buf, const Geometry& g,
                       int64_t b, int64_t oh, int64_t ow0, int64_t ow1) {
  const int64_t C = g.channels, K = g.kh * g.kw * C;
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    float* row = buf + (ow - ow0) * K;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ih = oh * g.sh - g.pad_top + i * g.dh;
      for (int64_t j = 0; j < g.kw; ++j, row += C) {
        const int64_t iw = ow * g.sw - g.pad_left + j * g.dw;
        if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) {
          std::memset(row, 0, sizeof(float) * C);
          continue;
        }
        const float* tap = x + b * st.b + ih * st.h + iw * st.w;
        for (int64_t c = 0; c < C; ++c) row[c] = tap[c * st.c];
      }
    }
  }
}

// One k of a register block: acc[n][r] += A[r][k] * Bp[k][n-th vector]. The panel streams from L2 (from 192 rows
// of K on AVX-512 it does not fit L1): its lines are asked for 16 rows ahead (the hardware prefetchers left the
// FMAs waiting on these loads; 1 and 2 threads, MobileNet's and Xception's layers: 0-15% faster, most from K =
// 512 on); past the panel's end, this is the next panel.
template <int V, int MR, int NV, bool Gather>
INLINE void fma_step(typename Vec<V>::type (&acc)[NV][MR], const float* __restrict A, int64_t lda,
                     const int64_t* __restrict off, const float* __restrict Bp, int64_t k) {
  using vec = typename Vec<V>::type;
  constexpr int NR = NV * V;
  vec b[NV];
#pragma GCC unroll 4
  for (int n = 0; n < NV; ++n) b[n] = Vec<V>::load(Bp + k * NR + n * V);
#pragma GCC unroll 4
  for (int l = 0; l < NR; l += 16) __builtin_prefetch(Bp + (k + 16) * NR + l);  // one per cache line
  const int64_t column = Gather ? off[k] : k;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    const vec a = Vec<V>::splat(A[r * lda + column]);
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) acc[n][r] += a * b[n];
  }
}

// C rows [0, MR) x one panel of NR = NV * V columns: C = act(A B + bias). A: (rows, K) row-major (lda = K).
// Bp: the panel, (K, NR) row-major. Columns beyond `cols` (the last panel's padding) are not stored. The
// accumulators start from the bias (bias is padded to the panels) and every loop over the rows is unrolled, so
// that they live in registers from the first multiply-add to the store.
//
// Gather = true reads row r's element k at A[r * lda + off[k]] instead of A[r * lda + k]: the rows of an implicit
// im2col (a standard conv's patches read in place from its input; off holds the taps' offsets), one more scalar
// load per k for the MR broadcasts.
template <int V, int MR, int NV, bool Gather = false>
INLINE void micro(const float* __restrict A, int64_t lda, const int64_t* __restrict off, int64_t K,
                  const float* __restrict Bp, const float* __restrict bias, float* __restrict C, int64_t ldc,
                  int64_t cols, int64_t act) {
  using vec = typename Vec<V>::type;
  constexpr int NR = NV * V;
  vec acc[NV][MR];
#pragma GCC unroll 4
  for (int n = 0; n < NV; ++n) {
    const vec b = Vec<V>::load(bias + n * V);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[n][r] = b;
  }
  int64_t k = 0;
  if constexpr (!Gather && MR > 4 && V <= 8) {
    // AVX2 and narrower: one prefetch per row of A every 16 k, 3 cache lines ahead (the panel's stream evicts A's
    // rows from L1), outside the k loop: a loop of 12 FMAs is short enough for its scalar work to matter (AVX2,
    // MobileNet v1, 1 and 2 threads: 1.3-1.9% faster than the AVX-512 scheme below)
    for (; k + 16 <= K; k += 16) {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) __builtin_prefetch(A + r * lda + k + 48);
      for (int64_t kk = k; kk < k + 16; ++kk) fma_step<V, MR, NV, Gather>(acc, A, lda, off, Bp, kk);
    }
  }
  int ahead_row = 0;
  for (; k < K; ++k) {
    // AVX-512: one row of A per k, each row every MR k, 3 cache lines ahead (1-11% per layer, A/B in one process,
    // 1 and 2 threads, batch 1 and 8, never slower; 2% faster than the AVX2 scheme above)
    if constexpr (!Gather && MR > 4 && V > 8) {
      __builtin_prefetch(A + ahead_row * lda + k + 48);
      ahead_row = ahead_row + 1 == MR ? 0 : ahead_row + 1;
    }
    fma_step<V, MR, NV, Gather>(acc, A, lda, off, Bp, k);
  }
  if (cols == NR) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int n = 0; n < NV; ++n) Vec<V>::store(C + r * ldc + n * V, activate(acc[n][r], act));
    return;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {  // unrolled too: indexing the accumulators here kept them all in memory, stored
    float tmp[NR];                 // before and after the loop on every call (1-3% of the K <= 256 layers' time)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) Vec<V>::store(tmp + n * V, activate(acc[n][r], act));
    std::memcpy(C + r * ldc, tmp, sizeof(float) * cols);
  }
}

// Rows [0, rows) of C against one panel, in register blocks of MR rows, then 8 (when MR > 8), 4, 2, 1; A's rows
// lda apart (and read through off when Gather, see micro).
template <int V, int MR, int NV, bool Gather = false>
INLINE void panel_rows(const float* __restrict A, int64_t lda, const int64_t* __restrict off, int64_t rows,
                       int64_t K, const float* __restrict panel, const float* __restrict bias, float* __restrict C,
                       int64_t N, int64_t cols, int64_t act) {
  int64_t r = 0;
  for (; r + MR <= rows; r += MR)
    micro<V, MR, NV, Gather>(A + r * lda, lda, off, K, panel, bias, C + r * N, N, cols, act);
  if constexpr (MR > 8)
    for (; r + 8 <= rows; r += 8) micro<V, 8, NV, Gather>(A + r * lda, lda, off, K, panel, bias, C + r * N, N, cols, act);
  if constexpr (MR > 4)
    for (; r + 4 <= rows; r += 4) micro<V, 4, NV, Gather>(A + r * lda, lda, off, K, panel, bias, C + r * N, N, cols, act);
  for (; r + 2 <= rows; r += 2) micro<V, 2, NV, Gather>(A + r * lda, lda, off, K, panel, bias, C + r * N, N, cols, act);
  for (; r < rows; ++r) micro<V, 1, NV, Gather>(A + r * lda, lda, off, K, panel, bias, C + r * N, N, cols, act);
}

// Panel pn of a GEMM with N output columns on panels of NR = NV * V columns, all full but the last: C's columns
// of that panel for `rows` rows of A (lda apart, read through off when Gather). Bp holds the panels one after the
// other, (K, NR) each; the last one is packed half as wide where the columns left fit in half a panel (NV even),
// so that its padding is not multiplied (Xception's 728 channels on 64 columns: 736 columns instead of 768).
constexpr bool has_half_tail(int NV) { return NV % 2 == 0; }

// The half-width last panel, in a function of its own: inlined next to the main register blocks, its own blocks
// (14 x 1 on AVX-512) kept accumulators on the stack, loaded and stored every k (GCC's register allocation).
#define SEPCONV_TAIL_ROWS(TARGET, V)                                                                            \
  template <int MR, int NV, bool Gather>                                                                        \
  TARGET __attribute__((noinline)) void tail_rows_##V(const float* A, int64_t lda, const int64_t* off,           \
                                                       int64_t rows, int64_t K, const float* panel,              \
                                                       const float* bias, float* C, int64_t N, int64_t cols,     \
                                                       int64_t act) {                                            \
    panel_rows<V, MR, NV, Gather>(A, lda, off, rows, K, panel, bias, C, N, cols, act);                            \
  }
#define SEPCONV_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#if defined(__x86_64__)
SEPCONV_TAIL_ROWS(SEPCONV_AVX512, 16)
SEPCONV_TAIL_ROWS(__attribute__((target("avx2,fma"))), 8)
#endif
SEPCONV_TAIL_ROWS(, 4)

template <int V, int MR, int NV, bool Gather>
INLINE void tail_rows(const float* A, int64_t lda, const int64_t* off, int64_t rows, int64_t K, const float* panel,
                      const float* bias, float* C, int64_t N, int64_t cols, int64_t act) {
#if defined(__x86_64__)
  if constexpr (V == 16) return tail_rows_16<MR, NV, Gather>(A, lda, off, rows, K, panel, bias, C, N, cols, act);
  if constexpr (V == 8) return tail_rows_8<MR, NV, Gather>(A, lda, off, rows, K, panel, bias, C, N, cols, act);
#endif
  if constexpr (V == 4) return tail_rows_4<MR, NV, Gather>(A, lda, off, rows, K, panel, bias, C, N, cols, act);
}

template <int V, int MR, int NV, bool Gather = false>
INLINE void panel_of(const float* __restrict A, int64_t lda, const int64_t* __restrict off, int64_t rows,
                     int64_t K, const float* __restrict Bp, const float* __restrict bias, float* __restrict C,
                     int64_t ldc, int64_t N, int64_t pn, int64_t act) {
  constexpr int64_t NR = NV * V;
  const int64_t cols = std::min<int64_t>(NR, N - pn * NR);
  if constexpr (has_half_tail(NV)) {
    if (cols <= NR / 2) {
      tail_rows<V, MR, NV / 2, Gather>(A, lda, off, rows, K, Bp + pn * K * NR, bias + pn * NR, C + pn * NR, ldc,
                                       cols, act);
      return;
    }
  }
  panel_rows<V, MR, NV, Gather>(A, lda, off, rows, K, Bp + pn * K * NR, bias + pn * NR, C + pn * NR, ldc, cols,
                                act);
}

// C (rows, N) = act(A (rows, K) B + bias), C's rows `ldc` apart; Bp: the packed panels (see panel_of), bias: zeros
// past N. Small weights (up to 32 KiB, resident in L1): row blocks outside, so that each output row is written
// whole while in cache; larger weights: panels outside, so that each panel stays in cache for all the rows of the
// tile.
template <int V, int MR, int NV>
INLINE void gemm_body(const float* __restrict A, int64_t rows, int64_t K, const float* __restrict Bp,
                      const float* __restrict bias, float* __restrict C, int64_t N, int64_t ldc, int64_t act) {
  const int64_t NR = NV * V, panels = (N + NR - 1) / NR;
  if (panels * K * NR * 4 <= 32 * 1024) {
    for (int64_t r0 = 0; r0 < rows; r0 += MR) {
      const int64_t block = std::min<int64_t>(MR, rows - r0);
      for (int64_t pn = 0; pn < panels; ++pn)
        panel_of<V, MR, NV>(A + r0 * K, K, nullptr, block, K, Bp, bias, C + r0 * ldc, ldc, N, pn, act);
    }
    return;
  }
  for (int64_t pn = 0; pn < panels; ++pn) panel_of<V, MR, NV>(A, K, nullptr, rows, K, Bp, bias, C, ldc, N, pn, act);
}

// count neighbouring output pixels of a standard conv whose taps are all inside the image, straight from the
// input: pixel r's patch element k is x[r * step + off[k]] (an implicit im2col). C: their rows, N apart; Bp and
// bias as for gemm_body. Row blocks outside, so that each output row is written whole while in cache.
template <int V, int MR, int NV>
INLINE void conv_line_body(const float* __restrict x, int64_t step, const int64_t* __restrict off, int64_t count,
                           int64_t K, const float* __restrict Bp, const float* __restrict bias, float* __restrict C,
                           int64_t N, int64_t act) {
  const int64_t NR = NV * V, panels = (N + NR - 1) / NR;
  for (int64_t r0 = 0; r0 < count; r0 += MR) {
    const int64_t block = std::min<int64_t>(MR, count - r0);
    for (int64_t pn = 0; pn < panels; ++pn)
      panel_of<V, MR, NV, true>(x + r0 * step, step, off, block, K, Bp, bias, C + r0 * N, N, N, pn, act);
  }
}

// Where the lanes of v (as int32 bits) are NaN: -1, else 0. Integer arithmetic only: GCC lowers a vector select
// on a float comparison other than a plain maximum (`v > m ? v : m`) to one comparison per lane in these
// templates, which made the pooling 40x slower (a comparison's mask alone, `v != v`, compiles to one vector
// compare: the taps use it). NaN: |bits| > 0x7f800000, so 0x7f800000 - |bits| < 0.
// (A macro: a template taking the local vector typedef deduced a scalar.)
#define SEPCONV_NAN_LANES(bits) ((0x7f800000 - ((bits) & 0x7fffffff)) >> 31)

// Max pooling of output pixels [p0, p1) into out (p1 - p0, C): per pixel, the maximum over its taps inside the
// image (zero taps: -inf), vectors of V channels then scalars. A NaN tap makes the output NaN, as in torch.
template <int V>
INLINE void max_pool_body(const float* __restrict x, float* __restrict out, const Geometry& g, int64_t p0,
                          int64_t p1) {
  using vec = typename Vec<V>::type;
  typedef int32_t lanes __attribute__((vector_size(sizeof(vec))));
  const int64_t C = g.channels;
  Taps t;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t ow = p % g.out_w, r = p / g.out_w, oh = r % g.out_h, b = r / g.out_h;
    taps_of(g, b, oh, ow, t);
    float* row = out + (p - p0) * C;
    if (t.count == 0) {
      std::fill(row, row + C, -std::numeric_limits<float>::infinity());
      continue;
    }
    int64_t c = 0;
    for (; c + V <= C; c += V) {  // the maximum, and apart the OR of the NaN taps' bits, which wins where any
      vec m = Vec<V>::load(x + t.input[0] + c);
      lanes nan = reinterpret_cast<lanes>(m) & reinterpret_cast<lanes>(m != m);
      for (int64_t s = 1; s < t.count; ++s) {
        const vec v = Vec<V>::load(x + t.input[s] + c);
        m = v > m ? v : m;
        nan |= reinterpret_cast<lanes>(v) & reinterpret_cast<lanes>(v != v);
      }
      const lanes any = SEPCONV_NAN_LANES(nan);
      Vec<V>::store(row + c, reinterpret_cast<vec>((reinterpret_cast<lanes>(m) & ~any) | nan));
    }
    for (; c < C; ++c) {
      float m = x[t.input[0] + c];
      for (int64_t s = 1; s < t.count; ++s) {
        const float v = x[t.input[s] + c];
        m = (v > m || v != v) ? v : m;
      }
      row[c] = m;
    }
  }
}

// The GEMMs of one register tile: MR rows x NV vectors of V floats.
#define SEPCONV_GEMMS(TARGET, SUFFIX, V, MR, NV)                                                                 \
  constexpr int64_t panel_##SUFFIX = NV * V;                                                                     \
  constexpr bool half_tail_##SUFFIX = has_half_tail(NV);                                                         \
  TARGET void gemm_##SUFFIX(const float* A, int64_t rows, int64_t K, const float* Bp, const float* bias,         \
                            float* C, int64_t N, int64_t ldc, int64_t act) {                                     \
    gemm_body<V, MR, NV>(A, rows, K, Bp, bias, C, N, ldc, act);                                                 \
  }                                                                                                              \
  TARGET void conv_line_##SUFFIX(const float* x, int64_t step, const int64_t* off, int64_t count, int64_t K,     \
                                 const float* Bp, const float* bias, float* C, int64_t N, int64_t act) {         \
    conv_line_body<V, MR, NV>(x, step, off, count, K, Bp, bias, C, N, act);                                     \
  }

#define SEPCONV_VARIANTS(TARGET, SUFFIX, V, MR)                                                                  \
  TARGET void depthwise_##SUFFIX(const float* x, const float* w, const float* bias, float* buf,                 \
                                 const Geometry& g, int64_t p0, int64_t p1, int64_t act) {                      \
    depthwise_body<V>(x, w, bias, buf, g, p0, p1, act);                                                         \
  }                                                                                                              \
  TARGET void max_pool_##SUFFIX(const float* x, float* out, const Geometry& g, int64_t p0, int64_t p1) {        \
    max_pool_body<V>(x, out, g, p0, p1);                                                                         \
  }                                                                                                              \
  SEPCONV_GEMMS(TARGET, SUFFIX, V, MR, 2)

// Rows per register block (MR): with 2V columns, 2 * MR accumulators. AVX-512 has 32 vector registers: 14 rows
// (28 accumulators, 2 weight vectors, 1 broadcast) load the weight panel 14/8 times less often than 8 rows (1
// thread, MobileNet v1's separable layers at batch 1: 4.14 -> 3.99 ms in all); AVX2 has 16: 6 rows.
// The wide variant (`_wide`, AVX-512) is 6 rows x 4 vectors (64 columns): a broadcast feeds 4 FMAs instead of
// 2, 10 loads per 24 FMAs instead of 16 per 28. The caller picks it where the output channels fill the wider
// panels (kernel.py, gemm_variant): in the model, A/B in one process: MobileNet v1 1.02-1.11x (1 and 2 threads,
// batch 1 and 8), per layer up to 1.2x at K = 512-1024. 7 x 4 (28 accumulators, 4 weight vectors and a broadcast:
// one register short) kept one accumulator on the stack, loaded and stored every k: 1-2% slower than 6 x 4. AVX2
// had a 4 x 3 variant (24 columns), 1.04-1.08x on MobileNet v1 on an AVX-512 Intel core limited to AVX2, but on
// real AVX2 hardware (AMD EPYC, Zen 3) 6 x 2 was the faster one: MobileNet v1 1.01-1.05x, Xception 1.02-1.06x, per
// layer up to 1.14x (1 and 2 threads, batch 1 and 8); it was removed.
#if defined(__x86_64__)
SEPCONV_VARIANTS(SEPCONV_AVX512, avx512, 16, 14)
SEPCONV_GEMMS(SEPCONV_AVX512, avx512_wide, 16, 6, 4)
SEPCONV_VARIANTS(__attribute__((target("avx2,fma"))), avx2, 8, 6)
#endif
SEPCONV_VARIANTS(, generic, 4, 4)

using DepthwiseFn = void (*)(const float*, const float*, const float*, float*, const Geometry&, int64_t, int64_t,
                             int64_t);
using GemmFn = void (*)(const float*, int64_t, int64_t, const float*, const float*, float*, int64_t, int64_t,
                       int64_t);

using ConvLineFn = void (*)(const float*, int64_t, const int64_t*, int64_t, int64_t, const float*, const float*,
                           float*, int64_t, int64_t);

using MaxPoolFn = void (*)(const float*, float*, const Geometry&, int64_t, int64_t);

struct Kernels {
  DepthwiseFn depthwise;
  GemmFn gemm;
  ConvLineFn conv_line;
  MaxPoolFn max_pool;
  int64_t panel;    // NR, the pointwise weights' panel width
  bool half_tail;   // whether a last panel of at most NR / 2 columns is packed half as wide (panel_of)
};

// isa: 2 = AVX-512, 1 = AVX2+FMA, 0 = baseline, 3: AVX-512 with the wide GEMM; the caller checks what the CPU
// supports.
Kernels kernels_for(int64_t isa) {
#if defined(__x86_64__)
  if (isa == 2)
    return {depthwise_avx512, gemm_avx512, conv_line_avx512, max_pool_avx512, panel_avx512, half_tail_avx512};
  if (isa == 1) return {depthwise_avx2, gemm_avx2, conv_line_avx2, max_pool_avx2, panel_avx2, half_tail_avx2};
  if (isa == 3)
    return {depthwise_avx512, gemm_avx512_wide, conv_line_avx512_wide, max_pool_avx512, panel_avx512_wide,
            half_tail_avx512_wide};
#endif
  return {depthwise_generic, gemm_generic, conv_line_generic, max_pool_generic, panel_generic, half_tail_generic};
}

// The columns the weights of N output channels take once packed for k's GEMM (panel_of): whole panels, the last
// one half as wide where what is left fits in half a panel.
int64_t packed_columns(const Kernels& k, int64_t N) {
  const int64_t full = N / k.panel * k.panel, rest = N - full;
  return full + (rest == 0 ? 0 : k.half_tail && 2 * rest <= k.panel ? k.panel / 2 : k.panel);
}

// The chunks [front, back) of one thread's share of a split, packed in one atomic (front in the high 32 bits): the
// owner takes chunks from the front, the other threads steal from the back, and neither takes one twice.
struct alignas(64) Share {
  std::atomic<uint64_t> span{0};
  static constexpr uint64_t kLow = 0xffffffffu;
  int64_t take(bool front) {
    uint64_t v = span.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t f = v >> 32, b = v & kLow;
      if (f >= b) return -1;
      const uint64_t next = front ? ((f + 1) << 32) | b : (f << 32) | (b - 1);
      if (span.compare_exchange_weak(v, next, std::memory_order_relaxed))
        return static_cast<int64_t>(front ? f : b - 1);
    }
  }
};

// Calls f(i0, i1) on the chunks [i0, i1) of [0, n), `grain` long, on the threads of at::parallel_for: each thread
// first runs its static share in order (the share at::parallel_for would give it, so that a layer's thread reads
// what the same thread wrote in the layer before, from its own cache), then steals the chunks left at the back of
// the other shares. A thread slowed down by another tenant on its core no longer holds the others up (two threads
// on this shared host, A/B in one process: MobileNet v1 at batch 8 1.06x, Xception 1.04x; batch 1 and one thread
// unchanged; a split that handed out every chunk dynamically lost 2-3% at batch 1 to the cache misses of the
// cross-core reads). One thread (or a call from inside a parallel region) runs it all.
template <typename F>
void dynamic_for(int64_t n, int64_t grain, const F& f) {
  if (n <= 0) return;
  const int64_t chunks = (n + grain - 1) / grain;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1 || at::in_parallel_region() || chunks > static_cast<int64_t>(Share::kLow)) {
    f(0, n);
    return;
  }
  std::vector<Share> shares(static_cast<size_t>(threads));
  const int64_t per = (chunks + threads - 1) / threads;
  for (int64_t t = 0; t < threads; ++t) {
    const auto f0 = static_cast<uint64_t>(std::min(chunks, t * per));
    const auto b0 = static_cast<uint64_t>(std::min(chunks, (t + 1) * per));
    shares[t].span.store((f0 << 32) | b0, std::memory_order_relaxed);
  }
  at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t) {
    const auto run = [&](int64_t c) { f(c * grain, std::min(n, (c + 1) * grain)); };
    for (int64_t c; (c = shares[t0].take(true)) >= 0;) run(c);
    for (int64_t u = 1; u < threads; ++u)
      for (int64_t c; (c = shares[(t0 + u) % threads].take(false)) >= 0;) run(c);
  });
}

// A per-thread scratch buffer of at least `floats` floats, kept between calls (no allocation per call or chunk).
float* scratch(int64_t floats) {
  static thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
}

// Whether to compute the whole depthwise output first and then split the GEMM by output channels (panels outer,
// every panel read once for all the pixels), rather than tile by tile. It pays when the depthwise output fits L2
// (up to 1 MiB) and the pointwise weights are large: with several threads from 512 KiB (a split by pixels has
// every thread read all the weights from L3 once per tile of its own; 2 threads, batch 1, MobileNet's 512-1024
// channel layers: 1.12-1.27x faster), with one thread from 2 MiB, weights that no longer stay in L2 from one tile
// to the next (1 thread, batch 1, 1024 -> 1024 at 7x7: 0.94 -> 0.63 ms; 512 -> 1024 at 14x14 stride 2: 0.39 ->
// 0.35 ms). The tests run both (test_large_channel_counts_and_batch_one).
bool by_columns(const Geometry& g, int64_t P, int64_t N, int64_t panels, int64_t work) {
  const int64_t threads = at::get_num_threads();
  const int64_t weight_bytes = g.depth * N * 4;
  return work >= (1 << 18) && panels >= 2 * threads && P * g.depth * 4 <= (1 << 20) &&
         weight_bytes >= (threads > 1 ? (1 << 19) : (1 << 21));
}

// The output tensor: a new view of `spare`'s memory when nothing else holds that memory any more (the caller has
// dropped the previous output), else freshly allocated. Reusing warm memory saves the page faults of a large
// allocation on every call (one per 4 KiB page), which cost as much as the convolution at batch 8. The check and
// the new view happen under a lock, so that two threads never get the same memory.
at::Tensor output_for(const std::optional<at::Tensor>& spare, at::IntArrayRef sizes, const at::TensorOptions& opts) {
  static std::mutex lock;
  if (spare.has_value() && spare->defined() && spare->sizes() == sizes && spare->dtype() == opts.dtype() &&
      spare->is_contiguous(at::MemoryFormat::ChannelsLast)) {
    std::lock_guard<std::mutex> guard(lock);
    if (spare->storage().use_count() == 1) return spare->as_strided(spare->sizes(), spare->strides());
  }
  return at::empty(sizes, opts, at::MemoryFormat::ChannelsLast);
}

const float* data_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<float>() : nullptr;
}

// x: (B, C, H, W) float32, any memory format (copied to channels_last if it is not). dw_w: (kh * kw, C * mult)
// contiguous. pw_packed: the panels of the isa's GEMM (panel_of; packed_columns(N) columns of K rows, kernel.py's
// _pack); pw_b: packed_columns(N) values, zeros past N. Returns (B, N, OH, OW) channels_last.
// geometry = [mult, kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w, N].
at::Tensor separable(const at::Tensor& x_any, const at::Tensor& dw_w, const std::optional<at::Tensor>& dw_b,
                     const at::Tensor& pw_packed, const at::Tensor& pw_b, at::IntArrayRef geometry, int64_t act_mid,
                     int64_t act_out, int64_t isa, int64_t tile, const std::optional<at::Tensor>& spare) {
  RECORD_FUNCTION("sepconv_native::separable", std::vector<c10::IValue>());  // seen by torch.profiler
  TORCH_CHECK(x_any.dim() == 4 && x_any.scalar_type() == at::kFloat,
              "sepconv native: x must be a float32 (B, C, H, W) tensor");
  const at::Tensor x = x_any.contiguous(at::MemoryFormat::ChannelsLast);  // no copy when it already is
  TORCH_CHECK(geometry.size() == 12 && tile > 0, "sepconv native: geometry needs 12 values and tile > 0");
  Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), geometry[0], x.size(1) * geometry[0],
             geometry[1], geometry[2], geometry[3], geometry[4], geometry[5], geometry[6],
             geometry[7], geometry[8], geometry[9], geometry[10]};
  const int64_t N = geometry[11], P = g.batch * g.out_h * g.out_w;
  const Kernels k = kernels_for(isa);
  const int64_t panels = (N + k.panel - 1) / k.panel, columns = packed_columns(k, N);
  TORCH_CHECK(g.kh * g.kw <= 64, "sepconv native: at most 64 taps");
  TORCH_CHECK(dw_w.is_contiguous() && dw_w.numel() == g.kh * g.kw * g.depth, "sepconv native: depthwise weight");
  TORCH_CHECK(pw_packed.is_contiguous() && pw_packed.numel() == columns * g.depth && pw_b.is_contiguous() &&
                  pw_b.numel() == columns,
              "sepconv native: pointwise weights not packed for this isa");
  at::Tensor out = output_for(spare, {g.batch, N, g.out_h, g.out_w}, x.options());
  if (P == 0 || N == 0) return out;
  const float *xp = x.data_ptr<float>(), *dwp = dw_w.data_ptr<float>(), *dwb = data_or_null(dw_b);
  const float *pwp = pw_packed.data_ptr<float>(), *pwb = pw_b.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t tiles = (P + tile - 1) / tile;
  // below about 256k multiply-adds, waking other threads costs more than the work: one thread does it all
  const int64_t work = P * g.depth * (g.kh * g.kw + N);
  if (by_columns(g, P, N, panels, work)) {  // the whole depthwise output, then the output channels split
    static thread_local std::vector<float> whole;  // the calling thread's, kept: no page faults per call
    whole.resize(static_cast<size_t>(P * g.depth));
    float* buf = whole.data();
    dynamic_for(P, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.depth * g.kh * g.kw)),
                [&](int64_t p0, int64_t p1) { k.depthwise(xp, dwp, dwb, buf + p0 * g.depth, g, p0, p1, act_mid); });
    dynamic_for(panels, 1, [&](int64_t n0, int64_t n1) {
      const int64_t c0 = n0 * k.panel, cols = std::min(N, n1 * k.panel) - c0;
      k.gemm(buf, P, g.depth, pwp + n0 * g.depth * k.panel, pwb + c0, op + c0, cols, N, act_out);
    });
    return out;
  }
  const auto tiles_from = [&](int64_t t0, int64_t t1) {
    float* buf = scratch(tile * g.depth);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p0 = t * tile, p1 = std::min(P, p0 + tile);
      k.depthwise(xp, dwp, dwb, buf, g, p0, p1, act_mid);
      k.gemm(buf, p1 - p0, g.depth, pwp, pwb, op + p0 * N, N, N, act_out);
    }
  };
  if (work < (1 << 18))
    tiles_from(0, tiles);
  else
    dynamic_for(tiles, 1, tiles_from);
  return out;
}

// The depthwise step alone (bias and activation fused): x (B, C, H, W), any format -> (B, C * mult, OH, OW)
// channels_last. geometry as for separable (its last value, N, is ignored).
at::Tensor depthwise(const at::Tensor& x_any, const at::Tensor& dw_w, const std::optional<at::Tensor>& dw_b,
                     at::IntArrayRef geometry, int64_t act, int64_t isa, const std::optional<at::Tensor>& spare) {
  RECORD_FUNCTION("sepconv_native::depthwise", std::vector<c10::IValue>());  // seen by torch.profiler
  TORCH_CHECK(x_any.dim() == 4 && x_any.scalar_type() == at::kFloat,
              "sepconv native: x must be a float32 (B, C, H, W) tensor");
  const at::Tensor x = x_any.contiguous(at::MemoryFormat::ChannelsLast);  // no copy when it already is
  TORCH_CHECK(geometry.size() == 12, "sepconv native: geometry needs 12 values");
  Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), geometry[0], x.size(1) * geometry[0],
             geometry[1], geometry[2], geometry[3], geometry[4], geometry[5], geometry[6],
             geometry[7], geometry[8], geometry[9], geometry[10]};
  TORCH_CHECK(g.kh * g.kw <= 64, "sepconv native: at most 64 taps");
  TORCH_CHECK(dw_w.is_contiguous() && dw_w.numel() == g.kh * g.kw * g.depth, "sepconv native: depthwise weight");
  at::Tensor out = output_for(spare, {g.batch, g.depth, g.out_h, g.out_w}, x.options());
  const int64_t P = g.batch * g.out_h * g.out_w;
  if (P == 0 || g.depth == 0) return out;
  const Kernels k = kernels_for(isa);
  const float *xp = x.data_ptr<float>(), *dwp = dw_w.data_ptr<float>(), *dwb = data_or_null(dw_b);
  float* op = out.data_ptr<float>();
  dynamic_for(P, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.depth * g.kh * g.kw)),
              [&](int64_t p0, int64_t p1) { k.depthwise(xp, dwp, dwb, op + p0 * g.depth, g, p0, p1, act); });
  return out;
}

// A standard conv (groups 1) with its activation: x (B, C, H, W) float32, any memory format (read in place
// through its strides: a network's (B, 3, H, W) input needs no layout copy) -> (B, N, OH, OW) channels_last.
// Line by line of output pixels, the GEMM of the separable kernel multiplies the pixels' patches by the prepacked
// weights (panel_of's panels of kh * kw * C rows), bias and activation in registers: the patches of the pixels
// whose taps are all inside the image are read straight from the input (conv_line, an implicit im2col), the others
// are gathered with their zeros into a per-thread buffer first (patch_rows). For convs with few input channels (a
// network's stem), where oneDNN's direct kernels run far below the FMA rate. geometry as for separable (its first
// value, the depth multiplier, must be 1).
at::Tensor dense(const at::Tensor& x, const at::Tensor& w_packed, const at::Tensor& bias, at::IntArrayRef geometry,
                 int64_t act, int64_t isa, const std::optional<at::Tensor>& spare) {
  RECORD_FUNCTION("sepconv_native::dense", std::vector<c10::IValue>());  // seen by torch.profiler
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == at::kFloat, "sepconv native: x must be a float32 (B, C, H, W) tensor");
  TORCH_CHECK(geometry.size() == 12 && geometry[0] == 1, "sepconv native: geometry needs 12 values, multiplier 1");
  TORCH_CHECK(x.stride(0) >= 0 && x.stride(1) >= 0 && x.stride(2) >= 0 && x.stride(3) >= 0,
              "sepconv native: negative strides");
  Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), 1, x.size(1), geometry[1], geometry[2], geometry[3],
             geometry[4], geometry[5], geometry[6], geometry[7], geometry[8], geometry[9], geometry[10]};
  const int64_t N = geometry[11], K = g.kh * g.kw * g.channels;
  const Kernels k = kernels_for(isa);
  const int64_t columns = packed_columns(k, N);
  TORCH_CHECK(w_packed.is_contiguous() && w_packed.numel() == columns * K && bias.is_contiguous() &&
                  bias.numel() == columns,
              "sepconv native: conv weights not packed for this isa");
  at::Tensor out = output_for(spare, {g.batch, N, g.out_h, g.out_w}, x.options());
  const int64_t lines = g.batch * g.out_h;
  if (lines * g.out_w == 0 || N == 0) return out;
  const Strides st{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  std::vector<int64_t> off(static_cast<size_t>(K));  // patch element (i, j, c) -> offset from the patch's corner
  for (int64_t i = 0, q = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j)
      for (int64_t c = 0; c < g.channels; ++c) off[q++] = i * g.dh * st.h + j * g.dw * st.w + c * st.c;
  const auto [lo, hi] = interior_columns(g);
  const float *xp = x.data_ptr<float>(), *wp = w_packed.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const auto gathered = [&](float* buf, int64_t b, int64_t oh, int64_t ow0, int64_t ow1) {
    if (ow1 <= ow0) return;
    patch_rows(xp, st, buf, g, b, oh, ow0, ow1);
    k.gemm(buf, ow1 - ow0, K, wp, bp, op + ((b * g.out_h + oh) * g.out_w + ow0) * N, N, N, act);
  };
  const auto lines_from = [&](int64_t l0, int64_t l1) {
    float* buf = scratch(g.out_w * K);
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t b = l / g.out_h, oh = l % g.out_h, ih0 = oh * g.sh - g.pad_top;
      if (ih0 < 0 || ih0 + (g.kh - 1) * g.dh >= g.height || hi < lo) {
        gathered(buf, b, oh, 0, g.out_w);
        continue;
      }
      gathered(buf, b, oh, 0, lo);
      const float* corner = xp + b * st.b + ih0 * st.h + (lo * g.sw - g.pad_left) * st.w;
      k.conv_line(corner, g.sw * st.w, off.data(), hi + 1 - lo, K, wp, bp, op + (l * g.out_w + lo) * N, N, act);
      gathered(buf, b, oh, hi + 1, g.out_w);
    }
  };
  const int64_t line_work = g.out_w * K * N;  // below about 256k multiply-adds in all, one thread does it all
  if (lines * line_work < (1 << 18))
    lines_from(0, lines);
  else
    dynamic_for(lines, std::max<int64_t>(1, (1 << 16) / line_work), lines_from);
  return out;
}

// Max pooling, any window, stride, dilation and zero-or-more padding (padded taps never win, as with torch's
// -inf padding): x (B, C, H, W) float32, any format -> (B, C, OH, OW) channels_last. geometry as for separable
// (multiplier and N ignored). PyTorch's channels_last max pooling ran at a third of this speed (Xception's 3x3
// stride-2 'same' pooling of 128 x 147 x 147, 2 threads: 0.60 ms against ONNX Runtime's 0.21).
at::Tensor max_pool(const at::Tensor& x_any, at::IntArrayRef geometry, int64_t isa) {
  RECORD_FUNCTION("sepconv_native::max_pool", std::vector<c10::IValue>());  // seen by torch.profiler
  TORCH_CHECK(x_any.dim() == 4 && x_any.scalar_type() == at::kFloat,
              "sepconv native: x must be a float32 (B, C, H, W) tensor");
  TORCH_CHECK(geometry.size() == 12, "sepconv native: geometry needs 12 values");
  const at::Tensor x = x_any.contiguous(at::MemoryFormat::ChannelsLast);
  Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), 1, x.size(1), geometry[1], geometry[2], geometry[3],
             geometry[4], geometry[5], geometry[6], geometry[7], geometry[8], geometry[9], geometry[10]};
  TORCH_CHECK(g.kh * g.kw <= 64, "sepconv native: at most 64 taps");
  at::Tensor out = at::empty({g.batch, g.channels, g.out_h, g.out_w}, x.options(), at::MemoryFormat::ChannelsLast);
  const int64_t P = g.batch * g.out_h * g.out_w;
  if (P == 0 || g.channels == 0) return out;
  const Kernels k = kernels_for(isa);
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  dynamic_for(P, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.channels * g.kh * g.kw)),
              [&](int64_t p0, int64_t p1) { k.max_pool(xp, op + p0 * g.channels, g, p0, p1); });
  return out;
}

// Test support for dynamic_for: how often each index of [0, n) was handed out (each must be once) and how many
// chunks each thread ran, with the first thread slowed down by `delay_us` per chunk, so that the others steal.
std::pair<std::vector<int64_t>, std::vector<int64_t>> dynamic_for_coverage(int64_t n, int64_t grain,
                                                                          int64_t delay_us) {
  std::vector<std::atomic<int64_t>> seen(static_cast<size_t>(n));
  std::vector<std::atomic<int64_t>> ran(static_cast<size_t>(std::max(1, at::get_num_threads())));
  dynamic_for(n, grain, [&](int64_t i0, int64_t i1) {
    const int thread = at::get_thread_num();
    if (thread == 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    ran[static_cast<size_t>(thread)]++;
    for (int64_t i = i0; i < i1; ++i) seen[static_cast<size_t>(i)]++;
  });
  std::vector<int64_t> counts(seen.begin(), seen.end()), chunks(ran.begin(), ran.end());
  return {counts, chunks};
}

// Another tensor on t's memory that is not a view of t (a view would keep t itself alive): what a plan keeps
// as the spare of its outputs.
at::Tensor alias(const at::Tensor& t) {
  return at::empty({0}, t.options()).set_(t.storage(), t.storage_offset(), t.sizes(), t.strides());
}

// The panel width NR the kernels of `isa` expect, and the columns N output channels take once packed (panel_of).
int64_t panel_width(int64_t isa) { return kernels_for(isa).panel; }
int64_t columns_for(int64_t isa, int64_t n) { return packed_columns(kernels_for(isa), n); }

}  // namespace

TORCH_LIBRARY(sepconv_native, m) {
  m.def("separable(Tensor x, Tensor dw_w, Tensor? dw_b, Tensor pw_packed, Tensor pw_b, int[] geometry, "
        "int act_mid, int act_out, int isa, int tile, Tensor? spare=None) -> Tensor");
  m.impl("separable", c10::DispatchKey::CPU, TORCH_FN(separable));
  m.def("depthwise(Tensor x, Tensor dw_w, Tensor? dw_b, int[] geometry, int act, int isa, Tensor? spare=None) "
        "-> Tensor");
  m.impl("depthwise", c10::DispatchKey::CPU, TORCH_FN(depthwise));
  m.def("dense(Tensor x, Tensor w_packed, Tensor bias, int[] geometry, int act, int isa, Tensor? spare=None) "
        "-> Tensor");
  m.impl("dense", c10::DispatchKey::CPU, TORCH_FN(dense));
  m.def("max_pool(Tensor x, int[] geometry, int isa) -> Tensor");
  m.impl("max_pool", c10::DispatchKey::CPU, TORCH_FN(max_pool));
  m.def("panel_width(int isa) -> int", TORCH_FN(panel_width));
  m.def("alias(Tensor t) -> Tensor");
  m.impl("alias", c10::DispatchKey::CPU, TORCH_FN(alias));
}

// The same entry points as direct Python calls (the extension is also a Python module): the dispatcher's argument
// parsing of torch.ops costs about 2.4 us of the 7.4 us of a small layer's call; sepconv's Python code calls these,
// and the tickets' check (ticket_check.cpp).
void register_ticket_check(pybind11::module_& m);  // ticket_check.cpp

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  register_ticket_check(m);
  // the GIL released while the kernels run (they touch no Python object), as torch.ops does: other Python threads
  // (a server running two requests at once) go on meanwhile
  using released = pybind11::call_guard<pybind11::gil_scoped_release>;
  m.def("separable", &separable, released());
  m.def("depthwise", &depthwise, released());
  m.def("dense", &dense, released());
  m.def("max_pool", &max_pool, released());
  m.def("panel_width", &panel_width);
  m.def("packed_columns", &columns_for);
  m.def("alias", &alias);
  m.def("dynamic_for_coverage", &dynamic_for_coverage);
}
