#pragma once
// Row-major GEMMs on cuBLASLt: C[b] = A[b]·B[b] (+ bias broadcast over C's rows), for b < batch
// with fixed batch strides (strided batched), f32 accumulation for every element type (float32
// products are true float32, not TF32).
//
// cuBLASLt is column-major, and a row-major matrix read column-major is its transpose: so the call
// computes Cᵀ = Bᵀ·Aᵀ, with our B as its first operand and our A as its second. An operand whose
// rows are contiguous (row-major) goes in as it lies (op N); one whose columns are contiguous (a
// transposed view) goes in with op T. The bias epilogue adds a vector along the rows of cuBLASLt's
// D = Cᵀ, i.e. along C's columns: exactly linear's bias. Layouts and algorithms are found once per
// (shape, layout, alignment) and kept.
#include <array>
#include <memory>
#include <optional>
#include <type_traits>

#include <cublasLt.h>

#include "ctmllm/core/bounded_cache.hpp"
#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/core/cuda/context.hpp"
#include "ctmllm/core/cuda/library_error.hpp"
#include "ctmllm/core/dtype.hpp"
#include "ctmllm/core/error.hpp"

namespace ctmllm::ops::cuda_impl {

template <class T>
constexpr cudaDataType_t cuda_data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else if constexpr (std::is_same_v<T, bf16>) return CUDA_R_16BF;
  else return CUDA_R_16F;
}

// A rows×cols matrix, element (i, j) at p[i·rs + j·cs], and the distance between batch entries.
template <class T>
struct Mat {
  const T* p;
  int64_t rows, cols, rs, cs, batch_stride;
};

// How cuBLASLt can read a matrix in place: row-major (cs = 1) or column-major (rs = 1), with its
// leading dimension; none when neither dimension is contiguous. A dimension of extent 1 accepts any
// stride.
struct Layout {
  bool row_major;
  int64_t ld;
};
inline std::optional<Layout> layout_of(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= std::max<int64_t>(cols, 1)))
    return Layout{true, rows <= 1 ? std::max<int64_t>(cols, 1) : rs};
  if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= std::max<int64_t>(rows, 1)))
    return Layout{false, cols <= 1 ? std::max<int64_t>(rows, 1) : cs};
  return std::nullopt;
}

// The largest power of two (up to 256, cuBLASLt's default assumption) dividing the address and every
// batch offset: algorithms that need more alignment than a view has are then never chosen.
template <class T>
uint32_t alignment_bytes(const T* p, int64_t batch_stride) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | uint64_t(batch_stride * int64_t(sizeof(T))) | 256u;
  return uint32_t(bits & (~bits + 1));
}

struct LtDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, LtDeleter>;
using MatrixLayout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LtDeleter>;
using MatmulPreference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, LtDeleter>;

template <class V>
void set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const V& v, const char* what) {
  cuda::check(cublasLtMatmulDescSetAttribute(d, a, &v, sizeof(V)), what);
}
template <class V>
void set_attr(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const V& v, const char* what) {
  cuda::check(cublasLtMatrixLayoutSetAttribute(l, a, &v, sizeof(V)), what);
}
template <class V>
void set_attr(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const V& v, const char* what) {
  cuda::check(cublasLtMatmulPreferenceSetAttribute(p, a, &v, sizeof(V)), what);
}

// A column-major rows×cols layout with leading dimension ld, batched.
template <class T>
MatrixLayout lt_layout(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t batch_stride) {
  cublasLtMatrixLayout_t l = nullptr;
  cuda::check(cublasLtMatrixLayoutCreate(&l, cuda_data_type<T>(), uint64_t(rows), uint64_t(cols), ld),
              "cublasLtMatrixLayoutCreate");
  MatrixLayout owned(l);
  if (batch > 1) {
    CTMLLM_CHECK(batch <= INT32_MAX, "gemm: batch of ", batch, " exceeds cuBLASLt's limit");
    set_attr(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, int32_t(batch), "cuBLASLt batch count");
    set_attr(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, batch_stride, "cuBLASLt batch stride");
  }
  return owned;
}

