// The AdamW and SGD steps for one parameter, written op for op like cpu::adamw_update and
// cpu::sgd_update (no FMA contraction), so a kernel given the CPU's gradient lands on the CPU's
// bits. Included by .cu files only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/workspace.hpp"
#include "detail/common.cuh"

namespace esamp::cuda::detail {

// 1 - beta^t in double, then float: what cpu::adamw_update computes for step t.
__device__ __forceinline__ float bias_correction(float beta, std::int64_t step) {
  return static_cast<float>(1.0 - pow(static_cast<double>(beta), static_cast<double>(step)));
}

// One update of parameter `index` of a slot: params/m/v point at the slot's arrays.
template <UpdateRule kRule>
__device__ __forceinline__ void apply_update(float* __restrict__ params, float* __restrict__ m,
                                             float* __restrict__ v, std::int64_t index, float grad,
                                             const OptimizerSettings& s, float bias1, float bias2,
                                             float* __restrict__ gradient_out) {
  if constexpr (kRule == UpdateRule::store_gradient) {
    gradient_out[index] = grad;
  } else if constexpr (kRule == UpdateRule::sgd) {
    params[index] = sub_rn(params[index], mul_rn(s.lr, grad));
  } else {
    const float m_new = add_rn(mul_rn(s.beta1, m[index]), mul_rn(sub_rn(1.0f, s.beta1), grad));
    const float v_new =
        add_rn(mul_rn(s.beta2, v[index]), mul_rn(mul_rn(sub_rn(1.0f, s.beta2), grad), grad));
    m[index] = m_new;
    v[index] = v_new;
    const float m_hat = __fdiv_rn(m_new, bias1);
    const float v_hat = __fdiv_rn(v_new, bias2);
    const float decay = sub_rn(1.0f, mul_rn(s.lr, s.weight_decay));
    params[index] = sub_rn(mul_rn(params[index], decay),
                           __fdiv_rn(mul_rn(s.lr, m_hat), add_rn(__fsqrt_rn(v_hat), s.eps)));
  }
}

// Calls f(std::integral_constant<UpdateRule, rule>{}): the one place an UpdateRule becomes a
// template argument.
template <class F>
decltype(auto) dispatch_rule(UpdateRule rule, F&& f) {
  switch (rule) {
    case UpdateRule::sgd:
      return f(std::integral_constant<UpdateRule, UpdateRule::sgd>{});
    case UpdateRule::store_gradient:
      return f(std::integral_constant<UpdateRule, UpdateRule::store_gradient>{});
    case UpdateRule::adamw:
      break;
  }
  return f(std::integral_constant<UpdateRule, UpdateRule::adamw>{});
}

}  // namespace esamp::cuda::detail
