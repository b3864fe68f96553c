//! Extstore's options (the configuration half of C's storage.c): the `-o ext_*` sub-options
//! and `slab_automove_freeratio` with C's defaults, messages and checks. Parsed here, in the
//! settings layer, because `-o` is; the engine (`crate::extstore`) gets its configuration from
//! these values once the server starts.
//!
//! The values the `extstore` command changes at run time live in `ExtTunables` (atomics).

use super::cnum::{safe_strtod, safe_strtoul};
use super::AtomicF64;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// The page buckets objects are written to (C's PAGE_BUCKET_*), also the names an ext_path
/// may give its pages ("compact", "lowttl", ...).
pub const PAGE_BUCKET_DEFAULT: u32 = 0;
pub const PAGE_BUCKET_COMPACT: u32 = 1;
pub const PAGE_BUCKET_CHUNKED: u32 = 2;
pub const PAGE_BUCKET_LOWTTL: u32 = 3;
pub const PAGE_BUCKET_COLDCOMPACT: u32 = 4;
pub const PAGE_BUCKET_OLD: u32 = 5;
pub const PAGE_BUCKET_COUNT: u32 = 6;

/// One `ext_path=FILE:SIZE[:BUCKET]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtPath {
    pub file: String,
    pub total_size: u64,
    pub free_bucket: u32,
    /// Whole pages that fit (set by `check`).
    pub page_count: u32,
}

/// Extstore's settings with C's defaults (storage_init_config).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtSettings {
    /// Bytes per page.
    pub page_size: u32,
    /// Bytes per write buffer.
    pub wbuf_size: u32,
    pub io_threadcount: u32,
    pub io_depth: u32,
    /// Most recent first, as C stacks them.
    pub paths: Vec<ExtPath>,
    pub item_size: u32,
    pub item_age: u32,
    pub low_ttl: u32,
    pub recache_rate: u32,
    pub compact_under: u32,
    pub drop_under: u32,
    pub max_sleep: u32,
    pub max_frag: f64,
    pub drop_unread: bool,
    pub slab_automove_freeratio: f64,
}

impl Default for ExtSettings {
    fn default() -> Self {
        ExtSettings {
            page_size: 64 * 1024 * 1024,
            wbuf_size: 4 * 1024 * 1024,
            io_threadcount: 1,
            io_depth: 1,
            paths: Vec::new(),
            item_size: 512,
            item_age: u32::MAX,
            low_ttl: 0,
            recache_rate: 2000,
            compact_under: 0,
            drop_under: 0,
            max_sleep: 1_000_000,
            max_frag: 0.8,
            drop_unread: false,
            slab_automove_freeratio: 0.01,
        }
    }
}

/// The sub-option names this module reads (C's storage_read_config tokens).
pub const NAMES: &[&str] = &[
    "ext_page_size",
    "ext_wbuf_size",
    "ext_threads",
    "ext_io_depth",
    "ext_path",
    "ext_item_size",
    "ext_item_age",
    "ext_low_ttl",
    "ext_recache_rate",
    "ext_compact_under",
    "ext_drop_under",
    "ext_max_sleep",
    "ext_max_frag",
    "ext_drop_unread",
    "slab_automove_freeratio",
];

/// Parses `ext_path`'s value (C's storage_conf_parse); Err holds the lines C prints.
pub fn parse_path(arg: &str) -> Result<ExtPath, String> {
    // strtok_r on ':' skips empty fields.
    let mut parts = arg.split(':').filter(|p| !p.is_empty());
    let Some(file) = parts.next() else {
        return Err(String::new());
    };
    let Some(size) = parts.next() else {
        return Err(
            "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\n".into(),
        );
    };
    let (digits, unit) = size.split_at(size.len() - 1);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => {
            return Err(
                "must supply size to ext_path, ie: ext_path=/f/e:64m (m|g|t|p supported)\n".into(),
            )
        }
    };
    // C: an int from atoi, times the multiplier as 64-bit unsigned.
    let base = super::cnum::atoi(digits.as_bytes());
    let total_size = multiplier.wrapping_mul(base as i64 as u64);
    let free_bucket = match parts.next() {
        None | Some("default") => PAGE_BUCKET_DEFAULT,
        Some("compact") => PAGE_BUCKET_COMPACT,
        Some("lowttl") => PAGE_BUCKET_LOWTTL,
        Some("chunked") => PAGE_BUCKET_CHUNKED,
        Some("coldcompact") => PAGE_BUCKET_COLDCOMPACT,
        Some("old") => PAGE_BUCKET_OLD,
        Some(other) => return Err(format!("Unknown extstore bucket: {other}\n")),
    };
    Ok(ExtPath {
        file: file.to_string(),
        total_size,
        free_bucket,
        page_count: 0,
    })
}

