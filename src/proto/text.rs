//! The ASCII (text) protocol: runs one parsed command line against the server
//! (C's proto_text.c `process_command_ascii` and the command handlers).

use super::session::{Next, Session};
use super::tokenizer::{parse_request_into, Command, Parsed, Request};
use crate::items::lookahead::{self, Ahead};
use crate::items::ops::{self, Delta, StoreCmd, StoreResult};
use crate::items::store::{self, ItemRef};
use crate::lent::CloseReason;
use crate::settings;
use crate::settings::cnum;
use crate::stats;
use std::sync::atomic::Ordering::Relaxed;

/// Highest level `verbosity` accepts (C's MAX_VERBOSITY_LEVEL).
const MAX_VERBOSITY_LEVEL: u32 = 2;

/// Admin commands looked up by name when the parser does not know the word.
/// A command handler: the connection, the request line and its tokens.
type Handler = fn(&mut dyn Session, &[u8], &Request);

const ADMIN_COMMANDS: &[(&[u8], Handler)] = &[
    (b"shutdown", process_shutdown_command),
    (b"verbosity", process_verbosity_command),
    (b"flush_all", process_flush_all_command),
    (b"cache_memlimit", process_memlimit_command),
    (b"lru", process_lru_command),
    (b"lru_crawler", process_lru_crawler_command),
    (b"slabs", process_slabs_command),
    (b"refresh_certs", process_refresh_certs_command),
    (b"extstore", process_extstore_command),
    #[cfg(feature = "debug-commands")]
    (b"debugtime", process_debugtime_command),
    #[cfg(feature = "debug-commands")]
    (b"debugitem", process_debugitem_command),
    #[cfg(feature = "debug-commands")]
    (b"misbehave", process_misbehave_command),
];

/// Handles one command line (with its "\n" or "\r\n").
pub fn process_command(c: &mut dyn Session, line: &[u8]) {
    // Every command gets a response object first; without one the connection closes.
    if !c.resp_start() {
        c.set_next(Next::Close);
        return;
    }
    let mut req = Request::default();
    let parsed = parse_request_into(line, &mut req);
    c.set_noreply(req.noreply);
    if settings::verbose() > 1 {
        let shown = &line[..line.len().saturating_sub(2)];
        eprintln!("<{} {}", c.fd(), String::from_utf8_lossy(shown));
    }
    match parsed {
        Parsed::Ok => match req.command {
            Some(Command::Quit) => {
                c.set_next(Next::Flush);
                c.close_after_write();
                c.set_close_reason(CloseReason::Normal);
            }
            Some(Command::Version) => c.out_string(concat!("VERSION ", "1.6.45")),
            Some(Command::Stats) => process_stat(c, line, &req),
            Some(Command::Get) => process_get_command(c, line, &req, false),
            Some(Command::Gets) => process_get_command(c, line, &req, true),
            Some(Command::Set) => process_update_command(c, line, &req, StoreCmd::Set),
            Some(Command::Add) => process_update_command(c, line, &req, StoreCmd::Add),
            Some(Command::Replace) => process_update_command(c, line, &req, StoreCmd::Replace),
            Some(Command::Append) => process_update_command(c, line, &req, StoreCmd::Append),
            Some(Command::Prepend) => process_update_command(c, line, &req, StoreCmd::Prepend),
            Some(Command::Cas) => process_update_command(c, line, &req, StoreCmd::Cas),
            Some(Command::Delete) => process_delete_command(c, line, &req),
            Some(Command::Incr) => process_arithmetic_command(c, line, &req, true),
            Some(Command::Decr) => process_arithmetic_command(c, line, &req, false),
            Some(Command::Touch) => process_touch_command(c, line, &req),
            Some(Command::Gat) => process_gat_command(c, line, &req, false),
            Some(Command::Gats) => process_gat_command(c, line, &req, true),
            Some(Command::Mg) => super::meta::process_mget(c, line, &req),
            Some(Command::Ms) => super::meta::process_mset(c, line, &req),
            Some(Command::Md) => super::meta::process_mdelete(c, line, &req),
            Some(Command::Ma) => super::meta::process_marithmetic(c, line, &req),
            Some(Command::Me) => super::meta::process_meta_dump(c, line, &req),
            Some(Command::Mn) => {
                c.out_string("MN");
                // mn flushes what is queued before anything else is read.
                c.set_next(Next::Flush);
            }
            Some(Command::Watch) => process_watch_command(c, line, &req),
            None => c.out_string("ERROR"),
        },
        Parsed::NotFound => {
            let t = &req.tokens;
            if let Some(word) = t.get(line, 0) {
                for (name, f) in ADMIN_COMMANDS {
                    if *name == word {
                        f(c, line, &req);
                        return;
                    }
                }
            }
            if t.ntokens > 1 {
                if let Some(last) = t.get(line, t.ntokens - 1) {
                    if last.starts_with(b"HTTP/") {
                        // Someone pointed a web client at us: hang up.
                        c.set_next(Next::Close);
                        c.set_close_reason(CloseReason::Error);
                        return;
                    }
                }
            }
            c.out_string("ERROR");
        }
        Parsed::BadFormat => c.out_string("CLIENT_ERROR bad command line format"),
    }
}

