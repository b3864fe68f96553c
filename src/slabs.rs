//! Slab allocator (C's slabs.c): the class table, computed from the settings exactly as C's
//! `slabs_init` does (`-n` chunk size, `-f` growth factor, 8-byte alignment, `slab_chunk_max`,
//! page size, `-o slab_sizes`) and printed at `-vv`; pages taken from a pool limited by `-m`;
//! and per-class free lists of chunks.
//!
//! Locking: one `slabs_lock` (a Mutex over `SlabAllocator`), taken after the item and LRU locks,
//! as in C. Raw memory lives here: pages are mapped once (anonymous mmap, faulted in whole at
//! once) and never returned to the system except through `adjust_mem_limit` shrinking the
//! global page pool.

use crate::items::{Item, ITEM_CHUNKED, ITEM_SLABBED};
use crate::settings::Settings;
use std::alloc::{dealloc, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, OnceLock};

/// Size of an item header (C's `sizeof(item)` on 64-bit: three links, two times, value length,
/// refcount, flags, class id, key length; 8-byte aligned).
pub const ITEM_HEADER_SIZE: u32 = 48;
/// Chunks are multiples of this.
pub const CHUNK_ALIGN_BYTES: u32 = 8;
/// Class ids are 6 bits; class 0 is the global page pool.
pub const MAX_NUMBER_OF_SLAB_CLASSES: usize = 63 + 1;
/// The first class id that holds items.
pub const POWER_SMALLEST: usize = 1;

/// One slab class: chunk size and chunks per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabClassSpec {
    pub size: u32,
    pub perslab: u32,
}

/// The class table for these parameters. Index 0 of the result is class 1 (POWER_SMALLEST);
/// the last class always has chunks of `slab_chunk_size_max` (C's `power_largest`).
pub fn compute_classes(
    chunk_size: u32,
    factor: f64,
    slab_chunk_size_max: u32,
    slab_page_size: u32,
    slab_sizes: Option<&[u32]>,
) -> Vec<SlabClassSpec> {
    let mut classes = Vec::new();
    let mut size: u32 = ITEM_HEADER_SIZE + chunk_size;
    let mut i = POWER_SMALLEST;
    while i < MAX_NUMBER_OF_SLAB_CLASSES - 1 {
        if let Some(sizes) = slab_sizes {
            match sizes.get(i - 1) {
                Some(&s) if s != 0 => size = s,
                _ => break,
            }
        } else if size as f64 >= slab_chunk_size_max as f64 / factor {
            break;
        }
        if !size.is_multiple_of(CHUNK_ALIGN_BYTES) {
            size += CHUNK_ALIGN_BYTES - (size % CHUNK_ALIGN_BYTES);
        }
        classes.push(SlabClassSpec {
            size,
            perslab: slab_page_size / size,
        });
        if slab_sizes.is_none() {
            // C multiplies an unsigned int by a double and truncates.
            size = (size as f64 * factor) as u32;
        }
        i += 1;
    }
    classes.push(SlabClassSpec {
        size: slab_chunk_size_max,
        perslab: slab_page_size / slab_chunk_size_max.max(1),
    });
    classes
}

/// Class id of the global page pool (free pages not yet given to a class).
pub const SLAB_GLOBAL_PAGE_POOL: usize = 0;

/// One slab class's state (C's `slabclass_t`).
struct SlabClass {
    size: u32,
    perslab: u32,
    /// Free chunks, linked through the item header's `next`/`prev`.
    slots: *mut Item,
    sl_curr: u32,
    /// Pages owned by this class (for the global pool: free pages).
    slab_list: Vec<NonNull<u8>>,
}

/// The allocator state guarded by the slabs lock.
pub struct SlabAllocator {
    classes: Vec<SlabClass>,
    power_largest: usize,
    mem_limit: u64,
    mem_malloced: u64,
    /// Set once an allocation failed for lack of memory (a hint for the LRU maintainer).
    pub mem_limit_reached: bool,
    page_size: u32,
    slab_reassign: bool,
    slab_chunk_size_max: u32,
    item_size_max: u32,
    /// With `-L`: the one region every page is carved from (C's mem_base), never freed.
    region: Option<Region>,
    /// Where `pick_any_for_reassign` goes on from.
    pick_cursor: usize,
}

