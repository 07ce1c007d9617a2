// One cached sampling step of a Gated PixelCNN's horizontal stack (Gated PixelCNN §2.2).
// The shared helpers and what the cached steps are: cached_steps.h.

#include "cached_steps.h"

namespace {

using at::Tensor;
using namespace pixelrnn_cached;

// tanh(f) * sigmoid(g) of the halves of pre (B, 2p) -> out (B, p) (Gated PixelCNN Eq. 2), in
// ATen's vector type with its vectorized tanh and exp (Sleef, as torch.tanh and torch.sigmoid
// use): the transcendental functions were most of a step's time at large batch.
template <typename T>
void gate(const std::vector<T>& pre, int64_t b, int64_t p, std::vector<T>& out) {
  using Vec = at::vec::Vectorized<T>;
  out.resize(b * p);
  const Vec one(T(1));
  for (int64_t n = 0; n < b; ++n) {
    const T* f = pre.data() + n * 2 * p;
    const T* g = f + p;
    T* o = out.data() + n * p;
    for (int64_t c = 0; c < p; c += Vec::size()) {
      const int64_t count = std::min<int64_t>(Vec::size(), p - c);
      const Vec tanh_f = Vec::loadu(f + c, count).tanh();
      const Vec sigmoid_g = (one + Vec::loadu(g + c, count).neg().exp()).reciprocal();
      (tanh_f * sigmoid_g).store(o + c, count);
    }
  }
}

// The step for the images of x (a part of the batch: every batched argument narrowed alike),
// the parameters into out (B, n_out).
template <typename T>
void gated_step_typed(
    const Tensor& x, int64_t i_row, int64_t j, const Tensor& first_row, const Tensor& first_w,
    const Tensor& first_above, const Tensor& rows, const Tensor& conv_w, const Tensor& above,
    const Tensor& residual_w, const Tensor& residual_b, const Tensor& hidden_w,
    const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b, T* out) {
  const int64_t b = x.size(0), channels = x.size(1);
  const int64_t p = residual_w.size(1), num_layers = conv_w.size(0), taps = conv_w.size(1);
  const int64_t r = taps / p - 1, first_taps = first_w.size(0);
  std::vector<T> term, pre(b * 2 * p), h, gated;
  // the first layer: its horizontal taps read the image; no residual connection
  write_image_pixels<T>(x, i_row, j, first_row, first_taps / channels - 1);
  column<T>(first_above, 0, j, term);
  linear<T>(first_row.data_ptr<T>() + j * channels, first_row.stride(0), b, first_taps, false,
            first_w.data_ptr<T>(), 2 * p, nullptr, term.data(), 2 * p, pre.data());
  gate<T>(pre, b, p, h);
  // the other layers: horizontal taps on h (written at column j of the row buffer), gate,
  // 1x1 (mask B) plus the residual
  const int64_t row_stride = rows.stride(1);
  for (int64_t l = 0; l < num_layers; ++l) {
    T* row = at_block<T>(rows, l);
    for (int64_t n = 0; n < b; ++n) {
      std::copy_n(h.data() + n * p, p, row + n * row_stride + (j + r) * p);
    }
    column<T>(above, l, j, term);
    linear<T>(row + j * p, row_stride, b, taps, false, at_block<T>(conv_w, l), 2 * p, nullptr,
              term.data(), 2 * p, pre.data());
    gate<T>(pre, b, p, gated);
    linear<T>(gated.data(), p, b, p, false, at_block<T>(residual_w, l), p,
              at_block<T>(residual_b, l), h.data(), p, h.data());
  }
  output_layers<T>(h.data(), b, p, hidden_w, hidden_b, out_w, out_b, out);
}

Tensor gated_pixelcnn_step(
    const Tensor& x, int64_t i, int64_t j, Tensor first_row, const Tensor& first_w,
    const Tensor& first_above, Tensor rows, const Tensor& conv_w, const Tensor& above,
    const Tensor& residual_w, const Tensor& residual_b, const Tensor& hidden_w,
    const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b) {
  TORCH_CHECK(x.is_cpu() && x.dim() == 4, "gated_pixelcnn_step: a (B, C, H, W) CPU image");
  for (const Tensor& t :
       {first_w, conv_w, residual_w, residual_b, hidden_w, hidden_b, out_w, out_b}) {
    TORCH_CHECK(t.is_contiguous() && t.scalar_type() == x.scalar_type(),
                "gated_pixelcnn_step: weights must be contiguous, of the image's dtype");
  }
  TORCH_CHECK(first_row.stride(1) == 1 && rows.stride(2) == 1, "gated_pixelcnn_step: rows");
  Tensor out = at::empty({x.size(0), out_w.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gated_pixelcnn_step", [&] {
    over_batch(x.size(0), [&](int64_t n0, int64_t n1) {
      gated_step_typed<scalar_t>(
          part(x, 0, n0, n1), i, j, part(first_row, 0, n0, n1), first_w,
          part(first_above, 0, n0, n1), part(rows, 1, n0, n1), conv_w, part(above, 1, n0, n1),
          residual_w, residual_b, hidden_w, hidden_b, out_w, out_b,
          out.data_ptr<scalar_t>() + n0 * out.size(1));
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn, m) {
  m.def(
      "gated_pixelcnn_step(Tensor x, int i, int j, Tensor(a!) first_row, Tensor first_w, "
      "Tensor first_above, Tensor(b!) rows, Tensor conv_w, Tensor above, Tensor residual_w, "
      "Tensor residual_b, Tensor hidden_w, Tensor hidden_b, Tensor out_w, Tensor out_b) "
      "-> Tensor");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("gated_pixelcnn_step", &gated_pixelcnn_step);
}
