// Shared helpers of the cached sampling steps (pixelcnn_step.cpp, gated_step.cpp,
// pixelcnnpp_step.cpp): plain loops over raw pointers, float32/float64 on the CPU.
//
// One cached sampling step of a PixelCNN (PixelRNN §3.5), a Gated PixelCNN's horizontal stack
// (Gated PixelCNN §2.2) or PixelCNN++'s down-right stream (PixelCNN++ §2.3-2.5, as a program of
// ops over the cached maps): everything at one pixel, as one call.
//
// The same computation as the Python code of PixelCNNStepper.step, GatedPixelCNNStepper.step
// and PixelCNNPPStepper.step (pixelrnn/sampling/cached/), which stays as the reference and the
// fallback; tests check both agree. Written by hand because a step is 100-150 tiny operations
// (a few thousand multiply-adds each at batch 1-16): called from Python each costs
// microseconds of dispatch, which was almost all of the step (docs/benchmarks.md). Here they
// are plain loops over raw pointers, float32/float64 on the CPU. The per-row work (the
// vertical stack, the rows-above taps, PixelCNN++'s down stream) stays in PyTorch: it runs
// once per row.

#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

namespace pixelrnn_cached {

using at::Tensor;

// The BLAS's GEMM, Fortran interface (column-major, 32-bit sizes). PyTorch's x86 CPU builds
// carry MKL and export these symbols from libtorch_cpu; ATen's own C++ wrapper (cpublas) is not
// exported, and a Tensor-level at::addmm costs microseconds per call. Declared weak: where a
// build has no such symbol they are null and the plain loops of `linear` run instead.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc)
    __attribute__((weak));
}

// From this many images on, a layer's work at a pixel is one matrix product through the BLAS
// (register-blocked, vectorized over the batch); below it the plain loops of `linear`, which
// have no call overhead. Measured on the 2-core CPU of docs/benchmarks.md: at 64 images the
// products make pixelcnn-mnist's and gated-pixelcnn-mnist's steps 2-3x faster than the loops
// were (benchmarks/batch_sweep.py), and batches of 1 and 16 keep the loops' speed
// (benchmarks/compare_revisions.py).
constexpr int64_t kGemmMinBatch = 32;

template <typename T>
bool have_gemm() {
  if constexpr (std::is_same_v<T, float>) {
    return sgemm_ != nullptr;
  } else {
    return dgemm_ != nullptr;
  }
}

// Column-major c (m, n) = alpha a (m, k) b (k, n) + beta c, no transposes.
template <typename T>
void gemm(int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta, T* c,
          int ldc) {
  const char no = 'N';
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&no, &no, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
  } else {
    dgemm_(&no, &no, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
  }
}

// out (B, N) = [bias] + [add] + act(x) @ w as one GEMM: `out` (row stride N) first holds
// bias + add, then the product is accumulated onto it; ReLU'd inputs are copied first.
template <typename T>
void linear_gemm(
    const T* x, int64_t x_stride, int64_t b, int64_t k, bool relu_in, const T* w, int64_t n,
    const T* bias, const T* add, int64_t add_stride, T* out) {
  const bool accumulate = bias != nullptr || add != nullptr;
  if (accumulate && !(add == out && add_stride == n && bias == nullptr)) {
    for (int64_t i = 0; i < b; ++i) {
      T* o = out + i * n;
      const T* a = add == nullptr ? nullptr : add + i * add_stride;
      for (int64_t c = 0; c < n; ++c) {
        o[c] = (bias == nullptr ? T(0) : bias[c]) + (a == nullptr ? T(0) : a[c]);
      }
    }
  }
  std::vector<T> rectified;
  if (relu_in) {
    rectified.resize(b * k);
    for (int64_t i = 0; i < b; ++i) {
      const T* xi = x + i * x_stride;
      T* ri = rectified.data() + i * k;
      for (int64_t q = 0; q < k; ++q) ri[q] = xi[q] > T(0) ? xi[q] : T(0);
    }
    x = rectified.data();
    x_stride = k;
  }
  // row-major out (B, N) = x (B, K) @ w (K, N) is column-major out^T = w^T x^T
  gemm<T>(n, b, k, T(1), w, n, x, x_stride, accumulate ? T(1) : T(0), out, n);
}

