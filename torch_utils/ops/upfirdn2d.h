// Shared between the host binding (upfirdn2d.cpp) and the kernel (upfirdn2d.cu).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

struct Upfirdn2dParams
{
    const void* x;          // Input [N, C, in_h, in_w], any strides.
    const void* f;          // Filter [f_h, f_w], contiguous, in the accumulation type (float or double).
    void*       y;          // Output [N, C, out_h, out_w], any strides.
    int64_t     x_stride[4];
    int64_t     y_stride[4];
    int64_t     batch;
    int64_t     channels;
    int         in_h, in_w;
    int         out_h, out_w;
    int         f_h, f_w;
    int         upx, upy;
    int         downx, downy;
    int         padx0, pady0;
    bool        flip;       // true: correlate with f; false: convolve (flip the filter).
    double      gain;
};

// Defined in upfirdn2d.cu for T in {double, float, c10::Half, c10::BFloat16}.
template <class T> void upfirdn2d_launch(const Upfirdn2dParams& p, cudaStream_t stream);
