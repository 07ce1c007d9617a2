// Column loops of the Diagonal BiLSTM scan (PixelRNN §3.2), forward and backward.
//
// The same computation as the Python loops in pixelrnn/nn/diagonal_scan.py (_forward_columns,
// _backward_columns), which stay as the reference and the fallback; tests check both agree.
// Written by hand because no library offers a 2-D diagonal LSTM scan, and a column is only a
// few small operations: from Python each costs microseconds of interpreter and dispatch
// overhead, and each element-wise step is a separate pass over memory. For float32/float64 on
// the CPU, each direction runs on its own thread, and a column is a few small matrix products
// read from and written to the skewed buffers in place plus one fused, vectorized cell loop;
// other dtypes and devices run the ATen operations of the Python loop (docs/benchmarks.md has
// the measurements). Buffers are skewed, (direction, channel, column + 1, row [+ 1], batch);
// see _pixels in diagonal_scan.py.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "lstm_kernels.h"

namespace {

using at::Tensor;

// Rows [lo, hi) of skewed column t that hold pixels.
inline void band(int64_t t, int64_t rows, int64_t width, int64_t& lo, int64_t& hi) {
  lo = std::max<int64_t>(0, t - width + 1);
  hi = std::min<int64_t>(t, rows - 1) + 1;
}

// Rows [lo, lo + n) of column index t of a contiguous skewed buffer (2, K, T + 1, R, B), as
// column() below; row_offset is the buffer's index of row 0.
template <typename scalar_t>
Rows<scalar_t> column_rows(const Tensor& buffer, int64_t t, int64_t lo, int64_t row_offset) {
  return {
      buffer.data_ptr<scalar_t>() + t * buffer.stride(2) + (lo + row_offset) * buffer.stride(3),
      buffer.stride(0), buffer.stride(1)};
}

// Rows [lo, lo + n) of column index t of a skewed buffer (2, K, T + 1, R, B) as a (2, K, n * B)
// view; row_offset is the buffer's index of row 0 (1 where a zero row pads the top).
inline Tensor column(const Tensor& buffer, int64_t t, int64_t lo, int64_t n, int64_t row_offset) {
  return buffer.select(2, t).narrow(2, lo + row_offset, n).view({2, buffer.size(1), -1});
}

// What the gates of column t read, stacked [input; above; left] into `operand` (2, c + 2h,
// n * B): the column's input pixels and, from the previous column of `states`, the states one
// row up and on the same row (the 2x1 state kernel's two taps). See _operand in the Python.
void gather_operand(
    const Tensor& inputs, const Tensor& states, int64_t t, int64_t lo, int64_t n,
    const Tensor& operand) {
  const int64_t c = inputs.size(1), h = states.size(1);
  operand.narrow(1, 0, c).copy_(column(inputs, t + 1, lo, n, 1));
  operand.narrow(1, c, h).copy_(column(states, t, lo, n, 0));
  operand.narrow(1, c + h, h).copy_(column(states, t, lo, n, 1));
}

// Runs scan(d) for both directions d, one per thread where there are two or more: the
// directions are independent through the whole scan, so each thread runs its chain of columns
// with no fork or join per column, and its products on one core. (Measured on two cores; a
// machine with more leaves the rest idle during the scan's loops.)
template <typename Scan>
void over_directions(const Scan& scan) {
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) scan(d);
  });
}

// The first row of direction d's band [lo, lo + n) in column index t of a skewed buffer: its
// channels' rows follow at the buffer's channel stride (a matrix's leading dimension).
template <typename scalar_t>
scalar_t* band_start(const Tensor& buffer, int64_t d, int64_t t, int64_t lo, int64_t row_offset) {
  return column_rows<scalar_t>(buffer, t, lo, row_offset)(d, 0);
}