/// `extstore <setting> <value>` (C's process_extstore_command): changes an extstore tunable
/// at run time. The setting may be abbreviated (the first match in C's order wins).
fn process_extstore_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    use crate::proto::tokenizer::tok_to_u32;
    let t = &req.tokens;
    let e = &settings::get().ext_rt;
    let sub = t.get(line, 1).unwrap_or(b"");
    let is = |name: &[u8]| name.starts_with(sub);
    let value = t.get(line, 2).unwrap_or(b"");
    let u = || tok_to_u32(value);
    let set = |a: &std::sync::atomic::AtomicU32| u().map(|v| a.store(v, Relaxed)).is_some();
    let ok = if t.ntokens < 3 || t.get(line, 1).is_none() {
        false
    } else if is(b"free_memchunks") && t.ntokens > 3 {
        // Deprecated and ignored, but still accepted.
        match (u(), t.get(line, 3).and_then(tok_to_u32)) {
            (Some(cls), Some(_)) => (cls as usize) < stats::MAX_CLASSES,
            _ => false,
        }
    } else if is(b"item_size") {
        let ok = set(&e.item_size);
        if ok {
            settings::get().slab_automove_version.fetch_add(1, Relaxed);
        }
        ok
    } else if is(b"item_age") {
        set(&e.item_age)
    } else if is(b"low_ttl") {
        set(&e.low_ttl)
    } else if is(b"recache_rate") {
        set(&e.recache_rate)
    } else if is(b"compact_under") {
        set(&e.compact_under)
    } else if is(b"drop_under") {
        set(&e.drop_under)
    } else if is(b"max_sleep") {
        set(&e.max_sleep)
    } else if is(b"max_frag") {
        match (value.len() < 32)
            .then(|| crate::settings::cnum::safe_strtod(value))
            .flatten()
        {
            Some(v) => {
                e.max_frag.store(v);
                true
            }
            None => false,
        }
    } else if is(b"drop_unread") {
        match u() {
            Some(v) => {
                e.drop_unread.store(v != 0, Relaxed);
                true
            }
            None => false,
        }
    } else {
        false
    };
    c.out_string(if ok { "OK" } else { "ERROR" });
}

/// `watch [type...]` (C's process_watch_command): the connection becomes a log watcher,
/// lent to the logger thread, which replies "OK" and streams lines from then on.
fn process_watch_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    use crate::logger::*;
    if !settings::get().watch_enabled {
        c.out_string("CLIENT_ERROR watch commands not allowed");
        return;
    }
    if c.queued() > 1 {
        c.out_string("ERROR cannot pipeline other commands before watch");
        return;
    }
    let t = &req.tokens;
    let mut f = 0u16;
    if t.ntokens > 1 {
        // C compares only as many bytes as the client sent, so prefixes are accepted; the
        // proxy words are accepted although this build never logs them.
        const WORDS: &[(&[u8], u16)] = &[
            (b"rawcmds", LOG_RAWCMDS),
            (b"evictions", LOG_EVICTIONS),
            (b"fetchers", LOG_FETCHERS),
            (b"mutations", LOG_MUTATIONS),
            (b"sysevents", LOG_SYSEVENTS),
            (b"connevents", LOG_CONNEVENTS),
            (b"proxyreqs", LOG_PROXYREQS),
            (b"proxyevents", LOG_PROXYEVENTS),
            (b"proxyuser", LOG_PROXYUSER),
            (b"deletions", LOG_DELETIONS),
        ];
        for x in 1..t.ntokens {
            let tok = t.get(line, x).unwrap_or(b"");
            match WORDS.iter().find(|(w, _)| w.starts_with(tok)) {
                Some((_, flag)) => f |= flag,
                None => {
                    c.out_string("ERROR");
                    return;
                }
            }
        }
    } else {
        f = LOG_FETCHERS;
    }
    let lent = c.lend();
    if let AddWatcher::TooMany(lent) = add_watcher(lent, f) {
        c.unlend(lent);
        c.out_string("WATCHER_TOO_MANY log watcher limit reached");
    }
}

fn process_verbosity_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    match req.tokens.get_u32(line, 1) {
        Some(level) => {
            settings::set_verbose(level.min(MAX_VERBOSITY_LEVEL) as i32);
            c.out_string("OK");
        }
        None => c.out_string("CLIENT_ERROR bad command line format"),
    }
}

fn process_shutdown_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    if !settings::get().shutdown_command {
        c.out_string("SERVER_ERROR: shutdown not enabled");
        return;
    }
    let t = &req.tokens;
    if t.ntokens == 1 {
        c.set_close_reason(CloseReason::Shutdown);
        c.set_next(Next::Close);
        (crate::hooks::get().stop)(false);
    } else if t.ntokens == 2 && t.get(line, 1) == Some(b"graceful") {
        c.set_close_reason(CloseReason::Shutdown);
        c.set_next(Next::Close);
        (crate::hooks::get().stop)(true);
    } else {
        c.out_string("CLIENT_ERROR invalid shutdown mode");
    }
}

/// Loads the TLS certificates again; the reply is OK or the load's error text.
fn process_refresh_certs_command(c: &mut dyn Session, _line: &[u8], _req: &Request) {
    match crate::tls::refresh_certs() {
        Ok(()) => c.out_string("OK"),
        Err(msg) => c.write_body(msg.into_bytes()),
    }
}

