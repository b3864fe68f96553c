//! The restartable cache (C's restart.c, with the "main" metadata of memcached.c): with `-e
//! FILE`, slab memory is a shared mapping of FILE. A graceful stop (SIGUSR1, `shutdown
//! graceful`) syncs the mapping and writes FILE.meta; the next start with the same settings
//! finds the items where they were and rebuilds the hash table, LRUs and free lists around them
//! (`slabs::restart_fixup`, which also moves every pointer to the new mapping address).
//!
//! FILE.meta is text: `T<tag>` starts a section, `K<key> <value>` lines follow. It is removed
//! as soon as it has been read, so a start that crashes, or a stop that is not graceful, leaves
//! a memory file the next start ignores.
//!
//! Runs on the main thread only: at start-up, before any other thread, and at a graceful stop,
//! after every other thread has stopped.

use crate::items::{self, Item, ITEM_CHUNK, ITEM_CHUNKED, ITEM_LINKED, ITEM_SLABBED};
use crate::settings::cnum::{safe_strtol, safe_strtoll, safe_strtoul, safe_strtoull};
use crate::settings::{self, cnum::safe_strtoull_hex, Settings};
use crate::sys;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

/// Fewer known keys than this in the main section and the file is not trusted (C's
/// RESTART_REQUIRED_META): a truncated file must not pass for a good one.
const REQUIRED_META: usize = 16;

/// The class id bits of an item's `slabs_clsid` (the top two name its LRU).
const CLSID_MASK: u8 = 63;

/// The one section this server writes (C registers "main" only without extstore).
const MAIN_TAG: &str = "main";

/// What the main section carries back, applied by the start-up whether or not the memory is
/// reused (C sets the CAS counter, logger gid, hash power and oldest_live as it reads them).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Meta {
    pub old_base: u64,
    pub process_started: i64,
    pub current_time: u32,
    /// Seconds between the stop and this start.
    pub time_delta: i64,
    pub current_cas: Option<u64>,
    pub logger_gid: Option<u64>,
    pub hashpower: Option<u32>,
    pub oldest_live: Option<u32>,
}

/// The memory file, mapped.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
    fd: i32,
    path: String,
}

// SAFETY: the mapping is process-wide memory; the struct only records where it is.
unsafe impl Send for Mapping {}

static MAPPING: Mutex<Option<Mapping>> = Mutex::new(None);

/// The result of opening the memory file.
pub struct Opened {
    /// Where the `limit` bytes of slab memory start.
    pub base: NonNull<u8>,
    /// The old items may be reused (the metadata matched).
    pub reuse: bool,
    pub meta: Meta,
}

/// C's perror: the message, then the last error's text.
fn perror(what: &str) {
    eprintln!(
        "{}: {}",
        what,
        std::io::Error::last_os_error()
            .raw_os_error()
            .map_or_else(String::new, sys::strerror)
    );
}

/// C's perror followed by abort: nothing sensible can run without the memory file.
fn fatal(what: &str) -> ! {
    perror(what);
    std::process::abort();
}

/// Opens (creating if need be) and maps the memory file of `limit` bytes, then reads its
/// metadata (C's restart_mmap_open).
pub fn open(s: &Settings, limit: usize, path: &str) -> Opened {
    let Ok(cpath) = CString::new(path) else {
        // A path with a NUL byte cannot name a file; C would open the part before it.
        fatal("failed to open file for mmap");
    };
    // SAFETY: a plain open of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
            libc::S_IRWXU as libc::c_uint,
        )
    };
    if fd == -1 {
        fatal("failed to open file for mmap");
    }
    // SAFETY: fd is the file just opened.
    if unsafe { libc::ftruncate(fd, limit as libc::off_t) } != 0 {
        fatal("ftruncate failed");
    }
    // SAFETY: sysconf only reads a system constant.
    let pagesize = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    };
    if !limit.is_multiple_of(pagesize) {
        eprintln!("[restart] memory limit not divisible evenly by pagesize (please report bug)");
        std::process::abort();
    }
    // SAFETY: a new shared mapping of the whole file; checked before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            limit,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    let Some(base) = NonNull::new(p.cast::<u8>()).filter(|_| p != libc::MAP_FAILED) else {
        fatal("failed to mmap, aborting");
    };
    *lock() = Some(Mapping {
        base,
        len: limit,
        fd,
        path: path.to_string(),
    });
    let (reuse, meta) = check(s, path);
    Opened { base, reuse, meta }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Mapping>> {
    MAPPING.lock().unwrap_or_else(|e| e.into_inner())
}

