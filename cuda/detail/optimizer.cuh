// The AdamW and SGD steps for one parameter, written op for op like cpu::adamw_update and
// cpu::sgd_update (no FMA contraction), so a kernel given the CPU's gradient lands on the CPU's
// bits. Included by .cu files only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/workspace.hpp"
#include "detail/common.cuh"

namespace esamp::cuda::detail {

// One update of parameter `index` of a slot: params/m/v point at the slot's arrays.
template <UpdateRule kRule>
__device__ __forceinline__ void apply_update(float* __restrict__ params, float* __restrict__ m,
                                             float* __restrict__ v, std::int64_t index, float grad,
                                             const OptimizerSettings& s, const AdamWScale& scale,
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
    const float decay = sub_rn(1.0f, mul_rn(s.lr, s.weight_decay));
    const float denom = add_rn(mul_rn(__fsqrt_rn(v_new), scale.inv_sqrt_bias2), s.eps);
    params[index] =
        sub_rn(mul_rn(params[index], decay), mul_rn(scale.step_size, __fdiv_rn(m_new, denom)));
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
