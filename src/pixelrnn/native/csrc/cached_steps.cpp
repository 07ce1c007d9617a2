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

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
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

// The output layers: out (B, n_out) = out_b + ReLU(hidden_b + ReLU(h) @ hidden_w) @ out_w.
template <typename T>
Tensor output_layers(
    const T* h, int64_t b, int64_t features, const Tensor& hidden_w, const Tensor& hidden_b,
    const Tensor& out_w, const Tensor& out_b, const at::TensorOptions& options) {
  const int64_t n_hidden = hidden_w.size(1), n_out = out_w.size(1);
  std::vector<T> hidden(b * n_hidden);
  linear<T>(h, features, b, features, true, hidden_w.data_ptr<T>(), n_hidden,
            hidden_b.data_ptr<T>(), nullptr, 0, hidden.data());
  Tensor out = at::empty({b, n_out}, options);
  linear<T>(hidden.data(), n_hidden, b, n_hidden, true, out_w.data_ptr<T>(), n_out,
            out_b.data_ptr<T>(), nullptr, 0, out.data_ptr<T>());
  return out;
}

// Block l's slice of a stacked (L, ...) contiguous tensor.
template <typename T>
T* at_block(const Tensor& t, int64_t l) {
  return t.data_ptr<T>() + l * t.stride(0);
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
  return output_layers<T>(h.data(), b, features, hidden_w, hidden_b, out_w, out_b, x.options());
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

// tanh(f) * sigmoid(g) of the halves of pre (B, 2p) -> out (B, p) (Gated PixelCNN Eq. 2).
template <typename T>
void gate(const std::vector<T>& pre, int64_t b, int64_t p, std::vector<T>& out) {
  out.resize(b * p);
  for (int64_t n = 0; n < b; ++n) {
    for (int64_t c = 0; c < p; ++c) {
      const T f = pre[n * 2 * p + c], g = pre[n * 2 * p + p + c];
      out[n * p + c] = std::tanh(f) / (T(1) + std::exp(-g));
    }
  }
}

template <typename T>
Tensor gated_step_typed(
    const Tensor& x, int64_t i_row, int64_t j, const Tensor& first_row, const Tensor& first_w,
    const Tensor& first_above, const Tensor& rows, const Tensor& conv_w, const Tensor& above,
    const Tensor& residual_w, const Tensor& residual_b, const Tensor& hidden_w,
    const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b) {
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
  return output_layers<T>(h.data(), b, p, hidden_w, hidden_b, out_w, out_b, x.options());
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
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gated_pixelcnn_step", [&] {
    out = gated_step_typed<scalar_t>(x, i, j, first_row, first_w, first_above, rows, conv_w,
                                     above, residual_w, residual_b, hidden_w, hidden_b, out_w,
                                     out_b);
  });
  return out;
}

// PixelCNN++ (down-right stream, one position): maps are (B, C, H + 1, W + 2) contiguous,
// position (a, b) at [a + 1, b + 1] (sampling/cached/pixelcnn_pp.py, class Map).

template <typename T>
inline T elu(T v) {
  return v > T(0) ? v : std::expm1(v);
}

// concat_elu of map rows a - 1 .. a, columns b - 1 .. b + k - 2 into v, in the (2C, 2, k)
// order of a convolution kernel: elu(x) for the first C channels, elu(-x) for the next C.
template <typename T>
void concat_elu_window(const Tensor& map, int64_t n, int64_t a, int64_t b, int64_t k, T* v) {
  const int64_t c_in = map.size(1), s_c = map.stride(1), s_h = map.stride(2);
  const T* base = map.data_ptr<T>() + n * map.stride(0) + a * s_h + b;
  const int64_t half = c_in * 2 * k;
  for (int64_t c = 0; c < c_in; ++c) {
    for (int64_t row = 0; row < 2; ++row) {
      for (int64_t col = 0; col < k; ++col) {
        const T x = base[c * s_c + row * s_h + col];
        const int64_t at = (c * 2 + row) * k + col;
        v[at] = elu(x);
        v[half + at] = elu(-x);
      }
    }
  }
}

// A map's entries at (a, b): (C,) of image n.
template <typename T>
inline const T* map_at(const Tensor& map, int64_t n, int64_t a, int64_t b) {
  return map.data_ptr<T>() + n * map.stride(0) + (a + 1) * map.stride(2) + (b + 1);
}

// out (B, N) = bias + x (B, K) @ w (K, N), all contiguous: the loops of `linear` for a few
// images (no call overhead), ATen's matrix product (BLAS) for more.
constexpr int64_t kLoopBatch = 4;