fn meta_path(path: &str) -> String {
    format!("{path}.meta")
}

/// Reads FILE.meta (C's restart_check): true if the memory can be reused. The file is
/// removed whatever it said.
fn check(s: &Settings, path: &str) -> (bool, Meta) {
    let metafile = meta_path(path);
    let Ok(f) = std::fs::File::open(&metafile) else {
        eprintln!("[restart] no metadata save file, starting with a clean cache");
        return (false, Meta::default());
    };
    let mut r = MetaReader {
        lines: BufReader::new(f),
        tag: None,
        done: false,
    };
    // The first line must name a section.
    if r.next_kv() != Kv::Done {
        eprintln!("[restart] corrupt metadata file");
        std::process::abort();
    }
    if r.tag.is_none() {
        eprintln!("[restart] Failed to read a tag from metadata file");
        std::process::abort();
    }
    let mut meta = Meta::default();
    let mut failed = false;
    while !r.done {
        // Only "main" is ever registered, so every section is read by its reader.
        if load_main(s, &mut r, &mut meta).is_err() {
            failed = true;
            break;
        }
    }
    let _ = std::fs::remove_file(&metafile);
    if failed {
        eprintln!("[restart] failed to validate metadata, starting with a clean cache");
        return (false, meta);
    }
    (true, meta)
}

/// One step of reading the metadata (C's restart_get_kv results).
#[derive(Debug, PartialEq)]
enum Kv {
    /// A key and its value.
    Ok(Vec<u8>, Vec<u8>),
    /// A section line was read (or the end of the file reached).
    Done,
    /// A section no one registered.
    NoTag,
    /// A line that is neither.
    BadLine,
}

struct MetaReader<R> {
    lines: R,
    tag: Option<String>,
    done: bool,
}

impl<R: BufRead> MetaReader<R> {
    fn next_kv(&mut self) -> Kv {
        let mut line = Vec::new();
        match self.lines.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 => {}
            _ => {
                self.done = true;
                return Kv::Done;
            }
        }
        if let Some(nl) = line.iter().position(|&b| b == b'\n') {
            line.truncate(nl);
        }
        match line.first() {
            Some(b'T') => {
                let tag = String::from_utf8_lossy(&line[1..]).into_owned();
                if tag != MAIN_TAG {
                    eprintln!("[restart] internal handler for metadata tag not found: {tag}:");
                    return Kv::NoTag;
                }
                self.tag = Some(tag);
                Kv::Done
            }
            Some(b'K') => {
                let body = &line[1..];
                let (k, v) = match body.iter().position(|&b| b == b' ') {
                    Some(sp) => (&body[..sp], &body[sp + 1..]),
                    None => (body, &[][..]),
                };
                Kv::Ok(k.to_vec(), v.to_vec())
            }
            _ => {
                eprintln!(
                    "[restart] invalid metadata line:\n\n{}",
                    String::from_utf8_lossy(&line)
                );
                Kv::BadLine
            }
        }
    }
}

