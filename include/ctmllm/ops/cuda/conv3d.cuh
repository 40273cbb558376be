#pragma once
// conv3d on the GPU through cuDNN's convolution API (forward, backward data, backward filter) on the
// context's cuDNN handle, NCDHW tensors of float32, bfloat16 or float16 with float compute. float32
// runs FMA-only kernels (no TF32: the CPU's 1e-5 agreement holds); 16-bit may use tensor cores.
// Algorithms come from cuDNN's heuristics (the _v7 queries, as PyTorch makes them: math type set
// before each query, then each candidate's own; float32 always FMA), restricted to deterministic ones
// so that results repeat bit for bit; a candidate cuDNN cannot run here is skipped for the next. The
// bias is added by an own kernel, db is the GPU sum of dy over all but the channel axis.
#include <string>
#include <vector>

#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/core/cuda/context.hpp"
#include "ctmllm/ops/cpu/conv3d.hpp"
#include "ctmllm/ops/cuda/dtype.cuh"
#include "ctmllm/ops/cuda/launch.cuh"
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::ops {
namespace cuda_impl {

template <class T>
cudnnDataType_t cudnn_data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDNN_DATA_FLOAT;
  else if constexpr (std::is_same_v<T, bf16>) return CUDNN_DATA_BFLOAT16;
  else return CUDNN_DATA_HALF;
}

inline int cudnn_dim(int64_t v, const char* what) {
  CTMLLM_CHECK(v > 0 && v <= 0x7fffffff, "conv3d (cuDNN): ", what, " ", v, " does not fit cuDNN's int sizes");
  return int(v);
}

// The descriptors of one conv3d: x [B, C, D, H, W], w [Cout, C, kd, kh, kw], y [B, Cout, Do, Ho, Wo].
template <class T>
class ConvDescriptors {
 public:
  ConvDescriptors(int64_t B, int64_t Cout, const Conv3dGeometry& g) {
    const cudnnDataType_t type = cudnn_data_type<T>();
    cuda::check(cudnnCreateTensorDescriptor(&x), "cudnnCreateTensorDescriptor");
    cuda::check(cudnnCreateTensorDescriptor(&y), "cudnnCreateTensorDescriptor");
    cuda::check(cudnnCreateFilterDescriptor(&w), "cudnnCreateFilterDescriptor");
    cuda::check(cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor");
    set_tensor(x, type, {B, g.C, g.D, g.H, g.W});
    set_tensor(y, type, {B, Cout, g.Do, g.Ho, g.Wo});
    const int wdims[5] = {cudnn_dim(Cout, "Cout"), cudnn_dim(g.C, "Cin"), cudnn_dim(g.kernel[0], "kernel"),
                          cudnn_dim(g.kernel[1], "kernel"), cudnn_dim(g.kernel[2], "kernel")};
    cuda::check(cudnnSetFilterNdDescriptor(w, type, CUDNN_TENSOR_NCHW, 5, wdims), "cudnnSetFilterNdDescriptor");
    const int pad[3] = {int(g.padding[0]), int(g.padding[1]), int(g.padding[2])};
    const int stride[3] = {cudnn_dim(g.stride[0], "stride"), cudnn_dim(g.stride[1], "stride"),
                           cudnn_dim(g.stride[2], "stride")};
    const int dilation[3] = {1, 1, 1};
    // F.conv3d is a cross-correlation; accumulation in float for every element type.
    cuda::check(cudnnSetConvolutionNdDescriptor(conv, 3, pad, stride, dilation, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                "cudnnSetConvolutionNdDescriptor");
    prepare_query();
  }
  ~ConvDescriptors() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;

  // Before each algorithm query, which ranks for the math type the descriptor holds (a previous
  // run may have left another there).
  void prepare_query() const { set_math(std::is_same_v<T, float> ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH); }
  // cuDNN picks kernels by algorithm and math type together. 16-bit runs a candidate with its own math
  // type; float32 always with FMA_MATH, whatever math type the candidate reports, so that cuDNN runs
  // FMA kernels or says "not supported" (never TF32, which cuDNN's default math would allow).
  void prepare_run(cudnnMathType_t algo_math) const { set_math(std::is_same_v<T, float> ? CUDNN_FMA_MATH : algo_math); }

  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

 private:
  void set_math(cudnnMathType_t math) const {
    cuda::check(cudnnSetConvolutionMathType(conv, math), "cudnnSetConvolutionMathType");
  }
  static void set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t type, std::initializer_list<int64_t> sizes) {
    int dims[5], strides[5];
    int i = 0;
    for (int64_t s : sizes) dims[i++] = cudnn_dim(s, "a tensor extent");
    int64_t st = 1;
    for (int k = 4; k >= 0; --k) {
      strides[k] = cudnn_dim(st, "a tensor stride");
      st *= dims[k];
    }
    cuda::check(cudnnSetTensorNdDescriptor(d, type, 5, dims, strides), "cudnnSetTensorNdDescriptor");
  }
};

// Runs the first deterministic algorithm of cuDNN's ranked list that cuDNN accepts here. `run(algo,
// workspace, bytes)` and `workspace_size(algo, &bytes)` return cuDNN statuses; what = the call's name.
// When none runs, the Error lists every candidate and what became of it.
template <class Perf, class Desc, class WorkspaceSize, class Run>
void run_deterministic(const std::vector<Perf>& ranked, const char* what, const Desc& desc, WorkspaceSize&& workspace_size,
                       Run&& run) {
  std::string tried;
  const auto note = [&](const Perf& p, const std::string& outcome) {
    tried += ctmllm::detail::concat(tried.empty() ? "" : "; ", "algorithm ", int(p.algo), " (math ", int(p.mathType),
                                    "): ", outcome);
  };
  for (const Perf& p : ranked) {
    if (p.status != CUDNN_STATUS_SUCCESS) {
      note(p, cudnnGetErrorString(p.status));
      continue;
    }
    if (p.determinism != CUDNN_DETERMINISTIC) {
      note(p, "not deterministic");
      continue;
    }
    desc.prepare_run(p.mathType);
    size_t bytes = 0;
    if (const cudnnStatus_t s = workspace_size(p.algo, &bytes); s != CUDNN_STATUS_SUCCESS) {
      note(p, ctmllm::detail::concat("workspace size: ", cudnnGetErrorString(s)));
      continue;
    }
    std::shared_ptr<std::byte> workspace;
    if (bytes && !(workspace = cuda::try_allocate(bytes))) {  // the next algorithm may need less
      note(p, ctmllm::detail::concat("no ", bytes, " bytes of workspace free"));
      continue;
    }
    const cudnnStatus_t s = run(p.algo, workspace.get(), bytes);
    if (s == CUDNN_STATUS_SUCCESS) return;
    // cuDNN 9 says "not supported" in sub-codes (3001 shape, 3002 layout, ...): try the next algorithm
    if (CUDNN_STATUS_CATEGORY(s) != CUDNN_STATUS_NOT_SUPPORTED) cuda::check(s, what);
    note(p, cudnnGetErrorString(s));
  }
  fail("conv3d (cuDNN): no deterministic algorithm (float32: without TF32) runs ", what, " here (",
       tried.empty() ? "cuDNN ranked none" : tried, ")");
}

template <class T>
__global__ void add_channel_bias_kernel(T* y, const T* __restrict__ b, int64_t n, int64_t spatial, int64_t channels) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = from_float<T>(to_float(y[i]) + to_float(b[(i / spatial) % channels]));
}

}  // namespace cuda_impl

