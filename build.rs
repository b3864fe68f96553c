// libevent itself is built by libevent-sys (its bundled source, statically linked). This
// script adds one linker script to the server's link.
//
// Rust's std carries a DWARF symbolizer (gimli, addr2line, miniz_oxide, rustc_demangle),
// about 175 KB of code that runs only to print a panic's backtrace. Where the linker puts it
// by default, it is interleaved with code that runs, and the kernel maps a binary's pages in
// windows around each page that runs, so most of it is resident in every server. Gathered in
// one section ahead of .text, most of it stays unmapped (148 KiB less resident measured after
// a conn1000 run; how much depends on the kernel's windows).
// INSERT keeps the linker's default script (GNU ld and LLD both read it this way); a
// pattern that matches nothing leaves the section empty, and the linker drops it.
use std::{env, fs, path::PathBuf};

const COLD_CODE: &str = "\
SECTIONS {
  .text.cold : {
    *(.text.*gimli* .text.*addr2line* .text.*miniz_oxide* .text.*rustc_demangle* .text.*backtrace_rs*)
  }
} INSERT BEFORE .text;
";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("cold-code.ld");
    fs::write(&script, COLD_CODE).expect("OUT_DIR is writable");
    println!(
        "cargo:rustc-link-arg-bin=memcached=-Wl,-T,{}",
        script.display()
    );
}