/// Reads the main section (C's _mc_meta_load_cb): every setting that shapes slab memory
/// must be what it was, and the clock must have moved forward since the stop.
fn load_main<R: BufRead>(s: &Settings, r: &mut MetaReader<R>, meta: &mut Meta) -> Result<(), ()> {
    meta.process_started = 0;
    meta.time_delta = 0;
    meta.current_time = 0;
    let mut seen = 0;
    let mut incompatible = false;
    while let Kv::Ok(key, val) = r.next_kv() {
        let k = String::from_utf8_lossy(&key);
        let same_int = |v: Option<i32>, want: i32| v == Some(want);
        let flag = match val.as_slice() {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        };
        let ok = match &*k {
            "mmap_oldbase" => match safe_strtoull_hex(&val) {
                Some(v) => {
                    meta.old_base = v;
                    true
                }
                None => {
                    eprintln!(
                        "[restart] failed to parse {}: {}",
                        k,
                        String::from_utf8_lossy(&val)
                    );
                    false
                }
            },
            "maxbytes" => safe_strtoll(&val) == Some(s.maxbytes.load(Relaxed) as i64),
            "chunk_size" => same_int(safe_strtol(&val), s.chunk_size),
            "item_size_max" => same_int(safe_strtol(&val), s.item_size_max),
            "slab_chunk_size_max" => same_int(safe_strtol(&val), s.slab_chunk_size_max),
            "slab_page_size" => same_int(safe_strtol(&val), s.slab_page_size),
            "slab_config" => val == s.slab_config.as_bytes(),
            "use_cas" => flag == Some(s.use_cas),
            "slab_reassign" => flag == Some(s.slab_reassign),
            "current_cas" => safe_strtoull(&val)
                .map(|v| meta.current_cas = Some(v))
                .is_some(),
            "oldest_live" => safe_strtoul(&val)
                .map(|v| meta.oldest_live = Some(v))
                .is_some(),
            "logger_gid" => safe_strtoull(&val)
                .map(|v| meta.logger_gid = Some(v))
                .is_some(),
            "process_started" => safe_strtoull(&val)
                .map(|v| meta.process_started = v as i64)
                .is_some(),
            "current_time" => safe_strtoul(&val).map(|v| meta.current_time = v).is_some(),
            "stop_time" => match safe_strtoll(&val) {
                Some(v) => {
                    meta.time_delta = now_secs() - v;
                    // The clock went backwards, or the restart came within the second of
                    // the stop: nothing tells how old the items are then.
                    meta.time_delta > 0
                }
                None => false,
            },
            "hashpower" => safe_strtoul(&val)
                .map(|v| meta.hashpower = Some(v))
                .is_some(),
            _ => {
                eprintln!("[restart] unknown/unhandled key: {k}");
                continue;
            }
        };
        seen += 1;
        if !ok {
            eprintln!(
                "[restart] restart incompatible due to setting for [{}] [old value: {}]",
                k,
                String::from_utf8_lossy(&val)
            );
            incompatible = true;
            break;
        }
    }
    if seen < REQUIRED_META {
        eprintln!("[restart] missing some metadata lines");
        incompatible = true;
    }
    if incompatible {
        Err(())
    } else {
        Ok(())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What the running server saves at a graceful stop, gathered by the caller.
pub struct SaveState {
    pub current_time: u32,
    pub process_started: i64,
    pub current_cas: u64,
    pub logger_gid: u64,
    pub hashpower: u32,
    pub oldest_live: u32,
}

/// The main section's lines, in C's order (C's _mc_meta_save_cb).
fn main_section(s: &Settings, st: &SaveState, base: usize, stop_time: i64) -> String {
    let b = |v: bool| if v { "true" } else { "false" };
    let mut out = String::new();
    let mut kv = |k: &str, v: &dyn std::fmt::Display| out.push_str(&format!("K{k} {v}\n"));
    kv("slab_config", &s.slab_config);
    kv("maxbytes", &s.maxbytes.load(Relaxed));
    kv("chunk_size", &s.chunk_size);
    kv("item_size_max", &s.item_size_max);
    kv("slab_chunk_size_max", &s.slab_chunk_size_max);
    kv("slab_page_size", &s.slab_page_size);
    kv("use_cas", &b(s.use_cas));
    kv("slab_reassign", &b(s.slab_reassign));
    kv("current_time", &st.current_time);
    kv("process_started", &st.process_started);
    kv("stop_time", &stop_time);
    kv("current_cas", &st.current_cas);
    kv("logger_gid", &st.logger_gid);
    kv("hashpower", &st.hashpower);
    kv("oldest_live", &st.oldest_live);
    kv("mmap_oldbase", &format!("{base:#x}"));
    out
}

/// Syncs the mapping, writes FILE.meta and unmaps (C's restart_mmap_close). Called once
/// every other thread has stopped.
pub fn close(st: &SaveState) {
    let Some(m) = lock().take() else {
        return;
    };
    // SAFETY: the mapping made by `open`; nothing else runs now.
    unsafe { libc::msync(m.base.as_ptr().cast(), m.len, libc::MS_SYNC) };
    if save(settings::get(), st, &m).is_err() {
        eprint!("[restart] failed to save metadata");
    }
    // SAFETY: as above; no pointer into the mapping is used after this.
    if unsafe { libc::munmap(m.base.as_ptr().cast(), m.len) } != 0 {
        perror("[restart] failed to munmap shared memory");
    // SAFETY: the descriptor opened by `open`.
    } else if unsafe { libc::close(m.fd) } != 0 {
        perror("[restart] failed to close shared memory fd");
    }
}

fn save(s: &Settings, st: &SaveState, m: &Mapping) -> Result<(), ()> {
    let metafile = meta_path(&m.path);
    // Only the owner may read it (C's umask around its fopen).
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&metafile)
    };
    let mut f = match f {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "failed to write metadata file: {}",
                sys::strerror(e.raw_os_error().unwrap_or(0))
            );
            return Err(());
        }
    };
    let text = format!(
        "T{MAIN_TAG}\n{}",
        main_section(s, st, m.base.as_ptr() as usize, now_secs())
    );
    f.write_all(text.as_bytes()).map_err(|_| ())?;
    f.sync_all().map_err(|_| ())
}