// out (B, N) = [bias] + [add] + act(x) @ w, with x (B, K) of row stride x_stride, w (K, N)
// contiguous, add (B, N) of row stride add_stride, act = ReLU when relu_in. `out` may be `add`.
// Accumulates over the rows of w: contiguous inner loops the compiler vectorizes; from
// kGemmMinBatch images on, one GEMM (linear_gemm).
template <typename T>
void linear(
    const T* x, int64_t x_stride, int64_t b, int64_t k, bool relu_in, const T* w, int64_t n,
    const T* bias, const T* add, int64_t add_stride, T* out) {
  if (b >= kGemmMinBatch && have_gemm<T>()) {
    linear_gemm<T>(x, x_stride, b, k, relu_in, w, n, bias, add, add_stride, out);
    return;
  }
  for (int64_t i = 0; i < b; ++i) {
    T* o = out + i * n;
    const T* a = add == nullptr ? nullptr : add + i * add_stride;
    for (int64_t c = 0; c < n; ++c) {
      o[c] = (bias == nullptr ? T(0) : bias[c]) + (a == nullptr ? T(0) : a[c]);
    }
    const T* xi = x + i * x_stride;
    for (int64_t q = 0; q < k; ++q) {
      const T v = relu_in && xi[q] < T(0) ? T(0) : xi[q];
      const T* wq = w + q * n;
      for (int64_t c = 0; c < n; ++c) o[c] += v * wq[c];
    }
  }
}

// Run step(n0, n1) on parts [n0, n1) of a batch of b images, in parallel on ATen's intra-op
// threads: a step's work for one image never reads another's, so each thread takes a part of at
// least kGemmMinBatch images (one part, on the calling thread, for smaller batches or one
// thread). The BLAS runs single-threaded inside the parallel region. Every image's arithmetic
// is the same whatever the split (tested: the same images on one thread or two).
template <typename F>
void over_batch(int64_t b, const F& step) {
  if (b < 2 * kGemmMinBatch || at::get_num_threads() == 1) {
    step(0, b);  // one part: no parallel region
    return;
  }
  at::parallel_for(0, b, kGemmMinBatch, [&](int64_t n0, int64_t n1) { step(n0, n1); });
}

// Images [n0, n1) of t, whose batch dimension is `dim` (t itself for all of them: a step at a
// few images should not pay for views).
inline Tensor part(const Tensor& t, int64_t dim, int64_t n0, int64_t n1) {
  return n0 == 0 && n1 == t.size(dim) ? t : t.narrow(dim, n0, n1 - n0);
}

// The (B, N) slice at column j of the (B, W, N) tensor t (or of t[block] for a stacked
// (L, B, W, N) one), any strides, as a contiguous copy.
template <typename T>
void column(const Tensor& t, int64_t block, int64_t j, std::vector<T>& out) {
  const int64_t d = t.dim() - 3;  // 1 for a stacked tensor
  const int64_t b = t.size(d), n = t.size(d + 2);
  const int64_t s0 = t.stride(d), s1 = t.stride(d + 1), s2 = t.stride(d + 2);
  const T* p = t.data_ptr<T>() + (d ? block * t.stride(0) : 0) + j * s1;
  out.resize(b * n);
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t c = 0; c < n; ++c) out[i * n + c] = p[i * s0 + c * s2];
  }
}

// Pixels (i, j - 1) and (i, j) of the image x (B, C, H, W) into a layer's current-row buffer
// (B, (W + r) * C), at columns + r: the engine may have written (i, j - 1)'s last channel
// after its step, and (i, j) holds the channels drawn so far.
template <typename T>
void write_image_pixels(const Tensor& x, int64_t i_row, int64_t j, const Tensor& row, int64_t r) {
  const int64_t b = x.size(0), channels = x.size(1);
  const T* image = x.data_ptr<T>();
  T* buffer = row.data_ptr<T>();
  for (int64_t col = std::max<int64_t>(j - 1, 0); col <= j; ++col) {
    for (int64_t n = 0; n < b; ++n) {
      for (int64_t c = 0; c < channels; ++c) {
        buffer[n * row.stride(0) + (col + r) * channels + c] =
            image[n * x.stride(0) + c * x.stride(1) + i_row * x.stride(2) + col * x.stride(3)];
      }
    }
  }
}

// The output layers: out (B, n_out) = out_b + ReLU(hidden_b + ReLU(h) @ hidden_w) @ out_w,
// into `out` (contiguous rows).
template <typename T>
void output_layers(
    const T* h, int64_t b, int64_t features, const Tensor& hidden_w, const Tensor& hidden_b,
    const Tensor& out_w, const Tensor& out_b, T* out) {
  const int64_t n_hidden = hidden_w.size(1), n_out = out_w.size(1);
  std::vector<T> hidden(b * n_hidden);
  linear<T>(h, features, b, features, true, hidden_w.data_ptr<T>(), n_hidden,
            hidden_b.data_ptr<T>(), nullptr, 0, hidden.data());
  linear<T>(hidden.data(), n_hidden, b, n_hidden, true, out_w.data_ptr<T>(), n_out,
            out_b.data_ptr<T>(), nullptr, 0, out);
}

// Block l's slice of a stacked (L, ...) contiguous tensor.
template <typename T>
T* at_block(const Tensor& t, int64_t l) {
  return t.data_ptr<T>() + l * t.stride(0);
}

}  // namespace pixelrnn_cached
