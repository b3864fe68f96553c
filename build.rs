// libevent itself is built by libevent-sys (its bundled source, statically linked); this
// script only tells cargo when to re-run.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