/// One class's figures as the automover reads them (C's slab_stats_automove).
#[derive(Clone, Copy, Default)]
pub struct SlabAutomoveStats {
    pub chunks_per_page: u32,
    pub free_chunks: u32,
    pub total_pages: u32,
    pub chunk_size: u32,
}

/// The unused rest of the `-L` region.
struct Region {
    next: NonNull<u8>,
    avail: usize,
}

// SAFETY: the raw pointers are into pages owned by the allocator; every access happens with
// the slabs lock held (the allocator is only reachable through its Mutex).
unsafe impl Send for SlabAllocator {}

impl SlabAllocator {
    /// A new allocator for `classes` (as `compute_classes` returns them) with `mem_limit` bytes.
    pub fn new(
        classes: &[SlabClassSpec],
        mem_limit: u64,
        page_size: u32,
        slab_reassign: bool,
        slab_chunk_size_max: u32,
        item_size_max: u32,
    ) -> SlabAllocator {
        let empty = |size, perslab| SlabClass {
            size,
            perslab,
            slots: ptr::null_mut(),
            sl_curr: 0,
            slab_list: Vec::new(),
        };
        let mut v = vec![empty(0, 0)];
        for c in classes {
            v.push(empty(c.size, c.perslab));
        }
        SlabAllocator {
            power_largest: classes.len(),
            classes: v,
            mem_limit,
            mem_malloced: std::env::var("T_MEMD_INITIAL_MALLOC")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            mem_limit_reached: false,
            page_size,
            slab_reassign,
            slab_chunk_size_max,
            item_size_max,
            region: None,
            pick_cursor: POWER_SMALLEST - 1,
        }
    }

    /// `-L`: takes the whole memory limit as one region backed by transparent huge pages and
    /// gives every class its first page from it (C's alloc_large_chunk and
    /// slabs_preallocate). Without the region, pages are allocated one by one as usual.
    pub fn preallocate(&mut self) {
        let limit = self.mem_limit as usize;
        match alloc_large_chunk(limit) {
            Some(base) => {
                self.region = Some(Region {
                    next: base,
                    avail: limit,
                })
            }
            None => {
                eprintln!(
                    "Warning: Failed to allocate requested memory in one large chunk.\n\
                     Will allocate in smaller chunks"
                );
                return;
            }
        }
        self.preallocate_classes();
    }

    /// `-e`: every page comes from the memory file's mapping (`mem_limit` bytes at `base`).
    /// Reused, the mapping is all taken already (`restart_fixup` finds its pages); fresh,
    /// every class gets its first page as with `-L`.
    pub fn use_mapping(&mut self, base: NonNull<u8>, reuse: bool) {
        let limit = self.mem_limit as usize;
        if reuse {
            self.region = Some(Region {
                // SAFETY: one past the end of the mapping, used only as an address.
                next: unsafe { NonNull::new_unchecked(base.as_ptr().add(limit)) },
                avail: 0,
            });
        } else {
            self.region = Some(Region {
                next: base,
                avail: limit,
            });
            self.preallocate_classes();
        }
    }

    /// Puts every page left in the region into the global pool, zeroing only each page's
    /// first header (C's slabs_prefill_global): a restart then sees them as unused.
    pub fn prefill_global(&mut self) {
        let len = self.page_size as usize;
        while self.mem_malloced < self.mem_limit {
            let Some(p) = self.memory_allocate(len, false) else {
                break;
            };
            // SAFETY: a whole page of the region, handed out once.
            unsafe { ptr::write_bytes(p.as_ptr(), 0, ITEM_HEADER_SIZE as usize) };
            self.classes[SLAB_GLOBAL_PAGE_POOL].slab_list.push(p);
        }
        self.mem_limit_reached = true;
    }

    /// Takes back a page of a reused memory file during the restart walk (C's slabs_fixup at
    /// a page border): the page joins class `id`, whose chunk size and chunks per page come
    /// back, or the global pool (None) when its first header names no class.
    pub fn restart_take_page(&mut self, page: NonNull<u8>, id: usize) -> Option<(u32, u32)> {
        if id == 0 || id > self.power_largest {
            self.classes[SLAB_GLOBAL_PAGE_POOL].slab_list.push(page);
            return None;
        }
        self.classes[id].slab_list.push(page);
        Some((self.classes[id].size, self.classes[id].perslab))
    }