/// Tries syscalls a `-o drop_privileges` worker may not make: under the filter the process
/// dies; without it the reply is ERROR (OK only if both failed).
#[cfg(feature = "debug-commands")]
fn process_misbehave_command(c: &mut dyn Session, _line: &[u8], _req: &Request) {
    if crate::privileges::misbehave() {
        c.out_string("ERROR");
    } else {
        c.out_string("OK");
    }
}

#[cfg(feature = "debug-commands")]
fn process_debugtime_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    match t.get(line, 1) {
        None => c.out_string("ERROR"),
        Some(b"p") => {
            stats::set_clock_paused(true);
            c.out_string("OK");
        }
        Some(b"r") => {
            stats::set_clock_paused(false);
            c.out_string("OK");
        }
        Some(tok) => match super::tokenizer::tok_to_i64(tok) {
            Some(delta) => {
                stats::clock_add_delta(delta);
                c.out_string("OK");
            }
            None => c.out_string("ERROR"),
        },
    }
}

#[cfg(feature = "debug-commands")]
thread_local! {
    /// Item locks `debugitem lock` holds across commands on this worker, by lock stripe.
    static DEBUG_LOCKS: std::cell::RefCell<Vec<(u32, crate::sys::LockGuard<'static, ()>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// The reference `debugitem ref` took last (`debugitem unref reffed` gives it back).
    static DEBUG_REFFED: std::cell::RefCell<Option<crate::items::store::ItemRef>> =
        const { std::cell::RefCell::new(None) };
}

/// `debugitem lock|unlock|ref|unref <key>` (memcached-debug only; C's
/// process_debugitem_command): holds an item lock, or leaks a reference, so tests can make
/// the slab mover meet busy items.
#[cfg(feature = "debug-commands")]
fn process_debugitem_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let (Some(sub), Some(key)) = (t.get(line, 1), t.get(line, 2)) else {
        c.out_string("ERROR");
        return;
    };
    let Some(st) = crate::items::store::store() else {
        c.out_string("ERROR");
        return;
    };
    let hv = st.hash(key);
    if sub_is(sub, b"lock") {
        let g = st.item_lock(hv);
        DEBUG_LOCKS.with(|l| l.borrow_mut().push((st.item_lock_index(hv), g)));
    } else if sub_is(sub, b"unlock") {
        let idx = st.item_lock_index(hv);
        DEBUG_LOCKS.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(pos) = l.iter().position(|(i, _)| *i == idx) {
                drop(l.remove(pos));
            }
        });
    } else if sub_is(sub, b"ref") {
        let Some(r) = st.get(key, None, false) else {
            c.out_string("MISS");
            return;
        };
        // The reference held before is leaked for good, as C leaks it.
        if let Some(old) = DEBUG_REFFED.with(|d| d.borrow_mut().replace(r)) {
            std::mem::forget(old);
        }
    } else if sub_is(sub, b"unref") {
        if key == b"reffed" {
            DEBUG_REFFED.with(|d| d.borrow_mut().take());
        } else {
            // Gives back a reference leaked earlier.
            if !st.debug_unref(key) {
                c.out_string("MISS");
                return;
            }
        }
    } else {
        c.out_string("ERROR");
        return;
    }
    c.out_string("OK");
}

