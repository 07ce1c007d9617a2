// Cached sampling of PixelCNN++ (PixelCNN++ §2.3-2.5): one step of its down-right stream, and
// one row of its down stream, each as a program of ops over the cached maps.
// The shared helpers and what the cached steps are: cached_steps.h.

#include <cstring>

#include "cached_steps.h"

namespace {

using at::Tensor;
using namespace pixelrnn_cached;

// Maps are (B, C, R, W + 2) stored channels last, position (a, b) at padded row a + 1, column
// b + 1, padded row p kept in row p mod R (a ring of the last R rows;
// sampling/cached/pixelcnn_pp_ops.py, class Map). So the k positions of a window's row are
// k * C contiguous numbers, and the program's kernels are stored in that order, (row, column,
// channel) (CompiledProgram in sampling/cached/pixelcnn_pp.py). A gated ResNet's first
// convolution reads its input's concat_elu map (struct Maps below).

// Row p (padded) of image n of a map.
template <typename T>
inline T* map_row(const Tensor& map, int64_t n, int64_t p) {
  return map.data_ptr<T>() + n * map.stride(0) + (p % map.size(2)) * map.stride(2);
}

template <typename T>
inline T elu(T v) {
  return v > T(0) ? v : std::expm1(v);
}

// elu(x) and elu(-x) of `count` contiguous numbers, in ATen's vector type (its vectorized
// expm1): the transcendental functions were most of a step's time at large batch.
template <typename T>
void concat_elu_run(const T* x, int64_t count, T* positive, T* negative) {
  using Vec = at::vec::Vectorized<T>;
  const Vec zero(T(0));
  for (int64_t c = 0; c < count; c += Vec::size()) {
    const int64_t m = std::min<int64_t>(Vec::size(), count - c);
    const Vec v = Vec::loadu(x + c, m), w = v.neg();
    Vec::blendv(v.expm1(), v, v > zero).store(positive + c, m);
    Vec::blendv(w.expm1(), w, w > zero).store(negative + c, m);
  }
}

// A map's entries at (a, b): (C,) of image n.
template <typename T>
inline T* map_at(const Tensor& map, int64_t n, int64_t a, int64_t b) {
  return map_row<T>(map, n, a + 1) + (b + 1) * map.stride(3);
}

// The maps, and for each the index of its concat_elu map (elu(x), then elu(-x): 2C channels;
// -1: none), written with it: a position's exponentials are computed once, not once for every
// window that reads it (2 x 2 or 2 x 3 windows: that was a quarter of the generation's time).
struct Maps {
  const std::vector<Tensor>& t;
  const int64_t* elu_of;
  const Tensor& operator[](int64_t index) const { return t[index]; }
  const Tensor& elu(int64_t index) const { return t[elu_of[index]]; }
};

// values (C,) into position (a, b) of image n of map `index`, and into its concat_elu map.
template <typename T>
void store(const Maps& maps, int64_t index, int64_t n, int64_t a, int64_t b, const T* values) {
  const Tensor& map = maps[index];
  const int64_t channels = map.size(1);
  std::memcpy(map_at<T>(map, n, a, b), values, channels * sizeof(T));
  if (maps.elu_of[index] >= 0) {
    T* at = map_at<T>(maps.elu(index), n, a, b);
    concat_elu_run<T>(values, channels, at, at + channels);
  }
}

// out (B, N) = [bias] + [out, when accumulating] + x (B, K; rows x_stride apart) @ w (K, N,
// contiguous): the loops of `linear` for a few images (no call overhead), the BLAS's GEMM for
// more (PixelCNN++'s matrices are larger than the other families', so the GEMM pays from
// fewer images; ATen's matrix product where the BLAS symbols are missing).
constexpr int64_t kLoopBatch = 4;

template <typename T>
void product(const T* x, int64_t x_stride, int64_t batch, int64_t k, const T* w, int64_t n,
             const T* bias, bool accumulate, T* out) {
  const T* add = accumulate ? out : nullptr;
  if (batch <= kLoopBatch) {
    linear<T>(x, x_stride, batch, k, false, w, n, bias, add, n, out);
  } else if (have_gemm<T>()) {
    linear_gemm<T>(x, x_stride, batch, k, false, w, n, bias, add, n, out);
  } else {
    const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    Tensor result = at::from_blob(out, {batch, n}, options);
    const Tensor a = at::from_blob(const_cast<T*>(x), {batch, k}, {x_stride, 1}, options);
    const Tensor b = at::from_blob(const_cast<T*>(w), {k, n}, options);
    if (accumulate) {
      result.addmm_(a, b);
    } else {
      at::mm_out(result, a, b);
    }
    if (bias != nullptr) result.add_(at::from_blob(const_cast<T*>(bias), {n}, options));
  }
}

// out (B, N) = bias + the window at rows a - 1 .. a, columns b - 1 .. b + k - 2 of the map
// (every image) @ w (2 * k * C, N; rows in (row, column, channel) order): a product per window
// row, read in place (an image's k positions of a row are contiguous, and images are the
// map's stride(0) apart).
template <typename T>
void window_product(const Tensor& map, int64_t a, int64_t b, int64_t k, const Tensor& w,
                    const T* bias, T* out) {
  const int64_t run = k * map.size(1), n = w.size(1);
  for (int64_t row = 0; row < 2; ++row) {
    product<T>(map_row<T>(map, 0, a + row) + b * map.stride(3), map.stride(0), map.size(0), run,
               w.data_ptr<T>() + row * run * n, n, row == 0 ? bias : nullptr, row > 0, out);
  }
}

// One row of a program PixelCNNPPStepper builds (sampling/cached/pixelcnn_pp.py,
// CompiledProgram): an op of the down-right stream (or of the down stream), its level, indices
// into the lists of maps and weights (-1: none), its kernel width, and a transposed
// convolution's first kept column.
enum Column : int64_t {
  kKind, kLevel, kIn, kOut, kC1, kAux0, kAux1, kW, kB, kAuxW, kAuxB, kWOut, kBOut, kClassBias,
  kTaps, kFirst, kColumns
};
enum Kind : int64_t { kResidual = 0, kDownsample = 1, kUpsample = 2 };

// A gated ResNet layer (PixelCNN++ §2.5) at position (a, b), in two halves. The first:
// concat_elu windows of the input, first convolution (+ the 1x1 on concat_elu of the auxiliary
// maps), concat_elu into its map at (a, b).
template <typename T>
void residual_first(const Maps& maps, const std::vector<Tensor>& weights,
                    const int64_t* op, int64_t a, int64_t b) {
  const Tensor &inp = maps[op[kIn]], &c1_map = maps[op[kC1]], &w_in = weights[op[kW]];
  const int64_t batch = inp.size(0), f = w_in.size(1), k = op[kTaps];
  std::vector<T> c1(batch * f);
  window_product<T>(maps.elu(op[kIn]), a, b, k, w_in, weights[op[kB]].data_ptr<T>(), c1.data());
  if (op[kAuxW] >= 0) {  // per auxiliary map, its concat_elu at (a, b) read in place
    const T* aux_w = weights[op[kAuxW]].data_ptr<T>();  // rows: each map's (2 C_i)
    const T* aux_b = weights[op[kAuxB]].data_ptr<T>();  // added with the first
    for (const int64_t index : {op[kAux0], op[kAux1]}) {
      if (index < 0) continue;
      const Tensor& m = maps.elu(index);
      product<T>(map_at<T>(m, 0, a, b), m.stride(0), batch, m.size(1), aux_w, f, aux_b, true,
                 c1.data());
      aux_w += m.size(1) * f;
      aux_b = nullptr;
    }
  }
  for (int64_t n = 0; n < batch; ++n) {
    T* c1_at = map_at<T>(c1_map, n, a, b);
    concat_elu_run<T>(c1.data() + n * f, f, c1_at, c1_at + f);
  }
}

// The second half: the second convolution on the first's map (its window at (a, b) must be
// written), gate, plus the input.
template <typename T>
void residual_second(const Maps& maps, const std::vector<Tensor>& weights,
                     const int64_t* op, int64_t a, int64_t b) {
  const Tensor &inp = maps[op[kIn]], &out = maps[op[kOut]], &c1_map = maps[op[kC1]];
  const Tensor& w_out = weights[op[kWOut]];
  const int64_t batch = inp.size(0), f = out.size(1), k = op[kTaps];
  std::vector<T> c2(batch * 2 * f);
  window_product<T>(c1_map, a, b, k, w_out, weights[op[kBOut]].data_ptr<T>(), c2.data());
  const T* class_bias = op[kClassBias] >= 0 ? weights[op[kClassBias]].data_ptr<T>() : nullptr;
  // gate, plus the input (the residual), in ATen's vector type
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1));
  std::vector<T> o(f);
  for (int64_t n = 0; n < batch; ++n) {
    const T* c2_n = c2.data() + n * 2 * f;
    const T* bias_n = class_bias == nullptr ? nullptr : class_bias + n * 2 * f;
    const T* x_at = map_at<T>(inp, n, a, b);
    for (int64_t c = 0; c < f; c += Vec::size()) {
      const int64_t m = std::min<int64_t>(Vec::size(), f - c);
      Vec value = Vec::loadu(c2_n + c, m), gate = Vec::loadu(c2_n + f + c, m);
      if (bias_n != nullptr) {
        value = value + Vec::loadu(bias_n + c, m);
        gate = gate + Vec::loadu(bias_n + f + c, m);
      }
      const Vec sigmoid = (one + gate.neg().exp()).reciprocal();
      (Vec::loadu(x_at + c, m) + value * sigmoid).store(o.data() + c, m);
    }
    store<T>(maps, op[kOut], n, a, b, o.data());
  }
}