    /// Puts a chunk of a reused page on its class's free list: it was free, or nothing can
    /// reach it after the restart (an item no longer linked).
    ///
    /// # Safety
    /// `it` is a chunk of a page `restart_take_page` gave class `id`, and nothing else runs.
    pub unsafe fn restart_free_chunk(&mut self, it: *mut Item, id: usize) {
        // SAFETY: per the contract.
        unsafe { self.free_chunk(it, id) };
    }

    /// Bytes per slab page.
    pub fn page_size(&self) -> usize {
        self.page_size as usize
    }

    fn preallocate_classes(&mut self) {
        for id in POWER_SMALLEST..=self.power_largest {
            if !self.newslab(id) {
                eprintln!(
                    "Error while preallocating slab memory!\n\
                     If using -L or other prealloc options, max memory must be at least {} \
                     megabytes.",
                    self.power_largest
                );
                std::process::exit(1);
            }
        }
    }

    /// The class for an item of `size` bytes (C's slabs_clsid): 0 if it is too large for the
    /// cache, the largest class for items that will be chunked.
    pub fn clsid(&self, size: usize) -> usize {
        if size == 0 || size > self.item_size_max as usize {
            return 0;
        }
        let mut res = POWER_SMALLEST;
        while size > self.classes[res].size as usize {
            if res == self.power_largest {
                return self.power_largest;
            }
            res += 1;
        }
        res
    }

    /// Chunk size of a class.
    pub fn size(&self, id: usize) -> u32 {
        self.classes.get(id).map_or(0, |c| c.size)
    }

    /// The largest class id.
    pub fn power_largest(&self) -> usize {
        self.power_largest
    }

    /// Bytes taken from the system so far.
    pub fn mem_malloced(&self) -> u64 {
        self.mem_malloced
    }

    /// Takes memory for a new page (C's memory_allocate): from the `-L` or `-e` region if
    /// there is one, else a fresh mapping, zeroed and resident. Region memory is zeroed only
    /// with `zero` (the global pool's pages are zeroed when a class takes them).
    fn memory_allocate(&mut self, len: usize, zero: bool) -> Option<NonNull<u8>> {
        if let Some(r) = &mut self.region {
            if len > r.avail {
                return None;
            }
            let p = r.next;
            let step = len.next_multiple_of(8);
            // SAFETY: `step` bytes (or what is left, when rounding passes the end) stay inside
            // the region; the pointer is only used as an address when nothing is left.
            r.next = unsafe { NonNull::new_unchecked(p.as_ptr().add(step.min(r.avail))) };
            r.avail = r.avail.saturating_sub(step);
            if zero {
                // SAFETY: `len` bytes at `p` are inside the region and handed out once.
                unsafe { ptr::write_bytes(p.as_ptr(), 0, len) };
            }
            self.mem_malloced += step as u64;
            return Some(p);
        }
        let p = map_page(len)?;
        self.mem_malloced += len as u64;
        Some(p)
    }

    /// Gives class `id` a new page, split into free chunks (C's do_slabs_newslab).
    fn newslab(&mut self, id: usize) -> bool {
        let len = if self.slab_reassign || self.slab_chunk_size_max != self.page_size {
            self.page_size as usize
        } else {
            (self.classes[id].size * self.classes[id].perslab) as usize
        };
        let has_pages = !self.classes[id].slab_list.is_empty();
        let pool_empty = self.classes[SLAB_GLOBAL_PAGE_POOL].slab_list.is_empty();
        if self.mem_limit != 0
            && self.mem_malloced + len as u64 > self.mem_limit
            && has_pages
            && pool_empty
        {
            self.mem_limit_reached = true;
            return false;
        }
        let page = match self.classes[SLAB_GLOBAL_PAGE_POOL].slab_list.pop() {
            Some(p) => {
                // SAFETY: pool pages are whole pages of `page_size` bytes owned by us.
                unsafe { ptr::write_bytes(p.as_ptr(), 0, len) };
                p
            }
            None => match self.memory_allocate(len, true) {
                Some(p) => p,
                None => return false,
            },
        };
        let (size, perslab) = (
            self.classes[id].size as usize,
            self.classes[id].perslab as usize,
        );
        for x in 0..perslab {
            // SAFETY: chunk x lies within the page (perslab * size <= len) and is 8-aligned
            // (sizes are multiples of 8, the page is 8-aligned); it is not referenced elsewhere.
            unsafe { self.free_chunk(page.as_ptr().add(x * size) as *mut Item, id) };
        }
        self.classes[id].slab_list.push(page);
        true
    }