template <typename T>
void product(const T* x, int64_t batch, int64_t k, const Tensor& w, const Tensor& bias, T* out) {
  const int64_t n = w.size(1);
  if (batch <= kLoopBatch) {
    linear<T>(x, k, batch, k, false, w.data_ptr<T>(), n, bias.data_ptr<T>(), nullptr, 0, out);
    return;
  }
  const auto options = w.options();
  Tensor result = at::from_blob(out, {batch, n}, options);
  at::addmm_out(result, bias, at::from_blob(const_cast<T*>(x), {batch, k}, options), w);
}

// One row of the program PixelCNNPPStepper builds (sampling/cached/pixelcnn_pp.py,
// _compiled_program): an op of the down-right stream, its level, and indices into the lists of
// maps and weights (-1: none).
enum Column : int64_t {
  kKind, kLevel, kIn, kOut, kC1, kAux0, kAux1, kW, kB, kAuxW, kAuxB, kWOut, kBOut, kClassBias,
  kTaps, kColumns
};
enum Kind : int64_t { kResidual = 0, kDownsample = 1, kUpsample = 2 };

// A gated ResNet layer (PixelCNN++ §2.5) at position (a, b): concat_elu windows of the input,
// first convolution (+ the 1x1 on concat_elu of the auxiliary maps), concat_elu into its map,
// the second convolution on that map's window, gate, plus the input.
template <typename T>
void residual_at(const std::vector<Tensor>& maps, const std::vector<Tensor>& weights,
                 const int64_t* op, int64_t a, int64_t b) {
  const Tensor &inp = maps[op[kIn]], &out = maps[op[kOut]], &c1_map = maps[op[kC1]];
  const Tensor &w_in = weights[op[kW]], &w_out = weights[op[kWOut]];
  const int64_t batch = inp.size(0), f = out.size(1), k = op[kTaps];
  const int64_t k_in = w_in.size(0), k_out = w_out.size(0);
  std::vector<T> windows(batch * k_in), c1(batch * f);
  for (int64_t n = 0; n < batch; ++n) {
    concat_elu_window<T>(inp, n, a, b, k, windows.data() + n * k_in);
  }
  product<T>(windows.data(), batch, k_in, w_in, weights[op[kB]], c1.data());
  if (op[kAuxW] >= 0) {
    const Tensor& aux_w = weights[op[kAuxW]];
    const int64_t c_aux = aux_w.size(0) / 2;
    std::vector<T> aux_in(batch * 2 * c_aux), aux_c1(batch * f);
    for (int64_t n = 0; n < batch; ++n) {
      T* row = aux_in.data() + n * 2 * c_aux;
      int64_t offset = 0;
      for (const int64_t index : {op[kAux0], op[kAux1]}) {
        if (index < 0) continue;
        const Tensor& m = maps[index];
        const T* at = map_at<T>(m, n, a, b);
        for (int64_t c = 0; c < m.size(1); ++c, ++offset) {
          const T x = at[c * m.stride(1)];
          row[offset] = elu(x);
          row[c_aux + offset] = elu(-x);
        }
      }
    }
    product<T>(aux_in.data(), batch, 2 * c_aux, aux_w, weights[op[kAuxB]], aux_c1.data());
    for (int64_t q = 0; q < batch * f; ++q) c1[q] += aux_c1[q];
  }
  // concat_elu(c1) into its map at (a, b); the second convolution on that map's windows
  const int64_t s_c1 = c1_map.stride(1), s_h = c1_map.stride(2), c1_channels = c1_map.size(1);
  std::vector<T> windows_out(batch * k_out), c2(batch * 2 * f);
  for (int64_t n = 0; n < batch; ++n) {
    const T* c1_n = c1.data() + n * f;
    T* c1_at = const_cast<T*>(map_at<T>(c1_map, n, a, b));
    for (int64_t c = 0; c < f; ++c) {
      c1_at[c * s_c1] = elu(c1_n[c]);
      c1_at[(f + c) * s_c1] = elu(-c1_n[c]);
    }
    const T* base = c1_map.data_ptr<T>() + n * c1_map.stride(0) + a * s_h + b;
    T* w = windows_out.data() + n * k_out;
    for (int64_t c = 0; c < c1_channels; ++c) {
      for (int64_t row = 0; row < 2; ++row) {
        for (int64_t col = 0; col < k; ++col) {
          w[(c * 2 + row) * k + col] = base[c * s_c1 + row * s_h + col];
        }
      }
    }
  }
  product<T>(windows_out.data(), batch, k_out, w_out, weights[op[kBOut]], c2.data());
  const T* class_bias = op[kClassBias] >= 0 ? weights[op[kClassBias]].data_ptr<T>() : nullptr;
  // gate, plus the input (the residual)
  for (int64_t n = 0; n < batch; ++n) {
    const T* c2_n = c2.data() + n * 2 * f;
    const T* bias_n = class_bias == nullptr ? nullptr : class_bias + n * 2 * f;
    const T* x_at = map_at<T>(inp, n, a, b);
    T* o_at = const_cast<T*>(map_at<T>(out, n, a, b));
    for (int64_t c = 0; c < f; ++c) {
      const T value = c2_n[c] + (bias_n ? bias_n[c] : T(0));
      const T gate = c2_n[f + c] + (bias_n ? bias_n[f + c] : T(0));
      o_at[c * out.stride(1)] = x_at[c * inp.stride(1)] + value / (T(1) + std::exp(-gate));
    }
  }
}

