// Row loops of the Row LSTM (PixelRNN §3.1), forward and backward, for float32/float64 on the
// CPU.
//
// The same computation as the Python loops in pixelrnn/nn/row_scan.py (_forward_rows,
// _backward_rows), which stay as the reference and serve every other dtype and device; tests
// check both agree. Written by hand for the reason of diagonal_scan.cpp: a row is a few small
// matrix products and an element-wise cell update, and from Python (or as an autograd graph of
// width-3 convolutions) each costs more in overhead than in arithmetic at these sizes. Here a
// row is k products read straight from (and, backward, added straight into) the padded state
// buffer plus one fused, vectorized cell loop.
//
// Buffers keep the batch innermost, (channel, row, column, batch): gates (4h, H, W, B), states
// (h, H + 1, W + 2p, B) with p = k / 2 zero columns each side and the initial state in row 0,
// cells (h, H + 1, W, B) with the initial cell in row 0, tanh_cells (h, H, W, B); the kernels
// weight (4h, k, h), tap t reading column j + t - p of the previous row.
//
// One thread runs the whole chain of rows (its products on one core); the rest of the network
// around the layer uses every thread. (Not split further: measured on two cores only.)

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "lstm_kernels.h"

namespace {

// The sizes of one scan, read from its buffers.
struct RowScanSizes {
  int64_t h, k, rows, width, batch, pad;
  explicit RowScanSizes(const Tensor& states, const Tensor& tanh_cells, const Tensor& weight)
      : h(states.size(0)),
        k(weight.size(1)),
        rows(tanh_cells.size(1)),
        width(tanh_cells.size(2)),
        batch(tanh_cells.size(3)),
        pad((states.size(2) - tanh_cells.size(2)) / 2) {}
};

// The rows (channel k) of row r of a batch-last buffer, starting at column `column`: each a run
// of contiguous numbers at the buffer's channel stride.
template <typename scalar_t>
Rows<scalar_t> row_rows(const Tensor& buffer, int64_t r, int64_t column = 0) {
  return {
      buffer.data_ptr<scalar_t>() + r * buffer.stride(1) + column * buffer.stride(2), 0,
      buffer.stride(0)};
}

// Forward: per row the k tap products added to the pre-activations in `gates`, then the fused
// cell, whose activations replace them (in place: each lane is read before it is written).
template <typename scalar_t>
void forward_rows(
    const Tensor& gates, const Tensor& states, const Tensor& cells, const Tensor& tanh_cells,
    const Tensor& weight) {
  const RowScanSizes s(states, tanh_cells, weight);
  const int64_t n = s.width * s.batch, ld_w = s.k * s.h;
  const scalar_t* w = weight.data_ptr<scalar_t>();  // (4h, k h)
  const Tensor zero_bias = at::zeros({4 * s.h}, gates.options());
  for (int64_t r = 0; r < s.rows; ++r) {
    const Rows<scalar_t> pre = row_rows<scalar_t>(gates, r);
    for (int64_t t = 0; t < s.k; ++t) {
      const scalar_t* above = row_rows<scalar_t>(states, r, t).base;
      matmul<scalar_t>(
          4 * s.h, n, s.h, w + t * s.h, ld_w, above, states.stride(0), pre.base,
          gates.stride(0), true);
    }
    cell_forward<scalar_t>(
        pre, zero_bias.data_ptr<scalar_t>(), pre, row_rows<scalar_t>(cells, r),
        row_rows<scalar_t>(cells, r + 1), row_rows<scalar_t>(tanh_cells, r),
        row_rows<scalar_t>(states, r + 1, s.pad), s.h, n, 0);
  }
}

// Backward, bottom row first: the fused cell backward writes the pre-activations' gradient G
// (4h, W B) into d_gates; then per tap, as products straight from and into the buffers, the
// kernel's gradient, accumulated transposed (d_weight_t (k h, 4h) += above G^T, G transposed
// once per row into g_t), and the gradient of the previous row's states it read (added to
// d_states shifted by the tap; the taps' columns overlap, so one after the other).
template <typename scalar_t>
void backward_rows(
    const Tensor& gates, const Tensor& states, const Tensor& cells, const Tensor& tanh_cells,
    const Tensor& weight, const Tensor& d_states, const Tensor& d_gates, const Tensor& d_cell,
    const Tensor& d_weight) {
  const RowScanSizes s(states, tanh_cells, weight);
  const int64_t n = s.width * s.batch, g = 4 * s.h;
  const Tensor w_t = weight.view({g, s.k * s.h}).t().contiguous();  // (k h, 4h)
  const Tensor d_weight_t = at::zeros_like(w_t);
  const Tensor g_t = at::empty({n, g}, gates.options());
  const Tensor d_bias = at::zeros({g}, gates.options());  // the cell's bias sums: unused here
  const scalar_t* wt = w_t.data_ptr<scalar_t>();
  scalar_t* dwt = d_weight_t.data_ptr<scalar_t>();
  scalar_t* gt = g_t.data_ptr<scalar_t>();
  const Rows<scalar_t> carry{d_cell.data_ptr<scalar_t>(), 0, d_cell.stride(0)};
  for (int64_t r = s.rows - 1; r >= 0; --r) {
    const Rows<scalar_t> d_gate = row_rows<scalar_t>(d_gates, r);
    cell_backward<scalar_t>(
        row_rows<scalar_t>(gates, r), row_rows<scalar_t>(cells, r),
        row_rows<scalar_t>(tanh_cells, r), row_rows<scalar_t>(d_states, r + 1, s.pad), carry,
        d_gate, d_bias.data_ptr<scalar_t>(), s.h, n, 0);
    at::vec::transpose_mxn<scalar_t>(d_gate.base, d_gates.stride(0), gt, g, g, n);
    for (int64_t t = 0; t < s.k; ++t) {
      const scalar_t* above = row_rows<scalar_t>(states, r, t).base;
      matmul<scalar_t>(s.h, g, n, above, states.stride(0), gt, g, dwt + t * s.h * g, g, true);
    }
    for (int64_t t = 0; t < s.k; ++t) {
      scalar_t* d_above = row_rows<scalar_t>(d_states, r, t).base;
      matmul<scalar_t>(
          s.h, n, g, wt + t * s.h * g, g, d_gate.base, d_gates.stride(0), d_above,
          d_states.stride(0), true);
    }
  }
  d_weight.add_(d_weight_t.t().view({g, s.k, s.h}));
}

void row_scan_forward(
    Tensor gates, Tensor states, Tensor cells, Tensor tanh_cells, const Tensor& weight) {
  TORCH_CHECK(
      fused({&gates, &states, &cells, &tanh_cells, &weight}),
      "row_scan_forward takes contiguous float32/float64 CPU tensors of one dtype");
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "row_scan_forward", [&] {
    forward_rows<scalar_t>(gates, states, cells, tanh_cells, weight);
  });
}