/// `stats [subcommand]` (C's process_stat).
fn process_stat(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let mut out = Vec::with_capacity(4096);
    let hooks = crate::hooks::get();
    if t.ntokens <= 1 {
        (hooks.general)(&mut out);
    } else {
        // C compares only as many bytes as the client sent ("stats set" means settings),
        // in this order, before the exact names of get_stats.
        let sub = t.get(line, 1).unwrap_or(b"");
        let is = |name: &[u8]| name.starts_with(sub);
        let s = settings::get();
        if is(b"reset") {
            (hooks.reset)();
            c.out_string("RESET");
            return;
        } else if is(b"detail") {
            if !s.dump_enabled {
                c.out_string("CLIENT_ERROR stats detail not allowed");
                return;
            }
            // With no argument C looks at the command word itself, which never matches.
            let arg = if t.ntokens < 3 {
                t.get(line, 0)
            } else {
                t.get(line, 2)
            };
            let arg = arg.unwrap_or(b"");
            if b"on".starts_with(arg) {
                s.detail_enabled.store(true, Relaxed);
                c.out_string("OK");
            } else if b"off".starts_with(arg) {
                s.detail_enabled.store(false, Relaxed);
                c.out_string("OK");
            } else if b"dump".starts_with(arg) {
                let mut out = Vec::new();
                stats::prefix_dump(&mut out);
                c.write_body(out);
            } else {
                c.out_string("CLIENT_ERROR usage: stats detail on|off|dump");
            }
            return;
        } else if is(b"settings") {
            settings::write_stats_settings(&mut out);
        } else if is(b"cachedump") {
            if !s.dump_enabled {
                c.out_string("CLIENT_ERROR stats cachedump not allowed");
                return;
            }
            if t.ntokens < 4 {
                c.out_string("CLIENT_ERROR bad command line");
                return;
            }
            let (Some(id), Some(limit)) = (t.get_u32(line, 2), t.get_u32(line, 3)) else {
                c.out_string("CLIENT_ERROR bad command line format");
                return;
            };
            if id as usize >= stats::MAX_CLASSES {
                c.out_string("CLIENT_ERROR Illegal slab id");
                return;
            }
            if let Some(st) = store::store() {
                st.cachedump(id as u8, limit, &mut out);
            }
            c.write_body(out);
            return;
        } else if is(b"conns") {
            (hooks.conns)(&mut out);
        } else if is(b"extstore") {
            // Nothing without an ext_path (C's process_extstore_stats).
            if let Some(sto) = crate::storage::get() {
                for (name, v) in sto.page_lines() {
                    out.extend_from_slice(b"STAT ");
                    out.extend_from_slice(name.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        } else if (hooks.engine)(sub, &mut out) {
        } else {
            c.out_string("ERROR");
            return;
        }
    }
    out.extend_from_slice(b"END\r\n");
    c.write_body(out);
}

/// Longest key (C's KEY_MAX_LENGTH).
const KEY_MAX_LENGTH: usize = 250;
/// Converts a client exptime to server time (C's realtime with EXPTIME_TO_POSITIVE_TIME).
pub fn realtime(exptime: i32) -> u32 {
    stats::Clock::now().realtime(exptime)
}

/// C's realtime on a time_t (the binary protocol's expiry times).
pub fn realtime_wide(exptime: i64) -> u32 {
    stats::Clock::now().realtime_wide(exptime)
}

/// `get`/`gets` (C's process_get_command): one reply per hit, pointing into item memory, and
/// END after the last key. Keys are read from the raw line, so any number may be asked for.
fn process_get_command(c: &mut dyn Session, line: &[u8], req: &Request, return_cas: bool) {
    get_keys(c, line, req, return_cas, None);
}

/// `gat`/`gats <exptime> <key>*`: get and touch.
fn process_gat_command(c: &mut dyn Session, line: &[u8], req: &Request, return_cas: bool) {
    match req.tokens.get_i32(line, 1) {
        Some(e) => get_keys(c, line, req, return_cas, Some(realtime(e))),
        None => c.out_string("CLIENT_ERROR invalid exptime argument"),
    }
}

/// The key loop shared by get, gets, gat and gats.
fn get_keys(c: &mut dyn Session, line: &[u8], req: &Request, return_cas: bool, touch: Option<u32>) {
    let Some(st) = store::store() else {
        c.out_string("SERVER_ERROR out of memory");
        return;
    };
    let end = if line.len() >= 2 && line[line.len() - 2] == b'\r' {
        line.len() - 2
    } else {
        line.len() - 1
    };
    let keys = &line[..end];
    let mut pos = req.tokens.offset(req.keytoken);
    let ctr = c.counters();
    let tstats = ctr.thread;
    let mut first = true;
    // Each key is hashed two keys before its lookup, so that plain gets can prefetch the
    // lookups ahead (items::lookahead); past the line's last keys the connection says what
    // the next lines fetch.
    let mut cur = next_key(keys, &mut pos).map(|k| st.hashed(k));
    let mut k1 = next_key(keys, &mut pos).map(|k| st.hashed(k));
    let mut k2 = next_key(keys, &mut pos).map(|k| st.hashed(k));
    let mut later: Option<Ahead> = None;
    while let Some(hashed) = cur {
        let key = hashed.key();
        let ahead = match (k1, k2) {
            _ if touch.is_some() => Ahead::default(),
            (Some(a), Some(b)) => Ahead {
                near: Some(a.hv()),
                far: Some(b.hv()),
            },
            (Some(a), None) => Ahead {
                near: Some(a.hv()),
                far: later.get_or_insert_with(|| lookahead::hints(line)).near,
            },
            (None, _) => *later.get_or_insert_with(|| lookahead::hints(line)),
        };
        cur = k1;
        k1 = k2;
        k2 = next_key(keys, &mut pos).map(|k| st.hashed(k));
        if !first && !c.resp_start() {
            // Out of response objects: drop what was queued (freeing objects) and say so.
            get_error(c, "SERVER_ERROR out of memory writing get response");
            return;
        }
        let first_key = std::mem::take(&mut first);
        if key.len() > KEY_MAX_LENGTH {
            // C drops every reply queued so far and answers only the error its key's response
            // holds, re-sent with the line ending already included: the reply ends in two
            // "\r\n". Only the command's first response is quiet under noreply; its error is
            // never written, so an empty line goes out.
            let held = if first_key && c.noreply() {
                ""
            } else {
                "CLIENT_ERROR bad command line format\r\n"
            };
            get_error(c, held);
            return;
        }
        let found = match touch {
            None => st.get_ahead(hashed, Some(tstats), true, ahead),
            Some(exptime) => ops::get_and_touch(&st.lock(key), exptime, tstats),
        };
        if stats::detail_enabled() {
            stats::prefix_record_get(key, found.is_some());
        }
        match found {
            Some(it) => {
                if touch.is_some() {
                    stats::bump(&tstats.touch_cmds, 1);
                    stats::bump(&ctr.class.class(it.clsid()).touch_hits, 1);
                } else {
                    stats::bump(&ctr.class.lru_hits[it.clsid() as usize], 1);
                    stats::bump(&tstats.get_cmds, 1);
                }
                if settings::verbose() > 1 {
                    eprintln!(">{} sending key {}", c.fd(), String::from_utf8_lossy(key));
                }
                let Some(fd_resp) = c.resp() else {
                    return;
                };
                fd_resp.wbuf.extend_from_slice(b"VALUE ");
                fd_resp.wbuf.extend_from_slice(it.key());
                let w = &mut fd_resp.wbuf;
                w.push(b' ');
                super::push_decimal(w, it.client_flags() as u64);
                w.push(b' ');
                super::push_decimal(w, it.value_len().saturating_sub(2) as u64);
                if return_cas {
                    w.push(b' ');
                    super::push_decimal(w, it.cas());
                }
                fd_resp.wbuf.extend_from_slice(b"\r\n");
                if !it.is_hdr() {
                    fd_resp.item = Some(it);
                } else if super::attach_flash(c, it, super::response::FlashReply::Text).is_err() {
                    get_error(c, "SERVER_ERROR out of memory writing get response\r\n");
                    return;
                }
            }
            None => {
                if touch.is_some() {
                    stats::bump(&tstats.touch_cmds, 1);
                    stats::bump(&tstats.touch_misses, 1);
                } else {
                    stats::bump(&tstats.get_misses, 1);
                    stats::bump(&tstats.get_cmds, 1);
                }
            }
        }
    }
    if settings::verbose() > 1 {
        eprintln!(">{} END", c.fd());
    }
    if let Some(r) = c.resp() {
        r.tail = b"END\r\n";
        c.set_next(Next::NewCmd);
    }
}

/// The next space-separated key of a get line from `pos` on, moving `pos` past it.
#[inline(always)]
fn next_key<'a>(keys: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    while *pos < keys.len() && keys[*pos] == b' ' {
        *pos += 1;
    }
    if *pos >= keys.len() {
        return None;
    }
    let key_end = super::tokenizer::find_byte(keys, *pos + 1, b' ');
    let key = &keys[*pos..key_end];
    *pos = key_end;
    Some(key)
}

/// Replaces a get's queued replies with one error line (C's process_get_command_err), in
/// a new response object, which noreply does not silence.
fn get_error(c: &mut dyn Session, msg: &str) {
    c.release_items();
    if !c.resp_start() {
        c.set_next(Next::Close);
        return;
    }
    c.set_noreply(false);
    c.out_string(msg);
}

/// `set`/`add`/`replace`/`append`/`prepend`/`cas`: allocate the item and read the value
/// straight into it (C's process_update_command).
fn process_update_command(c: &mut dyn Session, line: &[u8], req: &Request, cmd: StoreCmd) {
    let t = &req.tokens;
    let key = t.get(line, 1).unwrap_or(b"");
    let vlen = req.vlen;
    let fail = |c: &mut dyn Session, msg: &str| {
        c.out_string(msg);
        c.set_next(Next::Swallow(vlen));
    };
    if key.len() > KEY_MAX_LENGTH {
        return fail(c, "CLIENT_ERROR bad command line format");
    }
    let flags = t.get(line, 2).and_then(cnum::safe_strtoul);
    let exptime = t.get(line, 3).and_then(cnum::safe_strtol);
    let (Some(flags), Some(exptime)) = (flags, exptime) else {
        return fail(c, "CLIENT_ERROR bad command line format");
    };
    let mut req_cas = 0;
    if cmd == StoreCmd::Cas {
        match t.get(line, 5).and_then(super::tokenizer::tok_to_u64) {
            Some(v) => req_cas = v,
            None => return fail(c, "CLIENT_ERROR bad command line format"),
        }
    }
    let Some(st) = store::store() else {
        return fail(c, "SERVER_ERROR out of memory storing object");
    };
    let exptime = realtime(exptime);
    if stats::detail_enabled() {
        stats::prefix_record_set(key);
    }
    match st.alloc(key, flags, exptime, vlen as i32) {
        Some(mut it) => {
            // The client's CAS waits in the new item's CAS slot; it gets a fresh one on link.
            it.set_cas_unlinked(req_cas);
            stats::bump(&c.counters().class.class(it.clsid()).set_cmds, 1);
            c.read_value(it, vlen, cmd);
        }
        None => {
            let status = if !st.item_size_ok(key.len(), flags, vlen) {
                stats::bump(&c.counters().thread.store_too_large, 1);
                fail(c, "SERVER_ERROR object too large for cache");
                ops::STORE_TOO_LARGE
            } else {
                stats::bump(&c.counters().thread.store_no_memory, 1);
                fail(c, "SERVER_ERROR out of memory storing object");
                ops::STORE_NO_MEMORY
            };
            if crate::logger::enabled(crate::logger::LOG_MUTATIONS) {
                // C passes this entry's arguments shifted by one: no size or TTL, and the
                // descriptor lands in the class field.
                let sfd = crate::logger::cur_sfd();
                crate::logger::item_store(status, cmd.nread(), key, 0, 0, sfd as u8, sfd);
            }
            // A failed set must not leave the old value behind.
            if cmd == StoreCmd::Set {
                st.delete(key, Some(c.counters().thread));
            }
        }
    }
}

/// The value has been read: check its "\r\n" and store it (C's complete_nread_ascii).
pub fn complete_nread_ascii(c: &mut dyn Session, it: ItemRef) {
    let mset = c.resp().is_some_and(|r| r.mset_res);
    if !it.ends_with_crlf() {
        // Meta sets always report errors, quiet mode or not.
        if mset {
            c.set_noreply(false);
        }
        c.out_string("CLIENT_ERROR bad data chunk");
        return;
    }
    let Some(st) = store::store() else {
        c.out_string("SERVER_ERROR out of memory storing object");
        return;
    };
    // C takes the next CAS whether or not the store succeeds.
    let cas_in = if *c.cas() != 0 {
        std::mem::take(c.cas())
    } else {
        st.next_cas()
    };
    let ctr = c.counters();
    let stale = c.resp().is_some_and(|r| r.set_stale);
    let out = ops::store_item(&st.lock(it.key()), &it, c.store_cmd(), cas_in, stale, ctr);
    if mset {
        super::meta::finalize_mset(c, &it, out);
        return;
    }
    c.out_string(match out.result {
        StoreResult::Stored => "STORED",
        StoreResult::Exists => "EXISTS",
        StoreResult::NotFound => "NOT_FOUND",
        StoreResult::NotStored => "NOT_STORED",
    });
}

/// `delete <key> [noreply]` (C's process_delete_cmd).
fn process_delete_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    // Extra tokens (the old delay argument) are ignored, as in 1.6.45.
    let t = &req.tokens;
    let key = t.get(line, 1).unwrap_or(b"");
    if key.len() > KEY_MAX_LENGTH {
        c.out_string("CLIENT_ERROR bad command line format");
        return;
    }
    let Some(st) = store::store() else {
        c.out_string("NOT_FOUND");
        return;
    };
    if stats::detail_enabled() {
        stats::prefix_record_delete(key);
    }
    if let Some(cls) = st.delete_class(key, Some(c.counters().thread)) {
        stats::bump(&c.counters().class.class(cls).delete_hits, 1);
        c.out_string("DELETED");
    } else {
        stats::bump(&c.counters().thread.delete_misses, 1);
        c.out_string("NOT_FOUND");
    }
}

