// Pieces shared by the compiled LSTM scans (diagonal_scan.cpp, row_scan.cpp): the fused,
// vectorized LSTM cell update and its backward (PixelRNN Eq. 3), row addressing, and one
// matrix product helper. Header-only, in an anonymous namespace: each scan's translation unit
// gets its own copy (they are small templates).

#pragma once

#include <ATen/ATen.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

namespace {

using at::Tensor;
using at::vec::Vectorized;

// sigma(x) = 1 / (1 + exp(-x)) with ATen's fast vector exp (exp_u20: at most 20 ulp in
// float32; exact exp in float64), and tanh(x) = 2 sigma(2x) - 1 (one exp instead of SLEEF's
// slower tanh). Measured against the Python loop's ATen sigmoid/tanh: see test_recurrent.py.
template <typename Vec>
inline Vec reciprocal(const Vec& x) {
  return Vec(1) / x;
}
#if defined(CPU_CAPABILITY_AVX512) && !defined(_MSC_VER)
// float32: the hardware's approximate reciprocal (14 bits) and one Newton step, r (2 - x r)
// (full float32 precision; a division costs several times more). x is finite (see sigmoid).
template <>
inline Vectorized<float> reciprocal(const Vectorized<float>& x) {
  const __m512 r = _mm512_rcp14_ps(x);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.f)));
}
#elif defined(CPU_CAPABILITY_AVX2) && !defined(_MSC_VER)
// float32: as above with AVX2's approximate reciprocal (12 bits; about 23 after the step).
template <>
inline Vectorized<float> reciprocal(const Vectorized<float>& x) {
  const __m256 r = _mm256_rcp_ps(x);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(x, r, _mm256_set1_ps(2.f)));
}
#endif
template <typename Vec>
inline Vec sigmoid(const Vec& x) {
  // exp(80) is finite in float32 and sigma(-80) < 2e-35: the clamp keeps 1 + exp finite
  return reciprocal(Vec(1) + at::vec::minimum(x.neg(), Vec(80)).exp_u20());
}
template <typename Vec>
inline Vec tanh_via_sigmoid(const Vec& x) {
  return Vec(2) * sigmoid(Vec(2) * x) - Vec(1);
}

// The sum of a vector's lanes (once per band row: the order of the additions does not matter
// for speed; ATen's vec_reduce_all has no overload for a plain vector under AVX-512).
template <typename Vec>
inline typename Vec::value_type horizontal_sum(const Vec& v) {
  using T = typename Vec::value_type;
  T lanes[Vec::size()];
  v.store(lanes);
  T sum = 0;
  for (int j = 0; j < Vec::size(); ++j) sum += lanes[j];
  return sum;
}

// Vector loads and stores: whole vectors, or the first `count` lanes at a row's end (ATen's
// loadu/store with a count copy through a stack buffer; in the main loop that made the cell
// update three times slower).
template <typename Vec, bool kTail>
struct LoadStore {
  int count;
  template <typename T>
  Vec load(const T* ptr) const {
    if constexpr (kTail) {
      return Vec::loadu(ptr, count);
    } else {
      return Vec::loadu(ptr);
    }
  }
  template <typename T>
  void store(const Vec& value, T* ptr) const {
    if constexpr (kTail) {
      value.store(ptr, count);
    } else {
      value.store(ptr);
    }
  }
};

// The rows (direction d, channel k) of a band of a buffer, each a run of n contiguous numbers,
// found by pointer arithmetic. The fused loops address everything this way: built from tensor
// views, a column costs some forty select/narrow/view operations, which took longer than its
// cell update at these sizes (profile in docs/benchmarks.md).
template <typename scalar_t>
struct Rows {
  scalar_t* base;
  int64_t sd, sk;  // strides of direction and channel
  scalar_t* operator()(int64_t d, int64_t k) const { return base + d * sd + k * sk; }
};

