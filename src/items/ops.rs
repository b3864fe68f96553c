//! What the storage commands of all three protocols mean, written once (C's `do_store_item`
//! and `do_add_delta` of memcached.c, `do_item_touch` of items.c): each runs under a held
//! `KeyLock` and returns an outcome the protocol turns into its own reply.

use super::key_lock::KeyLock;
use super::store::ItemRef;
use crate::items::{ITEM_STALE, ITEM_TOKEN_SENT};
use crate::settings::{self, cnum};
use crate::stats::{self, ClassStats, ThreadStats};

/// The counters a command charges: those of the worker running it.
#[derive(Clone, Copy)]
pub struct Counters<'a> {
    pub thread: &'a ThreadStats,
    pub class: &'a ClassStats,
}

/// The storage commands (C's NREAD_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCmd {
    Add,
    Set,
    Replace,
    Append,
    Prepend,
    Cas,
    /// Meta set's append/prepend with N: creates the item if missing.
    AppendViv,
    PrependViv,
}

impl StoreCmd {
    /// C's NREAD_* number, as `watch mutations` lines name it.
    pub fn nread(self) -> i32 {
        match self {
            StoreCmd::Add => 1,
            StoreCmd::Set => 2,
            StoreCmd::Replace => 3,
            StoreCmd::Append => 4,
            StoreCmd::Prepend => 5,
            StoreCmd::Cas => 6,
            StoreCmd::AppendViv => 7,
            StoreCmd::PrependViv => 8,
        }
    }
}

/// C's store_item_type numbers of the two allocation failures, for `watch mutations`.
pub const STORE_TOO_LARGE: u8 = 4;
pub const STORE_NO_MEMORY: u8 = 5;

/// What a store did (C's store_item_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreResult {
    Stored,
    NotStored,
    Exists,
    NotFound,
}

/// What a store did, with what meta replies report: the final value length if
/// append/prepend changed it (0 otherwise) and the stored item's CAS.
#[derive(Debug, Clone, Copy)]
pub struct StoreOutcome {
    pub result: StoreResult,
    pub nbytes: usize,
    pub cas: u64,
}

/// How a request's CAS compares with the stored item's.
#[derive(PartialEq)]
enum CasCheck {
    None,
    Match,
    Stale,
    BadVal,
}