/// `incr`/`decr <key> <delta> [noreply]` (C's process_arithmetic_cmd and do_add_delta).
fn process_arithmetic_command(c: &mut dyn Session, line: &[u8], req: &Request, incr: bool) {
    let t = &req.tokens;
    let key = t.get(line, 1).unwrap_or(b"");
    if key.len() > KEY_MAX_LENGTH {
        c.out_string("CLIENT_ERROR bad command line format");
        return;
    }
    let Some(delta) = t.get(line, 2).and_then(super::tokenizer::tok_to_u64) else {
        c.out_string("CLIENT_ERROR invalid numeric delta argument");
        return;
    };
    let Some(st) = store::store() else {
        c.out_string("NOT_FOUND");
        return;
    };
    let ctr = c.counters();
    let ts = ctr.thread;
    let mut buf = [0u8; 20];
    let res = ops::add_delta(&st.lock(key), incr, delta, None, &mut buf, ctr);
    match res {
        Delta::Ok(_, n) => c.out_string(std::str::from_utf8(&buf[..n]).unwrap_or("0")),
        Delta::NonNumeric => {
            c.out_string("CLIENT_ERROR cannot increment or decrement non-numeric value")
        }
        Delta::Eom => c.out_string("SERVER_ERROR out of memory"),
        Delta::NotFound | Delta::CasMismatch => {
            stats::bump(
                if incr {
                    &ts.incr_misses
                } else {
                    &ts.decr_misses
                },
                1,
            );
            c.out_string("NOT_FOUND");
        }
    }
}