    /// Pushes a chunk on class `id`'s free list (C's do_slabs_free for plain items).
    ///
    /// # Safety
    /// `it` must be a chunk of class `id` owned by this allocator and no longer in use.
    unsafe fn free_chunk(&mut self, it: *mut Item, id: usize) {
        let p = &mut self.classes[id];
        // SAFETY: per the contract `it` points at a chunk of at least header size that nobody
        // else references; the free list head, if any, is such a chunk too.
        unsafe {
            (*it).it_flags = ITEM_SLABBED;
            (*it).slabs_clsid = id as u8;
            (*it).prev = ptr::null_mut();
            (*it).next = p.slots;
            if !p.slots.is_null() {
                (*p.slots).prev = it;
            }
        }
        p.slots = it;
        p.sl_curr += 1;
    }

    /// Takes a free chunk of class `id`, growing the class by a page if allowed
    /// (C's do_slabs_alloc). The chunk comes back with refcount 1 and no flags.
    pub fn alloc(&mut self, id: usize, no_newpage: bool) -> Option<NonNull<Item>> {
        if !(POWER_SMALLEST..=self.power_largest).contains(&id) {
            return None;
        }
        if self.classes[id].sl_curr == 0 && !no_newpage {
            self.newslab(id);
        }
        let p = &mut self.classes[id];
        if p.sl_curr == 0 {
            return None;
        }
        let it = p.slots;
        // SAFETY: sl_curr > 0 means `slots` heads a list of free chunks of this class.
        unsafe {
            p.slots = (*it).next;
            if !(*it).next.is_null() {
                (*(*it).next).prev = ptr::null_mut();
            }
            (*it).it_flags &= !ITEM_SLABBED;
            (*it).refcount.store(1, Relaxed);
        }
        p.sl_curr -= 1;
        NonNull::new(it)
    }

    /// Returns an item's chunk to its class.
    ///
    /// # Safety
    /// `it` must have come from `alloc(id)` of this allocator, and nothing may use it after.
    pub unsafe fn free(&mut self, it: NonNull<Item>, id: usize) {
        if !(POWER_SMALLEST..=self.power_largest).contains(&id) {
            return;
        }
        // SAFETY: the caller hands back a chunk it owns.
        let flags = unsafe { (*it.as_ptr()).it_flags };
        debug_assert!(
            flags & ITEM_CHUNKED == 0,
            "chunked items are freed chunk by chunk"
        );
        // SAFETY: as above.
        unsafe { self.free_chunk(it.as_ptr(), id) };
    }

    /// Changes the memory limit at run time (`cache_memlimit`), releasing pooled pages above
    /// it (C's do_slabs_adjust_mem_limit).
    pub fn adjust_mem_limit(&mut self, new_limit: u64) -> bool {
        // A preallocated region cannot change size.
        if self.region.is_some() {
            return false;
        }
        self.mem_limit = new_limit;
        self.mem_limit_reached = false;
        self.memory_release();
        true
    }

    /// `stats slabs` body for classes with pages, then the totals (C's do_slabs_stats, without
    /// the per-class command counters, which the caller supplies through `hits`).
    pub fn write_stats(
        &self,
        out: &mut dyn crate::stats::StatSink,
        hits: &dyn Fn(usize, &mut dyn crate::stats::StatSink),
    ) {
        let mut total = 0;
        for i in POWER_SMALLEST..=self.power_largest {
            let p = &self.classes[i];
            let slabs = p.slab_list.len() as u32;
            if slabs == 0 {
                continue;
            }
            let mut st = |name: &str, v: u32| out.stat(&format!("{}:{}", i, name), &v);
            st("chunk_size", p.size);
            st("chunks_per_page", p.perslab);
            st("total_pages", slabs);
            st("total_chunks", slabs * p.perslab);
            st("used_chunks", slabs * p.perslab - p.sl_curr);
            st("free_chunks", p.sl_curr);
            st("free_chunks_end", 0);
            hits(i, out);
            total += 1;
        }
        out.stat("active_slabs", &total);
        out.stat("total_malloced", &self.mem_malloced);
    }