// Forward, float32/float64 on the CPU, one direction d: per column the product of the stacked
// kernels [input | above | left] with what they read, as three products straight from the
// skewed buffers (no gathered copy), then the fused cell, which also adds the bias.
template <typename scalar_t>
void forward_direction(
    int64_t d, const Tensor& inputs, const Tensor& gates, const Tensor& states,
    const Tensor& cells, const Tensor& tanh_cells, const Tensor& weight, const Tensor& bias,
    int64_t width, scalar_t* pre) {
  const int64_t c = inputs.size(1), h = states.size(1), rows = cells.size(3), b = cells.size(4);
  const int64_t num_columns = width + rows - 1, k_in = c + 2 * h;
  const scalar_t* w = weight.data_ptr<scalar_t>() + d * 4 * h * k_in;  // (4h, c + 2h)
  const int64_t ld_x = inputs.stride(1), ld_s = states.stride(1);
  for (int64_t t = 0; t < num_columns; ++t) {
    int64_t lo, hi;
    band(t, rows, width, lo, hi);
    const int64_t nb = (hi - lo) * b;
    const scalar_t* x = band_start<scalar_t>(inputs, d, t + 1, lo, 1);
    const scalar_t* s_above = band_start<scalar_t>(states, d, t, lo, 0);
    const scalar_t* s_left = band_start<scalar_t>(states, d, t, lo, 1);
    matmul<scalar_t>(4 * h, nb, c, w, k_in, x, ld_x, pre, nb, false);
    matmul<scalar_t>(4 * h, nb, h, w + c, k_in, s_above, ld_s, pre, nb, true);
    matmul<scalar_t>(4 * h, nb, h, w + c + h, k_in, s_left, ld_s, pre, nb, true);
    const Rows<scalar_t> pre_rows{pre, 0, nb};  // direction d's (4h, n B) block
    cell_forward<scalar_t>(
        pre_rows, bias.data_ptr<scalar_t>(), column_rows<scalar_t>(gates, t + 1, lo, 1),
        column_rows<scalar_t>(cells, t, lo, 0), column_rows<scalar_t>(cells, t + 1, lo, 0),
        column_rows<scalar_t>(tanh_cells, t, lo, 0), column_rows<scalar_t>(states, t + 1, lo, 1),
        h, nb, d);
  }
}

template <typename scalar_t>
void forward_fused(
    const Tensor& inputs, const Tensor& gates, const Tensor& states, const Tensor& cells,
    const Tensor& tanh_cells, const Tensor& weight, const Tensor& bias, int64_t width) {
  const int64_t h = states.size(1), rows = cells.size(3), b = cells.size(4);
  const int64_t max_nb = std::min(rows, width) * b;
  // each direction's pre-activations of a band, (4h, n B)
  const Tensor pre = at::empty({2, 4 * h * max_nb}, inputs.options());
  over_directions([&](int64_t d) {
    forward_direction<scalar_t>(
        d, inputs, gates, states, cells, tanh_cells, weight, bias, width,
        pre.data_ptr<scalar_t>() + d * 4 * h * max_nb);
  });
}