/// Takes the reused memory back after a restart (C's restart_fixup): page by page, each
/// page joins the class its first header names (or the global pool), free chunks go back on
/// the free lists, pointers move to the new mapping address, linked items go back into the
/// hash table and their LRU in their old order, and chunks nothing links to any more are
/// freed. Run after `slabs_init` (with `Opened::reuse`) and the store's creation.
///
/// # Safety
/// Start-up only, before any other thread; the mapping holds what a graceful stop of this
/// configuration left (the metadata said so).
pub unsafe fn fixup(old_base: u64) {
    let Some((base, len)) = lock().as_ref().map(|m| (m.base, m.len)) else {
        return;
    };
    let Some(st) = crate::items::store::store() else {
        return;
    };
    let new = base.as_ptr() as usize;
    let old = old_base as usize;
    let rebase = |p: usize| p.wrapping_sub(old).wrapping_add(new);
    let verbose = settings::verbose() > 0;
    if verbose {
        eprintln!("[restart] original memory base: [{old:#x}] new base: [{new:#x}]");
        eprintln!("[restart] recovery start [{}]", now_sec_usec());
    }
    let page_size = crate::slabs::with_slabs(|sa| sa.page_size()).unwrap_or(len);
    let mut linked: Vec<*mut Item> = Vec::new();
    let mut off = 0;
    while off + page_size <= len {
        // SAFETY: the page lies inside the mapping.
        let page = unsafe { NonNull::new_unchecked(base.as_ptr().add(off)) };
        off += page_size;
        let first = page.as_ptr() as *mut Item;
        // SAFETY: a header's worth of bytes at the start of the page; a chunked item's
        // header chunk comes from a smaller class than its own id says.
        let id = unsafe {
            let f = (*first).it_flags;
            if f & ITEM_CHUNKED != 0 && f & ITEM_SLABBED == 0 {
                items::header_clsid(first)
            } else {
                (*first).slabs_clsid & CLSID_MASK
            }
        } as usize;
        linked.clear();
        crate::slabs::with_slabs(|sa| {
            let Some((size, perslab)) = sa.restart_take_page(page, id) else {
                return;
            };
            for i in 0..perslab as usize {
                // SAFETY: chunk i of the page (perslab * size <= page size).
                unsafe {
                    let it = page.as_ptr().add(i * size as usize) as *mut Item;
                    let f = (*it).it_flags;
                    if f == ITEM_SLABBED {
                        sa.restart_free_chunk(it, id);
                        continue;
                    }
                    items::rebase_pointers(it, &rebase);
                    let reachable = if f & ITEM_CHUNK != 0 {
                        let head = items::chunk_head(it) as usize;
                        (new..new + len).contains(&head)
                            && (*(head as *const Item)).it_flags & ITEM_LINKED != 0
                    } else {
                        f & ITEM_LINKED != 0
                    };
                    if !reachable {
                        sa.restart_free_chunk(it, id);
                    } else if f & ITEM_LINKED != 0 {
                        linked.push(it);
                    }
                }
            }
        });
        // SAFETY: linked items of the file, their pointers rebased; nothing else runs.
        unsafe { st.restart_link(&linked) };
    }
    if verbose {
        eprintln!("[restart] recovery end [{}]", now_sec_usec());
    }
}