// The rows of a contiguous (2, K, n) tensor.
template <typename scalar_t>
Rows<scalar_t> all_rows(const Tensor& t) {
  return {t.data_ptr<scalar_t>(), t.stride(0), t.stride(1)};
}

// One LSTM cell update over a band of direction d (PixelRNN Eq. 3), fused: pre-activations
// [o|f|i|g] (4h rows, without the bias, which is added here from `bias` (2, 4h, 1)) ->
// activations written to `gate`, the cell c, tanh(c) and the hidden state, all rows of n
// contiguous numbers. Vectorized with ATen's vector type.
template <typename scalar_t>
void cell_forward(
    Rows<scalar_t> pre, const scalar_t* bias, Rows<scalar_t> gate, Rows<scalar_t> c_prev,
    Rows<scalar_t> c, Rows<scalar_t> tanh_c, Rows<scalar_t> state, int64_t h, int64_t n,
    int64_t d) {
  using Vec = Vectorized<scalar_t>;
  const int64_t ps = h * pre.sk, gs = h * gate.sk;
  for (int64_t k = 0; k < h; ++k) {
    const scalar_t* p = pre(d, k);
    const scalar_t* bp = bias + d * 4 * h + k;
    const Vec bo(bp[0]), bf(bp[h]), bi(bp[2 * h]), bg(bp[3 * h]);
    scalar_t* gr = gate(d, k);
    const scalar_t* cp = c_prev(d, k);
    scalar_t* cr = c(d, k);
    scalar_t* tr = tanh_c(d, k);
    scalar_t* hr = state(d, k);
    // full vectors, then the tail (see load_store)
    auto step = [&](int64_t j, int count, auto tail) {
      const LoadStore<Vec, decltype(tail)::value> io{count};
      const Vec o = sigmoid(io.load(p + j) + bo);
      const Vec f = sigmoid(io.load(p + ps + j) + bf);
      const Vec i = sigmoid(io.load(p + 2 * ps + j) + bi);
      const Vec g = tanh_via_sigmoid(io.load(p + 3 * ps + j) + bg);
      const Vec cell = f * io.load(cp + j) + i * g;
      const Vec tc = tanh_via_sigmoid(cell);
      io.store(o, gr + j);
      io.store(f, gr + gs + j);
      io.store(i, gr + 2 * gs + j);
      io.store(g, gr + 3 * gs + j);
      io.store(cell, cr + j);
      io.store(tc, tr + j);
      io.store(o * tc, hr + j);
    };
    const int64_t full = n - n % Vec::size();
    for (int64_t j = 0; j < full; j += Vec::size()) step(j, 0, std::false_type{});
    if (full < n) step(full, static_cast<int>(n - full), std::true_type{});
  }
}

