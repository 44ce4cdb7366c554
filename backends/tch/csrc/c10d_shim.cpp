// A C ABI over libtorch's c10d process groups for orz-tch (the `c10d` feature): a store
// (TCPStore or FileStore) for the rendezvous, ProcessGroupGloo for CPU tensors, with the `nccl`
// feature (USE_C10D_NCCL) ProcessGroupNCCL for CUDA tensors, and the collectives orz-rs shards
// with; each collective goes to the backend of its tensor's device. Every function returns NULL
// on success or a malloc'd error message (free it with orz_c10d_free_error); no C++ exception
// crosses the boundary. Tensors are torch-sys's handles (`at::Tensor*`).

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "shim_errors.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> gloo;
  // Null unless the group was created with NCCL (CUDA tensors).
  c10::intrusive_ptr<c10d::Backend> nccl;
  std::chrono::milliseconds timeout;
};

using orz_shim::guarded;

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0:
      return c10d::ReduceOp::SUM;
    case 1:
      return c10d::ReduceOp::MAX;
    case 2:
      return c10d::ReduceOp::AVG;
    default:
      throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}

// The backend for a tensor's device: Gloo for CPU tensors, NCCL for CUDA tensors.
c10d::Backend& backend_for(Group* g, const at::Tensor& t) {
  if (t.device().is_cpu()) {
    return *g->gloo;
  }
  if (t.device().is_cuda() && g->nccl) {
    return *g->nccl;
  }
  throw std::runtime_error("a tensor on " + t.device().str() +
                           ": this process group has no backend for it (CUDA tensors need a group created "
                           "with NCCL, orz-tch's `nccl` feature)");
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, Group* g) {
  work->wait(g->timeout);
}

}  // namespace

extern "C" {

void orz_c10d_free_error(char* message) { std::free(message); }

// Joins the job's store and creates the Gloo group. `store_kind` 0: TCPStore at host:port
// (rank 0 serves it unless `attach` is set: an agent such as torchrun already serves it);
// 1: FileStore at `host` (a path). `prefix` namespaces this group's keys. Gloo binds to
// `device_host`, this machine's address as the other ranks reach it (127.0.0.1 on one machine;
// empty: this machine's hostname as it resolves, Gloo's default device). With `nccl` set it also
// creates ProcessGroupNCCL over the same store for CUDA tensors (an error in a build without
// USE_C10D_NCCL, or where NCCL finds no GPU).
char* orz_c10d_new(int store_kind, const char* host, int port, int attach, const char* prefix,
                   const char* device_host, int rank, int world, long long timeout_ms, int nccl,
                   void** out) {
  *out = nullptr;
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10::intrusive_ptr<c10d::Store> store;
    if (store_kind == 0) {
      c10d::TCPStoreOptions opts;
      opts.port = static_cast<std::uint16_t>(port);
      opts.isServer = rank == 0 && attach == 0;
      opts.numWorkers = static_cast<std::size_t>(world);
      opts.waitWorkers = false;
      opts.timeout = timeout;
      store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    } else {
      store = c10::make_intrusive<c10d::FileStore>(std::string(host), world);
    }
    store->setTimeout(timeout);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    std::string device(device_host);
    options->devices.push_back(device.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                              : c10d::ProcessGroupGloo::createDeviceForHostname(device));
    auto group = std::make_unique<Group>();
    group->store = store;
    group->timeout = timeout;
    group->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::static_intrusive_pointer_cast<c10d::Store>(
            c10::make_intrusive<c10d::PrefixStore>("gloo", prefixed)),
        rank, world, options);
    if (nccl != 0) {
#ifdef USE_C10D_NCCL
      if (!at::cuda::is_available()) {
        throw std::runtime_error("NCCL needs a CUDA GPU, and libtorch sees none on this machine");
      }
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      group->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::static_intrusive_pointer_cast<c10d::Store>(
              c10::make_intrusive<c10d::PrefixStore>("nccl", prefixed)),
          rank, world, nccl_options);
#else
      throw std::runtime_error(
          "NCCL was asked for, but orz-tch was built without its `nccl` feature (no ProcessGroupNCCL)");
#endif
    }
    *out = group.release();
  });
}

void orz_c10d_free(void* group) { delete static_cast<Group*>(group); }

// In place: `t` becomes the reduction over the ranks.
char* orz_c10d_all_reduce(void* group, at::Tensor* t, int op) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    wait(backend_for(g, *t).allreduce(tensors, opts), g);
  });
}

// `out` (n elements) receives this rank's slice of the reduction of `in` (world * n elements).
char* orz_c10d_reduce_scatter(void* group, at::Tensor* out, at::Tensor* in, int op) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    wait(backend_for(g, *in)._reduce_scatter_base(*out, *in, opts), g);
  });
}

// `out` (world * n elements) receives every rank's `in` (n elements), in rank order.
char* orz_c10d_all_gather(void* group, at::Tensor* out, at::Tensor* in) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    wait(backend_for(g, *in)._allgather_base(*out, *in, opts), g);
  });
}

// In place: every rank's `t` becomes rank `root`'s.
char* orz_c10d_broadcast(void* group, at::Tensor* t, int root) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    wait(backend_for(g, *t).broadcast(tensors, opts), g);
  });
}

char* orz_c10d_barrier(void* group) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    wait(g->gloo->barrier(opts), g);
  });
}

}  // extern "C"
