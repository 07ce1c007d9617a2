// One cached sampling step of a Row LSTM or Diagonal BiLSTM PixelRNN (PixelRNN §3.1-3.3):
// the mask-A input layer, every recurrent layer at one pixel, the 1x1 expansions with their
// residual and skip connections, and the output layers, as one call; and the Diagonal
// BiLSTM's right-to-left pass over a finished row. The Python twins are RowLSTMStepper,
// DiagonalBiLSTMStepper and PixelRNNStepper.step (pixelrnn/sampling/cached/pixelrnn.py).
// The shared helpers and what the cached steps are: cached_steps.h.

#include "cached_steps.h"

namespace {

using at::Tensor;
using namespace pixelrnn_cached;

// One LSTM cell update per image (PixelRNN Eq. 3): pre-activations [o|f|i|g] (B, 4h) and the
// previous cell (row stride c_prev_stride; null: zero) -> h and c (row strides h_stride,
// c_stride). sigma(x) = 1 / (1 + exp(-x)) and tanh as torch.sigmoid and torch.tanh compute
// them, in ATen's vector type.
template <typename T>
void lstm_cell(const T* pre, int64_t b, int64_t h, const T* c_prev, int64_t c_prev_stride,
               T* h_out, int64_t h_stride, T* c_out, int64_t c_stride) {
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1)), zero(T(0));
  for (int64_t n = 0; n < b; ++n) {
    const T* g = pre + n * 4 * h;
    for (int64_t q = 0; q < h; q += Vec::size()) {
      const int64_t count = std::min<int64_t>(Vec::size(), h - q);
      const auto sigmoid = [&](const T* p) {
        return (one + Vec::loadu(p + q, count).neg().exp()).reciprocal();
      };
      const Vec o = sigmoid(g), f = sigmoid(g + h), i = sigmoid(g + 2 * h);
      const Vec cell_in = Vec::loadu(g + 3 * h + q, count).tanh();
      const Vec previous =
          c_prev == nullptr ? zero : Vec::loadu(c_prev + n * c_prev_stride + q, count);
      const Vec c = f * previous + i * cell_in;
      c.store(c_out + n * c_stride + q, count);
      (o * c.tanh()).store(h_out + n * h_stride + q, count);
    }
  }
}

// The layers around the recurrent ones, for the images of x (a part of the batch): the input
// layer's pre-activations into features (B, 2h); then per layer `recurrent(k, features,
// state)` writes the layer's output (B, h) into state, followed by the 1x1 expansion (+ the
// residual) and the skip; the output layers' parameters into out.
template <typename T, typename Recurrent>
void around_layers(const Tensor& x, int64_t i_row, int64_t j, const Tensor& in_row,
                   const Tensor& in_w, const Tensor& in_above, at::TensorList expand_w,
                   at::TensorList expand_b, at::TensorList skip_w, at::TensorList skip_b,
                   bool residual, const Tensor& hidden_w, const Tensor& hidden_b,
                   const Tensor& out_w, const Tensor& out_b, int64_t h, const Recurrent& recurrent,
                   T* out) {
  const int64_t b = x.size(0), channels = x.size(1), features_n = 2 * h;
  std::vector<T> features(b * features_n), state(b * h), expanded(b * features_n), term;
  std::vector<T> skip_sum(skip_w.empty() ? 0 : b * features_n);
  write_image_pixels<T>(x, i_row, j, in_row, in_w.size(0) / channels - 1);
  column<T>(in_above, 0, j, term);
  linear<T>(in_row.data_ptr<T>() + j * channels, in_row.stride(0), b, in_w.size(0), false,
            in_w.data_ptr<T>(), features_n, nullptr, term.data(), features_n, features.data());
  for (int64_t k = 0; k < static_cast<int64_t>(expand_w.size()); ++k) {
    recurrent(k, features.data(), state.data());
    linear<T>(state.data(), h, b, h, false, expand_w[k].data_ptr<T>(), features_n,
              expand_b[k].data_ptr<T>(), residual ? features.data() : nullptr, features_n,
              residual ? features.data() : expanded.data());
    if (!residual) std::copy(expanded.begin(), expanded.end(), features.begin());
    if (!skip_w.empty()) {
      linear<T>(features.data(), features_n, b, features_n, false, skip_w[k].data_ptr<T>(),
                features_n, skip_b[k].data_ptr<T>(), k == 0 ? nullptr : skip_sum.data(),
                features_n, skip_sum.data());
    }
  }
  const T* last = skip_w.empty() ? features.data() : skip_sum.data();
  output_layers<T>(last, b, features_n, hidden_w, hidden_b, out_w, out_b, out);
}

