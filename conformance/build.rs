//! With the `tch` feature, links the report binary as orz-tch's own binaries are linked (see
//! backends/tch/build.rs): `-Wl,--no-as-needed -ltorch_cuda -ltorch` so that CUDA stays visible,
//! and an rpath to libtorch. Without the feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_ORZ_TCH_LIBTORCH_LIB");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if let (true, Ok(lib)) = (linux, std::env::var("DEP_ORZ_TCH_LIBTORCH_LIB")) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-ltorch_cuda");
        }
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
