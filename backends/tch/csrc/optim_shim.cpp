// A C ABI over the libtorch optimizer kernels that tch 0.24 does not expose, for orz-tch's
// AdamW and gradient clipping: `_fused_adamw_` (PyTorch's `AdamW(fused=True)`: one kernel per
// call that updates the parameter and both moments in place) and `_foreach_norm` (every
// gradient's L2 norm in one call; one multi-tensor kernel on CUDA). Built by `build.rs` against
// the torch wheel's per-operator headers. Every function returns NULL on success or a malloc'd
// error message (free it with orz_optim_free_error); no C++ exception crosses the boundary.
// Tensors are torch-sys's handles (`at::Tensor*`).

#include <cstdlib>
#include <vector>

#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/stack.h>

#include "shim_errors.h"

using orz_shim::guarded;

extern "C" {

void orz_optim_free_error(char* err) { std::free(err); }

// One AdamW step (decoupled weight decay, bias correction at `step`, a one-element f32 tensor on
// the parameter's device) of `param` with gradient `grad`, updating `param`, `exp_avg` and
// `exp_avg_sq` in place. All four of one dtype and device.
char* orz_fused_adamw(at::Tensor* param, at::Tensor* grad, at::Tensor* exp_avg, at::Tensor* exp_avg_sq,
                      at::Tensor* step, double lr, double beta1, double beta2, double weight_decay,
                      double eps) {
  return guarded([&] {
    at::_fused_adamw_({*param}, {*grad}, {*exp_avg}, {*exp_avg_sq}, {}, {*step}, lr, beta1, beta2,
                      weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  });
}

// The L2 norms of `n` tensors computed in f32, as one new 1-D f32 tensor of `n` values (`*out`,
// owned by the caller: free it as torch-sys frees tensors).
char* orz_foreach_norm(at::Tensor* const* tensors, long long n, at::Tensor** out) {
  return guarded([&] {
    std::vector<at::Tensor> list;
    list.reserve(static_cast<size_t>(n));
    for (long long i = 0; i < n; ++i) {
      list.push_back(*tensors[i]);
    }
    auto norms = at::_foreach_norm(list, 2, at::ScalarType::Float);
    *out = new at::Tensor(at::stack(norms));
  });
}

}  // extern "C"
