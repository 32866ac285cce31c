// Native float32 CPU kernels (AVX-512) for the cached-window step of MMaDAModelLM.
//
// A sampler's block step runs few rows (one block: 32 per sequence) through every weight of the model, so on a
// CPU it is bound by how well a GEMM with a short M streams its weights, by attention of a short query block over
// a long cache, and by per-op overhead between them. This file provides:
//   * pack_weight / linear: C = A W^T with W reordered once into panels of 32 output columns ([P][K][32]); the
//     micro kernel keeps a 12 x 32 tile of C in registers and prefetches the next panel while it computes;
//   * attention: softmax(Q K^T * scale) V of a short query block over a [B, Hkv, T, D] cache, computed as
//     S^T = K Q^T, a column softmax and O^T = V^T P^T (no transposes of the cache), prefetching the head's V
//     while it computes S and the next head's K while it computes O;
//   * block_step: one transformer block on a cached window (RMSNorm, fused q/k/v, RoPE, cache write, attention,
//     output projection + residual, RMSNorm, fused gate/up, SiLU x up, down projection + residual) in one call;
//   * norm_linear: the final RMSNorm and the LM head.
// Every product accumulates in float32 in order over K (the results differ from MKL / oneDNN in the last bits,
// as two BLAS libraries do). Compiled with -ffp-contract=off so the elementwise arithmetic rounds as torch's does.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int NR = 32;  // output columns per panel (two zmm registers)
constexpr int MR = 12;  // rows per micro tile (24 accumulators)
constexpr int KEY_ROWS = 6;  // keys per tile of S^T = K Q^T (read in place, one pointer per key: fewer spill)

// C[R x cols] = sum_k A(r, k) * B[k, 0:32]; A(r, k) = a[r * lda + k] (ROWS) or a[k * lda + r] (!ROWS).
// When pf is set, one cache line at pf is prefetched per k (pf advances by pf_step bytes).
template <int R, bool ROWS>
void tile(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t K, int cols,
          const char* pf, int64_t pf_step) {
  __m512 acc0[R], acc1[R];
  const float* row[R];
  for (int r = 0; r < R; ++r) {
    acc0[r] = _mm512_setzero_ps();
    acc1[r] = _mm512_setzero_ps();
    row[r] = a + (ROWS ? r * lda : r);
  }
  for (int64_t k = 0; k < K; ++k) {
    if (pf) {
      _mm_prefetch(pf, _MM_HINT_T2);
      pf += pf_step;
    }
    const __m512 b0 = _mm512_loadu_ps(b + k * ldb), b1 = _mm512_loadu_ps(b + k * ldb + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(ROWS ? row[r][k] : a[k * lda + r]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, acc0[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc1[r]);
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, int, const char*,
                        int64_t);
#define MMADA_TILES(ROWS)                                                                                      \
  {nullptr, tile<1, ROWS>, tile<2, ROWS>, tile<3, ROWS>, tile<4, ROWS>, tile<5, ROWS>, tile<6, ROWS>,          \
   tile<7, ROWS>, tile<8, ROWS>, tile<9, ROWS>, tile<10, ROWS>, tile<11, ROWS>, tile<12, ROWS>}
const TileFn row_tiles[MR + 1] = MMADA_TILES(true);
const TileFn col_tiles[MR + 1] = MMADA_TILES(false);

// out[M, N] = x[M, K] @ W^T (+ add[M, N]); W packed by pack_weight. x is first laid out tile by tile as [K][rows]
// (one pointer for the micro kernel's broadcasts); threads split the panels.
void gemm(const float* x, int64_t M, int64_t K, const float* packed, int64_t N, float* out, const float* add) {
  const int64_t panels = (N + NR - 1) / NR, tiles = (M + MR - 1) / MR;
  const int64_t panel_floats = K * NR, panel_lines = panel_floats * 4 / 64;
  std::vector<float> xt(M * K);
  for (int64_t r0 = 0; r0 < M; r0 += MR) {
    const int64_t rows = std::min<int64_t>(MR, M - r0);
    float* dst = xt.data() + r0 * K;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < K; ++k) dst[k * rows + r] = x[(r0 + r) * K + k];
  }
  at::parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* b = packed + p * panel_floats;
      const char* next = p + 1 < p1 ? reinterpret_cast<const char*>(b + panel_floats) : nullptr;
      const int cols = (int)std::min<int64_t>(NR, N - p * NR);
      int64_t fetched = 0;  // lines of the next panel prefetched, spread evenly over this panel's tiles
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t r0 = t * MR, rows = std::min<int64_t>(MR, M - r0);
        const int64_t per_k = (panel_lines - fetched + (tiles - t) * K - 1) / ((tiles - t) * K);
        const char* pf = (next && fetched < panel_lines) ? next + fetched * 64 : nullptr;
        float* c = out + r0 * N + p * NR;
        col_tiles[rows](xt.data() + r0 * K, rows, b, NR, c, N, K, cols, pf, per_k * 64);
        if (pf) fetched += K * per_k;
        if (add) {
          const float* a = add + r0 * N + p * NR;
          for (int64_t r = 0; r < rows; ++r)
            for (int j = 0; j < cols; ++j) c[r * N + j] += a[r * N + j];
        }
      }
    }
  });
}

