// One cached sampling step of a PixelCNN (PixelRNN §3.5): everything at one pixel, as one call.
// The shared helpers and what the cached steps are: cached_steps.h.

#include "cached_steps.h"

namespace {

using at::Tensor;
using namespace pixelrnn_cached;

// The step for the images of x (a part of the batch: every batched argument narrowed alike),
// the parameters into out (B, n_out).
template <typename T>
void step_typed(
    const Tensor& x, int64_t i_row, int64_t j, const Tensor& in_row, const Tensor& in_w,
    const Tensor& in_above, const Tensor& reduce_w, const Tensor& reduce_b, const Tensor& rows,
    const Tensor& conv_w, const Tensor& above, const Tensor& expand_w, const Tensor& expand_b,
    const Tensor& hidden_w, const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b,
    T* out) {
  const int64_t b = x.size(0), channels = x.size(1);
  const int64_t features = in_w.size(1), num_blocks = reduce_w.size(0);
  const int64_t n_red = reduce_w.size(2), n_conv = conv_w.size(2), taps = conv_w.size(1);
  const int64_t r = taps / n_red - 1, r_in = in_w.size(0) / channels - 1;
  std::vector<T> h(b * features), reduced(b * n_red), convolved(b * n_conv), term;
  // the input layer
  write_image_pixels<T>(x, i_row, j, in_row, r_in);
  const T* in_buffer = in_row.data_ptr<T>();
  const int64_t in_stride = in_row.stride(0);
  column<T>(in_above, 0, j, term);
  linear<T>(in_buffer + j * channels, in_stride, b, in_w.size(0), false, in_w.data_ptr<T>(),
            features, nullptr, term.data(), features, h.data());
  // the residual blocks
  T* row_base = rows.data_ptr<T>();
  const int64_t row_stride = rows.stride(1), row_block = rows.stride(0);
  for (int64_t l = 0; l < num_blocks; ++l) {
    linear<T>(h.data(), features, b, features, true, at_block<T>(reduce_w, l), n_red,
              at_block<T>(reduce_b, l), nullptr, 0, reduced.data());
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
    linear<T>(row + j * n_red, row_stride, b, taps, false, at_block<T>(conv_w, l), n_conv,
              nullptr, term.data(), n_conv, convolved.data());
    // expand 1x1 on ReLU, plus the residual (in place)
    linear<T>(convolved.data(), n_conv, b, n_conv, true, at_block<T>(expand_w, l), features,
              at_block<T>(expand_b, l), h.data(), features, h.data());
  }
  output_layers<T>(h.data(), b, features, hidden_w, hidden_b, out_w, out_b, out);
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
  Tensor out = at::empty({x.size(0), out_w.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelcnn_step", [&] {
    over_batch(x.size(0), [&](int64_t n0, int64_t n1) {
      step_typed<scalar_t>(part(x, 0, n0, n1), i, j, part(in_row, 0, n0, n1), in_w,
                           part(in_above, 0, n0, n1), reduce_w, reduce_b, part(rows, 1, n0, n1),
                           conv_w, part(above, 1, n0, n1), expand_w, expand_b, hidden_w,
                           hidden_b, out_w, out_b, out.data_ptr<scalar_t>() + n0 * out.size(1));
    });
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