/// A sub-option's value, or C's message for a missing one.
fn need<'a>(name: &str, v: Option<&'a str>) -> Result<&'a str, String> {
    v.ok_or_else(|| {
        if name == "ext_path" {
            "missing argument to ext_path, ie: ext_path=/d/file:5G\n".to_string()
        } else {
            format!("Missing {name} argument\n")
        }
    })
}

impl ExtSettings {
    /// Applies one sub-option (C's storage_read_config): Err holds what C prints on stderr
    /// before failing. `value` is None without '='.
    pub fn read(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        let bad = || format!("could not parse argument to {name}\n");
        let uint = |v: Option<&str>| -> Result<u32, String> {
            safe_strtoul(need(name, v)?.as_bytes()).ok_or_else(bad)
        };
        let float = |v: Option<&str>| -> Result<f64, String> {
            safe_strtod(need(name, v)?.as_bytes()).ok_or_else(bad)
        };
        match name {
            "ext_page_size" => self.page_size = uint(value)?.wrapping_mul(1 << 20),
            "ext_wbuf_size" => self.wbuf_size = uint(value)?.wrapping_mul(1 << 20),
            "ext_threads" => self.io_threadcount = uint(value)?,
            "ext_io_depth" => self.io_depth = uint(value)?,
            "ext_item_size" => self.item_size = uint(value)?,
            "ext_item_age" => self.item_age = uint(value)?,
            "ext_low_ttl" => self.low_ttl = uint(value)?,
            "ext_recache_rate" => self.recache_rate = uint(value)?,
            "ext_compact_under" => self.compact_under = uint(value)?,
            "ext_drop_under" => self.drop_under = uint(value)?,
            "ext_max_sleep" => self.max_sleep = uint(value)?,
            "ext_max_frag" => self.max_frag = float(value)?,
            "slab_automove_freeratio" => self.slab_automove_freeratio = float(value)?,
            "ext_drop_unread" => self.drop_unread = true,
            "ext_path" => {
                let p = parse_path(need(name, value)?)
                    .map_err(|e| format!("{e}failed to parse ext_path argument\n"))?;
                self.paths.insert(0, p);
            }
            _ => {
                return Err(format!(
                    "Illegal suboption \"{}\"\n",
                    value.map_or_else(|| name.to_string(), |v| format!("{name}={v}"))
                ))
            }
        }
        Ok(())
    }

    /// C's storage_check_config once every option is read: Ok(false) without an ext_path
    /// (extstore off), Ok(true) with one; Err is C's message (exit status EX_USAGE).
    pub fn check(&mut self, item_size_max: i32, udpport: i32) -> Result<bool, String> {
        if self.paths.is_empty() {
            return Ok(false);
        }
        if item_size_max > self.wbuf_size as i32 {
            return Err(format!(
                "-I (item_size_max: {}) cannot be larger than ext_wbuf_size: {}\n",
                item_size_max, self.wbuf_size as i32
            ));
        }
        if udpport != 0 {
            return Err("Cannot use UDP with extstore enabled (-U 0 to disable)\n".into());
        }
        for p in &mut self.paths {
            p.page_count = match self.page_size {
                0 => 0,
                ps => (p.total_size / u64::from(ps)).min(u64::from(u32::MAX)) as u32,
            };
            if p.page_count == 0 {
                return Err("supplied ext_path has zero size, cannot use\n".into());
            }
        }
        Ok(true)
    }

    /// C's storage_init defaults: with no ext_compact_under given, compact (and drop) when
    /// fewer than 1% of the first path's pages are free, at least one.
    pub fn apply_start_defaults(&mut self) {
        if self.compact_under == 0 {
            let pages = self.paths.first().map_or(0, |p| p.page_count);
            let one_pct = (f64::from(pages) * 0.01) as u32;
            self.compact_under = one_pct.max(1);
            self.drop_under = one_pct.max(1);
        }
    }
}

/// Extstore settings that change at run time (`extstore <name> <value>`, `slabs automove
/// freeratio`) or are set by the automover (C keeps them in `settings`).
#[derive(Debug)]
pub struct ExtTunables {
    pub item_size: AtomicU32,
    pub item_age: AtomicU32,
    pub low_ttl: AtomicU32,
    pub recache_rate: AtomicU32,
    pub compact_under: AtomicU32,
    pub drop_under: AtomicU32,
    pub max_sleep: AtomicU32,
    pub max_frag: AtomicF64,
    pub drop_unread: AtomicBool,
    pub slab_automove_freeratio: AtomicF64,
    /// Free global pages below which the write thread flushes (set by the automover).
    pub global_pool_min: AtomicU32,
}