// e^x for x <= 0 (and moderate x > 0): 2^n * p(r), n = round(x / ln 2), |r| <= ln 2 / 2, ~1 ulp.
inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  return _mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.0f)), n);
}

// out = w * (x * rsqrt(mean(x^2) + eps)), row by row
void rmsnorm(const float* x, int64_t M, int64_t d, const float* w, double eps, float* out) {
  for (int64_t i = 0; i < M; ++i) {
    const float* xi = x + i * d;
    float* oi = out + i * d;
    __m512 acc = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= d; j += 16) {
      const __m512 v = _mm512_loadu_ps(xi + j);
      acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
    }
    float ss = _mm512_reduce_add_ps(acc);
    for (; j < d; ++j) ss += xi[j] * xi[j];
    const float scale = 1.0f / std::sqrt(ss / (float)d + (float)eps);
    for (j = 0; j < d; ++j) oi[j] = w[j] * (xi[j] * scale);
  }
}

// out = u * cos + rotate_half(u) * sin (rotate_half(u) = [-u2, u1]), each product rounded before the sum as in torch
void rope(const float* u, const float* cos, const float* sin, int64_t half, float* out) {
  int64_t j = 0;
  for (; j + 16 <= half; j += 16) {
    const __m512 u1 = _mm512_loadu_ps(u + j), u2 = _mm512_loadu_ps(u + j + half);
    const __m512 neg_u2 = _mm512_xor_ps(u2, _mm512_set1_ps(-0.0f));
    _mm512_storeu_ps(out + j, _mm512_add_ps(_mm512_mul_ps(u1, _mm512_loadu_ps(cos + j)),
                                            _mm512_mul_ps(neg_u2, _mm512_loadu_ps(sin + j))));
    _mm512_storeu_ps(out + j + half, _mm512_add_ps(_mm512_mul_ps(u2, _mm512_loadu_ps(cos + j + half)),
                                                   _mm512_mul_ps(u1, _mm512_loadu_ps(sin + j + half))));
  }
  for (; j < half; ++j) {
    const float a1 = u[j] * cos[j], b1 = -u[j + half] * sin[j];
    const float a2 = u[j + half] * cos[j + half], b2 = u[j] * sin[j + half];
    out[j] = a1 + b1;
    out[j + half] = a2 + b2;
  }
}

void check_float_cpu(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32, name, " must be a float32 CPU tensor");
}

}  // namespace