    /// Free chunks and pages of a class (for the LRU maintainer and stats).
    pub fn class_counts(&self, id: usize) -> (u32, usize) {
        self.classes
            .get(id)
            .map_or((0, 0), |c| (c.sl_curr, c.slab_list.len()))
    }

    /// Chunks per page of a class (0: no such class).
    pub fn perslab(&self, id: usize) -> u32 {
        if id == 0 || id > self.power_largest {
            return 0;
        }
        self.classes.get(id).map_or(0, |c| c.perslab)
    }

    /// Whether `id` names a class or the global pool (C's slabs_class_check).
    pub fn class_check(&self, id: i32) -> bool {
        id >= SLAB_GLOBAL_PAGE_POOL as i32 && id <= self.power_largest as i32
    }

    /// Pages a class (or the pool, id 0) holds.
    pub fn page_count(&self, id: usize) -> usize {
        self.classes.get(id).map_or(0, |c| c.slab_list.len())
    }

    /// Picks a source class with a spare page for `slabs reassign -1 <dst>`, going round the
    /// classes from where the last pick stopped (C's slabs_pick_any_for_reassign). -1: none.
    pub fn pick_any_for_reassign(&mut self, did: usize) -> i32 {
        for _ in POWER_SMALLEST..MAX_NUMBER_OF_SLAB_CLASSES {
            self.pick_cursor += 1;
            if self.pick_cursor >= MAX_NUMBER_OF_SLAB_CLASSES {
                self.pick_cursor = POWER_SMALLEST;
            }
            let cur = self.pick_cursor;
            if cur == did {
                continue;
            }
            if self.page_count(cur) > 1 {
                return cur as i32;
            }
        }
        -1
    }

    /// The page a move out of class `id` empties (its oldest, the first in its list), with
    /// the class's chunk size and chunks per page; None unless it has two pages at least
    /// (C's slabs_peek_page).
    pub fn peek_page(&self, id: usize) -> Option<(NonNull<u8>, u32, u32)> {
        let c = self.classes.get(id)?;
        if id > self.power_largest || c.slab_list.len() < 2 {
            return None;
        }
        Some((c.slab_list[0], c.size, c.perslab))
    }

    /// Takes a free chunk off class `id`'s free list wherever it sits in the list, for the
    /// slab mover (C's do_slabs_unlink_free_chunk).
    ///
    /// # Safety
    /// `it` is a chunk of class `id` on its free list (flags exactly ITEM_SLABBED).
    pub unsafe fn unlink_free_chunk(&mut self, id: usize, it: *mut Item) {
        let p = &mut self.classes[id];
        // SAFETY: per the contract, `it` and its free-list neighbours are free chunks only the
        // allocator (whose lock the caller holds through `&mut self`) touches.
        unsafe {
            debug_assert!((*it).it_flags == ITEM_SLABBED);
            if p.slots == it {
                p.slots = (*it).next;
            }
            if !(*it).next.is_null() {
                (*(*it).next).prev = (*it).prev;
            }
            if !(*it).prev.is_null() {
                (*(*it).prev).next = (*it).next;
            }
        }
        p.sl_curr -= 1;
    }

    /// Hands an emptied page from class `sid` to class `did` (split into free chunks), or to
    /// the global pool (id 0), where pages over the memory limit go back to the system
    /// (C's slabs_finalize_page_move).
    ///
    /// # Safety
    /// `page` is one of `sid`'s pages and none of its chunks is referenced or on a free list.
    pub unsafe fn finalize_page_move(&mut self, sid: usize, did: usize, page: NonNull<u8>) {
        let list = &mut self.classes[sid].slab_list;
        if let Some(pos) = list.iter().position(|&p| p == page) {
            list.remove(pos);
        }
        self.classes[did].slab_list.push(page);
        if did > SLAB_GLOBAL_PAGE_POOL {
            // SAFETY: the page is `page_size` bytes, ours, and now unused (the contract).
            unsafe { ptr::write_bytes(page.as_ptr(), 0, self.page_size as usize) };
            let (size, perslab) = (
                self.classes[did].size as usize,
                self.classes[did].perslab as usize,
            );
            for x in 0..perslab {
                // SAFETY: as in newslab: chunk x lies within the zeroed page, 8-aligned.
                unsafe { self.free_chunk(page.as_ptr().add(x * size) as *mut Item, did) };
            }
        } else {
            // SAFETY: as above; only the first header is cleared, as C does.
            unsafe { ptr::write_bytes(page.as_ptr(), 0, ITEM_HEADER_SIZE as usize) };
            self.mem_limit_reached = false;
            self.memory_release();
        }
    }