impl ExtTunables {
    /// The run-time copy of the parsed options.
    pub fn from(e: &ExtSettings) -> ExtTunables {
        ExtTunables {
            item_size: AtomicU32::new(e.item_size),
            item_age: AtomicU32::new(e.item_age),
            low_ttl: AtomicU32::new(e.low_ttl),
            recache_rate: AtomicU32::new(e.recache_rate),
            compact_under: AtomicU32::new(e.compact_under),
            drop_under: AtomicU32::new(e.drop_under),
            max_sleep: AtomicU32::new(e.max_sleep),
            max_frag: AtomicF64::new(e.max_frag),
            drop_unread: AtomicBool::new(e.drop_unread),
            slab_automove_freeratio: AtomicF64::new(e.slab_automove_freeratio),
            global_pool_min: AtomicU32::new(0),
        }
    }

    /// Relaxed load of a counter-like tunable.
    pub fn get(v: &AtomicU32) -> u32 {
        v.load(Relaxed)
    }
}

impl Default for ExtTunables {
    fn default() -> Self {
        ExtTunables::from(&ExtSettings::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_path_sizes_units_and_buckets() {
        let p = parse_path("/d/f:64m").unwrap();
        assert_eq!(
            (p.file.as_str(), p.total_size, p.free_bucket),
            ("/d/f", 64 << 20, 0)
        );
        assert_eq!(parse_path("/d/f:2G").unwrap().total_size, 2 << 30);
        assert_eq!(
            parse_path("/d/f:1t:compact").unwrap().free_bucket,
            PAGE_BUCKET_COMPACT
        );
        assert_eq!(
            parse_path("/d/f:1t:old").unwrap().free_bucket,
            PAGE_BUCKET_OLD
        );
        assert_eq!(
            parse_path("/d/f").unwrap_err(),
            "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\n"
        );
        assert_eq!(
            parse_path("/d/f:64k").unwrap_err(),
            "must supply size to ext_path, ie: ext_path=/f/e:64m (m|g|t|p supported)\n"
        );
        assert_eq!(
            parse_path("/d/f:1g:fast").unwrap_err(),
            "Unknown extstore bucket: fast\n"
        );
    }

    #[test]
    fn options_read_and_checked_as_c_does() {
        let mut e = ExtSettings::default();
        e.read("ext_page_size", Some("8")).unwrap();
        assert_eq!(e.page_size, 8 << 20);
        e.read("ext_max_frag", Some("0.5")).unwrap();
        e.read("ext_drop_unread", None).unwrap();
        assert!(e.drop_unread);
        assert_eq!(
            e.read("ext_threads", None).unwrap_err(),
            "Missing ext_threads argument\n"
        );
        assert_eq!(
            e.read("ext_threads", Some("x")).unwrap_err(),
            "could not parse argument to ext_threads\n"
        );
        assert_eq!(
            e.read("ext_path", None).unwrap_err(),
            "missing argument to ext_path, ie: ext_path=/d/file:5G\n"
        );
        assert_eq!(
            e.read("ext_path", Some("/x")).unwrap_err(),
            "must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)\n\
             failed to parse ext_path argument\n"
        );
        assert_eq!(e.check(1 << 20, 0), Ok(false), "no path: extstore off");
        e.read("ext_path", Some("/a:64m")).unwrap();
        e.read("ext_path", Some("/b:4m")).unwrap();
        assert_eq!(e.paths[0].file, "/b", "the last path given comes first");
        assert_eq!(
            e.check(1 << 20, 11211).unwrap_err(),
            "Cannot use UDP with extstore enabled (-U 0 to disable)\n"
        );
        assert_eq!(
            e.check(8 << 20, 0).unwrap_err(),
            "-I (item_size_max: 8388608) cannot be larger than ext_wbuf_size: 4194304\n"
        );
        assert_eq!(
            e.check(1 << 20, 0).unwrap_err(),
            "supplied ext_path has zero size, cannot use\n"
        );
        e.page_size = 2 << 20;
        assert_eq!(e.check(1 << 20, 0), Ok(true));
        assert_eq!((e.paths[0].page_count, e.paths[1].page_count), (2, 32));
        e.apply_start_defaults();
        assert_eq!((e.compact_under, e.drop_under), (1, 1));
    }
}