// The cell's backward over a band of direction d, fused: from dL/dh (dh), the carried dL/dc of
// the next column (carry, updated in place to dL/dc_prev) and the saved activations, the
// gradient of the pre-activations [o|f|i|g] (d_gate), whose sums over the band are added to
// d_bias (2, 4h, 1).
// Only products: no transcendental functions.
template <typename scalar_t>
void cell_backward(
    Rows<scalar_t> gate, Rows<scalar_t> c_prev, Rows<scalar_t> tanh_c, Rows<scalar_t> dh,
    Rows<scalar_t> carry, Rows<scalar_t> d_gate, scalar_t* d_bias, int64_t h, int64_t n,
    int64_t d) {
  using Vec = Vectorized<scalar_t>;
  const int64_t gs = h * gate.sk, ds = h * d_gate.sk;
  const Vec one(1);
  for (int64_t k = 0; k < h; ++k) {
    const scalar_t* gr = gate(d, k);
    scalar_t* dg = d_gate(d, k);
    const scalar_t* cp = c_prev(d, k);
    const scalar_t* tr = tanh_c(d, k);
    const scalar_t* hr = dh(d, k);
    scalar_t* cr = carry(d, k);
    Vec sum_o(0), sum_f(0), sum_i(0), sum_g(0);  // the tail's unused lanes load as zero
    auto step = [&](int64_t j, int count, auto tail) {
      const LoadStore<Vec, decltype(tail)::value> io{count};
      const Vec o = io.load(gr + j), f = io.load(gr + gs + j);
      const Vec i = io.load(gr + 2 * gs + j);
      const Vec g = io.load(gr + 3 * gs + j);
      const Vec tc = io.load(tr + j), dhv = io.load(hr + j);
      const Vec dc = dhv * o * (one - tc * tc) + io.load(cr + j);
      const Vec d_o = dhv * tc * o * (one - o), d_f = dc * io.load(cp + j) * f * (one - f);
      const Vec d_i = dc * g * i * (one - i), d_g = dc * i * (one - g * g);
      io.store(d_o, dg + j);
      io.store(d_f, dg + ds + j);
      io.store(d_i, dg + 2 * ds + j);
      io.store(d_g, dg + 3 * ds + j);
      io.store(dc * f, cr + j);
      sum_o = sum_o + d_o;
      sum_f = sum_f + d_f;
      sum_i = sum_i + d_i;
      sum_g = sum_g + d_g;
    };
    const int64_t full = n - n % Vec::size();
    for (int64_t j = 0; j < full; j += Vec::size()) step(j, 0, std::false_type{});
    if (full < n) step(full, static_cast<int>(n - full), std::true_type{});
    // each direction belongs to one thread: no two threads add to one entry
    scalar_t* db = d_bias + d * 4 * h + k;
    db[0] += horizontal_sum(sum_o);
    db[h] += horizontal_sum(sum_f);
    db[2 * h] += horizontal_sum(sum_i);
    db[3 * h] += horizontal_sum(sum_g);
  }
}

// C = A B (accumulate: C += A B) for row-major matrices A (m x k), B (k x n), C (m x n) with
// leading dimensions (row strides) lda, ldb, ldc: float32 through ATen's batch-reduce GEMM
// (oneDNN's JIT kernels where the CPU has them: on this project's AVX-512 machine about twice
// the single-core throughput of the BLAS behind torch.bmm at these sizes, see
// docs/benchmarks.md; ATen falls back to its BLAS elsewhere), other types through ATen's mm.
template <typename scalar_t>
void matmul(
    int64_t m, int64_t n, int64_t k, const scalar_t* a, int64_t lda, const scalar_t* b,
    int64_t ldb, scalar_t* c, int64_t ldc, bool accumulate) {
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value);
  const Tensor ta = at::from_blob(const_cast<scalar_t*>(a), {m, k}, {lda, 1}, options);
  const Tensor tb = at::from_blob(const_cast<scalar_t*>(b), {k, n}, {ldb, 1}, options);
  Tensor tc = at::from_blob(c, {m, n}, {ldc, 1}, options);
  if (accumulate) {
    tc.addmm_(ta, tb);
  } else {
    at::mm_out(tc, ta, tb);
  }
}
#ifdef CPUBLAS_BRGEMM_F32F32F32
template <>
void matmul<float>(
    int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
    float* c, int64_t ldc, bool accumulate) {
  at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, accumulate, a, b, c, /*is_vnni=*/false);
}
#endif

// Whether the fused loops take these tensors: float32/float64 on the CPU, all of one dtype and
// contiguous.
inline bool fused(std::initializer_list<const Tensor*> tensors) {
  const Tensor& first = **tensors.begin();
  if (!first.is_cpu() || !(first.scalar_type() == at::kFloat || first.scalar_type() == at::kDouble)) {
    return false;
  }
  return std::all_of(tensors.begin(), tensors.end(), [&](const Tensor* t) {
    return t->scalar_type() == first.scalar_type() && t->is_contiguous();
  });
}

}  // namespace