    /// Gives pooled pages back to the system while more than the limit is allocated (C's
    /// memory_release). Not with `-L` (one region) or without slab_reassign (pages of
    /// mixed sizes).
    fn memory_release(&mut self) {
        if self.region.is_some() || !self.slab_reassign {
            return;
        }
        while self.mem_malloced > self.mem_limit {
            let Some(p) = self.classes[SLAB_GLOBAL_PAGE_POOL].slab_list.pop() else {
                break;
            };
            // SAFETY: with slab_reassign every page came from map_page(page_size), and a pooled
            // page holds no items.
            unsafe { unmap_page(p, self.page_size as usize) };
            self.mem_malloced -= self.page_size as u64;
        }
    }

    /// Per class: chunks per page, free chunks, pages and chunk size, for the automover
    /// (C's fill_slab_stats_automove).
    pub fn automove_stats(&self) -> [SlabAutomoveStats; MAX_NUMBER_OF_SLAB_CLASSES] {
        let mut out = [SlabAutomoveStats::default(); MAX_NUMBER_OF_SLAB_CLASSES];
        for (o, c) in out.iter_mut().zip(&self.classes) {
            *o = SlabAutomoveStats {
                chunks_per_page: c.perslab,
                free_chunks: c.sl_curr,
                total_pages: c.slab_list.len() as u32,
                chunk_size: c.size,
            };
        }
        out
    }

    /// Whether everything allowed has been allocated (C's mem_flag of global_page_pool_size).
    pub fn mem_limit_hit(&self) -> bool {
        self.mem_malloced >= self.mem_limit
    }

    /// Pages in the global pool.
    pub fn global_page_pool_size(&self) -> usize {
        self.classes[SLAB_GLOBAL_PAGE_POOL].slab_list.len()
    }
}

static SLABS: OnceLock<Mutex<SlabAllocator>> = OnceLock::new();

/// Creates the process's allocator from the settings (C's slabs_init), printing the class table
/// at `-vv` as C does; with `mapping`, every page comes from the `-e` memory file at that
/// address (reused: its pages are taken back by `restart::fixup`). Called once at start-up.
pub fn slabs_init(s: &Settings, mapping: Option<(NonNull<u8>, bool)>) {
    let classes = classes_for(s);
    if crate::settings::verbose() > 1 {
        eprint!("{}", format_classes(&classes));
    }
    let alloc = SlabAllocator::new(
        &classes,
        s.maxbytes.load(Relaxed),
        s.slab_page_size.max(1) as u32,
        s.slab_reassign,
        s.slab_chunk_size_max.max(1) as u32,
        s.item_size_max.max(0) as u32,
    );
    let mut alloc = alloc;
    match mapping {
        // `-e`: the memory file, reused or not.
        Some((base, reuse)) => alloc.use_mapping(base, reuse),
        None if s.preallocate => alloc.preallocate(),
        None => {}
    }
    let _ = SLABS.set(Mutex::new(alloc));
}

/// One region of `limit` bytes aligned to the huge page size and advised to use transparent
/// huge pages (C's alloc_large_chunk on Linux), or None with C's message.
fn alloc_large_chunk(limit: usize) -> Option<NonNull<u8>> {
    let pagesize = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("Hugepagesize:"))
                .find_map(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        })
        .map_or(0, |kib| kib << 10);
    if pagesize == 0 {
        eprintln!("Failed to get supported huge page size");
        return None;
    }
    if crate::settings::verbose() > 1 {
        eprintln!("huge page size: {}", pagesize);
    }
    let Some(layout) = Layout::from_size_align(limit.max(1), pagesize).ok() else {
        eprintln!("Failed to get aligned memory chunk: {}", libc::EINVAL);
        return None;
    };
    // SAFETY: the layout has a non-zero size; the region lives as long as the process.
    let Some(base) = NonNull::new(unsafe { std::alloc::alloc(layout) }) else {
        eprintln!("Failed to get aligned memory chunk: {}", libc::ENOMEM);
        return None;
    };
    // SAFETY: `base` heads `limit` bytes we own.
    let r = unsafe { libc::madvise(base.as_ptr().cast(), limit, libc::MADV_HUGEPAGE) };
    if r < 0 {
        eprintln!("Failed to set transparent hugepage hint: {}", r);
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(base.as_ptr(), layout) };
        return None;
    }
    Some(base)
}

