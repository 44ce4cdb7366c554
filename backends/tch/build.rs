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