void row_scan_backward(
    const Tensor& gates, const Tensor& states, const Tensor& cells, const Tensor& tanh_cells,
    const Tensor& weight, Tensor d_states, Tensor d_gates, Tensor d_cell, Tensor d_weight) {
  TORCH_CHECK(
      fused({&gates, &states, &cells, &tanh_cells, &weight, &d_states, &d_gates, &d_cell,
             &d_weight}),
      "row_scan_backward takes contiguous float32/float64 CPU tensors of one dtype");
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "row_scan_backward", [&] {
    backward_rows<scalar_t>(
        gates, states, cells, tanh_cells, weight, d_states, d_gates, d_cell, d_weight);
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn, m) {
  m.def(
      "row_scan_forward(Tensor(a!) gates, Tensor(b!) states, Tensor(c!) cells, "
      "Tensor(d!) tanh_cells, Tensor weight) -> ()");
  m.def(
      "row_scan_backward(Tensor gates, Tensor states, Tensor cells, Tensor tanh_cells, "
      "Tensor weight, Tensor(a!) d_states, Tensor(b!) d_gates, Tensor(c!) d_cell, "
      "Tensor(d!) d_weight) -> ()");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("row_scan_forward", &row_scan_forward);
  m.impl("row_scan_backward", &row_scan_backward);
}