/// The length of the mapping that holds a slab page of `len` bytes: whole OS pages.
fn mapped_len(len: usize) -> usize {
    len.next_multiple_of(os_page_size())
}

/// The kernel's page size.
fn os_page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Maps `len` bytes of zeroed memory for one slab page and faults all of it in at once, as
/// C's memset of a new page does. Pages faulted in one by one would otherwise fault inside
/// the read of a large value into a new item, with the socket lock held; and a mapping of
/// its own has no allocator header, which made one more OS page resident per slab page.
fn map_page(len: usize) -> Option<NonNull<u8>> {
    let mapped = mapped_len(len);
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
    // the result is checked before use.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            mapped,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let page = NonNull::new(p.cast::<u8>())?;
    // SAFETY: `p` heads `mapped` bytes mapped above, owned by nobody else yet.
    if unsafe { libc::madvise(p, mapped, libc::MADV_POPULATE_WRITE) } != 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            // Not enough memory to back the page: give the mapping back and fail the
            // allocation, as a failed malloc would.
            // SAFETY: the mapping made above, not yet handed out.
            unsafe { libc::munmap(p, mapped) };
            return None;
        }
        // A kernel before 5.14: touch every OS page instead.
        // SAFETY: every offset written is inside the new mapping.
        unsafe { ptr::write_bytes(page.as_ptr(), 0, mapped) };
    }
    Some(page)
}

/// Returns a slab page to the system.
///
/// # Safety
/// `page` must have come from `map_page(len)` and nothing may use it after.
unsafe fn unmap_page(page: NonNull<u8>, len: usize) {
    // SAFETY: per the contract, the whole mapping is ours to drop.
    unsafe { libc::munmap(page.as_ptr().cast(), mapped_len(len)) };
}

/// Runs `f` with the slabs lock held. None before `slabs_init`.
pub fn with_slabs<R>(f: impl FnOnce(&mut SlabAllocator) -> R) -> Option<R> {
    let m = SLABS.get()?;
    let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
    Some(f(&mut g))
}

/// The class table for the running settings.
pub fn classes_for(s: &Settings) -> Vec<SlabClassSpec> {
    compute_classes(
        s.chunk_size.max(0) as u32,
        s.factor,
        s.slab_chunk_size_max.max(1) as u32,
        s.slab_page_size.max(1) as u32,
        s.slab_sizes.as_deref(),
    )
}