// Everything a GEMM's plan depends on: shapes, layouts, batch strides, whether a bias is added, and
// the operands' alignments, the bias's included (their addresses matter only through those: an
// algorithm chosen for a 256-byte-aligned bias is not offered one aligned to 16).
struct GemmKey {
  int device = 0;
  DType dtype = DType::F32;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  bool a_row_major = true, b_row_major = true;
  int64_t lda = 0, ldb = 0, a_batch_stride = 0, b_batch_stride = 0, c_batch_stride = 0;
  bool bias = false;
  uint32_t align_a = 0, align_b = 0, align_c = 0, align_bias = 0;
  auto operator<=>(const GemmKey&) const = default;
};

// A GEMM's cuBLASLt layouts and a few ranked algorithms for them: cuBLASLt may still refuse one at
// run time (epilogue or alignment corner cases say "not supported" then); the next one runs instead.
struct GemmPlan {
  MatrixLayout first, second, out;
  std::array<cublasLtMatmulHeuristicResult_t, 4> heuristics{};
  int found = 0;
};

// Plans kept: a model runs a few dozen shapes; padded batches and prompts add more.
inline constexpr size_t kGemmCachedPlans = 1024;
inline BoundedCache<GemmKey, GemmPlan>& gemm_plans() {
  static BoundedCache<GemmKey, GemmPlan> plans(kGemmCachedPlans);
  return plans;
}

