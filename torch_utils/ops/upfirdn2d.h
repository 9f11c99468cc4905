// upfirdn2d: shared between the host binding with its CPU loop (upfirdn2d.cpp) and the CUDA kernel
// (upfirdn2d.cu). upfirdn2d_sample() is the whole per-output math; both loops call it, so testing
// the CPU loop against the reference path tests the kernel's math without a GPU.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

#ifdef __CUDACC__
#define UPFIRDN2D_HD __host__ __device__ __forceinline__
#else
#define UPFIRDN2D_HD inline
#endif

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

// Smallest k >= 0 with (s + k) divisible by up.
UPFIRDN2D_HD int upfirdn2d_first_tap(int s, int up)
{
    int r = s % up;
    return r > 0 ? up - r : -r;
}

// Output sample (ox, oy) of one [in_h, in_w] image plane xp, in the accumulation type A, gain applied.
// Only the filter taps that land on input samples are summed: zero-inserted samples contribute nothing.
template <class T, class A>
UPFIRDN2D_HD A upfirdn2d_sample(const Upfirdn2dParams& p, const T* xp, const A* f, int ox, int oy)
{
    // Top-left filter tap in upsampled, unpadded coordinates.
    const int sx = ox * p.downx - p.padx0;
    const int sy = oy * p.downy - p.pady0;
    A v = 0;
    for (int ky = upfirdn2d_first_tap(sy, p.upy); ky < p.f_h; ky += p.upy)
    {
        const int iy = (sy + ky) / p.upy;
        if (iy < 0 || iy >= p.in_h)
            continue;
        const int fy = p.flip ? ky : p.f_h - 1 - ky;
        for (int kx = upfirdn2d_first_tap(sx, p.upx); kx < p.f_w; kx += p.upx)
        {
            const int ix = (sx + kx) / p.upx;
            if (ix < 0 || ix >= p.in_w)
                continue;
            const int fx = p.flip ? kx : p.f_w - 1 - kx;
            v += static_cast<A>(xp[iy * p.x_stride[2] + ix * p.x_stride[3]]) * f[fy * p.f_w + fx];
        }
    }
    return v * static_cast<A>(p.gain);
}

// Defined in upfirdn2d.cu for T in {double, float, c10::Half, c10::BFloat16}.
template <class T> void upfirdn2d_launch(const Upfirdn2dParams& p, cudaStream_t stream);