// A stride-2 shifted convolution at (a, b): rows 2a - 1 .. 2a, columns 2b - 1 .. 2b + k - 2
// of the input (k: the kernel width).
template <typename T>
void downsample_at(const Maps& maps, const std::vector<Tensor>& weights,
                   const int64_t* op, int64_t a, int64_t b) {
  const Tensor& inp = maps[op[kIn]];
  const int64_t batch = inp.size(0), f = maps[op[kOut]].size(1);
  std::vector<T> result(batch * f);
  window_product<T>(inp, 2 * a, 2 * b, op[kTaps], weights[op[kW]],
                    weights[op[kB]].data_ptr<T>(), result.data());
  for (int64_t n = 0; n < batch; ++n) store<T>(maps, op[kOut], n, a, b, result.data() + n * f);
}

// A stride-2 shifted transposed convolution with 2 x k taps (kh, kw, C_in, C_out), cropped
// from column `first`, at (a, b): tap row a % 2 of input row a / 2; output column b is full
// column q = first + b, which input column p reaches through tap kw where 2p + kw = q (one
// tap for k = 2, one or two for k = 3).
template <typename T>
void upsample_at(const Maps& maps, const std::vector<Tensor>& weights,
                 const int64_t* op, int64_t a, int64_t b) {
  const Tensor &inp = maps[op[kIn]], &taps = weights[op[kW]];
  const int64_t batch = inp.size(0), c_in = inp.size(1), f = taps.size(3), k = taps.size(1);
  const int64_t width_in = inp.size(3) - 2, q = op[kFirst] + b;
  const T* tap_row = taps.data_ptr<T>() + (a % 2) * k * c_in * f;
  std::vector<T> sum(batch * f);
  const T* bias = weights[op[kB]].data_ptr<T>();  // with the first tap; the next accumulate
  for (int64_t kw = 0; kw < k; ++kw) {
    if ((q - kw) % 2 != 0 || q < kw || (q - kw) / 2 >= width_in) continue;
    product<T>(map_at<T>(inp, 0, a / 2, (q - kw) / 2), inp.stride(0), batch, c_in,
               tap_row + kw * c_in * f, f, bias, bias == nullptr, sum.data());
    bias = nullptr;
  }
  for (int64_t n = 0; n < batch; ++n) store<T>(maps, op[kOut], n, a, b, sum.data() + n * f);
}