// Row LSTM layer k at (i, j): the input-to-state taps j - r .. j on the layer's current-row
// buffer rows[k] (B, (W + r) 2h) plus the row's term above[k] (B, W, 4h), the cell from the
// row above c_prev[k] (B, W, h); the state and cell into h_row[k] and c_row[k] (B, W, h).
template <typename T>
void row_lstm_part(const Tensor& x, int64_t i, int64_t j, const Tensor& in_row,
                   const Tensor& in_w, const Tensor& in_above, const std::vector<Tensor>& rows,
                   at::TensorList taps_w, const std::vector<Tensor>& above,
                   const std::vector<Tensor>& c_prev, const std::vector<Tensor>& h_row,
                   const std::vector<Tensor>& c_row, at::TensorList expand_w,
                   at::TensorList expand_b, at::TensorList skip_w, at::TensorList skip_b,
                   bool residual, const Tensor& hidden_w, const Tensor& hidden_b,
                   const Tensor& out_w, const Tensor& out_b, T* out) {
  const int64_t b = x.size(0), h = h_row[0].size(2), features_n = 2 * h;
  std::vector<T> gates(b * 4 * h), term;
  const auto recurrent = [&](int64_t k, const T* features, T* state) {
    const Tensor& row = rows[k];
    const int64_t taps = taps_w[k].size(0), r = taps / features_n - 1;
    T* buffer = row.data_ptr<T>();
    for (int64_t n = 0; n < b; ++n) {
      std::copy_n(features + n * features_n, features_n,
                  buffer + n * row.stride(0) + (j + r) * features_n);
    }
    column<T>(above[k], 0, j, term);
    linear<T>(buffer + j * features_n, row.stride(0), b, taps, false, taps_w[k].data_ptr<T>(),
              4 * h, nullptr, term.data(), 4 * h, gates.data());
    const Tensor &cp = c_prev[k], &hr = h_row[k], &cr = c_row[k];
    T* h_at = hr.data_ptr<T>() + j * hr.stride(1);
    lstm_cell<T>(gates.data(), b, h, cp.data_ptr<T>() + j * cp.stride(1), cp.stride(0), h_at,
                 hr.stride(0), cr.data_ptr<T>() + j * cr.stride(1), cr.stride(0));
    for (int64_t n = 0; n < b; ++n) std::copy_n(h_at + n * hr.stride(0), h, state + n * h);
  };
  around_layers<T>(x, i, j, in_row, in_w, in_above, expand_w, expand_b, skip_w, skip_b,
                   residual, hidden_w, hidden_b, out_w, out_b, h, recurrent, out);
}

// Diagonal BiLSTM layer k at (i, j), left-to-right direction: the input-to-state product
// w_in[k] (2h, 4h) of the features plus the row's term left_above[k] (B, W, 4h) plus the
// state to the left times w_side[k] (h, 4h), the cell to the left; the state and cell into
// left_row[k] and left_cells[k] (B, W, h); the features into inputs[k] (B, W, 2h) for the
// row's right-to-left pass; the layer's output adds the right-to-left state of the row above,
// right_prev[k] (B, W, h), below the first row.
template <typename T>
void diagonal_part(const Tensor& x, int64_t i, int64_t j, const Tensor& in_row,
                   const Tensor& in_w, const Tensor& in_above, const std::vector<Tensor>& inputs,
                   at::TensorList w_in, const std::vector<Tensor>& left_above,
                   at::TensorList w_side, const std::vector<Tensor>& left_row,
                   const std::vector<Tensor>& left_cells, const std::vector<Tensor>& right_prev,
                   at::TensorList expand_w, at::TensorList expand_b, at::TensorList skip_w,
                   at::TensorList skip_b, bool residual, const Tensor& hidden_w,
                   const Tensor& hidden_b, const Tensor& out_w, const Tensor& out_b, T* out) {
  const int64_t b = x.size(0), h = left_row[0].size(2), features_n = 2 * h;
  std::vector<T> gates(b * 4 * h), term;
  const auto recurrent = [&](int64_t k, const T* features, T* state) {
    const Tensor &inp = inputs[k], &lr = left_row[k], &lc = left_cells[k];
    for (int64_t n = 0; n < b; ++n) {
      std::copy_n(features + n * features_n, features_n,
                  inp.data_ptr<T>() + n * inp.stride(0) + j * inp.stride(1));
    }
    column<T>(left_above[k], 0, j, term);
    linear<T>(features, features_n, b, features_n, false, w_in[k].data_ptr<T>(), 4 * h,
              nullptr, term.data(), 4 * h, gates.data());
    const T* c_side = nullptr;
    if (j > 0) {
      const T* side = lr.data_ptr<T>() + (j - 1) * lr.stride(1);
      linear<T>(side, lr.stride(0), b, h, false, w_side[k].data_ptr<T>(), 4 * h, nullptr,
                gates.data(), 4 * h, gates.data());
      c_side = lc.data_ptr<T>() + (j - 1) * lc.stride(1);
    }
    T* h_at = lr.data_ptr<T>() + j * lr.stride(1);
    lstm_cell<T>(gates.data(), b, h, c_side, lc.stride(0), h_at, lr.stride(0),
                 lc.data_ptr<T>() + j * lc.stride(1), lc.stride(0));
    const Tensor& rp = right_prev[k];
    for (int64_t n = 0; n < b; ++n) {
      const T* left = h_at + n * lr.stride(0);
      const T* right = rp.data_ptr<T>() + n * rp.stride(0) + j * rp.stride(1);
      for (int64_t q = 0; q < h; ++q) state[n * h + q] = i > 0 ? left[q] + right[q] : left[q];
    }
  };
  around_layers<T>(x, i, j, in_row, in_w, in_above, expand_w, expand_b, skip_w, skip_b,
                   residual, hidden_w, hidden_b, out_w, out_b, h, recurrent, out);
}

