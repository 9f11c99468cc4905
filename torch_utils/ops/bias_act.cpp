// Python binding of the bias_act plugin: argument checks, then the CUDA kernel or the CPU loop.

#include <torch/extension.h>
#include <ATen/OpMathType.h>
#include "bias_act.h"

at::Tensor bias_act_cuda(const BiasActArgs& a, const at::Tensor& g, const at::Tensor& ref, const at::Tensor& b);

static at::Tensor bias_act_cpu(const BiasActArgs& a, const at::Tensor& g, const at::Tensor& ref, const at::Tensor& b)
{
    at::Tensor out = at::empty_like(ref);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, ref.scalar_type(), "bias_act_cpu", [&]
    {
        using T = at::opmath_type<scalar_t>;
        const scalar_t* gp = a.has_g ? g.const_data_ptr<scalar_t>() : nullptr;
        const scalar_t* rp = ref.const_data_ptr<scalar_t>();
        const scalar_t* bp = a.has_b ? b.const_data_ptr<scalar_t>() : nullptr;
        scalar_t* op = out.data_ptr<scalar_t>();
        for (int64_t i = 0; i < a.n; i++)
        {
            T gv = gp ? T(gp[i]) : T(0);
            T bv = bp ? T(bp[(i / a.bias_stride) % a.bias_size]) : T(0);
            op[i] = scalar_t(bias_act_eval<T>(a, gv, T(rp[i]), bv));
        }
    });
    return out;
}

// g: incoming gradient (empty in mode 0); ref: x or y (see bias_act.h); b: bias (may be empty).
static at::Tensor bias_act(at::Tensor g, at::Tensor ref, at::Tensor b, int64_t mode, int64_t act, int64_t dim,
    bool ref_is_y, double alpha, double gain, double clamp)
{
    TORCH_CHECK(mode >= 0 && mode <= 2, "bias_act: mode must be 0, 1 or 2");
    TORCH_CHECK(act >= 1 && act <= 9, "bias_act: unknown activation code ", act);
    TORCH_CHECK(!(ref_is_y && act == 9), "bias_act: swish cannot be differentiated from its output");
    TORCH_CHECK(!(ref_is_y && mode == 0), "bias_act: the forward pass needs the input, not the output");
    TORCH_CHECK(mode == 0 || g.numel() == ref.numel(), "bias_act: modes 1 and 2 need a gradient g shaped like ref");
    TORCH_CHECK(ref.is_non_overlapping_and_dense(), "bias_act: ref must be dense (contiguous in some memory format)");
    TORCH_CHECK(g.numel() == 0 || (g.sizes() == ref.sizes() && g.strides() == ref.strides()),
        "bias_act: g must have the shape and strides of ref");
    TORCH_CHECK(g.numel() == 0 || (g.scalar_type() == ref.scalar_type() && g.device() == ref.device()),
        "bias_act: g must have the dtype and device of ref");
    TORCH_CHECK(b.numel() == 0 || (b.scalar_type() == ref.scalar_type() && b.device() == ref.device()),
        "bias_act: b must have the dtype and device of ref");
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.is_contiguous() && dim >= 0 && dim < ref.dim() && b.numel() == ref.size(dim)),
        "bias_act: b must be a contiguous vector of length ref.shape[dim]");

    BiasActArgs a;
    a.mode = int(mode);
    a.act = int(act);
    a.ref_is_y = ref_is_y;
    a.has_g = g.numel() > 0;
    a.has_b = b.numel() > 0;
    a.alpha = alpha;
    a.gain = gain;
    a.clamp = clamp;
    a.n = ref.numel();
    a.bias_stride = a.has_b ? ref.stride(dim) : 1;
    a.bias_size = a.has_b ? ref.size(dim) : 1;
    if (a.n == 0)
        return at::empty_like(ref);
    if (ref.is_cuda())
        return bias_act_cuda(a, g, ref, b);
    return bias_act_cpu(a, g, ref, b);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp and its derivatives.");
}