// A stride-2 shifted convolution at (a, b): rows 2a - 1 .. 2a, columns 2b - 1 .. 2b of the
// input, in the kernel's (C, 2, 2) order.
template <typename T>
void downsample_at(const std::vector<Tensor>& maps, const std::vector<Tensor>& weights,
                   const int64_t* op, int64_t a, int64_t b) {
  const Tensor &inp = maps[op[kIn]], &out = maps[op[kOut]], &w = weights[op[kW]];
  const int64_t batch = inp.size(0), channels = inp.size(1), f = out.size(1);
  const int64_t s_c = inp.stride(1), s_h = inp.stride(2);
  std::vector<T> windows(batch * channels * 4), result(batch * f);
  for (int64_t n = 0; n < batch; ++n) {
    const T* base = inp.data_ptr<T>() + n * inp.stride(0) + 2 * a * s_h + 2 * b;
    T* v = windows.data() + n * channels * 4;
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t q = 0; q < 4; ++q) v[c * 4 + q] = base[c * s_c + (q / 2) * s_h + q % 2];
    }
  }
  product<T>(windows.data(), batch, channels * 4, w, weights[op[kB]], result.data());
  for (int64_t n = 0; n < batch; ++n) {
    T* o_at = const_cast<T*>(map_at<T>(out, n, a, b));
    for (int64_t c = 0; c < f; ++c) o_at[c * out.stride(1)] = result[n * f + c];
  }
}

// A stride-2 shifted transposed convolution (2x2 taps) at (a, b): input (a / 2, b / 2) times
// the tap (a % 2, b % 2) of the (kh, kw, C_in, C_out) taps.
template <typename T>
void upsample_at(const std::vector<Tensor>& maps, const std::vector<Tensor>& weights,
                 const int64_t* op, int64_t a, int64_t b) {
  const Tensor &inp = maps[op[kIn]], &out = maps[op[kOut]], &taps = weights[op[kW]];
  const int64_t batch = inp.size(0), c_in = inp.size(1), f = out.size(1);
  std::vector<T> x(batch * c_in), result(batch * f);
  for (int64_t n = 0; n < batch; ++n) {
    const T* at = map_at<T>(inp, n, a / 2, b / 2);
    for (int64_t c = 0; c < c_in; ++c) x[n * c_in + c] = at[c * inp.stride(1)];
  }
  const Tensor tap = taps[a % 2][b % 2];
  product<T>(x.data(), batch, c_in, tap, weights[op[kB]], result.data());
  for (int64_t n = 0; n < batch; ++n) {
    T* o_at = const_cast<T*>(map_at<T>(out, n, a, b));
    for (int64_t c = 0; c < f; ++c) o_at[c * out.stride(1)] = result[n * f + c];
  }
}

