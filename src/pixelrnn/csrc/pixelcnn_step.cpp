// One cached PixelCNN step (PixelRNN §3.5) through every residual block and the output layers,
// as one call.
//
// The same computation as the Python loop of PixelCNNStepper.step
// (pixelrnn/sampling/cached/pixelcnn.py), which stays as the reference and the fallback; tests
// check both agree. Written by hand because a step is ~130 tiny operations (a few thousand
// multiply-adds each at batch 1-16): called from Python each costs microseconds of dispatch,
// which was almost all of the step (docs/benchmarks.md). Here they are plain loops over raw
// pointers, float32/float64 on the CPU.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace {

using at::Tensor;

// out (B, N) = [bias] + [add] + act(x) @ w, with x (B, K) of row stride x_stride, w (K, N)
// contiguous, add (B, N) of row stride add_stride, act = ReLU when relu_in. `out` may be `add`.
// Accumulates over the rows of w: contiguous inner loops the compiler vectorizes.
template <typename T>
void linear(
    const T* x, int64_t x_stride, int64_t b, int64_t k, bool relu_in, const T* w, int64_t n,
    const T* bias, const T* add, int64_t add_stride, T* out) {
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

template <typename T>
Tensor step_typed(
    const Tensor& x, int64_t i_row, int64_t j, const Tensor& in_row, const Tensor& in_w,
    const Tensor& in_above, const Tensor& reduce_w, const Tensor& reduce_b, const Tensor& rows,
    const Tensor& conv_w, const Tensor& above, const Tensor& expand_w, const Tensor& expand_b,
    const Tensor& hidden_w, const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b) {
  const int64_t b = x.size(0), channels = x.size(1);
  const int64_t features = in_w.size(1), num_blocks = reduce_w.size(0);
  const int64_t n_red = reduce_w.size(2), n_conv = conv_w.size(2), taps = conv_w.size(1);
  const int64_t r = taps / n_red - 1, r_in = in_w.size(0) / channels - 1;
  std::vector<T> h(b * features), reduced(b * n_red), convolved(b * n_conv), term;
  // the input layer: pixels (i, j - 1) and (i, j) of the image into its current-row buffer (the
  // engine may have written (i, j - 1)'s last channel after its step), then its taps
  const T* image = x.data_ptr<T>();
  T* in_buffer = in_row.data_ptr<T>();
  const int64_t in_stride = in_row.stride(0);
  for (int64_t col = std::max<int64_t>(j - 1, 0); col <= j; ++col) {
    for (int64_t n = 0; n < b; ++n) {
      for (int64_t c = 0; c < channels; ++c) {
        in_buffer[n * in_stride + (col + r_in) * channels + c] =
            image[n * x.stride(0) + c * x.stride(1) + i_row * x.stride(2) + col * x.stride(3)];
      }
    }
  }
  column<T>(in_above, 0, j, term);
  linear<T>(in_buffer + j * channels, in_stride, b, in_w.size(0), false, in_w.data_ptr<T>(),
            features, nullptr, term.data(), features, h.data());
  // the residual blocks
  T* row_base = rows.data_ptr<T>();
  const int64_t row_stride = rows.stride(1), row_block = rows.stride(0);
  // block l's slice of a stacked (L, ...) contiguous weight
  auto at_block = [](const Tensor& t, int64_t l) { return t.data_ptr<T>() + l * t.stride(0); };
  for (int64_t l = 0; l < num_blocks; ++l) {
    linear<T>(h.data(), features, b, features, true, at_block(reduce_w, l), n_red,
              at_block(reduce_b, l), nullptr, 0, reduced.data());
    // the masked convolution's input at column j of its row-major current-row buffer: ReLU
    T* row = row_base + l * row_block;
    for (int64_t n = 0; n < b; ++n) {
      T* dst = row + n * row_stride + (j + r) * n_red;
      for (int64_t c = 0; c < n_red; ++c) {
        const T v = reduced[n * n_red + c];
        dst[c] = v > T(0) ? v : T(0);
      }
    }
    // the masked convolution at j: the row's above term plus the current-row taps
    column<T>(above, l, j, term);
    linear<T>(row + j * n_red, row_stride, b, taps, false, at_block(conv_w, l), n_conv,
              nullptr, term.data(), n_conv, convolved.data());
    // expand 1x1 on ReLU, plus the residual (in place)
    linear<T>(convolved.data(), n_conv, b, n_conv, true, at_block(expand_w, l), features,
              at_block(expand_b, l), h.data(), features, h.data());
  }
  const int64_t n_hidden = hidden_w.size(1), n_out = out_w.size(1);
  std::vector<T> hidden(b * n_hidden);
  linear<T>(h.data(), features, b, features, true, hidden_w.data_ptr<T>(), n_hidden,
            hidden_b.data_ptr<T>(), nullptr, 0, hidden.data());
  Tensor out = at::empty({b, n_out}, x.options());
  linear<T>(hidden.data(), n_hidden, b, n_hidden, true, out_w.data_ptr<T>(), n_out,
            out_b.data_ptr<T>(), nullptr, 0, out.data_ptr<T>());
  return out;
}

Tensor pixelcnn_step(
    const Tensor& x, int64_t i, int64_t j, Tensor in_row, const Tensor& in_w,
    const Tensor& in_above, const Tensor& reduce_w, const Tensor& reduce_b, Tensor rows,
    const Tensor& conv_w, const Tensor& above, const Tensor& expand_w, const Tensor& expand_b,
    const Tensor& hidden_w, const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b) {
  TORCH_CHECK(x.is_cpu() && x.dim() == 4, "pixelcnn_step: a (B, C, H, W) CPU image");
  for (const Tensor& t : {in_w, reduce_w, reduce_b, conv_w, expand_w, expand_b, hidden_w,
                          hidden_b, out_w, out_b}) {
    TORCH_CHECK(t.is_contiguous() && t.scalar_type() == x.scalar_type(),
                "pixelcnn_step: weights must be contiguous, of the image's dtype");
  }
  TORCH_CHECK(in_row.stride(1) == 1 && rows.stride(2) == 1, "pixelcnn_step: row buffers");
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelcnn_step", [&] {
    out = step_typed<scalar_t>(x, i, j, in_row, in_w, in_above, reduce_w, reduce_b, rows,
                               conv_w, above, expand_w, expand_b, hidden_w, hidden_b, out_w,
                               out_b);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn, m) {
  m.def(
      "pixelcnn_step(Tensor x, int i, int j, Tensor(a!) in_row, Tensor in_w, Tensor in_above, "
      "Tensor reduce_w, Tensor reduce_b, Tensor(b!) rows, Tensor conv_w, Tensor above, "
      "Tensor expand_w, Tensor expand_b, Tensor hidden_w, Tensor hidden_b, Tensor out_w, "
      "Tensor out_b) -> Tensor");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("pixelcnn_step", &pixelcnn_step);
}