/// "seconds.microseconds" as C prints a timeval here (microseconds not zero-padded).
fn now_sec_usec() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{}", d.as_secs(), d.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &Settings, text: &str) -> (Vec<Result<(), ()>>, Meta) {
        let mut r = MetaReader {
            lines: text.as_bytes(),
            tag: None,
            done: false,
        };
        assert_eq!(r.next_kv(), Kv::Done);
        let mut meta = Meta::default();
        let mut results = Vec::new();
        while !r.done {
            results.push(load_main(s, &mut r, &mut meta));
            if results.last() == Some(&Err(())) {
                break;
            }
        }
        (results, meta)
    }

    fn saved(s: &Settings) -> String {
        let st = SaveState {
            current_time: 100,
            process_started: 1_700_000_000,
            current_cas: 42,
            logger_gid: 7,
            hashpower: 16,
            oldest_live: 0,
        };
        // A stop a minute ago.
        let text = main_section(s, &st, 0x7f00_0000_0000, now_secs() - 60);
        format!("T{MAIN_TAG}\n{text}")
    }

    #[test]
    fn what_is_saved_is_accepted_and_restores_the_state() {
        let s = Settings::default();
        let (res, meta) = read(&s, &saved(&s));
        assert_eq!(res, vec![Ok(())]);
        assert_eq!(meta.old_base, 0x7f00_0000_0000);
        assert_eq!(meta.current_cas, Some(42));
        assert_eq!(meta.logger_gid, Some(7));
        assert_eq!(meta.hashpower, Some(16));
        assert_eq!(meta.current_time, 100);
        assert_eq!(meta.process_started, 1_700_000_000);
        assert!((59..=61).contains(&meta.time_delta));
    }

    #[test]
    fn a_changed_setting_or_a_short_file_is_refused() {
        let s = Settings::default();
        let good = saved(&s);
        let changed = good.replace("Kslab_config 1.25", "Kslab_config 1.5");
        assert_eq!(read(&s, &changed).0, vec![Err(())]);
        let no_cas = good.replace("Kuse_cas true", "Kuse_cas yes");
        assert_eq!(read(&s, &no_cas).0, vec![Err(())]);
        let short: String = good.lines().take(10).map(|l| format!("{l}\n")).collect();
        assert_eq!(read(&s, &short).0, vec![Err(())]);
        // A stop "now" (this very second) cannot be told apart from a clock gone back.
        let now = good
            .lines()
            .map(|l| match l.strip_prefix("Kstop_time ") {
                Some(_) => format!("Kstop_time {}\n", now_secs() + 1),
                None => format!("{l}\n"),
            })
            .collect::<String>();
        assert_eq!(read(&s, &now).0, vec![Err(())]);
        // Unknown keys are skipped, not counted.
        let extra = good.replace("Khashpower", "Kfuture_key 1\nKhashpower");
        assert_eq!(read(&s, &extra).0, vec![Ok(())]);
    }
}