/// Applies a storage command to the locked key (C's do_store_item). The new item's CAS slot
/// holds the CAS the client asked to compare against (0: none); `cas_in` is the CAS to store
/// under; `cas_stale` lets an older CAS replace the value as a stale one (meta `I`).
pub fn store_item(
    l: &KeyLock<'_>,
    it: &ItemRef,
    cmd: StoreCmd,
    cas_in: u64,
    cas_stale: bool,
    ctr: Counters<'_>,
) -> StoreOutcome {
    let st = l.store();
    let req_cas = it.cas();
    let mut out = StoreOutcome {
        result: StoreResult::NotStored,
        nbytes: 0,
        cas: 0,
    };
    let Some(old) = l.get(Some(ctr.thread), false) else {
        match cmd {
            StoreCmd::Add | StoreCmd::Set | StoreCmd::AppendViv | StoreCmd::PrependViv => {
                l.link(it, cas_in);
                out.result = StoreResult::Stored;
                out.cas = it.cas();
            }
            StoreCmd::Cas => {
                stats::bump(&ctr.thread.cas_misses, 1);
                out.result = StoreResult::NotFound;
            }
            StoreCmd::Replace | StoreCmd::Append | StoreCmd::Prepend => {}
        }
        log_store(&out, cmd, it);
        return out;
    };
    let old_cas = old.cas();
    let cas_res = if req_cas == 0 {
        CasCheck::None
    } else if req_cas == old_cas {
        CasCheck::Match
    } else if cas_stale && req_cas < old_cas {
        CasCheck::Stale
    } else {
        CasCheck::BadVal
    };
    let class = ctr.class.class(old.clsid());
    let mut stored_it: Option<ItemRef> = None;
    match cmd {
        StoreCmd::Add => l.update(&old),
        StoreCmd::Cas => match cas_res {
            CasCheck::Match => {
                stats::bump(&class.cas_hits, 1);
                l.replace(&old, it, cas_in);
                out.result = StoreResult::Stored;
            }
            CasCheck::Stale => {
                // An older CAS may still set the value, marked stale, keeping the TTL and
                // the win-token state.
                l.set_exptime(it, old.exptime());
                l.update_flags(it, ITEM_STALE | (old.flags() & ITEM_TOKEN_SENT), 0);
                stats::bump(&class.cas_hits, 1);
                l.replace(&old, it, cas_in);
                out.result = StoreResult::Stored;
            }
            _ => {
                stats::bump(&class.cas_badval, 1);
                if settings::verbose() > 1 {
                    eprintln!("CAS:  failure: expected {}, got {}", old_cas, req_cas);
                }
                out.result = StoreResult::Exists;
            }
        },
        StoreCmd::Append | StoreCmd::Prepend | StoreCmd::AppendViv | StoreCmd::PrependViv => {
            if cas_res != CasCheck::None && cas_res != CasCheck::Match {
                out.result = StoreResult::Exists;
            } else if old.is_hdr() {
                // The value is on flash: C refuses to append to it.
            } else {
                let total = old.value_len() + it.value_len() - 2;
                if let Some(mut new_it) =
                    st.alloc(l.key(), old.client_flags(), old.exptime(), total as i32)
                {
                    let (first, second) = if matches!(cmd, StoreCmd::Append | StoreCmd::AppendViv) {
                        (&old, it)
                    } else {
                        (it, &old)
                    };
                    // The first value without its "\r\n", then all of the second.
                    let at = new_it.copy_value_from(0, first, first.value_len() - 2);
                    new_it.copy_value_from(at, second, second.value_len());
                    l.replace(&old, &new_it, cas_in);
                    out.result = StoreResult::Stored;
                    out.nbytes = new_it.value_len();
                    stored_it = Some(new_it);
                }
            }
        }
        StoreCmd::Replace | StoreCmd::Set => {
            l.replace(&old, it, cas_in);
            out.result = StoreResult::Stored;
        }
    }
    if out.result == StoreResult::Stored {
        out.cas = stored_it.as_ref().unwrap_or(it).cas();
    }
    // An append logs the combined item, as C's does.
    log_store(&out, cmd, stored_it.as_ref().unwrap_or(it));
    out
}

/// Logs a store for `watch mutations` (C's LOGGER_ITEM_STORE at the end of do_store_item).
#[inline]
fn log_store(out: &StoreOutcome, cmd: StoreCmd, it: &ItemRef) {
    use crate::logger;
    if logger::enabled(logger::LOG_MUTATIONS) {
        let status = match out.result {
            StoreResult::NotStored => 0,
            StoreResult::Stored => 1,
            StoreResult::Exists => 2,
            StoreResult::NotFound => 3,
        };
        logger::item_store(
            status,
            cmd.nread(),
            it.key(),
            it.value_len() as i32,
            it.exptime(),
            it.class(),
            logger::cur_sfd(),
        );
    }
}

/// Outcome of `add_delta`.
pub enum Delta {
    /// The item (the old one if the value moved to a new item, as C returns it) and the
    /// length of the new digits at the start of the caller's buffer.
    Ok(ItemRef, usize),
    NonNumeric,
    Eom,
    NotFound,
    CasMismatch,
}

