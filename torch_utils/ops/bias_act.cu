// CUDA kernel of the bias_act plugin: one grid-stride loop over the elements of ref.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include "bias_act.h"

template <typename scalar_t>
__global__ void bias_act_kernel(BiasActArgs a, scalar_t* out, const scalar_t* g, const scalar_t* ref, const scalar_t* b)
{
    using T = at::opmath_type<scalar_t>;
    const int64_t step = int64_t(blockDim.x) * gridDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += step)
    {
        T gv = a.has_g ? T(g[i]) : T(0);
        T bv = a.has_b ? T(b[(i / a.bias_stride) % a.bias_size]) : T(0);
        out[i] = scalar_t(bias_act_eval<T>(a, gv, T(ref[i]), bv));
    }
}

at::Tensor bias_act_cuda(const BiasActArgs& a, const at::Tensor& g, const at::Tensor& ref, const at::Tensor& b)
{
    const c10::cuda::CUDAGuard device_guard(ref.device());
    at::Tensor out = at::empty_like(ref);
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((a.n + threads - 1) / threads, 65536);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, ref.scalar_type(), "bias_act_cuda", [&]
    {
        bias_act_kernel<scalar_t><<<int(blocks), threads, 0, at::cuda::getCurrentCUDAStream()>>>(a,
            out.data_ptr<scalar_t>(),
            a.has_g ? g.const_data_ptr<scalar_t>() : nullptr,
            ref.const_data_ptr<scalar_t>(),
            a.has_b ? b.const_data_ptr<scalar_t>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return out;
}