namespace impl {

// y [B, Cout, Do, Ho, Wo] = conv(x, w) (+ b per channel); every tensor contiguous.
template <class T>
void conv3d_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& b, const Tensor<T, Cuda>& y,
                    const Conv3dGeometry& g) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "conv3d");
  const int64_t B = x.size(0), Cout = w.size(0);
  if (y.numel() == 0) return;
  if (x.numel() == 0) {  // no input voxel (padding alone sized y): y is the bias, or 0
    if (b.defined()) y.copy_from(b.reshape({1, Cout, 1, 1, 1}).expand(y.shape()));
    else CTMLLM_CUDA_CHECK(cudaMemsetAsync(y.data(), 0, size_t(y.numel()) * sizeof(T), cuda::current_stream()));
    return;
  }
  const cuda_impl::ConvDescriptors<T> desc(B, Cout, g);
  const cuda::Context::CudnnLease cudnn = cuda::Context::current().cudnn();
  const cudnnHandle_t h = cudnn.get();
  int count = 0;
  cuda::check(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count), "cudnnGetConvolutionForwardAlgorithmMaxCount");
  std::vector<cudnnConvolutionFwdAlgoPerf_t> ranked(size_t(std::max(count, 1)));
  cuda::check(cudnnGetConvolutionForwardAlgorithm_v7(h, desc.x, desc.w, desc.conv, desc.y, int(ranked.size()), &count,
                                                     ranked.data()),
              "cudnnGetConvolutionForwardAlgorithm_v7");
  ranked.resize(size_t(count));
  const float one = 1.0f, zero = 0.0f;
  cuda_impl::run_deterministic(
      ranked, "cudnnConvolutionForward", desc,
      [&](cudnnConvolutionFwdAlgo_t a, size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(h, desc.x, desc.w, desc.conv, desc.y, a, bytes);
      },
      [&](cudnnConvolutionFwdAlgo_t a, void* ws, size_t bytes) {
        return cudnnConvolutionForward(h, &one, desc.x, x.data(), desc.w, w.data(), desc.conv, a, ws, bytes, &zero, desc.y,
                                       y.data());
      });
  if (b.defined()) {
    const int64_t n = y.numel();
    cuda_impl::add_channel_bias_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
        y.data(), b.data(), n, g.L(), Cout);
    cuda::check_launch("add_channel_bias_kernel");
  }
}

