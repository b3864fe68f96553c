//! The layer rule of doc/architecture.md, checked on the source: a module uses only modules of
//! its own layer or lower ones (foundation → storage → protocol → connection → server). A
//! module that must reach up does it through a callback or trait object passed down, never by
//! naming the higher module. Every `crate::<module>` path outside `#[cfg(test)]` code counts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Layer of each top-level module; a new module must be placed here.
const LAYERS: &[(&str, u8)] = &[
    // foundation
    ("sys", 0),
    ("event", 0),
    ("evhttp", 0),
    ("hash", 0),
    ("base64", 0),
    ("crc32c", 1),
    ("authfile", 0),
    ("settings", 0),
    ("stats", 0),
    ("logger", 0),
    ("lent", 0),
    ("hooks", 0),
    ("privileges", 0),
    ("tls", 0),
    ("sasl", 0),
    // storage
    ("slabs", 1),
    ("items", 1),
    ("assoc", 1),
    ("lru_maintainer", 1),
    ("crawler", 1),
    ("slabs_mover", 1),
    ("slab_automove", 1),
    ("restart", 1),
    ("extstore", 1),
    ("storage", 1),
    ("slab_automove_extstore", 1),
    // protocol
    ("proto", 2),
    // connection
    ("conn", 3),
    ("thread", 3),
    // server
    ("server", 4),
    ("daemon", 4),
    ("report", 4),
    ("metrics", 4),
];

const NAMES: [&str; 5] = ["foundation", "storage", "protocol", "connection", "server"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("src readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and without its `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let cut = text
        .find("#[cfg(test)]\nmod tests")
        .or_else(|| text.find("#[cfg(test)]\npub(crate) mod tests"))
        .unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module named as `crate::<name>` in `code`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if rest.starts_with('{') {
            // `crate::{a, b::c}`: each first segment.
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for part in group.split(',') {
                let first = part.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    out.push(first.to_string());
                }
            }
        } else if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn no_module_uses_a_higher_layer() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut unplaced = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let top = rel.split(['/', '.']).next().unwrap_or("").to_string();
        if matches!(top.as_str(), "lib" | "main" | "bin") {
            continue; // the crate root and binaries sit above every layer
        }
        let Some(&mine) = layer.get(top.as_str()) else {
            unplaced.push(rel);
            continue;
        };
        let code = code_of(&fs::read_to_string(f).unwrap());
        for r in crate_refs(&code) {
            if r == "VERSION" {
                continue;
            }
            match layer.get(r.as_str()) {
                Some(&theirs) if theirs > mine => violations.push(format!(
                    "{rel} ({}) uses crate::{r} ({})",
                    NAMES[mine as usize], NAMES[theirs as usize]
                )),
                Some(_) => {}
                None => unplaced.push(format!("{rel} names crate::{r}")),
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules without a layer (add them to LAYERS):\n{}",
        unplaced.join("\n")
    );
    assert!(
        violations.is_empty(),
        "imports from a higher layer:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_inline_paths() {
    let code = code_of(
        "use crate::{conn, stats::X};\nfn f() { crate::server::go(); } // crate::thread\n\
         #[cfg(test)]\nmod tests { use crate::report; }",
    );
    assert_eq!(crate_refs(&code), ["conn", "stats", "server"]);
}
