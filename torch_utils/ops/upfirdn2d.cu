// upfirdn2d CUDA kernel: one thread per output sample; the math is upfirdn2d_sample() in upfirdn2d.h.
#include <ATen/AccumulateType.h>
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>
#include "upfirdn2d.h"

template <class T>
static __global__ void upfirdn2d_kernel(Upfirdn2dParams p)
{
    using acc_t = at::acc_type<T, true>;
    const T* x = static_cast<const T*>(p.x);
    const acc_t* f = static_cast<const acc_t*>(p.f);
    T* y = static_cast<T*>(p.y);
    const int64_t total = p.batch * p.channels * p.out_h * p.out_w;

    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total; idx += (int64_t)gridDim.x * blockDim.x)
    {
        const int ox = (int)(idx % p.out_w);
        int64_t rest = idx / p.out_w;
        const int oy = (int)(rest % p.out_h);
        rest /= p.out_h;
        const int64_t c = rest % p.channels;
        const int64_t n = rest / p.channels;
        const T* xp = x + n * p.x_stride[0] + c * p.x_stride[1];
        y[n * p.y_stride[0] + c * p.y_stride[1] + oy * p.y_stride[2] + ox * p.y_stride[3]] =
            static_cast<T>(upfirdn2d_sample<T, acc_t>(p, xp, f, ox, oy));
    }
}

template <class T> void upfirdn2d_launch(const Upfirdn2dParams& p, cudaStream_t stream)
{
    const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
    if (total == 0)
        return;
    const int threads = 256;
    const int64_t blocks = (total + threads - 1) / threads;
    upfirdn2d_kernel<T><<<(unsigned int)(blocks < (1 << 20) ? blocks : (1 << 20)), threads, 0, stream>>>(p);
}

template void upfirdn2d_launch<double>(const Upfirdn2dParams& p, cudaStream_t stream);
template void upfirdn2d_launch<float>(const Upfirdn2dParams& p, cudaStream_t stream);
template void upfirdn2d_launch<c10::Half>(const Upfirdn2dParams& p, cudaStream_t stream);
template void upfirdn2d_launch<c10::BFloat16>(const Upfirdn2dParams& p, cudaStream_t stream);