// W [N, K] -> panels [ceil(N / 32), K, 32] (zero padded)
torch::Tensor pack_weight(torch::Tensor w) {
  check_float_cpu(w, "weight");
  TORCH_CHECK(w.dim() == 2, "weight must be 2-D");
  w = w.contiguous();
  const int64_t N = w.size(0), K = w.size(1), panels = (N + NR - 1) / NR;
  auto out = torch::zeros({panels, K, NR}, w.options());
  const float* src = w.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t j = 0; j < NR && p * NR + j < N; ++j) {
        const float* row = src + (p * NR + j) * K;
        for (int64_t k = 0; k < K; ++k) dst[(p * K + k) * NR + j] = row[k];
      }
  });
  return out;
}

// x [..., K] @ W^T -> [..., N]
torch::Tensor linear(torch::Tensor x, torch::Tensor packed, int64_t N) {
  check_float_cpu(x, "x");
  auto shape = x.sizes().vec();
  const int64_t K = shape.back();
  TORCH_CHECK(packed.dim() == 3 && packed.size(1) == K && packed.size(2) == NR && packed.size(0) * NR >= N,
              "packed weight does not match the input");
  auto x2 = x.reshape({-1, K}).contiguous();
  shape.back() = N;
  auto out = torch::empty(shape, x.options());
  gemm(x2.data_ptr<float>(), x2.size(0), K, packed.data_ptr<float>(), N, out.data_ptr<float>(), nullptr);
  return out;
}

// q [B, H, Lq, D] (last dim contiguous), k / v [B, Hkv, T, D] contiguous, key_mask [B, T] (true = attend)
// -> out [B, Lq, H, D]
torch::Tensor attention(torch::Tensor q, torch::Tensor k, torch::Tensor v, c10::optional<torch::Tensor> key_mask,
                        double scale) {
  check_float_cpu(q, "q");
  check_float_cpu(k, "k");
  check_float_cpu(v, "v");
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), D = q.size(3), Hkv = k.size(1), T = k.size(2);
  TORCH_CHECK(q.stride(3) == 1 && k.is_contiguous() && v.is_contiguous() && H % Hkv == 0 &&
                  k.size(0) == B && k.size(3) == D && v.sizes() == k.sizes(),
              "attention: unsupported layout");
  auto out = torch::empty({B, Lq, H, D}, q.options());
  torch::Tensor mask_t;
  const bool* mask = nullptr;
  if (key_mask.has_value() && key_mask->defined()) {
    mask_t = key_mask->to(torch::kBool).contiguous();
    TORCH_CHECK(mask_t.numel() == B * T, "key_mask must be [B, T]");
    mask = mask_t.data_ptr<bool>();
  }
  const int64_t Qp = (Lq + NR - 1) / NR * NR, group = H / Hkv;  // query columns, padded to whole panels
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t qs0 = q.stride(0), qs1 = q.stride(1), qs2 = q.stride(2);
  at::parallel_for(0, B * H, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> qT(D * Qp), S(T * Qp), oT(D * Qp), inv(Qp);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / H, h = task % H;
      const float* qh = qp + b * qs0 + h * qs1;
      const float* kh = kp + (b * Hkv + h / group) * T * D;
      const float* vh = vp + (b * Hkv + h / group) * T * D;
      const bool* keep = mask ? mask + b * T : nullptr;
      const char* next_k = task + 1 < t1 ? reinterpret_cast<const char*>(
          kp + (((task + 1) / H) * Hkv + ((task + 1) % H) / group) * T * D) : nullptr;
      for (int64_t d = 0; d < D; ++d)
        for (int64_t i = 0; i < Qp; ++i) qT[d * Qp + i] = i < Lq ? qh[i * qs2 + d] : 0.f;
      const int64_t kv_lines = T * D * 4 / 64;
      const char* vbytes = reinterpret_cast<const char*>(vh);
      for (int64_t c0 = 0; c0 < Qp; c0 += NR)  // S^T [T, Qp] = K Q^T, prefetching V (D lines per tile)
        for (int64_t j0 = 0, t = 0; j0 < T; j0 += KEY_ROWS, ++t) {
          const char* pf = (c0 == 0 && t * D < kv_lines) ? vbytes + t * D * 64 : nullptr;
          row_tiles[std::min<int64_t>(KEY_ROWS, T - j0)](kh + j0 * D, D, qT.data() + c0, Qp,
                                                         S.data() + j0 * Qp + c0, Qp, D, NR, pf, 64);
        }
      const __m512 vscale = _mm512_set1_ps((float)scale);
      for (int64_t c0 = 0; c0 < Qp; c0 += 16) {  // softmax over keys, 16 queries at a time
        __m512 mx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < T; ++j)
          if (!keep || keep[j]) mx = _mm512_max_ps(mx, _mm512_loadu_ps(S.data() + j * Qp + c0));
        for (int64_t j = 0; j < T; ++j) {
          float* s = S.data() + j * Qp + c0;
          const __m512 e = (!keep || keep[j])
                               ? exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(s), mx), vscale))
                               : _mm512_setzero_ps();
          _mm512_storeu_ps(s, e);
          sum = _mm512_add_ps(sum, e);
        }
        _mm512_storeu_ps(inv.data() + c0, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
      }
      for (int64_t c0 = 0; c0 < Qp; c0 += NR)  // O^T [D, Qp] = V^T P^T
        for (int64_t d0 = 0, t = 0; d0 < D; d0 += MR, ++t) {  // prefetching the next head's K (T lines per tile)
          const char* pf = (next_k && c0 == 0 && t * T < kv_lines) ? next_k + t * T * 64 : nullptr;
          col_tiles[std::min<int64_t>(MR, D - d0)](vh + d0, D, S.data() + c0, Qp, oT.data() + d0 * Qp + c0, Qp, T,
                                                   NR, pf, 64);
        }
      for (int64_t i = 0; i < Lq; ++i) {
        float* o = op + ((b * Lq + i) * H + h) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = oT[d * Qp + i] * inv[i];
      }
    }
  });
  return out;
}

