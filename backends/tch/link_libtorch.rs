// The link arguments every binary that uses orz-tch needs, shared by the build scripts of the
// crates that build such binaries (`include!`d: orz-backends, conformance, benches, examples/orz); orz-tch's
// own build.rs emits the same for its tests and examples. With libtorch's folder `lib` (orz-tch
// passes it on as `DEP_ORZ_TCH_LIBTORCH_LIB`, and the registry orz-backends to its own dependents
// as `DEP_ORZ_BACKENDS_LIBTORCH_LIB`): `-Wl,--no-as-needed -ltorch_cuda -ltorch`, so that
// the linker keeps `libtorch_cuda.so` (nothing references its symbols directly, and without it
// libtorch sees no GPU), and an rpath to `lib`. Does nothing without orz-tch or off Linux.

/// Emits the link arguments when the crate is built with orz-tch.
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_ORZ_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=DEP_ORZ_BACKENDS_LIBTORCH_LIB");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let lib = std::env::var("DEP_ORZ_TCH_LIBTORCH_LIB").or_else(|_| std::env::var("DEP_ORZ_BACKENDS_LIBTORCH_LIB"));
    if let (true, Ok(lib)) = (linux, lib) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-ltorch_cuda");
        }
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