// Backward, float32/float64 on the CPU, one direction d: per column the fused cell backward
// (which also sums the bias gradient) gives the gate gradient G (4h, n B); then, as products
// straight from and into the skewed buffers (no gathered copies):
// - the kernels' gradient, accumulated transposed, d_weight_t (c + 2h, 4h) += [input; above;
//   left] G^T (G transposed once per column into g_t);
// - what the kernels read: the input rows of d_inputs = W_in^T G, and the previous column's
//   d_states += W_above^T G (rows one up) and W_left^T G (same rows), one after the other
//   (their rows overlap).
template <typename scalar_t>
void backward_direction(
    int64_t d, const Tensor& inputs, const Tensor& gates, const Tensor& states,
    const Tensor& cells, const Tensor& tanh_cells, const Tensor& w_t, const Tensor& d_states,
    const Tensor& d_inputs, const Tensor& d_cell, const Tensor& d_weight_t, const Tensor& d_bias,
    int64_t width, scalar_t* d_gate, scalar_t* g_t) {
  const int64_t c = inputs.size(1), h = cells.size(1), rows = cells.size(3), b = cells.size(4);
  const int64_t num_columns = width + rows - 1, k_in = c + 2 * h;
  const scalar_t* wt = w_t.data_ptr<scalar_t>() + d * k_in * 4 * h;  // (c + 2h, 4h)
  scalar_t* dwt = d_weight_t.data_ptr<scalar_t>() + d * k_in * 4 * h;  // (c + 2h, 4h)
  const int64_t ld_x = inputs.stride(1), ld_s = states.stride(1), g = 4 * h;
  const Rows<scalar_t> carry_all = all_rows<scalar_t>(d_cell);  // (2, h, R, B)
  for (int64_t t = num_columns - 1; t >= 0; --t) {
    int64_t lo, hi;
    band(t, rows, width, lo, hi);
    const int64_t nb = (hi - lo) * b;
    const Rows<scalar_t> d_gate_rows{d_gate, 0, nb};  // direction d's (4h, n B) block
    cell_backward<scalar_t>(
        column_rows<scalar_t>(gates, t + 1, lo, 1), column_rows<scalar_t>(cells, t, lo, 0),
        column_rows<scalar_t>(tanh_cells, t, lo, 0), column_rows<scalar_t>(d_states, t + 1, lo, 1),
        {carry_all.base + lo * b, carry_all.sd, carry_all.sk}, d_gate_rows,
        d_bias.data_ptr<scalar_t>(), h, nb, d);
    at::vec::transpose_mxn<scalar_t>(d_gate, nb, g_t, g, g, nb);  // (n B, 4h)
    const scalar_t* x = band_start<scalar_t>(inputs, d, t + 1, lo, 1);
    const scalar_t* s_above = band_start<scalar_t>(states, d, t, lo, 0);
    const scalar_t* s_left = band_start<scalar_t>(states, d, t, lo, 1);
    matmul<scalar_t>(c, g, nb, x, ld_x, g_t, g, dwt, g, true);
    matmul<scalar_t>(h, g, nb, s_above, ld_s, g_t, g, dwt + c * g, g, true);
    matmul<scalar_t>(h, g, nb, s_left, ld_s, g_t, g, dwt + (c + h) * g, g, true);
    scalar_t* d_x = band_start<scalar_t>(d_inputs, d, t + 1, lo, 1);
    scalar_t* d_above = band_start<scalar_t>(d_states, d, t, lo, 0);
    scalar_t* d_left = band_start<scalar_t>(d_states, d, t, lo, 1);
    matmul<scalar_t>(c, nb, g, wt, g, d_gate, nb, d_x, ld_x, false);
    matmul<scalar_t>(h, nb, g, wt + c * g, g, d_gate, nb, d_above, ld_s, true);
    matmul<scalar_t>(h, nb, g, wt + (c + h) * g, g, d_gate, nb, d_left, ld_s, true);
  }
}

template <typename scalar_t>
void backward_fused(
    const Tensor& inputs, const Tensor& gates, const Tensor& states, const Tensor& cells,
    const Tensor& tanh_cells, const Tensor& weight, const Tensor& d_states,
    const Tensor& d_inputs, const Tensor& d_cell, const Tensor& d_weight, const Tensor& d_bias,
    int64_t width) {
  const int64_t h = cells.size(1), rows = cells.size(3), b = cells.size(4);
  const int64_t max_nb = std::min(rows, width) * b;
  const Tensor w_t = weight.transpose(1, 2).contiguous();  // (2, c + 2h, 4h)
  const Tensor d_weight_t = at::zeros_like(w_t);
  const Tensor d_gate = at::empty({2, 4 * h * max_nb}, gates.options());  // (4h, n B) each
  const Tensor g_t = at::empty({2, 4 * h * max_nb}, gates.options());  // (n B, 4h) each
  over_directions([&](int64_t d) {
    backward_direction<scalar_t>(
        d, inputs, gates, states, cells, tanh_cells, w_t, d_states, d_inputs, d_cell,
        d_weight_t, d_bias, width, d_gate.data_ptr<scalar_t>() + d * 4 * h * max_nb,
        g_t.data_ptr<scalar_t>() + d * 4 * h * max_nb);
  });
  d_weight.add_(d_weight_t.transpose(1, 2));
}

