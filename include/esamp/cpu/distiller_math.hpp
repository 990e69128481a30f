// The Latent Distiller's math on the CPU (DESIGN.md §1): forward, backward and the optimizer
// updates over one slot's rows, templated over the scalar so gradients can be checked in double.
// These functions are the reference twins of the CUDA kernels; the layout and the initialisation
// they share with them are in esamp/core.hpp. They trust their caller (shapes, row ranges).
#pragma once

#include <Eigen/Core>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "esamp/core.hpp"

namespace esamp::cpu {

template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using RowVector = Eigen::Matrix<S, 1, Eigen::Dynamic>;
template <class S>
using ColVector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

// Eigen maps over one slot's flat parameters (T = S or const S).
template <class T>
struct ParameterMaps {
  using S = std::remove_const_t<T>;
  template <class M>
  using Map = Eigen::Map<std::conditional_t<std::is_const_v<T>, const M, M>>;

  Map<Matrix<S>> A, G, B;
  Map<RowVector<S>> b, w, c;

  ParameterMaps(T* base, const ParameterLayout& l)
      : A(base + l.offset_A(), l.hidden, l.rank),
        G(base + l.offset_G(), l.hidden, l.rank),
        B(base + l.offset_B(), l.rank, l.hidden),
        b(base + l.offset_b(), l.rank),
        w(base + l.offset_w(), l.hidden),
        c(base + l.offset_c(), l.hidden) {}
};

// Everything one forward keeps for the backward, rows in the order the caller chose.
template <class S>
struct Activations {
  Matrix<S> x;        // [rows, H] source
  Matrix<S> u;        // [rows, r] x A
  Matrix<S> pre;      // [rows, r] x G + b
  Matrix<S> v;        // [rows, r] SiLU(pre)
  Matrix<S> gated;    // [rows, r] u * v
  Matrix<S> zhat;     // [rows, H] normalised z (or z itself without the output norm)
  Matrix<S> y_hat;    // [rows, H] prediction
  ColVector<S> rstd;  // [rows] 1 / sqrt(var(z) + eps)

  void resize(std::int64_t rows, std::int64_t hidden, std::int64_t rank) {
    x.resize(rows, hidden);
    u.resize(rows, rank);
    pre.resize(rows, rank);
    v.resize(rows, rank);
    gated.resize(rows, rank);
    zhat.resize(rows, hidden);
    y_hat.resize(rows, hidden);
    rstd.resize(rows);
  }
};

// The backward's temporaries, sized once for the most rows a call will see.
template <class S>
struct BackwardScratch {
  Matrix<S> dz;    // [rows, H] d loss / d y_hat, then d loss / d z
  Matrix<S> dp;    // [rows, r] d loss / d (u v)
  Matrix<S> du;    // [rows, r]
  Matrix<S> dpre;  // [rows, r]