/// incr/decr of the stored number under the locked key (C's do_add_delta): rewrites the value
/// in place when no one else holds the item, else stores a new item. `req_cas`, if non-zero,
/// must match. The new digits are left at the start of `buf`.
pub fn add_delta(
    l: &KeyLock<'_>,
    incr: bool,
    delta: u64,
    req_cas: Option<u64>,
    buf: &mut [u8; 20],
    ctr: Counters<'_>,
) -> Delta {
    let st = l.store();
    let Some(it) = l.get(Some(ctr.thread), false) else {
        return Delta::NotFound;
    };
    // Chunked values are too long to be numbers (C refuses them the same way).
    let data = match it.contiguous() {
        Some(d) if d.len() > 2 => d,
        _ => return Delta::NonNumeric,
    };
    if let Some(c) = req_cas {
        if c != 0 && it.cas() != c {
            return Delta::CasMismatch;
        }
    }
    let Some(value) = cnum::safe_strtoull(data) else {
        return Delta::NonNumeric;
    };
    let value = if incr {
        value.wrapping_add(delta)
    } else {
        value.saturating_sub(delta)
    };
    let sc = ctr.class.class(it.clsid());
    stats::bump(if incr { &sc.incr_hits } else { &sc.decr_hits }, 1);
    let n = cnum::u64_decimal(value, buf).len();
    let digits = &buf[20 - n..];
    if l.rewrite_in_place(&it, digits) {
        buf.copy_within(20 - n.., 0);
        return Delta::Ok(it, n);
    }
    let Some(mut new_it) = st.alloc(l.key(), it.client_flags(), it.exptime(), n as i32 + 2) else {
        return Delta::Eom;
    };
    let d = new_it.data_mut();
    d[..n].copy_from_slice(digits);
    d[n..].copy_from_slice(b"\r\n");
    let cas = if settings::get().use_cas {
        st.next_cas()
    } else {
        0
    };
    l.replace(&it, &new_it, cas);
    // The old item is what C hands back: give it the new CAS.
    l.set_cas(&it, new_it.cas());
    buf.copy_within(20 - n.., 0);
    Delta::Ok(it, n)
}

/// Outcome of `create_number`.
pub enum Created {
    /// Stored, with its CAS.
    Stored(ItemRef, u64),
    /// Another client added the key first.
    NotStored,
    NoMemory,
}

/// Stores `value` as a new number under the locked key, as incr/decr/ma do on a miss when
/// asked to create (C's item_alloc and store_item with NREAD_ADD in complete_incr_bin and
/// process_marithmetic_cmd). `cas_in` is the CAS to store under.
pub fn create_number(
    l: &KeyLock<'_>,
    value: u64,
    exptime: u32,
    cas_in: impl FnOnce() -> u64,
    ctr: Counters<'_>,
) -> Created {
    let mut buf = [0u8; 20];
    let digits = cnum::u64_decimal(value, &mut buf);
    let n = digits.len();
    let Some(mut it) = l.store().alloc(l.key(), 0, exptime, n as i32 + 2) else {
        return Created::NoMemory;
    };
    let d = it.data_mut();
    d[..n].copy_from_slice(digits);
    d[n..].copy_from_slice(b"\r\n");
    let out = store_item(l, &it, StoreCmd::Add, cas_in(), false, ctr);
    if out.result == StoreResult::Stored {
        Created::Stored(it, out.cas)
    } else {
        Created::NotStored
    }
}