// dx (when defined), dw and db of conv3d; every tensor contiguous.
template <class T>
void conv3d_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& w,
                     const Tensor<T, Cuda>& dx, const Tensor<T, Cuda>& dw, const Tensor<T, Cuda>& db,
                     const Conv3dGeometry& g) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "conv3d_backward");
  const int64_t B = x.size(0), Cout = w.size(0);
  if (dy.numel() == 0 || x.numel() == 0) {  // no product: dx and dw are zero, db is still Σ dy
    for (const auto* t : {&dx, &dw})
      if (t->defined() && t->numel() > 0) t->copy_from(Tensor<T, Cuda>::zeros(t->shape()));
    if (db.defined() && db.numel() > 0)
      db.copy_from(dy.numel() > 0 ? ops::sum(dy, {0, 2, 3, 4}) : Tensor<T, Cuda>::zeros(db.shape()));
    return;
  }
  const cuda_impl::ConvDescriptors<T> desc(B, Cout, g);
  const cuda::Context::CudnnLease cudnn = cuda::Context::current().cudnn();
  const cudnnHandle_t h = cudnn.get();
  const float one = 1.0f, zero = 0.0f;
  if (dx.defined()) {
    int count = 0;
    desc.prepare_query();
    cuda::check(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count),
                "cudnnGetConvolutionBackwardDataAlgorithmMaxCount");
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> ranked(size_t(std::max(count, 1)));
    cuda::check(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, desc.w, desc.y, desc.conv, desc.x, int(ranked.size()),
                                                            &count, ranked.data()),
                "cudnnGetConvolutionBackwardDataAlgorithm_v7");
    ranked.resize(size_t(count));
    cuda_impl::run_deterministic(
        ranked, "cudnnConvolutionBackwardData", desc,
        [&](cudnnConvolutionBwdDataAlgo_t a, size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, desc.w, desc.y, desc.conv, desc.x, a, bytes);
        },
        [&](cudnnConvolutionBwdDataAlgo_t a, void* ws, size_t bytes) {
          return cudnnConvolutionBackwardData(h, &one, desc.w, w.data(), desc.y, dy.data(), desc.conv, a, ws, bytes, &zero,
                                              desc.x, dx.data());
        });
  }
  int count = 0;
  desc.prepare_query();
  cuda::check(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count),
              "cudnnGetConvolutionBackwardFilterAlgorithmMaxCount");
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> ranked(size_t(std::max(count, 1)));
  cuda::check(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, desc.x, desc.y, desc.conv, desc.w, int(ranked.size()),
                                                            &count, ranked.data()),
              "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  ranked.resize(size_t(count));
  cuda_impl::run_deterministic(
      ranked, "cudnnConvolutionBackwardFilter", desc,
      [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, desc.x, desc.y, desc.conv, desc.w, a, bytes);
      },
      [&](cudnnConvolutionBwdFilterAlgo_t a, void* ws, size_t bytes) {
        return cudnnConvolutionBackwardFilter(h, &one, desc.x, x.data(), desc.y, dy.data(), desc.conv, a, ws, bytes, &zero,
                                              desc.w, dw.data());
      });
  db.copy_from(ops::sum(dy, {0, 2, 3, 4}));
}

}  // namespace impl
}  // namespace ctmllm::ops
