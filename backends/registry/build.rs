//! With the `tch` feature: links this crate's own tests as orz-tch's binaries are linked (see
//! `backends/tch/link_libtorch.rs`), and passes libtorch's folder on to the crates that depend on
//! this one (`DEP_ORZ_BACKENDS_LIBTORCH_LIB`), whose build scripts emit the same link arguments
//! for their binaries. Without the feature it does nothing.

include!("../tch/link_libtorch.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../tch/link_libtorch.rs");
    link_libtorch();
    if let Ok(lib) = std::env::var("DEP_ORZ_TCH_LIBTORCH_LIB") {
        println!("cargo:libtorch_lib={lib}");
    }
}