// Other dtypes and devices: the same loops as separate ATen operations (as the Python loops).
void forward_aten(
    const Tensor& inputs, Tensor gates, Tensor states, Tensor cells, Tensor tanh_cells,
    const Tensor& weight, const Tensor& bias, int64_t width) {
  const int64_t h = states.size(1), rows = cells.size(3), b = cells.size(4);
  const int64_t num_columns = width + rows - 1;
  // one scratch for every column's operand (a band holds at most min(rows, width) pixels)
  Tensor scratch = at::empty({2, weight.size(2), std::min(rows, width) * b}, inputs.options());
  for (int64_t t = 0; t < num_columns; ++t) {
    int64_t lo, hi;
    band(t, rows, width, lo, hi);
    const int64_t n = hi - lo;
    Tensor operand = scratch.narrow(2, 0, n * b);
    gather_operand(inputs, states, t, lo, n, operand);
    Tensor gate = column(gates, t + 1, lo, n, 1);
    Tensor c_prev = column(cells, t, lo, n, 0);
    Tensor c = column(cells, t + 1, lo, n, 0);
    Tensor tanh_c = column(tanh_cells, t, lo, n, 0);
    Tensor state = column(states, t + 1, lo, n, 1);
    const Tensor pre = at::baddbmm(bias, weight, operand);
    Tensor sig = gate.narrow(1, 0, 3 * h), g = gate.narrow(1, 3 * h, h);
    at::sigmoid_out(sig, pre.narrow(1, 0, 3 * h));
    at::tanh_out(g, pre.narrow(1, 3 * h, h));
    Tensor o = gate.narrow(1, 0, h), f = gate.narrow(1, h, h), i = gate.narrow(1, 2 * h, h);
    at::mul_out(c, f, c_prev);
    c.addcmul_(i, g);
    at::tanh_out(tanh_c, c);
    at::mul_out(state, o, tanh_c);
  }
}

void backward_aten(
    const Tensor& inputs, const Tensor& gates, const Tensor& states, const Tensor& cells,
    const Tensor& tanh_cells, const Tensor& weight, Tensor d_states, Tensor d_inputs,
    Tensor d_cell, Tensor d_weight, Tensor d_bias, int64_t width) {
  const int64_t c = inputs.size(1), h = cells.size(1), rows = cells.size(3), b = cells.size(4);
  const int64_t num_columns = width + rows - 1, max_size = std::min(rows, width) * b;
  const Tensor w_t = weight.transpose(1, 2).contiguous();  // (2, c + 2h, 4h)
  Tensor scratch = at::empty({2, weight.size(2), max_size}, inputs.options());
  Tensor d_gate_scratch = at::empty({2, 4 * h, max_size}, gates.options());
  // the kernels' gradients are summed in their own dtype (float32 for a bfloat16 scan)
  const bool same_dtype = d_weight.scalar_type() == gates.scalar_type();
  for (int64_t t = num_columns - 1; t >= 0; --t) {
    int64_t lo, hi;
    band(t, rows, width, lo, hi);
    const int64_t n = hi - lo;
    Tensor gate = column(gates, t + 1, lo, n, 1);
    Tensor tanh_c = column(tanh_cells, t, lo, n, 0);
    Tensor c_prev = column(cells, t, lo, n, 0);
    Tensor dh = column(d_states, t + 1, lo, n, 1);
    Tensor carry = d_cell.narrow(2, lo, n).view({2, h, n * b});
    Tensor d_gate = d_gate_scratch.narrow(2, 0, n * b);
    Tensor o = gate.narrow(1, 0, h), f = gate.narrow(1, h, h), i = gate.narrow(1, 2 * h, h);
    Tensor g = gate.narrow(1, 3 * h, h);
    Tensor dc = at::tanh_backward(dh * o, tanh_c);
    dc.add_(carry);
    Tensor d_act = at::empty_like(gate);  // dL/d[o, f, i, g] after the non-linearities
    Tensor d_o = d_act.narrow(1, 0, h), d_f = d_act.narrow(1, h, h);
    Tensor d_i = d_act.narrow(1, 2 * h, h), d_g = d_act.narrow(1, 3 * h, h);
    at::mul_out(d_o, dh, tanh_c);
    at::mul_out(d_f, dc, c_prev);
    at::mul_out(d_i, dc, g);
    at::mul_out(d_g, dc, i);
    Tensor d_sig_pre = d_gate.narrow(1, 0, 3 * h), d_g_pre = d_gate.narrow(1, 3 * h, h);
    at::sigmoid_backward_out(d_sig_pre, d_act.narrow(1, 0, 3 * h), gate.narrow(1, 0, 3 * h));
    at::tanh_backward_out(d_g_pre, d_g, g);
    at::mul_out(carry, dc, f);
    // the kernels' gradient: the gate gradient times what the kernels read
    Tensor operand = scratch.narrow(2, 0, n * b);
    gather_operand(inputs, states, t, lo, n, operand);
    if (same_dtype) {
      d_weight.baddbmm_(d_gate, operand.transpose(1, 2));
    } else {
      d_weight.add_(at::bmm(d_gate, operand.transpose(1, 2)));
    }
    d_bias.add_(d_gate.sum(2, /*keepdim=*/true));
    // what they read: the column's input pixels, and the previous column's states on the
    // rows of the two taps
    Tensor d_operand = at::bmm(w_t, d_gate);
    column(d_inputs, t + 1, lo, n, 1).copy_(d_operand.narrow(1, 0, c));
    column(d_states, t, lo, n, 0).add_(d_operand.narrow(1, c, h));
    column(d_states, t, lo, n, 1).add_(d_operand.narrow(1, c + h, h));
  }
}