// The operation: cuBLASLt's first operand is our b, as it lies when b is row-major (it reads bᵀ,
// n×k), else transposed; likewise its second, our a. Made per call (it holds the bias pointer), so
// that a cached plan is never written to.
inline MatmulDesc gemm_desc(const GemmKey& key, const void* bias) {
  cublasLtMatmulDesc_t raw = nullptr;
  cuda::check(cublasLtMatmulDescCreate(&raw, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  MatmulDesc desc(raw);
  set_attr(raw, CUBLASLT_MATMUL_DESC_TRANSA, key.b_row_major ? CUBLAS_OP_N : CUBLAS_OP_T, "cuBLASLt transa");
  set_attr(raw, CUBLASLT_MATMUL_DESC_TRANSB, key.a_row_major ? CUBLAS_OP_N : CUBLAS_OP_T, "cuBLASLt transb");
  if (bias) {
    set_attr(raw, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS, "cuBLASLt bias epilogue");
    set_attr(raw, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias, "cuBLASLt bias pointer");
  }
  return desc;
}

// The plan for key: its layouts and cuBLASLt's heuristic answer for them, asked once.
template <class T>
GemmPlan build_gemm_plan(const GemmKey& key, cublasLtMatmulDesc_t desc) {
  const int64_t m = key.m, n = key.n, k = key.k, batch = key.batch;
  GemmPlan plan;
  // Stored shapes (before op): row-major b is bᵀ in column-major (n×k); column-major b is b (k×n).
  plan.first = key.b_row_major ? lt_layout<T>(n, k, key.ldb, batch, key.b_batch_stride)
                               : lt_layout<T>(k, n, key.ldb, batch, key.b_batch_stride);
  plan.second = key.a_row_major ? lt_layout<T>(k, m, key.lda, batch, key.a_batch_stride)
                                : lt_layout<T>(m, k, key.lda, batch, key.a_batch_stride);
  plan.out = lt_layout<T>(n, m, n, batch, key.c_batch_stride);

  cublasLtMatmulPreference_t pref_raw = nullptr;
  cuda::check(cublasLtMatmulPreferenceCreate(&pref_raw), "cublasLtMatmulPreferenceCreate");
  const MatmulPreference pref(pref_raw);
  set_attr(pref_raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(cuda::Context::kCublasWorkspaceBytes),
           "cuBLASLt workspace size");
  set_attr(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b, "cuBLASLt alignment A");
  set_attr(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a, "cuBLASLt alignment B");
  set_attr(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c, "cuBLASLt alignment C");
  set_attr(pref_raw, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c, "cuBLASLt alignment D");
  const cublasStatus_t query = cublasLtMatmulAlgoGetHeuristic(
      cuda::Context::current().cublaslt(), desc, plan.first.get(), plan.second.get(), plan.out.get(), plan.out.get(),
      pref_raw, int(plan.heuristics.size()), plan.heuristics.data(), &plan.found);
  // "Not supported" leaves the plan without candidates: kept, so that the call fails fast next time.
  if (query != CUBLAS_STATUS_NOT_SUPPORTED) cuda::check(query, "cublasLtMatmulAlgoGetHeuristic");
  if (query != CUBLAS_STATUS_SUCCESS) plan.found = 0;
  return plan;
}

// c (m×n per batch entry, row-major, ld = n, entries c_batch_stride apart) = a (m×k) · b (k×n)
// (+ bias[n] when bias is not null, 16-byte aligned; only with batch = 1). a and b must each have a
// Layout (the caller copies them otherwise); m, n, k > 0. The plan of each (shapes, layouts,
// alignments) is made once and kept (gemm_plans()): a call then costs a lookup, a small descriptor
// and the launch.
template <class T>
void lt_matmul(const Mat<T>& a, const Mat<T>& b, T* c, int64_t batch, int64_t c_batch_stride, const T* bias) {
  const auto la = layout_of(a.rows, a.cols, a.rs, a.cs), lb = layout_of(b.rows, b.cols, b.rs, b.cs);
  CTMLLM_CHECK(la && lb, "gemm: operand strides cuBLASLt cannot read in place");
  CTMLLM_CHECK(!bias || batch == 1, "gemm: a bias epilogue with a batch");
  GemmKey key;
  key.device = cuda::current_device();
  key.dtype = dtype_v<T>;
  key.m = a.rows, key.n = b.cols, key.k = a.cols, key.batch = batch;
  key.a_row_major = la->row_major, key.b_row_major = lb->row_major, key.lda = la->ld, key.ldb = lb->ld;
  key.a_batch_stride = batch > 1 ? a.batch_stride : 0;
  key.b_batch_stride = batch > 1 ? b.batch_stride : 0;
  key.c_batch_stride = batch > 1 ? c_batch_stride : 0;
  key.bias = bias != nullptr;
  key.align_a = alignment_bytes(a.p, key.a_batch_stride);
  key.align_b = alignment_bytes(b.p, key.b_batch_stride);
  key.align_c = alignment_bytes<T>(c, key.c_batch_stride);
  key.align_bias = bias ? alignment_bytes(bias, 0) : 0;

  const MatmulDesc desc = gemm_desc(key, bias);
  const std::shared_ptr<const GemmPlan> plan = gemm_plans().get(key, [&] { return build_gemm_plan<T>(key, desc.get()); });
  const cublasLtHandle_t handle = cuda::Context::current().cublaslt();
  const float alpha = 1.0f, beta = 0.0f;
  cublasStatus_t last = CUBLAS_STATUS_NOT_SUPPORTED;
  for (int i = 0; i < plan->found; ++i) {
    const cublasLtMatmulHeuristicResult_t& h = plan->heuristics[size_t(i)];
    if (h.state != CUBLAS_STATUS_SUCCESS) continue;
    // Scratch from the caching allocator, for this stream: freed here, it goes to the stream's next
    // request, whose work is queued after this GEMM.
    const std::shared_ptr<std::byte> workspace = h.workspaceSize ? cuda::allocate(h.workspaceSize) : nullptr;
    last = cublasLtMatmul(handle, desc.get(), &alpha, b.p, plan->first.get(), a.p, plan->second.get(), &beta, c,
                          plan->out.get(), c, plan->out.get(), &h.algo, workspace.get(), h.workspaceSize,
                          cuda::current_stream());
    if (last == CUBLAS_STATUS_SUCCESS) return;
    if (last != CUBLAS_STATUS_NOT_SUPPORTED) cuda::check(last, "cublasLtMatmul");
  }
  fail("gemm: cuBLASLt has no algorithm that runs ", key.m, "x", key.k, " by ", key.k, "x", key.n, " (batch ", batch,
       ", ", dtype_name(dtype_v<T>), bias ? ", bias epilogue" : "", "; ", plan->found, " candidates, last status ",
       cublasLtGetStatusString(last), ")");
}

}  // namespace ctmllm::ops::cuda_impl