// Op `op` at position (a, b) (the down-right stream's step).
template <typename T>
void run_at(const Maps& maps, const std::vector<Tensor>& weights,
            const int64_t* op, int64_t a, int64_t b) {
  if (op[kKind] == kResidual) {
    residual_first<T>(maps, weights, op, a, b);
    residual_second<T>(maps, weights, op, a, b);
  } else if (op[kKind] == kDownsample) {
    downsample_at<T>(maps, weights, op, a, b);
  } else {
    upsample_at<T>(maps, weights, op, a, b);
  }
}

// Op `op` on the whole row a of its output (the down stream): every column; a gated ResNet's
// first half at every column before its second (whose window reaches one column right).
template <typename T>
void run_row(const Maps& maps, const std::vector<Tensor>& weights,
             const int64_t* op, int64_t a) {
  const int64_t width = maps[op[kOut]].size(3) - 2;
  if (op[kKind] == kResidual) {
    for (int64_t b = 0; b < width; ++b) residual_first<T>(maps, weights, op, a, b);
    for (int64_t b = 0; b < width; ++b) residual_second<T>(maps, weights, op, a, b);
    return;
  }
  for (int64_t b = 0; b < width; ++b) run_at<T>(maps, weights, op, a, b);
}

// The step for the images of x (a part of the batch: the maps, the row term and the class
// biases narrowed alike), the parameters into out (B, n_out).
template <typename T>
void pixelcnnpp_step_typed(
    const Tensor& x, const Tensor& ul_above, const Maps& maps,
    const std::vector<Tensor>& weights, const Tensor& program, const Tensor& left_w,
    const Tensor& left_b, const Tensor& head_w, const Tensor& head_b, int64_t init_ul,
    int64_t final_map, int64_t i, int64_t j, int64_t top, T* out) {
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
    store<T>(maps, init_ul, n, i, j, value.data());
  }
  const int64_t* ops = program.data_ptr<int64_t>();
  for (int64_t r = 0; r < program.size(0); ++r) {
    const int64_t* op = ops + r * kColumns;
    const int64_t level = op[kLevel];
    if (level > top) continue;
    run_at<T>(maps, weights, op, i >> level, j >> level);
  }
  // the head: a 1x1 convolution on elu of the last map at (i, j)
  const Tensor& last = maps[final_map];
  const int64_t features = last.size(1);
  std::vector<T> h(batch * features);
  for (int64_t n = 0; n < batch; ++n) {
    const T* at = map_at<T>(last, n, i, j);
    for (int64_t c = 0; c < features; ++c) h[n * features + c] = elu(at[c]);
  }
  product<T>(h.data(), features, batch, features, head_w.data_ptr<T>(), head_w.size(1),
             head_b.data_ptr<T>(), false, out);
}

