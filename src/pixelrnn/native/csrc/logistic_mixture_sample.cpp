// Drawing from the discretized logistic mixture (PixelCNN++ §2.1-2.2) given the uniforms: the
// arithmetic of DiscretizedLogisticMixture.sample (pixelrnn/distributions/logistic_mixture.py)
// in one call. Written by hand because at one pixel a draw is ~35 tiny PyTorch operations
// (~75 us of dispatch for a few hundred flops), the largest cost of cached PixelCNN++ sampling
// at batch 1 (docs/benchmarks.md). The uniforms come from the caller's generator, so the random
// stream is the Python code's. Same operations in the same order, in float32, with no fused
// multiply-adds (fp-contract off); only the log/exp/tanh implementations differ from ATen's by
// an ulp or so, so a level can differ by one where a draw falls on a bin edge (the test states
// and checks the tolerance).

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

namespace {

using at::Tensor;

#if defined(__GNUC__) && !defined(__clang__)
#define PIXELRNN_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define PIXELRNN_NO_FP_CONTRACT
#endif

// U(1e-5, 1 - 1e-5) from U(0, 1), as `u * (1 - 2e-5) + 1e-5` in float32 (the official code's).
PIXELRNN_NO_FP_CONTRACT inline float squeeze(float u) {
  const float scaled = u * static_cast<float>(1 - 2e-5);
  return scaled + static_cast<float>(1e-5);
}

PIXELRNN_NO_FP_CONTRACT Tensor logistic_mixture_sample(
    const Tensor& params, const Tensor& gumbel_u, at::TensorList channel_u, double temperature,
    int64_t num_levels) {
  TORCH_CHECK(params.is_cpu() && params.dim() == 4, "logistic_mixture_sample: CPU (B, P, H, W)");
  const int64_t channels = static_cast<int64_t>(channel_u.size());
  TORCH_CHECK(channels == 1 || channels == 3, "logistic_mixture_sample: 1 or 3 channels");
  const Tensor p = params.to(at::kFloat).contiguous();
  const int64_t batch = p.size(0), h = p.size(2), w = p.size(3), hw = h * w;
  const int64_t m = gumbel_u.size(1);
  TORCH_CHECK(p.size(1) == (channels == 3 ? 10 : 3) * m, "logistic_mixture_sample: ",
              p.size(1), " parameter maps for ", m, " components and ", channels, " channels");
  const Tensor g = gumbel_u.to(at::kFloat).contiguous();
  std::vector<Tensor> us;
  for (const Tensor& u : channel_u) us.push_back(u.to(at::kFloat).contiguous());
  Tensor out = at::empty({batch, channels, h, w}, params.options().dtype(at::kLong));
  const float t = static_cast<float>(temperature);
  const float top = static_cast<float>(num_levels - 1);
  const float to_unit = static_cast<float>(2.0 / (num_levels - 1));
  const int64_t block = (p.size(1) - m) / channels;  // means, log-scales, coefficients
  const float* pp = p.data_ptr<float>();
  int64_t* levels = out.data_ptr<int64_t>();
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t q = 0; q < hw; ++q) {
      auto param = [&](int64_t index) { return pp[(n * p.size(1) + index) * hw + q]; };
      // the component, by Gumbel-max
      int64_t best = 0;
      float best_score = 0.0f;
      for (int64_t k = 0; k < m; ++k) {
        const float u = squeeze(g.data_ptr<float>()[(n * m + k) * hw + q]);
        const float gumbel = -std::log(-std::log(u));
        const float score = param(k) / t + gumbel;
        // torch.argmax: the first maximum, a NaN counting as the maximum
        if (k == 0 || (!std::isnan(best_score) && (std::isnan(score) || score > best_score))) {
          best = k;
          best_score = score;
        }
      }
      // each channel by the logistic's inverse CDF, G and B coupled to the rounded R and G;
      // coefficient slot s (alpha: G<-R, beta: B<-R, gamma: B<-G) is in channel s's block
      auto coefficient = [&](int64_t slot) {
        return std::tanh(param(m + slot * block + 2 * m + best));
      };
      float scaled[3] = {0.0f, 0.0f, 0.0f};
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t base = m + c * block;
        float mean = param(base + best);
        if (channels == 3 && c == 1) {
          mean = mean + coefficient(0) * scaled[0];
        } else if (channels == 3 && c == 2) {
          const float from_r = coefficient(1) * scaled[0];
          const float from_g = coefficient(2) * scaled[1];
          mean = mean + from_r;
          mean = mean + from_g;
        }
        const float log_scale = std::max(param(base + m + best), -7.0f);
        const float u = squeeze(us[c].data_ptr<float>()[n * hw + q]);
        const float spread = std::exp(log_scale) * t;
        const float logit = std::log(u) - std::log1p(-u);
        const float latent = mean + spread * logit;
        const float clamped = std::min(std::max(latent, -1.0f), 1.0f);
        const float level = std::nearbyint((clamped + 1.0f) * top / 2.0f);
        levels[(n * channels + c) * hw + q] = static_cast<int64_t>(level);
        scaled[c] = level * to_unit - 1.0f;
      }
    }
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pixelrnn, m) {
  m.def(
      "logistic_mixture_sample(Tensor params, Tensor gumbel_u, Tensor[] channel_u, "
      "float temperature, int num_levels) -> Tensor");
}

TORCH_LIBRARY_IMPL(pixelrnn, CPU, m) {
  m.impl("logistic_mixture_sample", &logistic_mixture_sample);
}