  void resize(std::int64_t rows, std::int64_t hidden, std::int64_t rank) {
    dz.resize(rows, hidden);
    dp.resize(rows, rank);
    du.resize(rows, rank);
    dpre.resize(rows, rank);
  }
};

constexpr double kLayerNormEps = 1e-5;

template <class S>
S sigmoid(S a) {
  return S(1) / (S(1) + std::exp(-a));
}

namespace detail {
// One tile of times_weights: R rows of x against C columns of w, of which the first `cols` are
// used, over `depth` terms; `resume`: the sums continue from what `out` holds. Each accumulator
// row is an Eigen fixed-size array, so that it lives in vector registers whatever the compiler's
// loop vectoriser makes of the loops.
template <int R, int C, class S>
void weights_tile(const S* x, Eigen::Index x_stride, Eigen::Index depth, const S* w,
                  Eigen::Index w_stride, S* out, Eigen::Index out_stride, Eigen::Index cols,
                  bool resume) {
  using Lanes = Eigen::Array<S, 1, C>;
  Lanes acc[R];
  for (int i = 0; i < R; ++i) {
    acc[i].setZero();
    if (resume)
      for (Eigen::Index j = 0; j < cols; ++j) acc[i](j) = out[i * out_stride + j];
  }
  if (cols == C) {
    for (Eigen::Index k = 0; k < depth; ++k) {
      const Eigen::Map<const Lanes> wk(w + k * w_stride);
      for (int i = 0; i < R; ++i) acc[i] += x[i * x_stride + k] * wk;
    }
  } else {
    for (Eigen::Index k = 0; k < depth; ++k)
      for (int i = 0; i < R; ++i)
        for (Eigen::Index j = 0; j < cols; ++j)
          acc[i](j) += x[i * x_stride + k] * w[k * w_stride + j];
  }
  for (int i = 0; i < R; ++i)
    for (Eigen::Index j = 0; j < cols; ++j) out[i * out_stride + j] = acc[i](j);
}
}  // namespace detail

// The widest column block times_weights works on: callers that share its columns cut them in
// multiples of this.
constexpr Eigen::Index kWeightColumns = 32;

// out[i, c] = sum over k of x[i, k] w[k, c], for every row of x and the columns c in [c0, c1)
// of w and out (row-major, w with row stride w_stride). Each sum runs from zero in k order, one
// rounded product and one rounded add per term, so an element's bits depend neither on the other
// rows nor on [c0, c1): threads may share the columns, and a row's prediction is the same in any
// batch. At a decode step's few rows Eigen's GEMM spends about as long repacking the weights as
// multiplying them; here they stream through in blocks of 16 rows of w (contiguous, so the
// prefetcher follows), four rows of x against 8 columns at a time (fewer rows, more columns), the
// accumulators in registers.
template <class S, class X, class Out>
void times_weights(const X& x, const S* w, Eigen::Index w_stride, Eigen::Index c0, Eigen::Index c1,
                   Out&& out) {
  constexpr Eigen::Index kDepth = 16;
  const Eigen::Index rows = x.rows(), depth = x.cols();
  const Eigen::Index xs = x.outerStride(), os = out.outerStride();
  for (Eigen::Index k0 = 0; k0 < depth; k0 += kDepth) {
    const Eigen::Index kn = std::min(kDepth, depth - k0);
    const S* wk = w + k0 * w_stride;
    for (Eigen::Index i0 = 0; i0 < rows; i0 += 4) {
      const Eigen::Index tile_rows = std::min<Eigen::Index>(4, rows - i0);
      const Eigen::Index width = tile_rows == 1 ? 32 : tile_rows == 2 ? 16 : 8;
      const S* xi = x.data() + i0 * xs + k0;
      for (Eigen::Index c = c0; c < c1; c += width) {
        const Eigen::Index cols = std::min(width, c1 - c);
        S* oi = out.data() + i0 * os + c;
        const bool resume = k0 > 0;
        switch (tile_rows) {
          case 4:
            detail::weights_tile<4, 8>(xi, xs, kn, wk + c, w_stride, oi, os, cols, resume);
            break;
          case 3:
            detail::weights_tile<3, 8>(xi, xs, kn, wk + c, w_stride, oi, os, cols, resume);
            break;
          case 2:
            detail::weights_tile<2, 16>(xi, xs, kn, wk + c, w_stride, oi, os, cols, resume);
            break;
          default:
            detail::weights_tile<1, kWeightColumns>(xi, xs, kn, wk + c, w_stride, oi, os, cols,
                                                    resume);
        }
      }
    }
  }
}

// The forward of rows [begin, begin + count) of `a` (a.x filled) through one slot's parameters,
// in three stages, so that threads can share the first two by columns (BankStep): forward_units,
// columns [k0, k1) of u, pre, v and gated; forward_outputs, columns [h0, h1) of
// z = x + gated B; forward_norm, each row's output norm.
template <class S>
void forward_units(const ParameterMaps<const S>& p, Activations<S>& a, Eigen::Index begin,
                   Eigen::Index count, Eigen::Index k0, Eigen::Index k1) {
  const auto x = a.x.middleRows(begin, count);
  const Eigen::Index rank = p.A.cols(), n = k1 - k0;
  times_weights(x, p.A.data(), rank, k0, k1, a.u.middleRows(begin, count));
  times_weights(x, p.G.data(), rank, k0, k1, a.pre.middleRows(begin, count));
  auto pre = a.pre.block(begin, k0, count, n);
  pre.rowwise() += p.b.segment(k0, n);
  auto v = a.v.block(begin, k0, count, n);
  v = pre.unaryExpr([](S t) { return t * sigmoid(t); });
  a.gated.block(begin, k0, count, n) = a.u.block(begin, k0, count, n).cwiseProduct(v);
}

template <class S>
void forward_outputs(const ParameterMaps<const S>& p, Activations<S>& a, Eigen::Index begin,
                     Eigen::Index count, Eigen::Index h0, Eigen::Index h1) {
  auto z = a.zhat.middleRows(begin, count);
  times_weights(a.gated.middleRows(begin, count), p.B.data(), p.B.cols(), h0, h1, z);
  z.middleCols(h0, h1 - h0) += a.x.block(begin, h0, count, h1 - h0);
}

template <class S>
void forward_norm(const ParameterMaps<const S>& p, bool output_norm, Activations<S>& a,
                  Eigen::Index begin, Eigen::Index count) {
  auto z = a.zhat.middleRows(begin, count);
  auto y_hat = a.y_hat.middleRows(begin, count);
  if (!output_norm) {
    y_hat = z;
    return;
  }
  const auto hidden = static_cast<S>(z.cols());
  for (Eigen::Index i = 0; i < count; ++i) {
    auto row = z.row(i);
    const S mean = row.sum() / hidden;
    row.array() -= mean;
    const S rstd = S(1) / std::sqrt(row.squaredNorm() / hidden + static_cast<S>(kLayerNormEps));
    row *= rstd;
    a.rstd(begin + i) = rstd;
  }
  y_hat = (z.array().rowwise() * p.w.array()).rowwise() + p.c.array();
}

// The three stages on the calling thread.
template <class S>
void forward(const ParameterMaps<const S>& p, bool output_norm, Activations<S>& a,
             Eigen::Index begin, Eigen::Index count) {
  if (count == 0) return;
  forward_units(p, a, begin, count, 0, p.A.cols());
  forward_outputs(p, a, begin, count, 0, p.B.cols());
  forward_norm(p, output_norm, a, begin, count);
}

// The backward in two stages, so that a caller can form the weight gradients block by block and
// update each block while it is in cache (BankStep), or all at once (backward).
//
// Stage 1, per row: the mean squared error of rows [begin, begin + count) of `a` against `target`
// ([count, H]); into `scratch` d loss / d z, d u and d pre; into `vector_grad` the gradients of
// b, w, c, laid out as in a slot (r + 2H values from b on).
// Rows flagged false in `use_row` (indexed from 0 within the block) are left out of the mean and
// the gradients. Returns the loss; 0 (every gradient zero) when no row is used. `scratch` holds at
// least `count` rows.
template <class S, class Target>
S backward_rows(const ParameterMaps<const S>& p, bool output_norm, const Activations<S>& a,
                Eigen::Index begin, Eigen::Index count, const Target& target,
                const std::uint8_t* use_row, S* vector_grad, BackwardScratch<S>& scratch) {
  const Eigen::Index hidden = a.x.cols(), rank = a.u.cols();
  Eigen::Map<RowVector<S>> grad_b(vector_grad, rank), grad_w(vector_grad + rank, hidden),
      grad_c(vector_grad + rank + hidden, hidden);
  Eigen::Index used = 0;
  for (Eigen::Index i = 0; i < count; ++i) used += use_row[i] ? 1 : 0;
  if (used == 0 || !output_norm) {  // w and c have no gradient without the output norm
    grad_w.setZero();
    grad_c.setZero();
  }
  auto dz = scratch.dz.topRows(count);
  auto du = scratch.du.topRows(count);
  auto dpre = scratch.dpre.topRows(count);
  if (used == 0) {
    grad_b.setZero();
    dz.setZero();
    du.setZero();
    dpre.setZero();
    return S(0);
  }
  const auto zhat = a.zhat.middleRows(begin, count);

  // d loss / d y_hat = 2 (y_hat - y) / (used H), zero for rows left out.
  dz = a.y_hat.middleRows(begin, count) - target;
  S loss = 0;
  for (Eigen::Index i = 0; i < count; ++i) {
    if (use_row[i]) {
      loss += dz.row(i).squaredNorm();
    } else {
      dz.row(i).setZero();
    }
  }
  const S scale = S(1) / static_cast<S>(used * hidden);
  dz *= 2 * scale;
  if (output_norm) {
    grad_c = dz.colwise().sum();
    grad_w = dz.cwiseProduct(zhat).colwise().sum();
    dz.array().rowwise() *= p.w.array();  // d loss / d zhat
    for (Eigen::Index i = 0; i < count; ++i) {
      auto g = dz.row(i);
      const S mean_g = g.sum() / static_cast<S>(hidden);
      const S mean_gz = g.dot(zhat.row(i)) / static_cast<S>(hidden);
      g = a.rstd(begin + i) * (g.array() - mean_g - zhat.row(i).array() * mean_gz).matrix();
    }
  }
  const auto u = a.u.middleRows(begin, count);
  const auto v = a.v.middleRows(begin, count);
  const auto pre = a.pre.middleRows(begin, count);
  auto dp = scratch.dp.topRows(count);
  dp.noalias() = dz * p.B.transpose();
  du = dp.cwiseProduct(v);
  dpre = dp.cwiseProduct(u).cwiseProduct(  // d loss / d pre, SiLU' = s (1 + t (1 - s))
      pre.unaryExpr([](S t) {
        const S s = sigmoid(t);
        return s * (S(1) + t * (S(1) - s));
      }));
  grad_b = dpre.colwise().sum();
  return loss * scale;
}

// Stage 2, the weight gradients after backward_rows on the same rows, in blocks a caller chooses:
// rows [h0, h1) of dA = x^T du and dG = x^T dpre into gA, gG ([h1 - h0, r]), and rows [k0, k1) of
// dB = gated^T dz into gB ([k1 - k0, H]). Each block is contiguous in the slot's layout.
template <class S, class GA, class GG>
void up_gate_gradients(const Activations<S>& a, Eigen::Index begin, Eigen::Index count,
                       const BackwardScratch<S>& scratch, Eigen::Index h0, Eigen::Index h1, GA&& gA,
                       GG&& gG) {
  const auto x = a.x.block(begin, h0, count, h1 - h0);
  gA.noalias() = x.transpose() * scratch.du.topRows(count);
  gG.noalias() = x.transpose() * scratch.dpre.topRows(count);
}
template <class S, class GB>
void down_gradients(const Activations<S>& a, Eigen::Index begin, Eigen::Index count,
                    const BackwardScratch<S>& scratch, Eigen::Index k0, Eigen::Index k1, GB&& gB) {
  gB.noalias() = a.gated.block(begin, k0, count, k1 - k0).transpose() * scratch.dz.topRows(count);
}

// Both stages over every hidden unit: the gradient of every parameter, written to `grad`.
template <class S, class Target>
S backward(const ParameterMaps<const S>& p, bool output_norm, const Activations<S>& a,
           Eigen::Index begin, Eigen::Index count, const Target& target,
           const std::uint8_t* use_row, ParameterMaps<S> grad, BackwardScratch<S>& scratch) {
  const S loss =
      backward_rows(p, output_norm, a, begin, count, target, use_row, grad.b.data(), scratch);
  up_gate_gradients(a, begin, count, scratch, 0, a.x.cols(), grad.A, grad.G);
  down_gradients(a, begin, count, scratch, 0, a.u.cols(), grad.B);
  return loss;
}

namespace detail {
// The constants of one AdamW step.
struct AdamWConstants {
  float beta1, keep1, beta2, keep2, decay, step_size, inv_sqrt_bias2, eps;
  AdamWConstants(const OptimizerSettings& h, const AdamWScale& scale)
      : beta1(h.beta1),
        keep1(1.0f - h.beta1),
        beta2(h.beta2),
        keep2(1.0f - h.beta2),
        decay(1.0f - h.lr * h.weight_decay),
        step_size(scale.step_size),
        inv_sqrt_bias2(scale.inv_sqrt_bias2),
        eps(h.eps) {}
};

// One parameter's AdamW step, the reference for the vector form below: each operation an IEEE
// one rounded once, in this order (the CUDA kernels' apply_update, op for op).
inline void adamw_element(float& theta, float& m, float& v, float g, const AdamWConstants& k) {
  m = k.beta1 * m + k.keep1 * g;
  v = k.beta2 * v + (k.keep2 * g) * g;
  theta = theta * k.decay - k.step_size * (m / (std::sqrt(v) * k.inv_sqrt_bias2 + k.eps));
}

inline void adamw_update_scalar(float* theta, float* m, float* v, const float* grad, std::int64_t n,
                                const AdamWConstants& k) {
  for (std::int64_t i = 0; i < n; ++i) adamw_element(theta[i], m[i], v[i], grad[i], k);
}

#ifdef __SSE2__
// adamw_element 4 lanes at a time in SSE2 (every x86-64 CPU has it), the tail one by one, with
// the exact square root and division. Not Eigen: its float sqrt on SSE is an approximation (rsqrt
// and a Newton step; rsqrt's bits differ between CPU vendors), and it cost more time.
inline void adamw_update_sse2(float* theta, float* m, float* v, const float* grad, std::int64_t n,
                              const AdamWConstants& k) {
  const __m128 beta1 = _mm_set1_ps(k.beta1), keep1 = _mm_set1_ps(k.keep1);
  const __m128 beta2 = _mm_set1_ps(k.beta2), keep2 = _mm_set1_ps(k.keep2);
  const __m128 decay = _mm_set1_ps(k.decay), step_size = _mm_set1_ps(k.step_size);
  const __m128 inv_sqrt_bias2 = _mm_set1_ps(k.inv_sqrt_bias2), eps = _mm_set1_ps(k.eps);
  std::int64_t at = 0;
  for (; at + 4 <= n; at += 4) {
    const __m128 g = _mm_loadu_ps(grad + at);
    const __m128 mm = _mm_add_ps(_mm_mul_ps(beta1, _mm_loadu_ps(m + at)), _mm_mul_ps(keep1, g));
    const __m128 vv =
        _mm_add_ps(_mm_mul_ps(beta2, _mm_loadu_ps(v + at)), _mm_mul_ps(_mm_mul_ps(keep2, g), g));
    const __m128 denominator = _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(vv), inv_sqrt_bias2), eps);
    const __m128 th = _mm_sub_ps(_mm_mul_ps(_mm_loadu_ps(theta + at), decay),
                                 _mm_mul_ps(step_size, _mm_div_ps(mm, denominator)));
    _mm_storeu_ps(m + at, mm);
    _mm_storeu_ps(v + at, vv);
    _mm_storeu_ps(theta + at, th);
  }
  adamw_update_scalar(theta + at, m + at, v + at, grad + at, n - at, k);
}
#endif
}  // namespace detail

// One decoupled-weight-decay Adam step over n parameters, with the bias corrections of the
// slot's update folded into `scale` (adamw_scale, core.hpp): m ← β1 m + (1 − β1) g,
// v ← β2 v + (1 − β2) g², θ ← θ (1 − lr·wd) − step_size · m / (√v · inv_sqrt_bias2 + eps).
// detail::adamw_element on each parameter, 4 lanes at a time on x86-64: the same bits either way
// (unless the compiler may fuse multiply-adds, as with -march=native on a CPU with FMA).
inline void adamw_update(float* theta, float* m, float* v, const float* grad, std::int64_t n,
                         const OptimizerSettings& h, const AdamWScale& scale) {
  const detail::AdamWConstants k(h, scale);
#ifdef __SSE2__
  detail::adamw_update_sse2(theta, m, v, grad, n, k);
#else
  detail::adamw_update_scalar(theta, m, v, grad, n, k);
#endif
}

// θ ← θ − lr · g (stateless; weight decay is an AdamW setting).
inline void sgd_update(float* theta, const float* grad, std::int64_t n, float lr) {
  for (std::int64_t i = 0; i < n; ++i) theta[i] -= lr * grad[i];
}

}  // namespace esamp::cpu
