// Python binding of upfirdn2d: checks arguments, allocates the output, dispatches on dtype to the
// CUDA kernel or, for CPU tensors, to a CPU loop over the same per-sample math (for tests).
#include <torch/extension.h>
#include <ATen/AccumulateType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include "upfirdn2d.h"

// The kernel's loop on the host, with the kernel's accumulation type.
template <class T>
static void upfirdn2d_cpu(const Upfirdn2dParams& p)
{
    using acc_t = at::acc_type<T, true>;
    const T* x = static_cast<const T*>(p.x);
    const acc_t* f = static_cast<const acc_t*>(p.f);
    T* y = static_cast<T*>(p.y);
    for (int64_t n = 0; n < p.batch; n++)
        for (int64_t c = 0; c < p.channels; c++)
        {
            const T* xp = x + n * p.x_stride[0] + c * p.x_stride[1];
            for (int oy = 0; oy < p.out_h; oy++)
                for (int ox = 0; ox < p.out_w; ox++)
                    y[n * p.y_stride[0] + c * p.y_stride[1] + oy * p.y_stride[2] + ox * p.y_stride[3]] =
                        static_cast<T>(upfirdn2d_sample<T, acc_t>(p, xp, f, ox, oy));
        }
}

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int upx, int upy, int downx, int downy,
    int padx0, int padx1, int pady0, int pady1, bool flip, double gain)
{
    TORCH_CHECK(x.is_cuda() || x.is_cpu(), "upfirdn2d: x must be a CUDA or CPU tensor");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4D [N, C, H, W]");
    TORCH_CHECK(f.dim() == 2, "upfirdn2d: f must be 2D [fh, fw]");
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the same device as x");
    const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(f.scalar_type() == acc_type, "upfirdn2d: f must be float64 for float64 x, else float32");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    TORCH_CHECK(f.size(0) >= 1 && f.size(1) >= 1, "upfirdn2d: f must not be empty");
    TORCH_CHECK(x.size(2) * (int64_t)upy + pady0 + pady1 < INT_MAX && x.size(3) * (int64_t)upx + padx0 + padx1 < INT_MAX,
        "upfirdn2d: image too large");

    const int in_h = (int)x.size(2), in_w = (int)x.size(3);
    const int f_h = (int)f.size(0), f_w = (int)f.size(1);
    const int out_h = (in_h * upy + pady0 + pady1 - f_h + downy) / downy;
    const int out_w = (in_w * upx + padx0 + padx1 - f_w + downx) / downx;
    TORCH_CHECK(out_h >= 1 && out_w >= 1, "upfirdn2d: output would be empty");

    at::cuda::OptionalCUDAGuard device_guard;
    if (x.is_cuda())
        device_guard.set_device(x.device());
    f = f.contiguous();
    torch::Tensor y = at::empty({x.size(0), x.size(1), out_h, out_w}, x.options(), x.suggest_memory_format());

    Upfirdn2dParams p;
    p.x = x.data_ptr();
    p.f = f.data_ptr();
    p.y = y.data_ptr();
    for (int i = 0; i < 4; i++)
    {
        p.x_stride[i] = x.stride(i);
        p.y_stride[i] = y.stride(i);
    }
    p.batch = x.size(0);
    p.channels = x.size(1);
    p.in_h = in_h;
    p.in_w = in_w;
    p.out_h = out_h;
    p.out_w = out_w;
    p.f_h = f_h;
    p.f_w = f_w;
    p.upx = upx;
    p.upy = upy;
    p.downx = downx;
    p.downy = downy;
    p.padx0 = padx0;
    p.pady0 = pady0;
    p.flip = flip;
    p.gain = gain;

    if (x.numel() == 0 || y.numel() == 0)
        return y;
    if (!x.is_cuda())
    {
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cpu", [&] {
            upfirdn2d_cpu<scalar_t>(p);
        });
        return y;
    }
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
        upfirdn2d_launch<scalar_t>(p, at::cuda::getCurrentCUDAStream());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("upfirdn2d", &upfirdn2d, "upfirdn2d (CUDA)");
}