template <typename T>
Tensor pixelcnnpp_step_typed(
    const Tensor& x, const Tensor& ul_above, const std::vector<Tensor>& maps,
    const std::vector<Tensor>& weights, const Tensor& program, const Tensor& left_w,
    const Tensor& left_b, const Tensor& head_w, const Tensor& head_b, int64_t init_ul,
    int64_t final_map, int64_t i, int64_t j, int64_t top) {
  const int64_t batch = x.size(0), channels = x.size(1);
  // the first down-right map at (i, j): the row above's term (per row) plus, right of the
  // first column, the 2x1 window of the pixel to the left (with the constant-ones channel;
  // zeros above the image)
  const Tensor& first = maps[init_ul];
  const int64_t f = first.size(1);
  const T* image = x.data_ptr<T>();
  for (int64_t n = 0; n < batch; ++n) {
    std::vector<T> value(f);
    const T* above = ul_above.data_ptr<T>() + n * ul_above.stride(0) + j * ul_above.stride(2);
    for (int64_t c = 0; c < f; ++c) value[c] = above[c * ul_above.stride(1)];
    if (j > 0) {
      std::vector<T> window(2 * (channels + 1));
      for (int64_t row = 0; row < 2; ++row) {
        const int64_t r = i - 1 + row;
        const bool inside = r >= 0;
        for (int64_t c = 0; c < channels; ++c) {
          window[c * 2 + row] =
              inside ? image[n * x.stride(0) + c * x.stride(1) + r * x.stride(2) +
                             (j - 1) * x.stride(3)]
                     : T(0);
        }
        window[channels * 2 + row] = inside ? T(1) : T(0);
      }
      linear<T>(window.data(), 0, 1, window.size(), false, left_w.data_ptr<T>(), f,
                left_b.data_ptr<T>(), value.data(), 0, value.data());
    }
    T* at = const_cast<T*>(map_at<T>(first, n, i, j));
    for (int64_t c = 0; c < f; ++c) at[c * first.stride(1)] = value[c];
  }
  const int64_t* ops = program.data_ptr<int64_t>();
  for (int64_t r = 0; r < program.size(0); ++r) {
    const int64_t* op = ops + r * kColumns;
    const int64_t level = op[kLevel];
    if (level > top) continue;
    const int64_t a = i >> level, b = j >> level;
    if (op[kKind] == kResidual) {
      residual_at<T>(maps, weights, op, a, b);
    } else if (op[kKind] == kDownsample) {
      downsample_at<T>(maps, weights, op, a, b);
    } else {
      upsample_at<T>(maps, weights, op, a, b);
    }
  }
  // the head: a 1x1 convolution on elu of the last map at (i, j)
  const Tensor& last = maps[final_map];
  const int64_t features = last.size(1);
  std::vector<T> h(batch * features);
  for (int64_t n = 0; n < batch; ++n) {
    const T* at = map_at<T>(last, n, i, j);
    for (int64_t c = 0; c < features; ++c) h[n * features + c] = elu(at[c * last.stride(1)]);
  }
  Tensor params = at::empty({batch, head_w.size(1)}, x.options());
  product<T>(h.data(), batch, features, head_w, head_b, params.data_ptr<T>());
  return params;
}

Tensor pixelcnnpp_step(
    const Tensor& x, const Tensor& ul_above, at::TensorList maps, at::TensorList weights,
    const Tensor& program, const Tensor& left_w, const Tensor& left_b, const Tensor& head_w,
    const Tensor& head_b, int64_t init_ul, int64_t final_map, int64_t i, int64_t j,
    int64_t top) {
  TORCH_CHECK(x.is_cpu() && x.dim() == 4, "pixelcnnpp_step: a (B, C, H, W) CPU image");
  TORCH_CHECK(program.scalar_type() == at::kLong && program.is_contiguous() &&
                  program.dim() == 2 && program.size(1) == kColumns,
              "pixelcnnpp_step: the program is a contiguous (ops, ", int64_t(kColumns),
              ") int64 tensor");
  for (const Tensor& m : maps) {
    TORCH_CHECK(m.is_contiguous() && m.dim() == 4 && m.scalar_type() == x.scalar_type(),
                "pixelcnnpp_step: maps must be contiguous (B, C, H + 1, W + 2), of x's dtype");
  }
  for (const Tensor& w : weights) {
    TORCH_CHECK(w.is_contiguous() && w.scalar_type() == x.scalar_type(),
                "pixelcnnpp_step: weights must be contiguous, of x's dtype");
  }
  for (const Tensor& w : {left_w, left_b, head_w, head_b}) {
    TORCH_CHECK(w.is_contiguous() && w.scalar_type() == x.scalar_type(),
                "pixelcnnpp_step: weights must be contiguous, of x's dtype");
  }
  const std::vector<Tensor> map_list = maps.vec(), weight_list = weights.vec();
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelcnnpp_step", [&] {
    out = pixelcnnpp_step_typed<scalar_t>(x, ul_above, map_list, weight_list, program, left_w,
                                          left_b, head_w, head_b, init_ul, final_map, i, j,
                                          top);
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
  m.def(
      "gated_pixelcnn_step(Tensor x, int i, int j, Tensor(a!) first_row, Tensor first_w, "
      "Tensor first_above, Tensor(b!) rows, Tensor conv_w, Tensor above, Tensor residual_w, "
      "Tensor residual_b, Tensor hidden_w, Tensor hidden_b, Tensor out_w, Tensor out_b) "
      "-> Tensor");
  m.def(
      "pixelcnnpp_step(Tensor x, Tensor ul_above, Tensor(a!)[] maps, Tensor[] weights, "
      "Tensor program, Tensor left_w, Tensor left_b, Tensor head_w, Tensor head_b, "
      "int init_ul, int final_map, int i, int j, int top) -> Tensor");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("pixelcnn_step", &pixelcnn_step);
  m.impl("gated_pixelcnn_step", &gated_pixelcnn_step);
  m.impl("pixelcnnpp_step", &pixelcnnpp_step);
}