/// `touch <key> <exptime> [noreply]` (C's process_touch_cmd).
fn process_touch_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let key = t.get(line, 1).unwrap_or(b"");
    if key.len() > KEY_MAX_LENGTH {
        c.out_string("CLIENT_ERROR bad command line format");
        return;
    }
    let Some(exptime) = t.get_i32(line, 2) else {
        c.out_string("CLIENT_ERROR invalid exptime argument");
        return;
    };
    let exptime = realtime(exptime);
    let Some(st) = store::store() else {
        c.out_string("NOT_FOUND");
        return;
    };
    let ctr = c.counters();
    let ts = ctr.thread;
    let found = ops::get_and_touch(&st.lock(key), exptime, ts).map(|r| r.clsid());
    stats::bump(&ts.touch_cmds, 1);
    if let Some(cls) = found {
        stats::bump(&ctr.class.class(cls).touch_hits, 1);
        c.out_string("TOUCHED");
    } else {
        stats::bump(&ts.touch_misses, 1);
        c.out_string("NOT_FOUND");
    }
}

/// `flush_all [delay] [noreply]` (C's process_flush_all_command).
fn process_flush_all_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let s = settings::get();
    stats::bump(&c.counters().thread.flush_cmds, 1);
    if !s.flush_enabled {
        c.out_string("CLIENT_ERROR flush_all not allowed");
        return;
    }
    let t = &req.tokens;
    let mut exptime = 0;
    if t.ntokens != if c.noreply() { 2 } else { 1 } {
        match t.get_i32(line, 1) {
            Some(e) => exptime = e,
            None => {
                c.out_string("CLIENT_ERROR invalid exptime argument");
                return;
            }
        }
    }
    let new_oldest = if exptime > 0 {
        realtime(exptime).wrapping_sub(1)
    } else {
        stats::current_time().wrapping_sub(1)
    };
    s.oldest_live
        .store(new_oldest, std::sync::atomic::Ordering::Relaxed);
    if let Some(st) = store::store() {
        st.flush_expired(new_oldest);
    }
    c.out_string("OK");
}