// Images [n0, n1) of every tensor of a list (batch dimension 0).
std::vector<Tensor> parts(at::TensorList list, int64_t n0, int64_t n1) {
  std::vector<Tensor> out;
  for (const Tensor& t : list) out.push_back(part(t, 0, n0, n1));
  return out;
}

// The caches and weights a step reads by rows (the row terms, read through `column`, may have
// any strides).
void check_step(const Tensor& x, std::initializer_list<at::TensorList> lists,
                std::initializer_list<const Tensor*> weights, const char* name) {
  TORCH_CHECK(x.is_cpu() && x.dim() == 4, name, ": a (B, C, H, W) CPU image");
  for (const at::TensorList& list : lists) {
    for (const Tensor& t : list) {
      TORCH_CHECK(t.scalar_type() == x.scalar_type() && t.stride(-1) == 1, name,
                  ": caches and weights of the image's dtype, rows contiguous");
    }
  }
  for (const Tensor* t : weights) {
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == x.scalar_type(), name,
                ": weights must be contiguous, of the image's dtype");
  }
}

Tensor row_lstm_step(const Tensor& x, int64_t i, int64_t j, Tensor in_row, const Tensor& in_w,
                     const Tensor& in_above, at::TensorList rows, at::TensorList taps_w,
                     at::TensorList above, at::TensorList c_prev, at::TensorList h_row,
                     at::TensorList c_row, at::TensorList expand_w, at::TensorList expand_b,
                     at::TensorList skip_w, at::TensorList skip_b, bool residual,
                     const Tensor& hidden_w, const Tensor& hidden_b, const Tensor& out_w,
                     const Tensor& out_b) {
  check_step(x, {rows, taps_w, c_prev, h_row, c_row, expand_w, expand_b, skip_w, skip_b},
             {&in_w, &hidden_w, &hidden_b, &out_w, &out_b}, "row_lstm_step");
  Tensor out = at::empty({x.size(0), out_w.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_lstm_step", [&] {
    over_batch(x.size(0), [&](int64_t n0, int64_t n1) {
      row_lstm_part<scalar_t>(
          part(x, 0, n0, n1), i, j, part(in_row, 0, n0, n1), in_w, part(in_above, 0, n0, n1),
          parts(rows, n0, n1), taps_w, parts(above, n0, n1), parts(c_prev, n0, n1),
          parts(h_row, n0, n1), parts(c_row, n0, n1), expand_w, expand_b, skip_w, skip_b,
          residual, hidden_w, hidden_b, out_w, out_b,
          out.data_ptr<scalar_t>() + n0 * out.size(1));
    });
  });
  return out;
}