// One block of MMaDAModelLM on a cached window (no grad): x [B, L, d] -> [B, L, d]. packed: q/k/v together,
// attn_out, gate/up together, ff_out. k_cache / v_cache [B, Hkv, T, D] get the window's rotated keys and values
// at positions start .. start + L - 1.
torch::Tensor block_step(torch::Tensor x, torch::Tensor attn_norm, torch::Tensor ff_norm, double eps,
                         torch::Tensor qkv_w, torch::Tensor out_w, torch::Tensor gate_up_w, torch::Tensor down_w,
                         int64_t H, int64_t Hkv, int64_t hidden, torch::Tensor sin, torch::Tensor cos,
                         torch::Tensor k_cache, torch::Tensor v_cache, int64_t start,
                         c10::optional<torch::Tensor> key_mask) {
  check_float_cpu(x, "x");
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "x must be a contiguous [B, L, d] tensor");
  const int64_t B = x.size(0), L = x.size(1), d = x.size(2), D = k_cache.size(3), T = k_cache.size(2), M = B * L;
  const int64_t nq = H * D, nkv = Hkv * D, nqkv = nq + 2 * nkv, half = D / 2;
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous() && k_cache.size(0) == B && k_cache.size(1) == Hkv &&
                  v_cache.sizes() == k_cache.sizes() && start >= 0 && start + L <= T && D % 2 == 0 && D <= 1024,
              "block_step: the cache does not fit the window");
  TORCH_CHECK(sin.is_contiguous() && cos.is_contiguous() && sin.size(0) == L && sin.size(1) == D,
              "block_step: sin / cos must be [L, D]");
  const auto opt = x.options();
  auto h = torch::empty({M, d}, opt);
  rmsnorm(x.data_ptr<float>(), M, d, attn_norm.data_ptr<float>(), eps, h.data_ptr<float>());
  auto qkv = torch::empty({B, L, nqkv}, opt);
  gemm(h.data_ptr<float>(), M, d, qkv_w.data_ptr<float>(), nqkv, qkv.data_ptr<float>(), nullptr);

  // RoPE (x * cos + rotate_half(x) * sin) on q in place and on k into the cache; v into the cache
  float* rows = qkv.data_ptr<float>();
  const float *sp = sin.data_ptr<float>(), *cp = cos.data_ptr<float>();
  float *kc = k_cache.data_ptr<float>(), *vc = v_cache.data_ptr<float>();
  float rotated[1024];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i) {
      float* row = rows + (b * L + i) * nqkv;
      const float *s = sp + i * D, *c = cp + i * D;
      for (int64_t head = 0; head < H + Hkv; ++head) {
        float* u = row + head * D;
        float* dst = head < H ? u : kc + ((b * Hkv + head - H) * T + start + i) * D;
        rope(u, c, s, half, rotated);
        std::copy(rotated, rotated + D, dst);
      }
      for (int64_t head = 0; head < Hkv; ++head)
        std::copy(row + nq + nkv + head * D, row + nq + nkv + (head + 1) * D,
                  vc + ((b * Hkv + head) * T + start + i) * D);
    }
  auto q = qkv.narrow(2, 0, nq).view({B, L, H, D}).transpose(1, 2);
  auto att = attention(q, k_cache, v_cache, key_mask, 1.0 / std::sqrt((double)D));  // [B, L, H, D]

  auto x1 = torch::empty({B, L, d}, opt);
  gemm(att.data_ptr<float>(), M, nq, out_w.data_ptr<float>(), d, x1.data_ptr<float>(), x.data_ptr<float>());
  rmsnorm(x1.data_ptr<float>(), M, d, ff_norm.data_ptr<float>(), eps, h.data_ptr<float>());
  auto gate_up = torch::empty({M, 2 * hidden}, opt);
  gemm(h.data_ptr<float>(), M, d, gate_up_w.data_ptr<float>(), 2 * hidden, gate_up.data_ptr<float>(), nullptr);
  auto act = torch::empty({M, hidden}, opt);
  const float* gu = gate_up.data_ptr<float>();
  float* ap = act.data_ptr<float>();
  for (int64_t r = 0; r < M; ++r) {  // silu(gate) * up
    const float *g = gu + r * 2 * hidden, *u = g + hidden;
    float* o = ap + r * hidden;
    int64_t j = 0;
    for (; j + 16 <= hidden; j += 16) {
      const __m512 gv = _mm512_loadu_ps(g + j);
      const __m512 denominator = _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
      const __m512 silu = _mm512_div_ps(gv, denominator);
      _mm512_storeu_ps(o + j, _mm512_mul_ps(silu, _mm512_loadu_ps(u + j)));
    }
    for (; j < hidden; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
  }
  auto x2 = torch::empty({B, L, d}, opt);
  gemm(ap, M, hidden, down_w.data_ptr<float>(), d, x2.data_ptr<float>(), x1.data_ptr<float>());
  return x2;
}

// RMSNorm(x) @ W^T: the final norm and the LM head
torch::Tensor norm_linear(torch::Tensor x, torch::Tensor norm, double eps, torch::Tensor packed, int64_t N) {
  check_float_cpu(x, "x");
  auto shape = x.sizes().vec();
  const int64_t d = shape.back();
  auto x2 = x.reshape({-1, d}).contiguous();
  const int64_t M = x2.size(0);
  auto h = torch::empty({M, d}, x.options());
  rmsnorm(x2.data_ptr<float>(), M, d, norm.data_ptr<float>(), eps, h.data_ptr<float>());
  shape.back() = N;
  auto out = torch::empty(shape, x.options());
  gemm(h.data_ptr<float>(), M, d, packed.data_ptr<float>(), N, out.data_ptr<float>(), nullptr);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pack_weight", &pack_weight, "W [N, K] -> panels [ceil(N/32), K, 32]");
  m.def("linear", &linear, "x @ W^T on a packed weight");
  m.def("attention", &attention, "short-query attention over a K/V cache -> [B, Lq, H, D]");
  m.def("block_step", &block_step, "one transformer block on a cached window");
  m.def("norm_linear", &norm_linear, "RMSNorm then x @ W^T on a packed weight");
}