/// `cache_memlimit <megabytes>`: changes the memory limit at run time (C's
/// process_memlimit_command).
/// A token as a double (C's mc_toktod: at most 31 characters, safe_strtod).
fn tok_to_f64(line: &[u8], req: &Request, idx: usize) -> Option<f64> {
    let t = req.tokens.get(line, idx)?;
    if t.len() > 31 {
        return None;
    }
    cnum::safe_strtod(t)
}

/// Whether the client's subcommand is a prefix of `name` (C compares only the bytes sent).
fn sub_is(sub: &[u8], name: &[u8]) -> bool {
    name.starts_with(sub)
}

/// `lru tune|mode|temp_ttl ...` (C's process_lru_command).
fn process_lru_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let s = settings::get();
    let t = &req.tokens;
    let n = t.ntokens;
    let sub = t.get(line, 1).unwrap_or(b"");
    let maintainer = s.lru_maintainer_thread.load(Relaxed);
    if sub_is(sub, b"tune") && n >= 6 {
        let pct_hot = t.get_u32(line, 2);
        let pct_warm = t.get_u32(line, 3);
        let hot_factor = tok_to_f64(line, req, 4);
        let warm_factor = tok_to_f64(line, req, 5);
        let (Some(pct_hot), Some(pct_warm), Some(hot_factor), Some(warm_factor)) =
            (pct_hot, pct_warm, hot_factor, warm_factor)
        else {
            c.out_string("ERROR");
            return;
        };
        if pct_hot.wrapping_add(pct_warm) > 80 {
            c.out_string("ERROR hot and warm pcts must not exceed 80");
        } else if warm_factor <= 0.0 || hot_factor <= 0.0 {
            c.out_string("ERROR hot/warm age factors must be greater than 0");
        } else {
            s.hot_lru_pct.store(pct_hot as i32, Relaxed);
            s.warm_lru_pct.store(pct_warm as i32, Relaxed);
            s.hot_max_factor.store(hot_factor);
            s.warm_max_factor.store(warm_factor);
            c.out_string("OK");
        }
    } else if sub_is(sub, b"mode") && n >= 3 && maintainer {
        // C compares only the bytes sent here too.
        let mode = t.get(line, 2).unwrap_or(b"");
        if sub_is(mode, b"flat") {
            s.lru_segmented.store(false, Relaxed);
            c.out_string("OK");
        } else if sub_is(mode, b"segmented") {
            s.lru_segmented.store(true, Relaxed);
            c.out_string("OK");
        } else {
            c.out_string("ERROR");
        }
    } else if sub_is(sub, b"temp_ttl") && n >= 3 && maintainer {
        match t.get_i32(line, 2) {
            None => c.out_string("ERROR"),
            Some(ttl) => {
                if ttl < 0 {
                    s.temp_lru.store(false, Relaxed);
                } else {
                    s.temp_lru.store(true, Relaxed);
                    s.temporary_ttl.store(ttl as u32, Relaxed);
                }
                c.out_string("OK");
            }
        }
    } else {
        c.out_string("ERROR");
    }
}

/// `lru_crawler crawl|metadump|mgdump|tocrawl|sleep|enable|disable` (C's
/// process_lru_crawler_command).
fn process_lru_crawler_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let n = t.ntokens;
    let s = settings::get();
    let sub = t.get(line, 1).unwrap_or(b"");
    if n == 3 && sub_is(sub, b"crawl") {
        if !s.lru_crawler.load(Relaxed) {
            return c.out_string("CLIENT_ERROR lru crawler disabled");
        }
        // C copies at most 511 bytes of the class list.
        let classes = t.get(line, 2).unwrap_or(b"");
        let classes = &classes[..classes.len().min(511)];
        let remaining = s.lru_crawler_tocrawl.load(Relaxed) as u64;
        use crate::crawler::CrawlResult as R;
        c.out_string(match crate::crawler::crawl(classes, remaining) {
            R::Ok => "OK",
            R::Running => "BUSY currently processing crawler request",
            R::BadClass => "BADCLASS invalid class id",
            R::NotStarted => "NOTSTARTED no items to crawl",
            R::Error => "ERROR an unknown error happened",
        });
    } else if n == 3 && (sub_is(sub, b"metadump") || sub_is(sub, b"mgdump")) {
        // C tries metadump's name first, so a bare "m" means metadump.
        let mgdump = !sub_is(sub, b"metadump");
        let (name, not_allowed) = if mgdump {
            ("mgdump", "ERROR key dump not allowed")
        } else {
            ("metadump", "ERROR metadump not allowed")
        };
        if !s.lru_crawler.load(Relaxed) {
            return c.out_string("CLIENT_ERROR lru crawler disabled");
        }
        if !s.dump_enabled {
            return c.out_string(not_allowed);
        }
        if c.queued() > 1 {
            return c.out_string(&format!(
                "ERROR cannot pipeline other commands before {name}"
            ));
        }
        let classes = t.get(line, 2).unwrap_or(b"");
        let classes = &classes[..classes.len().min(511)];
        let lent = c.lend();
        if let Err((res, lent)) = crate::crawler::dump(classes, mgdump, lent) {
            use crate::crawler::CrawlResult as R;
            c.unlend(lent);
            c.out_string(match res {
                R::Ok => "OK",
                R::Running => "BUSY currently processing crawler request",
                R::BadClass => "BADCLASS invalid class id",
                R::NotStarted => "NOTSTARTED no items to crawl",
                R::Error => "ERROR an unknown error happened",
            });
        }
    } else if n == 3 && sub_is(sub, b"tocrawl") {
        match t.get_u32(line, 2) {
            Some(v) => {
                s.lru_crawler_tocrawl.store(v, Relaxed);
                c.out_string("OK");
            }
            None => c.out_string("CLIENT_ERROR bad command line format"),
        }
    } else if n == 3 && sub_is(sub, b"sleep") {
        match t.get_u32(line, 2) {
            Some(v) if v > 1_000_000 => {
                c.out_string("CLIENT_ERROR sleep must be one second or less")
            }
            Some(v) => {
                s.lru_crawler_sleep.store(v as i32, Relaxed);
                c.out_string("OK");
            }
            None => c.out_string("CLIENT_ERROR bad command line format"),
        }
    } else if n == 2 {
        if sub_is(sub, b"enable") {
            c.out_string(if crate::crawler::start() {
                "OK"
            } else {
                "ERROR failed to start lru crawler thread"
            });
        } else if sub_is(sub, b"disable") {
            crate::crawler::stop();
            c.out_string("OK");
        } else {
            c.out_string("ERROR");
        }
    } else {
        c.out_string("ERROR");
    }
}