/// Fetches the locked key and sets its expiry (C's do_item_touch): get-and-touch for `gat`,
/// `touch` and binary TOUCH/GAT.
pub fn get_and_touch(l: &KeyLock<'_>, exptime: u32, stats: &ThreadStats) -> Option<ItemRef> {
    let it = l.get(Some(stats), true)?;
    l.set_exptime(&it, exptime);
    Some(it)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::store::tests::test_settings;
    use crate::items::store::Store;

    fn store() -> Store {
        Store::new(test_settings(&["-m", "2"]))
    }

    fn counters() -> (ThreadStats, ClassStats) {
        (ThreadStats::default(), ClassStats::default())
    }

    /// A new unlinked item holding `value` (without its "\r\n"), comparing against `cas`.
    fn item(st: &Store, key: &[u8], value: &[u8], cas: u64) -> ItemRef {
        let mut it = st.alloc(key, 0, 0, value.len() as i32 + 2).expect("alloc");
        it.write_at(0, value);
        it.write_at(value.len(), b"\r\n");
        it.set_cas_unlinked(cas);
        it
    }

    fn value(st: &Store, key: &[u8]) -> Option<Vec<u8>> {
        st.get(key, None, false)
            .map(|r| r.contiguous().expect("plain").to_vec())
    }

    fn store_cmd(st: &Store, key: &[u8], v: &[u8], cmd: StoreCmd, req_cas: u64) -> StoreOutcome {
        let (t, c) = counters();
        let it = item(st, key, v, req_cas);
        let l = st.lock(key);
        store_item(
            &l,
            &it,
            cmd,
            st.next_cas(),
            false,
            Counters {
                thread: &t,
                class: &c,
            },
        )
    }

    #[test]
    fn every_store_outcome() {
        let st = store();
        use StoreCmd::*;
        use StoreResult::*;
        assert_eq!(store_cmd(&st, b"k", b"r", Replace, 0).result, NotStored);
        assert_eq!(store_cmd(&st, b"k", b"a", Append, 0).result, NotStored);
        assert_eq!(store_cmd(&st, b"k", b"p", Prepend, 0).result, NotStored);
        assert_eq!(store_cmd(&st, b"k", b"c", Cas, 5).result, NotFound);
        let first = store_cmd(&st, b"k", b"1", Add, 0);
        assert_eq!(first.result, Stored);
        assert_eq!(store_cmd(&st, b"k", b"2", Add, 0).result, NotStored);
        assert_eq!(value(&st, b"k").unwrap(), b"1\r\n");
        assert_eq!(store_cmd(&st, b"k", b"3", Set, 0).result, Stored);
        assert_eq!(store_cmd(&st, b"k", b"4", Replace, 0).result, Stored);
        let app = store_cmd(&st, b"k", b"56", Append, 0);
        assert_eq!((app.result, app.nbytes), (Stored, 5));
        assert_eq!(store_cmd(&st, b"k", b"0", Prepend, 0).result, Stored);
        assert_eq!(value(&st, b"k").unwrap(), b"0456\r\n");
        let cas = st.get(b"k", None, false).unwrap().cas();
        assert_eq!(store_cmd(&st, b"k", b"x", Cas, cas + 1).result, Exists);
        assert_eq!(store_cmd(&st, b"k", b"x", Append, cas + 1).result, Exists);
        let swapped = store_cmd(&st, b"k", b"y", Cas, cas);
        assert_eq!(swapped.result, Stored);
        assert_eq!(value(&st, b"k").unwrap(), b"y\r\n");
        assert_eq!(st.get(b"k", None, false).unwrap().cas(), swapped.cas);
        assert_eq!(store_cmd(&st, b"v", b"z", AppendViv, 0).result, Stored);
        assert_eq!(value(&st, b"v").unwrap(), b"z\r\n");
    }

    #[test]
    fn a_stale_cas_sets_a_stale_value() {
        let st = store();
        let (t, c) = counters();
        let ctr = Counters {
            thread: &t,
            class: &c,
        };
        store_cmd(&st, b"s", b"old", StoreCmd::Set, 0);
        let cas = st.get(b"s", None, false).unwrap().cas();
        let it = item(&st, b"s", b"new", cas - 1);
        let l = st.lock(b"s");
        let out = store_item(&l, &it, StoreCmd::Cas, 77, true, ctr);
        drop(l);
        assert_eq!((out.result, out.cas), (StoreResult::Stored, 77));
        assert_ne!(st.get(b"s", None, false).unwrap().flags() & ITEM_STALE, 0);
    }

    #[test]
    fn the_cas_given_is_stored_as_is_even_zero() {
        let st = store();
        let (t, c) = counters();
        let it = item(&st, b"z", b"1", 0);
        let l = st.lock(b"z");
        let out = store_item(
            &l,
            &it,
            StoreCmd::Set,
            0,
            false,
            Counters {
                thread: &t,
                class: &c,
            },
        );
        drop(l);
        assert_eq!(out.cas, 0);
        assert_eq!(st.get(b"z", None, false).unwrap().cas(), 0);
    }

    #[test]
    fn every_delta_outcome() {
        let st = store();
        let (t, c) = counters();
        let ctr = Counters {
            thread: &t,
            class: &c,
        };
        let mut buf = [0u8; 20];
        let delta = |key: &[u8], incr, d, cas, buf: &mut [u8; 20]| {
            add_delta(&st.lock(key), incr, d, cas, buf, ctr)
        };
        assert!(matches!(
            delta(b"n", true, 1, None, &mut buf),
            Delta::NotFound
        ));
        store_cmd(&st, b"n", b"99", StoreCmd::Set, 0);
        match delta(b"n", true, 1, None, &mut buf) {
            Delta::Ok(_, n) => assert_eq!(&buf[..n], b"100"),
            _ => panic!("incr"),
        }
        // Rewritten in place: the old length is kept, padded with spaces.
        assert_eq!(value(&st, b"n").unwrap(), b"100\r\n");
        match delta(b"n", false, 500, None, &mut buf) {
            Delta::Ok(_, n) => assert_eq!(&buf[..n], b"0"),
            _ => panic!("decr"),
        }
        assert_eq!(value(&st, b"n").unwrap(), b"0  \r\n");
        assert!(matches!(
            delta(b"n", true, 1, Some(12345), &mut buf),
            Delta::CasMismatch
        ));
        store_cmd(&st, b"w", b"u64", StoreCmd::Set, 0);
        assert!(matches!(
            delta(b"w", true, 1, None, &mut buf),
            Delta::NonNumeric
        ));
        // C's strtoull stops at a NUL: the digits before it count.
        store_cmd(&st, b"nul", b"99\0x", StoreCmd::Set, 0);
        match delta(b"nul", true, 1, None, &mut buf) {
            Delta::Ok(_, n) => assert_eq!(&buf[..n], b"100"),
            _ => panic!("NUL-terminated number"),
        }
        // Someone else holds the item: a new item takes the value.
        store_cmd(&st, b"held", b"7", StoreCmd::Set, 0);
        let reader = st.get(b"held", None, false).unwrap();
        match delta(b"held", true, 10, None, &mut buf) {
            Delta::Ok(_, n) => assert_eq!(&buf[..n], b"17"),
            _ => panic!("incr of a held item"),
        }
        assert_eq!(reader.contiguous().unwrap(), b"7\r\n");
        assert_eq!(value(&st, b"held").unwrap(), b"17\r\n");
        assert_eq!(c.class(reader.clsid()).incr_hits.get(), 3);
    }

    #[test]
    fn numbers_created_on_a_miss() {
        let st = store();
        let (t, c) = counters();
        let ctr = Counters {
            thread: &t,
            class: &c,
        };
        let l = st.lock(b"new");
        match create_number(&l, 42, 0, || 9, ctr) {
            Created::Stored(it, cas) => {
                assert_eq!(cas, 9);
                assert_eq!(it.contiguous().unwrap(), b"42\r\n");
            }
            _ => panic!("created"),
        }
        assert!(matches!(
            create_number(&l, 1, 0, || 10, ctr),
            Created::NotStored
        ));
    }

    #[test]
    fn get_and_touch_sets_the_expiry_of_a_hit_only() {
        let st = store();
        let (t, _) = counters();
        assert!(get_and_touch(&st.lock(b"gt"), 500, &t).is_none());
        store_cmd(&st, b"gt", b"v", StoreCmd::Set, 0);
        let it = get_and_touch(&st.lock(b"gt"), 500, &t).expect("hit");
        assert_eq!(it.exptime(), 500);
    }

    #[test]
    #[should_panic(expected = "another key's lock")]
    fn an_item_of_another_stripe_is_refused() {
        let st = store();
        store_cmd(&st, b"a", b"1", StoreCmd::Set, 0);
        let it = st.get(b"a", None, false).unwrap();
        // Find a key whose lock is another stripe.
        let other = (0..1000)
            .map(|i| format!("other{i}"))
            .find(|k| {
                st.item_lock_index(st.hash(k.as_bytes())) != st.item_lock_index(st.hash(b"a"))
            })
            .unwrap();
        st.lock(other.as_bytes()).set_exptime(&it, 1);
    }
}
