//! With the `tch` feature, links `vs_pytorch` and the benches as orz-tch's own binaries are
//! linked (see `backends/tch/link_libtorch.rs`): CUDA stays visible, and an rpath to libtorch.
//! Without the feature it does nothing.

include!("../backends/tch/link_libtorch.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../backends/tch/link_libtorch.rs");
    link_libtorch();
}
