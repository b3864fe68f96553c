//! The `memcached` binary: everything happens in `server::main`.

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    std::process::exit(memcached::server::main(argv));
}