/// The `-vv` start-up lines, one per class.
pub fn format_classes(classes: &[SlabClassSpec]) -> String {
    let mut out = String::new();
    for (n, c) in classes.iter().enumerate() {
        out.push_str(&format!(
            "slab class {:3}: chunk size {:9} perslab {:7}\n",
            n + POWER_SMALLEST,
            c.size,
            c.perslab
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_allocator(limit: u64) -> SlabAllocator {
        let classes = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, None);
        SlabAllocator::new(&classes, limit, 1024 * 1024, true, 512 * 1024, 1024 * 1024)
    }

    #[test]
    fn class_choice() {
        let a = small_allocator(64 << 20);
        assert_eq!(a.clsid(0), 0);
        assert_eq!(a.clsid(1), 1);
        assert_eq!(a.clsid(96), 1);
        assert_eq!(a.clsid(97), 2);
        assert_eq!(a.clsid(1024 * 1024), a.power_largest());
        assert_eq!(a.clsid(1024 * 1024 + 1), 0);
    }

    /// How many OS pages of `len` bytes at `p` are resident.
    fn resident_pages(p: *const u8, len: usize) -> usize {
        let mapped = mapped_len(len);
        let mut vec = vec![0u8; mapped / os_page_size()];
        // SAFETY: `p` heads a mapping of `mapped` bytes; `vec` has one byte per OS page.
        let r = unsafe { libc::mincore(p as *mut _, mapped, vec.as_mut_ptr()) };
        assert_eq!(r, 0);
        vec.iter().filter(|b| **b & 1 == 1).count()
    }

    #[test]
    fn a_new_page_is_resident_at_once() {
        // As C's memset of a new page: no page faults later while reading a value into it.
        let mut a = small_allocator(0);
        let largest = a.power_largest();
        let it = a
            .alloc(largest, false)
            .expect("a chunk of the largest class");
        let page = *a.classes[largest].slab_list.last().expect("its page");
        let len = a.page_size as usize;
        assert_eq!(
            resident_pages(page.as_ptr(), len),
            mapped_len(len) / os_page_size()
        );
        // SAFETY: `it` came from alloc(largest) and is not used again.
        unsafe { a.free(it, largest) };
    }

    #[test]
    fn alloc_free_and_limit() {
        // Room for two pages: the first class gets one page, then may not grow past the limit.
        let mut a = small_allocator(2 * 1024 * 1024);
        let perslab = a.classes[1].perslab as usize;
        let mut got = Vec::new();
        for _ in 0..perslab {
            got.push(a.alloc(1, false).expect("chunk from the first page"));
        }
        assert_eq!(a.class_counts(1), (0, 1));
        // A second page still fits in the limit.
        got.push(a.alloc(1, false).expect("second page"));
        assert_eq!(a.mem_malloced(), 2 * 1024 * 1024);
        for _ in 1..perslab {
            got.push(a.alloc(1, false).expect("rest of the second page"));
        }
        // Now the class has pages and the limit is reached: no more.
        assert!(a.alloc(1, false).is_none());
        assert!(a.mem_limit_reached);
        // Another class may still get its first page (C lets every class have one).
        assert!(a.alloc(5, false).is_some());
        // Freed chunks are reused.
        let first = got.pop().unwrap();
        // SAFETY: `first` came from alloc(1) and is not used again before being reallocated.
        unsafe { a.free(first, 1) };
        assert_eq!(a.class_counts(1).0, 1);
        let again = a.alloc(1, false).unwrap();
        assert_eq!(again, first);
        // SAFETY: `again` is a live chunk just handed out by the allocator.
        unsafe {
            assert_eq!((*again.as_ptr()).refcount.load(Relaxed), 1);
            assert_eq!((*again.as_ptr()).it_flags, 0);
        }
        let mut out = Vec::new();
        a.write_stats(&mut out, &|_, _| {});
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "STAT 1:chunk_size 96\r\nSTAT 1:chunks_per_page 10922\r\nSTAT 1:total_pages 2\r\n"
        ));
        assert!(text.ends_with("STAT active_slabs 2\r\nSTAT total_malloced 3145728\r\n"));
    }

    #[test]
    fn no_newpage_flag() {
        let mut a = small_allocator(64 << 20);
        assert!(a.alloc(3, true).is_none());
        assert!(a.alloc(3, false).is_some());
        assert!(a.alloc(3, true).is_some());
        assert!(a.alloc(0, false).is_none());
        assert!(a.alloc(a.power_largest() + 1, false).is_none());
    }

    #[test]
    fn default_table_matches_c() {
        // memcached 1.6.45 -vv with default settings, as the C server prints it.
        let c = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, None);
        assert_eq!(
            format_classes(&c),
            include_str!("../t/data/slab-classes/default.txt")
        );
    }

    #[test]
    fn explicit_sizes() {
        let c = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, Some(&[100, 200, 0]));
        assert_eq!(
            c[0],
            SlabClassSpec {
                size: 104,
                perslab: 10082
            }
        );
        assert_eq!(
            c[1],
            SlabClassSpec {
                size: 200,
                perslab: 5242
            }
        );
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn factor_two_small_pages() {
        let c = compute_classes(48, 2.0, 16 * 1024, 32 * 1024, None);
        let sizes: Vec<u32> = c.iter().map(|c| c.size).collect();
        assert_eq!(sizes, vec![96, 192, 384, 768, 1536, 3072, 6144, 16384]);
    }
}
