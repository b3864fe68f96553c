//! Lookups that start the next ones' cache misses. A pipelined batch or a multiget looks up
//! keys one after another; each lookup waits on a bucket load and then an item header load,
//! both cache misses once the table and items outgrow the caches. A lookup here also asks for
//! the bucket of the key two ahead (`Ahead::far`) and for the first item of the key one ahead
//! (`Ahead::near`, whose bucket was asked for by the lookup before), so those loads overlap
//! this lookup instead of stalling the next ones. Hints only: a wrong one costs an
//! instruction, never a wrong answer.

use super::store::{ItemRef, Store};
use crate::stats::ThreadStats;
use std::cell::Cell;

/// A key with its hash value, computed once by the store (so the two always agree: the value
/// picks the item lock and bucket the key is looked up under).
#[derive(Clone, Copy)]
pub struct HashedKey<'a> {
    key: &'a [u8],
    hv: u32,
}

impl<'a> HashedKey<'a> {
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    pub fn hv(&self) -> u32 {
        self.hv
    }
}

/// Hash values of the keys to be looked up after this one, for prefetching.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Ahead {
    /// The next key's: its bucket was asked for already, so its first item is asked for now.
    pub near: Option<u32>,
    /// The key after that: its bucket is asked for now.
    pub far: Option<u32>,
}

thread_local! {
    /// What the lines read behind a fetch fetch, and where that fetch's line starts. Set by
    /// the connection running the line, read by the command; per worker rather than per
    /// connection, since it only matters while one command runs.
    static HINTS: Cell<(usize, Ahead)> = const {
        Cell::new((
            0,
            Ahead {
                near: None,
                far: None,
            },
        ))
    };
}

/// Records what the lines read behind `line` fetch, before `line` is run.
#[inline]
pub fn set_hints(line: &[u8], ahead: Ahead) {
    HINTS.set((line.as_ptr() as usize, ahead));
}

/// The hints recorded for the command on `line`: those set last if they were set for a line
/// at the same place. (A line read into a place used before, with nothing read behind it,
/// gets stale hints; they only cost a useless prefetch.)
#[inline]
pub fn hints(line: &[u8]) -> Ahead {
    let (at, ahead) = HINTS.get();
    if at == line.as_ptr() as usize {
        ahead
    } else {
        Ahead::default()
    }
}

impl Store {
    /// `key` with its hash value.
    #[inline]
    pub fn hashed<'a>(&self, key: &'a [u8]) -> HashedKey<'a> {
        HashedKey {
            key,
            hv: self.hash(key),
        }
    }

    /// `get` that also starts loading what the lookups in `ahead` will need.
    #[inline(always)]
    pub fn get_ahead(
        &self,
        key: HashedKey<'_>,
        stats: Option<&ThreadStats>,
        do_update: bool,
        ahead: Ahead,
    ) -> Option<ItemRef> {
        let _g = self.item_lock(key.hv);
        // SAFETY: an item lock is held, which is all the prefetches need, and it is the lock
        // for key.hv, which the lookup needs (HashedKey's hash is the store's hash of key).
        unsafe {
            if let Some(hv) = ahead.near {
                self.assoc.prefetch_chain(hv);
            }
            if let Some(hv) = ahead.far {
                self.assoc.prefetch_bucket(hv);
            }
            self.get_locked(key.key, key.hv, stats, do_update)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::store::tests::test_settings;

    /// Hints never change an answer: right ones, wrong ones and none, while the table grows
    /// under the lookups (buckets move between the arrays as the prefetches read them).
    #[test]
    fn hints_never_change_what_is_found() {
        let s = test_settings(&["-m", "2"]);
        let st: &'static Store = Box::leak(Box::new(Store::with_hashpower(s, 6)));
        std::thread::spawn(move || st.run_assoc_maintenance(1));
        let n = 400u32;
        let key = |i: u32| format!("ahead:{i}");
        for i in (0..n).step_by(2) {
            let k = key(i);
            let mut r = st.alloc(k.as_bytes(), i, 0, 4).expect("alloc");
            r.data_mut().copy_from_slice(b"ab\r\n");
            let hv = st.hash(k.as_bytes());
            {
                let _g = st.item_lock(hv);
                // SAFETY: item lock held; `r` is fresh and the key is new.
                unsafe { st.link(&r, hv, 0) };
            }
            st.start_expand_if_needed_for(u64::from(i) * 8);
        }
        let mut junk = 0x9e37_79b9u32;
        for round in 0..3 {
            for i in 0..n {
                let k = key(i);
                junk = junk.rotate_left(5) ^ i.wrapping_mul(0x85eb_ca6b);
                let ahead = match round {
                    0 => Ahead::default(),
                    1 => Ahead {
                        near: Some(st.hash(key(i + 1).as_bytes())),
                        far: Some(st.hash(key(i + 2).as_bytes())),
                    },
                    _ => Ahead {
                        near: Some(junk),
                        far: Some(!junk),
                    },
                };
                let found = st.get_ahead(st.hashed(k.as_bytes()), None, false, ahead);
                assert_eq!(found.is_some(), i % 2 == 0, "{k} in round {round}");
                if let Some(r) = found {
                    assert_eq!(r.key(), k.as_bytes());
                    assert_eq!(r.client_flags(), i);
                }
            }
        }
    }
}