void diagonal_scan_forward(
    const Tensor& inputs, Tensor gates, Tensor states, Tensor cells, Tensor tanh_cells,
    const Tensor& weight, const Tensor& bias, int64_t width) {
  if (fused({&inputs, &gates, &states, &cells, &tanh_cells, &weight, &bias})) {
    AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "diagonal_scan_forward", [&] {
      forward_fused<scalar_t>(inputs, gates, states, cells, tanh_cells, weight, bias, width);
    });
  } else {
    forward_aten(inputs, gates, states, cells, tanh_cells, weight, bias, width);
  }
}

void diagonal_scan_backward(
    const Tensor& inputs, const Tensor& gates, const Tensor& states, const Tensor& cells,
    const Tensor& tanh_cells, const Tensor& weight, Tensor d_states, Tensor d_inputs,
    Tensor d_cell, Tensor d_weight, Tensor d_bias, int64_t width) {
  if (fused({&inputs, &gates, &states, &cells, &tanh_cells, &weight, &d_states, &d_inputs,
             &d_cell, &d_weight, &d_bias})) {
    AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "diagonal_scan_backward", [&] {
      backward_fused<scalar_t>(
          inputs, gates, states, cells, tanh_cells, weight, d_states, d_inputs, d_cell,
          d_weight, d_bias, width);
    });
  } else {
    backward_aten(
        inputs, gates, states, cells, tanh_cells, weight, d_states, d_inputs, d_cell, d_weight,
        d_bias, width);
  }
}

}  // namespace

TORCH_LIBRARY(pixelrnn, m) {
  m.def(
      "diagonal_scan_forward(Tensor inputs, Tensor(a!) gates, Tensor(b!) states, "
      "Tensor(c!) cells, Tensor(d!) tanh_cells, Tensor weight, Tensor bias, int width) -> ()");
  m.def(
      "diagonal_scan_backward(Tensor inputs, Tensor gates, Tensor states, Tensor cells, "
      "Tensor tanh_cells, Tensor weight, Tensor(a!) d_states, Tensor(b!) d_inputs, "
      "Tensor(c!) d_cell, Tensor(d!) d_weight, Tensor(e!) d_bias, int width) -> ()");
}

// Only ATen calls: any device.
TORCH_LIBRARY_IMPL(pixelrnn, CompositeExplicitAutograd, m) {
  m.impl("diagonal_scan_forward", &diagonal_scan_forward);
  m.impl("diagonal_scan_backward", &diagonal_scan_backward);
}