/// `slabs reassign|automove ...` (C's process_slabs_command).
fn process_slabs_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let n = t.ntokens;
    let sub = t.get(line, 1).unwrap_or(b"");
    if n == 4 && sub_is(sub, b"reassign") {
        if !settings::get().slab_reassign {
            c.out_string("CLIENT_ERROR slab reassignment disabled");
            return;
        }
        let (Some(src), Some(dst)) = (t.get_i32(line, 2), t.get_i32(line, 3)) else {
            c.out_string("CLIENT_ERROR bad command line format");
            return;
        };
        use crate::slabs_mover::{reassign, Reassign};
        c.out_string(match reassign(src, dst, true) {
            Reassign::Ok => "OK",
            Reassign::Running => "BUSY currently processing reassign request",
            Reassign::BadClass => "BADCLASS invalid src or dst class id",
            Reassign::NoSpare => "NOSPARE source class has no spare pages",
            Reassign::SrcDstSame => "SAME src and dst class are identical",
        });
    } else if n >= 3 && sub_is(sub, b"automove") {
        process_slabs_automove_command(c, line, req);
    } else {
        c.out_string("ERROR");
    }
}

/// `slabs automove <0|1|2>|ratio R|freeratio R|window N` (C's
/// process_slabs_automove_command). The values are settings the automover reads.
fn process_slabs_automove_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let s = settings::get();
    let t = &req.tokens;
    let n = t.ntokens;
    let Some(sub) = t.get(line, 2) else {
        c.out_string("CLIENT_ERROR bad command line format");
        return;
    };
    if sub_is(sub, b"ratio") {
        let Some(ratio) = (if n < 4 {
            None
        } else {
            tok_to_f64(line, req, 3)
        }) else {
            c.out_string("ERROR");
            return;
        };
        s.slab_automove_ratio.store(ratio);
        s.slab_automove_version.fetch_add(1, Relaxed);
    } else if sub_is(sub, b"freeratio") {
        // The extstore automover's share of memory kept free.
        let Some(ratio) = (if n < 4 {
            None
        } else {
            tok_to_f64(line, req, 3)
        }) else {
            c.out_string("ERROR");
            return;
        };
        s.ext_rt.slab_automove_freeratio.store(ratio);
        s.slab_automove_version.fetch_add(1, Relaxed);
    } else if sub_is(sub, b"window") {
        let Some(level) = (if n < 4 { None } else { t.get_u32(line, 3) }) else {
            c.out_string("CLIENT_ERROR bad command line format");
            return;
        };
        if !(3..=1800).contains(&level) {
            c.out_string("CLIENT_ERROR automove window too low or too high");
            return;
        }
        s.slab_automove_window.store(level, Relaxed);
        s.slab_automove_version.fetch_add(1, Relaxed);
    } else {
        match t.get_u32(line, 2) {
            None => {
                c.out_string("CLIENT_ERROR bad command line format");
                return;
            }
            Some(level @ 0..=2) => s.slab_automove.store(level as i32, Relaxed),
            Some(_) => {
                c.out_string("ERROR");
                return;
            }
        }
    }
    c.out_string("OK");
}

fn process_memlimit_command(c: &mut dyn Session, line: &[u8], req: &Request) {
    let Some(mb) = req.tokens.get_u32(line, 1) else {
        c.out_string("ERROR");
        return;
    };
    if mb < 8 {
        c.out_string("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m");
    } else if mb > 1_000_000_000 {
        c.out_string("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes");
    } else {
        let bytes = mb as u64 * 1024 * 1024;
        let adjusted = crate::slabs::with_slabs(|s| s.adjust_mem_limit(bytes)).unwrap_or(false);
        if adjusted {
            settings::get()
                .maxbytes
                .store(bytes, std::sync::atomic::Ordering::Relaxed);
            if settings::verbose() > 0 {
                eprintln!("maxbytes adjusted to {}m", mb);
            }
            c.out_string("OK");
        } else {
            c.out_string("MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust");
        }
    }
}