// The checks both ops make of the program, maps and weights. Every map a gated ResNet reads
// (input, auxiliary) has a concat_elu map.
void check_program(const char* name, const Tensor& x, const Tensor& program, at::TensorList maps,
                   const Tensor& elu_of, at::TensorList weights) {
  TORCH_CHECK(x.is_cpu() && x.dim() == 4, name, ": a (B, C, H, W) CPU image");
  TORCH_CHECK(program.scalar_type() == at::kLong && program.is_contiguous() &&
                  program.dim() == 2 && program.size(1) == kColumns,
              name, ": the program is a contiguous (ops, ", int64_t(kColumns), ") int64 tensor");
  TORCH_CHECK(elu_of.scalar_type() == at::kLong && elu_of.is_contiguous() &&
                  elu_of.numel() == static_cast<int64_t>(maps.size()),
              name, ": elu_of is a contiguous int64 index per map");
  for (const Tensor& m : maps) {
    TORCH_CHECK(m.dim() == 4 && m.scalar_type() == x.scalar_type() && m.stride(1) == 1 &&
                    m.stride(3) == m.size(1),
                name, ": maps must be (B, C, R, W + 2), channels last, of x's dtype");
  }
  const int64_t* elu = elu_of.data_ptr<int64_t>();
  const int64_t* ops = program.data_ptr<int64_t>();
  for (int64_t r = 0; r < program.size(0); ++r) {
    const int64_t* op = ops + r * kColumns;
    if (op[kKind] != kResidual) continue;
    for (const int64_t index : {op[kIn], op[kAux0], op[kAux1]}) {
      TORCH_CHECK(index < 0 || elu[index] >= 0, name, ": map ", index,
                  " feeds a gated ResNet and has no concat_elu map");
    }
  }
  for (const Tensor& w : weights) {
    TORCH_CHECK(w.is_contiguous() && w.scalar_type() == x.scalar_type(), name,
                ": weights must be contiguous, of x's dtype");
  }
}

