//! Links every binary of this package (tests, examples, benches) so that it runs and sees CUDA:
//!
//! - `-Wl,--no-as-needed -ltorch_cuda -ltorch`: without it the linker drops `libtorch_cuda.so`
//!   (nothing references its symbols directly) and `tch::Cuda::is_available()` is false even on
//!   a GPU machine (tch-rs documents this);
//! - an rpath to libtorch's `lib` folder, so the binaries run without `LD_LIBRARY_PATH`.
//!
//! The libtorch folder comes from torch-sys (`DEP_TCH_LIBTORCH_LIB`) and is passed on to crates
//! that depend on this one as `DEP_ORZ_TCH_LIBTORCH_LIB` (their own build scripts emit the same
//! link arguments; see conformance/build.rs). libtorch itself comes from
//! `./scripts/setup-libtorch.sh` (a project-local venv with torch==2.11.0).
//!
//! It compiles `csrc/optim_shim.cpp` (a C ABI over libtorch's `_fused_adamw_` and
//! `_foreach_norm`, which tch 0.24 does not expose) against the wheel's per-operator headers.
//! With the `c10d` feature it also compiles `csrc/c10d_shim.cpp` (a C ABI over libtorch's c10d
//! process groups) against the wheel's headers and the Gloo headers named by `ORZ_GLOO_INCLUDE`
//! (which `./scripts/setup-libtorch.sh` unpacks and exports), the way torch-sys builds its own
//! C++ layer.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=orz-tch: torch-sys did not report libtorch's folder; run ./scripts/setup-libtorch.sh \
             and build with the environment it prints"
        );
        return;
    };
    println!("cargo:libtorch_lib={lib}");
    build_optim_shim(&lib);
    #[cfg(feature = "c10d")]
    build_c10d_shim(&lib);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-ltorch");
}

/// Compiles the optimizer shim into a static library linked into this crate.
fn build_optim_shim(lib: &str) {
    println!("cargo:rerun-if-changed=csrc/optim_shim.cpp");
    println!("cargo:rerun-if-changed=csrc/shim_errors.h");
    let include = Path::new(lib).join("..").join("include");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/optim_shim.cpp")
        .include(&include)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag("-w")
        .compile("orz_optim_shim");
    println!("cargo:rustc-link-search=native={lib}");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

/// Compiles the c10d shim (feature `c10d`) into a static library linked into this crate.
#[cfg(feature = "c10d")]
fn build_c10d_shim(lib: &str) {
    println!("cargo:rerun-if-changed=csrc/c10d_shim.cpp");
    println!("cargo:rerun-if-env-changed=ORZ_GLOO_INCLUDE");
    let include = Path::new(lib).join("..").join("include");
    let gloo = std::env::var("ORZ_GLOO_INCLUDE").unwrap_or_default();
    if gloo.is_empty() || !Path::new(&gloo).join("gloo").join("config.h").exists() {
        panic!(
            "orz-tch feature `c10d`: Gloo's headers were not found (ORZ_GLOO_INCLUDE={gloo:?}); run \
             `eval \"$(./scripts/setup-libtorch.sh)\"`, which unpacks them and exports ORZ_GLOO_INCLUDE"
        );
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("csrc/c10d_shim.cpp")
        .include(&include)
        .include(include.join("torch").join("csrc").join("api").join("include"))
        .include(&gloo)
        .define("USE_C10D_GLOO", None)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag("-w");
    #[cfg(feature = "nccl")]
    nccl_includes(&mut build);
    build.compile("orz_c10d_shim");
    println!("cargo:rustc-link-search=native={lib}");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    #[cfg(feature = "nccl")]
    {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}

/// Feature `nccl`: ProcessGroupNCCL in the shim, compiled against the CUDA runtime, CCCL and NCCL
/// headers of the venv's PyPI packages (`ORZ_CUDA_INCLUDE`, a `:`-separated list that
/// `./scripts/setup-nccl.sh` exports).
#[cfg(feature = "nccl")]
fn nccl_includes(build: &mut cc::Build) {
    println!("cargo:rerun-if-env-changed=ORZ_CUDA_INCLUDE");
    let dirs = std::env::var("ORZ_CUDA_INCLUDE").unwrap_or_default();
    let dirs: Vec<&str> = dirs.split(':').filter(|d| !d.is_empty()).collect();
    let has = |file: &str| dirs.iter().any(|d| Path::new(d).join(file).exists());
    if !has("cuda_runtime_api.h") || !has("crt/host_config.h") || !has("nccl.h") {
        panic!(
            "orz-tch feature `nccl`: the CUDA runtime, crt and NCCL headers were not found \
             (ORZ_CUDA_INCLUDE={dirs:?}); run `eval \"$(./scripts/setup-nccl.sh)\"` after setup-libtorch.sh"
        );
    }
    for d in dirs {
        build.include(d);
    }
    build.define("USE_C10D_NCCL", None);
}