Tensor diagonal_lstm_step(const Tensor& x, int64_t i, int64_t j, Tensor in_row,
                          const Tensor& in_w, const Tensor& in_above, at::TensorList inputs,
                          at::TensorList w_in, at::TensorList left_above, at::TensorList w_side,
                          at::TensorList left_row, at::TensorList left_cells,
                          at::TensorList right_prev, at::TensorList expand_w,
                          at::TensorList expand_b, at::TensorList skip_w, at::TensorList skip_b,
                          bool residual, const Tensor& hidden_w, const Tensor& hidden_b,
                          const Tensor& out_w, const Tensor& out_b) {
  check_step(x,
             {inputs, w_in, w_side, left_row, left_cells, right_prev, expand_w, expand_b,
              skip_w, skip_b},
             {&in_w, &hidden_w, &hidden_b, &out_w, &out_b}, "diagonal_lstm_step");
  Tensor out = at::empty({x.size(0), out_w.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "diagonal_lstm_step", [&] {
    over_batch(x.size(0), [&](int64_t n0, int64_t n1) {
      diagonal_part<scalar_t>(
          part(x, 0, n0, n1), i, j, part(in_row, 0, n0, n1), in_w, part(in_above, 0, n0, n1),
          parts(inputs, n0, n1), w_in, parts(left_above, n0, n1), w_side,
          parts(left_row, n0, n1), parts(left_cells, n0, n1), parts(right_prev, n0, n1),
          expand_w, expand_b, skip_w, skip_b, residual, hidden_w, hidden_b, out_w, out_b,
          out.data_ptr<scalar_t>() + n0 * out.size(1));
    });
  });
  return out;
}

// The Diagonal BiLSTM's right-to-left pass over a finished row: from the pre-activations of
// the input and above terms pre (B, W, 4h), for j = W - 1 .. 0 the state to the right times
// w_side (h, 4h) is added and the cell updated (zero state and cell right of the row); the
// states into row (B, W, h).
Tensor lstm_row_right_to_left(const Tensor& pre, const Tensor& w_side, Tensor row) {
  TORCH_CHECK(pre.is_cpu() && pre.dim() == 3 && pre.stride(2) == 1 && row.stride(2) == 1 &&
                  w_side.is_contiguous() && pre.scalar_type() == row.scalar_type() &&
                  pre.scalar_type() == w_side.scalar_type(),
              "lstm_row_right_to_left: (B, W, 4h) CPU pre-activations, rows contiguous");
  const int64_t width = pre.size(1), h = row.size(2);
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "lstm_row_right_to_left", [&] {
    using T = scalar_t;
    over_batch(pre.size(0), [&](int64_t n0, int64_t n1) {
      const int64_t b = n1 - n0;
      const Tensor p = part(pre, 0, n0, n1), out = part(row, 0, n0, n1);
      std::vector<T> gates(b * 4 * h), cells(b * h), next_cells(b * h);
      for (int64_t j = width - 1; j >= 0; --j) {
        const T* pre_j = p.data_ptr<T>() + j * p.stride(1);
        T* h_at = out.data_ptr<T>() + j * out.stride(1);
        if (j == width - 1) {
          for (int64_t n = 0; n < b; ++n) {
            std::copy_n(pre_j + n * p.stride(0), 4 * h, gates.data() + n * 4 * h);
          }
        } else {
          const T* side = h_at + out.stride(1);
          linear<T>(side, out.stride(0), b, h, false, w_side.data_ptr<T>(), 4 * h, nullptr,
                    pre_j, p.stride(0), gates.data());
        }
        lstm_cell<T>(gates.data(), b, h, j == width - 1 ? nullptr : cells.data(), h, h_at,
                     out.stride(0), next_cells.data(), h);
        std::swap(cells, next_cells);
      }
    });
  });
  return row;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn, m) {
  m.def(
      "row_lstm_step(Tensor x, int i, int j, Tensor(a!) in_row, Tensor in_w, Tensor in_above, "
      "Tensor(b!)[] rows, Tensor[] taps_w, Tensor[] above, Tensor[] c_prev, Tensor(c!)[] h_row, "
      "Tensor(d!)[] c_row, Tensor[] expand_w, Tensor[] expand_b, Tensor[] skip_w, "
      "Tensor[] skip_b, bool residual, Tensor hidden_w, Tensor hidden_b, Tensor out_w, "
      "Tensor out_b) -> Tensor");
  m.def(
      "diagonal_lstm_step(Tensor x, int i, int j, Tensor(a!) in_row, Tensor in_w, "
      "Tensor in_above, Tensor(b!)[] inputs, Tensor[] w_in, Tensor[] left_above, "
      "Tensor[] w_side, Tensor(c!)[] left_row, Tensor(d!)[] left_cells, Tensor[] right_prev, "
      "Tensor[] expand_w, Tensor[] expand_b, Tensor[] skip_w, Tensor[] skip_b, bool residual, "
      "Tensor hidden_w, Tensor hidden_b, Tensor out_w, Tensor out_b) -> Tensor");
  m.def("lstm_row_right_to_left(Tensor pre, Tensor w_side, Tensor(a!) row) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("row_lstm_step", &row_lstm_step);
  m.impl("diagonal_lstm_step", &diagonal_lstm_step);
  m.impl("lstm_row_right_to_left", &lstm_row_right_to_left);
}