// Runs fn(n0, n1, maps, weights) over parts of the batch (over_batch), with the maps and the
// per-image class biases narrowed to the part's images.
template <typename F>
void over_batch_parts(int64_t batch, at::TensorList maps, const Tensor& elu_of,
                      at::TensorList weights, const Tensor& program, const F& fn) {
  const std::vector<Tensor> weight_list = weights.vec();
  const int64_t* ops = program.data_ptr<int64_t>();
  over_batch(batch, [&](int64_t n0, int64_t n1) {
    const bool whole = n0 == 0 && n1 == batch;
    std::vector<Tensor> part_maps = whole ? maps.vec() : std::vector<Tensor>();
    std::vector<Tensor> part_weights = weight_list;
    if (!whole) {
      for (const Tensor& m : maps) part_maps.push_back(part(m, 0, n0, n1));
      for (int64_t r = 0; r < program.size(0); ++r) {  // the class biases are per image
        const int64_t index = ops[r * kColumns + kClassBias];
        if (index >= 0) part_weights[index] = part(weight_list[index], 0, n0, n1);
      }
    }
    fn(n0, n1, Maps{part_maps, elu_of.data_ptr<int64_t>()}, part_weights);
  });
}

Tensor pixelcnnpp_step(
    const Tensor& x, const Tensor& ul_above, at::TensorList maps, const Tensor& elu_of,
    at::TensorList weights, const Tensor& program, const Tensor& left_w, const Tensor& left_b,
    const Tensor& head_w, const Tensor& head_b, int64_t init_ul, int64_t final_map, int64_t i,
    int64_t j, int64_t top) {
  check_program("pixelcnnpp_step", x, program, maps, elu_of, weights);
  for (const Tensor& w : {left_w, left_b, head_w, head_b}) {
    TORCH_CHECK(w.is_contiguous() && w.scalar_type() == x.scalar_type(),
                "pixelcnnpp_step: weights must be contiguous, of x's dtype");
  }
  Tensor out = at::empty({x.size(0), head_w.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelcnnpp_step", [&] {
    over_batch_parts(x.size(0), maps, elu_of, weights, program,
                     [&](int64_t n0, int64_t n1, const Maps& part_maps,
                         const std::vector<Tensor>& part_weights) {
                       pixelcnnpp_step_typed<scalar_t>(
                           part(x, 0, n0, n1), part(ul_above, 0, n0, n1), part_maps,
                           part_weights, program, left_w, left_b, head_w, head_b, init_ul,
                           final_map, i, j, top, out.data_ptr<scalar_t>() + n0 * out.size(1));
                     });
  });
  return out;
}

// PixelCNN++'s down stream at row i (PixelCNN++ §2.3, the `u` stream): the program's ops at
// resolutions up to `top`, each on the whole row i >> level of its output, in order (the maps
// of the row's first op already written).
void pixelcnnpp_row(const Tensor& x, at::TensorList maps, const Tensor& elu_of,
                    at::TensorList weights, const Tensor& program, int64_t i, int64_t top) {
  check_program("pixelcnnpp_row", x, program, maps, elu_of, weights);
  const int64_t* ops = program.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pixelcnnpp_row", [&] {
    over_batch_parts(x.size(0), maps, elu_of, weights, program,
                     [&](int64_t, int64_t, const Maps& part_maps,
                         const std::vector<Tensor>& part_weights) {
                       for (int64_t r = 0; r < program.size(0); ++r) {
                         const int64_t* op = ops + r * kColumns;
                         if (op[kLevel] > top) continue;
                         run_row<scalar_t>(part_maps, part_weights, op, i >> op[kLevel]);
                       }
                     });
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn, m) {
  m.def(
      "pixelcnnpp_step(Tensor x, Tensor ul_above, Tensor(a!)[] maps, Tensor elu_of, "
      "Tensor[] weights, Tensor program, Tensor left_w, Tensor left_b, Tensor head_w, "
      "Tensor head_b, int init_ul, int final_map, int i, int j, int top) -> Tensor");
  m.def(
      "pixelcnnpp_row(Tensor x, Tensor(a!)[] maps, Tensor elu_of, Tensor[] weights, "
      "Tensor program, int i, int top) -> ()");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("pixelcnnpp_step", &pixelcnnpp_step);
  m.impl("pixelcnnpp_row", &pixelcnnpp_row);
}
