// Elementwise math of the bias_act plugin, shared by the CUDA kernel (bias_act.cu) and the CPU loop
// (bias_act.cpp); the CPU loop exists so the kernel's math can be tested on machines without a GPU.
//
// Activation codes (keep in sync with activation_funcs in bias_act.py):
//   1 linear, 2 relu, 3 lrelu, 4 tanh, 5 sigmoid, 6 elu, 7 selu, 8 softplus, 9 swish.
// Modes, with z = ref + bias when ref is the input x, or ref = y (the forward output) otherwise:
//   0: y = clamp(gain * f(z))                         (ref must be x)
//   1: g * m,      m = gain * f'(.) * [not clamped]    (backward)
//   2: g * dm/dref                                     (double backward)
// With ref = y, m is written as a function of y so that dm/dy chains through y's own backward.

#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define BIAS_ACT_HD __host__ __device__ __forceinline__
#else
#define BIAS_ACT_HD inline
#endif

struct BiasActArgs
{
    int     mode;
    int     act;
    bool    ref_is_y;
    bool    has_g;
    bool    has_b;
    double  alpha;          // Double, so float64 tensors get exact parameters.
    double  gain;
    double  clamp;          // < 0: no clamping.
    int64_t n;              // Number of elements.
    int64_t bias_stride;    // Memory stride of the bias dimension.
    int64_t bias_size;      // Length of the bias dimension.
};

template <typename T>
BIAS_ACT_HD T bias_act_eval(const BiasActArgs& a, T g, T r, T b)
{
    const T alpha = a.alpha, gain = a.gain, clamp = a.clamp;
    const T selu_scale = T(1.0507009873554804934193349852946);
    const T selu_alpha = T(1.6732632423543772848170429916717);

    if (a.mode == 0 || !a.ref_is_y)
    {
        // From the input: value f and derivatives d1, d2 of the activation at z.
        const T z = r + b;
        T f = z, d1 = 1, d2 = 0;
        switch (a.act)
        {
            case 2: f = z > 0 ? z : T(0); d1 = z > 0 ? T(1) : T(0); break;
            case 3: f = z > 0 ? z : alpha * z; d1 = z > 0 ? T(1) : alpha; break;
            case 4: f = std::tanh(z); d1 = 1 - f * f; d2 = -2 * f * d1; break;
            case 5: f = 1 / (1 + std::exp(-z)); d1 = f * (1 - f); d2 = d1 * (1 - 2 * f); break;
            case 6: if (z <= 0) { f = std::expm1(z); d1 = d2 = std::exp(z); } break;
            case 7: if (z <= 0) { f = selu_scale * selu_alpha * std::expm1(z); d1 = d2 = selu_scale * selu_alpha * std::exp(z); }
                    else { f = selu_scale * z; d1 = selu_scale; } break;
            case 8: { const T s = 1 / (1 + std::exp(-z)); f = z > 20 ? z : std::log1p(std::exp(z)); d1 = s; d2 = s * (1 - s); } break;
            case 9: { const T s = 1 / (1 + std::exp(-z)); f = z * s; d1 = s * (1 + z * (1 - s)); d2 = s * (1 - s) * (2 + z * (1 - 2 * s)); } break;
            default: break;
        }
        const T v = f * gain;
        if (a.mode == 0)
            return (a.clamp < 0) ? v : (v > clamp ? clamp : (v < -clamp ? -clamp : v));
        if (a.clamp >= 0 && !(std::fabs(v) <= clamp))
            return 0;
        return g * gain * (a.mode == 1 ? d1 : d2);
    }

    // From the output: multiplier m(y) and its derivative dm/dy, with t = f(z) = y / gain.
    if (a.clamp >= 0 && !(std::fabs(r) < clamp))
        return 0;
    const T t = r / gain;
    T m = gain, dm = 0;
    switch (a.act)
    {
        case 2: m = t > 0 ? gain : T(0); break;
        case 3: m = t > 0 ? gain : gain * alpha; break;
        case 4: m = gain * (1 - t * t); dm = -2 * t; break;
        case 5: m = gain * t * (1 - t); dm = 1 - 2 * t; break;
        case 6: if (t <= 0) { m = gain * (t + 1); dm = 1; } break;
        case 7: if (t <= 0) { m = gain * (t + selu_scale * selu_alpha); dm = 1; } else { m = gain * selu_scale; } break;
        case 8: m = -gain * std::expm1(-t); dm = std::exp(-t); break;
        default: break;
    }
    return g * (a.mode == 1 ? m : dm);
}
