//! The flash storage engine (C's extstore.c): files cut into pages, pages handed to write
//! buckets, objects appended to a page through write buffers that a background thread flushes,
//! reads served by a pool of IO threads (from the write buffer while it is not yet on disk),
//! and pages freed when their last object goes, closed by compaction or evicted when space
//! runs out. It knows nothing of items: `storage.rs` decides what goes to flash and what an
//! object is.
//!
//! Threads: `mc-ext-io` (reads, one queue each, the shortest queue is picked) and
//! `mc-ext-bgio` (write-buffer flushes). Callbacks run on those threads.
//!
//! Locking, in order: a page's mutex, then the engine's (free lists, buckets, spare write
//! buffers), then the statistics'. An IO queue's lock is never held with another.
//!
//! An IO (`ObjIo`) is the caller's memory, as in C: it is linked into a queue by raw pointer
//! and must stay valid, with every buffer it names, until its callback has run.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Page version of a free page (C's magic 0). Versions are 32-bit, as C's pages and item
/// headers keep them; the API takes them widened, as C's does.
const FREE_VERSION: u32 = 0;

/// Engine configuration (C's struct extstore_conf).
#[derive(Debug, Clone, Copy)]
pub struct Conf {
    pub page_size: u32,
    pub page_buckets: u32,
    pub wbuf_size: u32,
    pub wbuf_count: u32,
    pub io_threadcount: u32,
    pub io_depth: u32,
}

/// One backing file (C's struct extstore_conf_file).
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub file: String,
    pub page_count: u32,
    /// Size as given (before it was cut into pages).
    pub total_size: u64,
    /// The free-page bucket its pages return to.
    pub free_bucket: u32,
}

/// Why the engine could not start (C's enum extstore_res).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    BadWbufSize,
    NeedMoreWbuf,
    NeedMoreBuckets,
    PageWbufAlignment,
    TooManyPages,
    Oom,
    OpenFail,
    ThreadFail,
}

impl InitError {
    /// C's extstore_err text.
    pub fn message(self) -> &'static str {
        match self {
            InitError::BadWbufSize => "page_size must be divisible by wbuf_size",
            InitError::NeedMoreWbuf => "wbuf_count must be >= page_buckets",
            InitError::NeedMoreBuckets => "page_buckets must be > 0",
            InitError::PageWbufAlignment => {
                "page_size and wbuf_size must be divisible by 1024*1024*2"
            }
            InitError::TooManyPages => {
                "page_count must total to < 65536. Increase page_size or lower path sizes"
            }
            InitError::Oom => "failed calloc for engine",
            InitError::OpenFail => "failed to open file",
            InitError::ThreadFail => "unknown error",
        }
    }
}

/// Counters and gauges (C's struct extstore_stats without the page array).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub page_allocs: u64,
    pub page_count: u64,
    pub page_evictions: u64,
    pub page_reclaims: u64,
    pub page_size: u64,
    pub pages_free: u64,
    pub pages_used: u64,
    pub objects_evicted: u64,
    pub objects_read: u64,
    pub objects_written: u64,
    pub objects_used: u64,
    pub bytes_evicted: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub bytes_used: u64,
    pub bytes_fragmented: u64,
    pub io_queue: u64,
}

/// A page as compaction sees it (C's struct extstore_page_data).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageData {
    pub version: u64,
    pub bytes_used: u64,
    pub bucket: u32,
    pub free_bucket: u32,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    Read,
    Write,
}

/// Called on an IO thread when an IO is done: the engine, the IO, and the byte count (or a
/// negative result: -1 an OS error, -2 the page went away).
pub type IoCallback = fn(&Engine, *mut ObjIo, isize);

/// One read or write (C's obj_io). Owned by the submitter.
pub struct ObjIo {
    /// The submitter's own data.
    pub data: usize,
    pub next: *mut ObjIo,
    /// Where a read lands (or a write comes from), unless `iov` is set.
    pub buf: *mut u8,
    pub iov: *mut libc::iovec,
    pub iovcnt: u32,
    pub page_version: u32,
    pub len: u32,
    pub offset: u32,
    pub page_id: u16,
    pub mode: IoMode,
    pub cb: Option<IoCallback>,
}

// SAFETY: an IO is handed from thread to thread whole; its pointers are the submitter's
// promise (see the module comment).
unsafe impl Send for ObjIo {}

impl Default for ObjIo {
    fn default() -> Self {
        ObjIo {
            data: 0,
            next: ptr::null_mut(),
            buf: ptr::null_mut(),
            iov: ptr::null_mut(),
            iovcnt: 0,
            page_version: 0,
            len: 0,
            offset: 0,
            page_id: 0,
            mode: IoMode::Read,
            cb: None,
        }
    }
}

/// A write buffer: objects are appended here, then written to the page in one piece.
struct Wbuf {
    buf: Box<[u8]>,
    /// Bytes appended so far.
    used: usize,
    /// Offset in the page where the buffer goes.
    offset: u32,
    full: bool,
}

struct Page {
    obj_count: u64,
    bytes_used: u64,
    /// Where the page starts in its file.
    offset: u64,
    version: u32,
    /// Reads in flight from the file.
    refcount: u32,
    allocated: u32,
    written: u32,
    bucket: u32,
    free_bucket: u32,
    file: usize,
    id: u16,
    active: bool,
    closed: bool,
    free: bool,
    wbuf: Option<Wbuf>,
}

/// What the engine mutex covers.
struct Shared {
    /// Pages of each write bucket, the current one last.
    page_buckets: Vec<Vec<u16>>,
    /// Free pages per free bucket, the next to hand out last.
    free_page_buckets: Vec<Vec<u16>>,
    wbuf_stack: Vec<Wbuf>,
    /// IOs for write-buffer flushes, boxed: a queued IO is linked by its address.
    #[allow(clippy::vec_box)]
    io_stack: Vec<Box<ObjIo>>,
    version: u32,
    page_free: u32,
}

struct IoQueue {
    head: *mut ObjIo,
    tail: *mut ObjIo,
    depth: u32,
    /// The thread sleeps on the condition variable: a submit must wake it. (std's notify
    /// makes a system call every time, so it is only made when someone waits, as
    /// pthread_cond_signal manages by itself.)
    sleeping: bool,
}

// SAFETY: the queue holds IOs handed over whole (see ObjIo).
unsafe impl Send for IoQueue {}

struct IoThread {
    q: Mutex<IoQueue>,
    cond: Condvar,
}

/// The engine (C's store_engine).
pub struct Engine {
    pages: Box<[Mutex<Page>]>,
    shared: Mutex<Shared>,
    stats: Mutex<Stats>,
    /// Serialises page-data walks (C's maint mutex).
    maint: Mutex<()>,
    files: Vec<File>,
    io_threads: Vec<IoThread>,
    bg_thread: IoThread,
    page_size: u64,
    io_depth: u32,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the files, cuts them into pages (interleaved between files) and starts the IO
/// threads (C's extstore_init). Files are truncated: extstore keeps nothing across restarts.
pub fn init(files: &[ConfFile], cf: &Conf) -> Result<Arc<Engine>, InitError> {
    if cf.wbuf_size == 0 || !cf.page_size.is_multiple_of(cf.wbuf_size) {
        return Err(InitError::BadWbufSize);
    }
    if cf.page_buckets > cf.wbuf_count {
        return Err(InitError::NeedMoreWbuf);
    }
    if cf.page_buckets < 1 {
        return Err(InitError::NeedMoreBuckets);
    }
    const ALIGN: u32 = 1024 * 1024 * 2;
    if !cf.page_size.is_multiple_of(ALIGN) || !cf.wbuf_size.is_multiple_of(ALIGN) {
        return Err(InitError::PageWbufAlignment);
    }
    let mut handles = Vec::new();
    let mut total: u64 = 0;
    for f in files {
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&f.file)
        }
        .map_err(|_| InitError::OpenFail)?;
        // A write lock on the whole file keeps a second server off it.
        // SAFETY: a plain flock struct for fcntl on our own descriptor.
        let locked = unsafe {
            let mut l: libc::flock = std::mem::zeroed();
            l.l_type = libc::F_WRLCK as libc::c_short;
            l.l_whence = libc::SEEK_SET as libc::c_short;
            libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &l) == 0
        };
        if !locked || file.set_len(0).is_err() {
            return Err(InitError::OpenFail);
        }
        total += u64::from(f.page_count);
        handles.push(file);
    }
    if total >= u64::from(u16::MAX) {
        return Err(InitError::TooManyPages);
    }
    let page_count = total as usize;
    // Interleave the pages between files.
    let mut left: Vec<u32> = files.iter().map(|f| f.page_count).collect();
    let mut next_offset = vec![0u64; files.len()];
    let mut pages = Vec::with_capacity(page_count);
    let mut fi = usize::MAX;
    for id in 0..page_count {
        loop {
            fi = if fi == usize::MAX || fi + 1 >= files.len() {
                0
            } else {
                fi + 1
            };
            if left[fi] > 0 {
                left[fi] -= 1;
                break;
            }
        }
        pages.push(Mutex::new(Page {
            obj_count: 0,
            bytes_used: 0,
            offset: next_offset[fi],
            version: FREE_VERSION,
            refcount: 0,
            allocated: 0,
            written: 0,
            bucket: 0,
            free_bucket: files[fi].free_bucket,
            file: fi,
            id: id as u16,
            active: false,
            closed: false,
            free: true,
            wbuf: None,
        }));
        next_offset[fi] += u64::from(cf.page_size);
    }
    let nbuckets = cf.page_buckets as usize;
    let mut free_page_buckets = vec![Vec::new(); nbuckets];
    // The lowest page ids are handed out first.
    for id in (0..page_count).rev() {
        let fb = lock(&pages[id]).free_bucket as usize;
        free_page_buckets[fb.min(nbuckets - 1)].push(id as u16);
    }
    let shared = Shared {
        page_buckets: vec![Vec::new(); nbuckets],
        free_page_buckets,
        wbuf_stack: (0..cf.wbuf_count)
            .map(|_| Wbuf {
                buf: vec![0u8; cf.wbuf_size as usize].into_boxed_slice(),
                used: 0,
                offset: 0,
                full: false,
            })
            .collect(),
        io_stack: (0..cf.wbuf_count)
            .map(|_| Box::new(ObjIo::default()))
            .collect(),
        version: 1,
        page_free: page_count as u32,
    };
    let new_thread = || IoThread {
        q: Mutex::new(IoQueue {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            depth: 0,
            sleeping: false,
        }),
        cond: Condvar::new(),
    };
    let e = Arc::new(Engine {
        pages: pages.into_boxed_slice(),
        shared: Mutex::new(shared),
        stats: Mutex::new(Stats {
            page_count: page_count as u64,
            page_size: u64::from(cf.page_size),
            ..Stats::default()
        }),
        maint: Mutex::new(()),
        files: handles,
        io_threads: (0..cf.io_threadcount).map(|_| new_thread()).collect(),
        bg_thread: new_thread(),
        page_size: u64::from(cf.page_size),
        io_depth: cf.io_depth.max(1),
        stop: AtomicBool::new(false),
    });
    for i in 0..cf.io_threadcount as usize {
        let e2 = Arc::clone(&e);
        std::thread::Builder::new()
            .name("mc-ext-io".into())
            .spawn(move || e2.io_thread(Some(i)))
            .map_err(|_| InitError::ThreadFail)?;
    }
    let e2 = Arc::clone(&e);
    std::thread::Builder::new()
        .name("mc-ext-bgio".into())
        .spawn(move || e2.io_thread(None))
        .map_err(|_| InitError::ThreadFail)?;
    Ok(e)
}

impl Engine {
    /// Counters, with the derived gauges (C's extstore_get_stats).
    pub fn stats(&self) -> Stats {
        let mut st = *lock(&self.stats);
        {
            let sh = lock(&self.shared);
            st.pages_free = u64::from(sh.page_free);
            st.pages_used = self.pages.len() as u64 - u64::from(sh.page_free);
        }
        st.io_queue = self
            .io_threads
            .iter()
            .map(|t| u64::from(lock(&t.q).depth))
            .sum();
        // Open, not yet filled pages count as fragmentation too.
        st.bytes_fragmented = (st.pages_used * self.page_size).saturating_sub(st.bytes_used);
        st
    }

    /// Every page's figures for compaction; frees pages nothing refers to any more on the
    /// way (C's extstore_get_page_data).
    pub fn page_data(&self) -> Vec<PageData> {
        let _m = lock(&self.maint);
        let mut pd = vec![PageData::default(); self.pages.len()];
        for m in self.pages.iter() {
            let mut p = lock(m);
            let d = &mut pd[p.id as usize];
            d.free_bucket = p.free_bucket;
            d.version = u64::from(p.version);
            d.bytes_used = p.bytes_used;
            if p.active {
                d.active = true;
            }
            if p.active || p.free {
                continue;
            }
            if p.obj_count > 0 && !p.closed {
                d.bucket = p.bucket;
            }
            if (p.obj_count == 0 || p.closed) && p.refcount == 0 {
                self.free_page(&mut p);
            }
        }
        pd
    }

    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Evicts the oldest page that may go to `free_bucket`, unless a page is free (C's
    /// _evict_page). Called without locks held.
    fn evict_for(&self, free_bucket: u32) {
        let pd = self.page_data();
        let mut low: Option<(usize, u64)> = None;
        for (i, d) in pd.iter().enumerate() {
            if d.free_bucket != 0 && d.free_bucket != free_bucket {
                continue;
            }
            if d.version == u64::from(FREE_VERSION) {
                return;
            }
            if !d.active && low.is_none_or(|(_, v)| d.version < v) {
                low = Some((i, d.version));
            }
        }
        // The walk above frees pages nothing refers to any more; with one free now there is
        // nothing to evict (C looks only at what the walk saw, and may evict needlessly).
        {
            let sh = lock(&self.shared);
            let fb = (free_bucket as usize).min(sh.free_page_buckets.len() - 1);
            if !sh.free_page_buckets[fb].is_empty() || !sh.free_page_buckets[0].is_empty() {
                return;
            }
        }
        if let Some((id, version)) = low {
            self.evict_page(id as u16, version);
        }
    }

    /// Takes a free page for `bucket` (C's _allocate_page), the shared lock held.
    fn allocate_page(&self, sh: &mut Shared, bucket: u32, free_bucket: u32) -> Option<u16> {
        let fb = (free_bucket as usize).min(sh.free_page_buckets.len() - 1);
        let id = match sh.free_page_buckets[fb].pop() {
            Some(id) => id,
            None => sh.free_page_buckets[0].pop()?,
        };
        let version = sh.version;
        sh.version = sh.version.wrapping_add(1);
        {
            // Lock order: a free page is locked by no one holding the shared lock's order
            // the other way round, since only this function takes it off the free lists.
            let mut p = lock(&self.pages[id as usize]);
            p.active = true;
            p.free = false;
            p.closed = false;
            p.version = version;
            p.bucket = bucket;
        }
        sh.page_buckets[bucket as usize].push(id);
        sh.page_free -= 1;
        lock(&self.stats).page_allocs += 1;
        Some(id)
    }

    /// Reserves `len` bytes in the current page of `bucket` (C's extstore_write_request and
    /// extstore_write in one): on success `fill` copies the object into the write buffer,
    /// and the IO gets its page id, version and offset. Fails (false) while the bucket is
    /// between pages or every write buffer is being flushed: the caller retries later.
    pub fn write(
        &self,
        bucket: u32,
        free_bucket: u32,
        io: &mut ObjIo,
        fill: impl FnOnce(&mut [u8]),
    ) -> bool {
        let len = io.len as usize;
        if bucket as usize >= lock(&self.shared).page_buckets.len() {
            return false;
        }
        let id = {
            let mut sh = lock(&self.shared);
            match sh.page_buckets[bucket as usize].last().copied() {
                Some(id) => Some(id),
                None => self.allocate_page(&mut sh, bucket, free_bucket),
            }
        };
        let Some(id) = id else {
            self.evict_for(free_bucket);
            return false;
        };
        let mut p = lock(&self.pages[id as usize]);
        let wbuf_done = p.wbuf.as_ref().is_none_or(|w| w.full);
        if !p.active || (wbuf_done && u64::from(p.allocated) >= self.page_size) {
            drop(p);
            let got = {
                let mut sh = lock(&self.shared);
                self.allocate_page(&mut sh, bucket, free_bucket)
            };
            if got.is_none() {
                self.evict_for(free_bucket);
            }
            return false;
        }
        // The object does not fit: flush this buffer and start another.
        if let Some(w) = &p.wbuf {
            if !w.full && w.buf.len() - w.used < len {
                self.submit_wbuf(&mut p);
            }
        }
        if p.wbuf.is_none() && u64::from(p.allocated) < self.page_size {
            self.allocate_wbuf(&mut p);
        }
        let version = p.version;
        let Some(w) = p.wbuf.as_mut() else {
            return false;
        };
        if w.full || w.buf.len() - w.used < len {
            return false;
        }
        let at = w.used;
        fill(&mut w.buf[at..at + len]);
        w.used += len;
        io.page_id = id;
        io.page_version = version;
        io.offset = w.offset + at as u32;
        p.bytes_used += len as u64;
        p.obj_count += 1;
        let mut st = lock(&self.stats);
        st.bytes_written += len as u64;
        st.bytes_used += len as u64;
        st.objects_written += 1;
        st.objects_used += 1;
        true
    }

    /// Gives the page a write buffer at its next unallocated offset (C's _allocate_wbuf).
    fn allocate_wbuf(&self, p: &mut Page) {
        let Some(mut w) = lock(&self.shared).wbuf_stack.pop() else {
            return;
        };
        w.offset = p.allocated;
        p.allocated += w.buf.len() as u32;
        w.used = 0;
        w.full = false;
        p.wbuf = Some(w);
    }

    /// Hands the page's write buffer to the background thread (C's _submit_wbuf). The
    /// buffer stays on the page, marked full, so reads find it until it is on disk.
    fn submit_wbuf(&self, p: &mut Page) {
        let Some(w) = p.wbuf.as_mut() else {
            return;
        };
        let Some(mut io) = lock(&self.shared).io_stack.pop() else {
            return;
        };
        // Zero the unused end so a read of it sees zeroes.
        let used = w.used;
        w.buf[used..].fill(0);
        w.full = true;
        io.next = ptr::null_mut();
        io.mode = IoMode::Write;
        io.page_id = p.id;
        io.offset = w.offset;
        io.len = w.buf.len() as u32;
        io.buf = w.buf.as_mut_ptr();
        io.iov = ptr::null_mut();
        io.cb = Some(wbuf_done);
        let io = Box::into_raw(io);
        // SAFETY: a single IO, handed over; the buffer lives on the page until wbuf_done.
        unsafe { self.submit_to(&self.bg_thread, io) };
    }

    /// Queues a chain of reads on the IO thread with the shortest queue (C's
    /// extstore_submit).
    ///
    /// # Safety
    /// Every IO of the chain, and every buffer it names, stays valid until its callback ran.
    pub unsafe fn submit(&self, io: *mut ObjIo) {
        let mut pick = 0;
        let mut low = u32::MAX;
        for (i, t) in self.io_threads.iter().enumerate() {
            let d = lock(&t.q).depth;
            if d == 0 {
                pick = i;
                break;
            }
            if d < low {
                low = d;
                pick = i;
            }
        }
        if let Some(t) = self.io_threads.get(pick) {
            // SAFETY: per the contract.
            unsafe { self.submit_to(t, io) };
        }
    }

    /// # Safety
    /// As `submit`.
    unsafe fn submit_to(&self, t: &IoThread, io: *mut ObjIo) {
        let mut depth = 0;
        let mut tail = io;
        let mut cur = io;
        while !cur.is_null() {
            depth += 1;
            tail = cur;
            // SAFETY: the chain is the caller's, valid per the contract.
            cur = unsafe { (*cur).next };
        }
        let mut q = lock(&t.q);
        q.depth += depth;
        if q.head.is_null() {
            q.head = io;
        } else {
            // SAFETY: the queue's tail is a queued IO, valid until it is run.
            unsafe { (*q.tail).next = io };
        }
        q.tail = tail;
        let wake = q.sleeping;
        drop(q);
        if wake {
            t.cond.notify_one();
        }
    }

    /// Notes that `count` objects of `bytes` on a page are gone (C's extstore_delete); a page
    /// left empty is freed. False if the page changed since (nothing to do).
    pub fn delete(&self, page_id: u16, page_version: u64, count: u32, bytes: u32) -> bool {
        let Some(m) = self.pages.get(page_id as usize) else {
            return false;
        };
        let mut p = lock(m);
        if p.closed || u64::from(p.version) != page_version {
            return false;
        }
        p.bytes_used = p.bytes_used.saturating_sub(u64::from(bytes));
        p.obj_count = p.obj_count.saturating_sub(u64::from(count));
        {
            let mut st = lock(&self.stats);
            st.bytes_used = st.bytes_used.wrapping_sub(u64::from(bytes));
            st.objects_used = st.objects_used.wrapping_sub(u64::from(count));
        }
        if p.obj_count == 0 && p.refcount == 0 && !p.active {
            self.free_page(&mut p);
        }
        true
    }

    /// Whether the page still holds what was written at `page_version` (C's extstore_check).
    pub fn check(&self, page_id: u16, page_version: u64) -> bool {
        self.pages
            .get(page_id as usize)
            .is_some_and(|m| u64::from(lock(m).version) == page_version)
    }

    /// Compaction is done with a page (C's extstore_close_page).
    pub fn close_page(&self, page_id: u16, page_version: u64) {
        let Some(m) = self.pages.get(page_id as usize) else {
            return;
        };
        let mut p = lock(m);
        if !p.closed && !p.active && u64::from(p.version) == page_version {
            p.closed = true;
            if p.refcount == 0 {
                self.free_page(&mut p);
            }
        }
    }

    /// Drops a page with its objects to make room (C's extstore_evict_page).
    pub fn evict_page(&self, page_id: u16, page_version: u64) {
        let Some(m) = self.pages.get(page_id as usize) else {
            return;
        };
        let mut p = lock(m);
        if !p.closed && !p.active && u64::from(p.version) == page_version {
            p.closed = true;
            {
                let mut st = lock(&self.stats);
                st.page_evictions += 1;
                st.objects_evicted += p.obj_count;
                st.bytes_evicted += p.bytes_used;
            }
            if p.refcount == 0 {
                self.free_page(&mut p);
            }
        }
    }

    /// Returns a page to its free list (C's _free_page); the page is locked by the caller.
    fn free_page(&self, p: &mut Page) {
        {
            let mut st = lock(&self.stats);
            st.objects_used = st.objects_used.wrapping_sub(p.obj_count);
            st.bytes_used = st.bytes_used.wrapping_sub(p.bytes_used);
            st.page_reclaims += 1;
        }
        let mut sh = lock(&self.shared);
        if let Some(list) = sh.page_buckets.get_mut(p.bucket as usize) {
            if let Some(pos) = list.iter().position(|&id| id == p.id) {
                list.remove(pos);
            }
        }
        p.version = FREE_VERSION;
        p.obj_count = 0;
        p.bytes_used = 0;
        p.allocated = 0;
        p.written = 0;
        p.bucket = 0;
        p.active = false;
        p.closed = false;
        p.free = true;
        let fb = (p.free_bucket as usize).min(sh.free_page_buckets.len() - 1);
        sh.free_page_buckets[fb].push(p.id);
        sh.page_free += 1;
    }

    /// Stops the IO threads once their queues are empty (tests; the server exits instead).
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
        for t in self
            .io_threads
            .iter()
            .chain(std::iter::once(&self.bg_thread))
        {
            let _q = lock(&t.q);
            t.cond.notify_all();
        }
    }

    /// An IO thread (C's extstore_io_thread): takes up to io_depth IOs at a time so the
    /// picker keeps queues even, runs each and its callback.
    fn io_thread(&self, index: Option<usize>) {
        let me = match index {
            Some(i) => &self.io_threads[i],
            None => &self.bg_thread,
        };
        loop {
            let batch = {
                let mut q = lock(&me.q);
                while q.head.is_null() {
                    if self.stop.load(Relaxed) {
                        return;
                    }
                    q.sleeping = true;
                    q = me.cond.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.sleeping = false;
                }
                let head = q.head;
                let mut end = head;
                let mut n = 1;
                // SAFETY: queued IOs are valid until run.
                unsafe {
                    while n < self.io_depth && !(*end).next.is_null() {
                        end = (*end).next;
                        n += 1;
                    }
                    q.head = (*end).next;
                    (*end).next = ptr::null_mut();
                }
                if q.head.is_null() {
                    q.tail = ptr::null_mut();
                }
                q.depth -= n;
                head
            };
            let mut cur = batch;
            while !cur.is_null() {
                // SAFETY: an IO taken off the queue, ours until its callback.
                unsafe {
                    let next = (*cur).next;
                    self.run_io(cur);
                    cur = next;
                }
            }
        }
    }

    /// # Safety
    /// `io` is a queued IO taken off its queue.
    unsafe fn run_io(&self, io: *mut ObjIo) {
        // SAFETY: per the contract.
        let io_ref = unsafe { &mut *io };
        let Some(m) = self.pages.get(io_ref.page_id as usize) else {
            if let Some(cb) = io_ref.cb {
                cb(self, io, -2);
            }
            return;
        };
        let mut from_file = false;
        let ret: isize = match io_ref.mode {
            IoMode::Read => {
                let mut p = lock(m);
                if !p.free && !p.closed && p.version == io_ref.page_version {
                    let r = if p.active && io_ref.offset >= p.written {
                        // Not on disk yet: copy from the write buffer.
                        // SAFETY: the IO's buffers are valid (submit's contract).
                        unsafe { read_from_wbuf(&p, io_ref) }
                    } else {
                        p.refcount += 1;
                        from_file = true;
                        0
                    };
                    let mut st = lock(&self.stats);
                    st.bytes_read += u64::from(io_ref.len);
                    st.objects_read += 1;
                    r
                } else {
                    -2
                }
            }
            IoMode::Write => {
                let (file, base) = {
                    let p = lock(m);
                    (p.file, p.offset)
                };
                // SAFETY: a flush IO names its page's write buffer, which stays until
                // wbuf_done.
                let data = unsafe { std::slice::from_raw_parts(io_ref.buf, io_ref.len as usize) };
                match self.files[file].write_all_at(data, base + u64::from(io_ref.offset)) {
                    Ok(()) => io_ref.len as isize,
                    Err(_) => -1,
                }
            }
        };
        let ret = if from_file {
            let (file, base) = {
                let p = lock(m);
                (p.file, p.offset)
            };
            // SAFETY: the IO's buffers are valid (submit's contract).
            unsafe { self.read_file(file, base + u64::from(io_ref.offset), io_ref) }
        } else {
            ret
        };
        // The data is in the caller's buffers: the page need not stay pinned while the
        // callback runs (a caller that empties the page from it can free it at once).
        if from_file {
            lock(m).refcount -= 1;
        }
        if let Some(cb) = io_ref.cb {
            cb(self, io, ret);
        }
    }

    /// # Safety
    /// The IO's buffer or iovecs are valid for its length.
    unsafe fn read_file(&self, file: usize, at: u64, io: &ObjIo) -> isize {
        let fd = self.files[file].as_raw_fd();
        // SAFETY: per the contract; pread/preadv write only into the given buffers.
        let r = unsafe {
            if io.iov.is_null() {
                libc::pread(fd, io.buf.cast(), io.len as usize, at as libc::off_t)
            } else {
                libc::preadv(fd, io.iov, io.iovcnt as i32, at as libc::off_t)
            }
        };
        r as isize
    }
}

/// Copies a read out of the page's write buffer (C's _read_from_wbuf). -2 if the range is
/// not inside it.
///
/// # Safety
/// The IO's buffer or iovecs are valid for its length.
unsafe fn read_from_wbuf(p: &Page, io: &ObjIo) -> isize {
    let Some(w) = p.wbuf.as_ref() else {
        return -2;
    };
    let start = io.offset.wrapping_sub(w.offset) as usize;
    let len = io.len as usize;
    if io.offset < w.offset || start + len > w.buf.len() {
        return -2;
    }
    let src = &w.buf[start..start + len];
    // SAFETY: per the contract.
    unsafe {
        if io.iov.is_null() {
            ptr::copy_nonoverlapping(src.as_ptr(), io.buf, len);
        } else {
            let mut off = 0;
            for i in 0..io.iovcnt as usize {
                let v = &*io.iov.add(i);
                let n = v.iov_len.min(len - off);
                ptr::copy_nonoverlapping(src.as_ptr().add(off), v.iov_base.cast(), n);
                off += n;
            }
        }
    }
    len as isize
}

/// A write buffer is on disk (C's _wbuf_cb): the page moves its written mark on, takes the
/// buffer off (back to the spares) and stops being active once full.
fn wbuf_done(e: &Engine, io: *mut ObjIo, _ret: isize) {
    // SAFETY: flush IOs are boxed by submit_wbuf and come back here once.
    let io = unsafe { Box::from_raw(io) };
    let Some(m) = e.pages.get(io.page_id as usize) else {
        return;
    };
    let mut p = lock(m);
    let w = p.wbuf.take();
    if let Some(w) = &w {
        p.written += w.buf.len() as u32;
    }
    if u64::from(p.written) >= e.page_size {
        p.active = false;
    }
    let mut sh = lock(&e.shared);
    if let Some(w) = w {
        sh.wbuf_stack.push(w);
    }
    sh.io_stack.push(io);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB2: u32 = 2 * 1024 * 1024;

    fn engine(dir: &std::path::Path, pages: u32) -> Arc<Engine> {
        let files = vec![ConfFile {
            file: dir.join("ext").to_string_lossy().into_owned(),
            page_count: pages,
            total_size: u64::from(pages) * u64::from(MB2),
            free_bucket: 0,
        }];
        let cf = Conf {
            page_size: MB2,
            page_buckets: 2,
            wbuf_size: MB2,
            wbuf_count: 4,
            io_threadcount: 2,
            io_depth: 1,
        };
        init(&files, &cf).expect("engine")
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "extstore-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    type Done = (Mutex<Option<isize>>, Condvar);

    fn read_done(_e: &Engine, io: *mut ObjIo, ret: isize) {
        // SAFETY: `data` is a reference count of the caller's Arc, handed to this callback,
        // which owns it from here (the caller may return as soon as the result is set).
        let done = unsafe { Arc::from_raw((*io).data as *const Done) };
        *lock(&done.0) = Some(ret);
        done.1.notify_all();
    }

    fn read(e: &Engine, page_id: u16, version: u32, offset: u32, len: u32) -> (isize, Vec<u8>) {
        let done: Arc<Done> = Arc::new((Mutex::new(None), Condvar::new()));
        let mut buf = vec![0u8; len as usize];
        let mut io = ObjIo {
            data: Arc::into_raw(Arc::clone(&done)) as usize,
            buf: buf.as_mut_ptr(),
            len,
            offset,
            page_id,
            page_version: version,
            mode: IoMode::Read,
            cb: Some(read_done),
            ..ObjIo::default()
        };
        // SAFETY: `io` and `buf` live until the callback has set the result below, after
        // which the IO thread touches neither.
        unsafe { e.submit(&mut io) };
        let mut r = lock(&done.0);
        while r.is_none() {
            r = done.1.wait(r).unwrap_or_else(|e| e.into_inner());
        }
        (r.unwrap_or(-99), buf)
    }

    fn write(e: &Engine, bucket: u32, obj: &[u8]) -> Option<(u16, u32, u32)> {
        let mut io = ObjIo {
            len: obj.len() as u32,
            ..ObjIo::default()
        };
        for _ in 0..1000 {
            if e.write(bucket, 0, &mut io, |b| b.copy_from_slice(obj)) {
                return Some((io.page_id, io.page_version, io.offset));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        None
    }

    #[test]
    fn init_checks_the_configuration_as_c_does() {
        let d = tempdir();
        let f = vec![ConfFile {
            file: d.join("x").to_string_lossy().into_owned(),
            page_count: 2,
            total_size: 0,
            free_bucket: 0,
        }];
        let good = Conf {
            page_size: MB2,
            page_buckets: 1,
            wbuf_size: MB2,
            wbuf_count: 2,
            io_threadcount: 1,
            io_depth: 1,
        };
        let bad = |c: Conf| init(&f, &c).err();
        assert_eq!(
            bad(Conf {
                wbuf_size: 3 * MB2,
                ..good
            }),
            Some(InitError::BadWbufSize)
        );
        assert_eq!(
            bad(Conf {
                page_buckets: 3,
                ..good
            }),
            Some(InitError::NeedMoreWbuf)
        );
        assert_eq!(
            bad(Conf {
                page_buckets: 0,
                ..good
            }),
            Some(InitError::NeedMoreBuckets)
        );
        assert_eq!(
            bad(Conf {
                page_size: 1 << 20,
                wbuf_size: 1 << 20,
                ..good
            }),
            Some(InitError::PageWbufAlignment)
        );
        // (The file lock keeps a second process off the file; within one process POSIX
        // locks do not conflict, so that is for a wire test.)
        let e = init(&f, &good).expect("good configuration");
        e.stop();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn objects_read_back_from_the_buffer_then_from_disk() {
        let d = tempdir();
        let e = engine(&d, 4);
        let obj = |i: u32| -> Vec<u8> { (0..1000u32).map(|j| ((i * 7 + j) % 251) as u8).collect() };
        let mut at = Vec::new();
        for i in 0..5000u32 {
            at.push(write(&e, 0, &obj(i)).expect("written"));
        }
        let st = e.stats();
        assert_eq!(st.objects_written, 5000);
        assert_eq!(st.bytes_written, 5_000_000);
        // 2 MB pages of 2 MB buffers: 2097 objects per page, the third page is still open.
        assert_eq!(st.pages_used, 3);
        for (i, &(page, version, offset)) in at.iter().enumerate() {
            let (ret, got) = read(&e, page, version, offset, 1000);
            assert_eq!(ret, 1000, "object {i}");
            assert_eq!(got, obj(i as u32), "object {i}");
        }
        assert_eq!(e.stats().objects_read, 5000);
        e.stop();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn deleting_every_object_frees_the_page_and_stale_reads_fail() {
        let d = tempdir();
        let e = engine(&d, 4);
        let mut first = Vec::new();
        // Fill one page and start the next, so the first is written out and inactive.
        for _ in 0..2200 {
            first.push(write(&e, 0, &[1u8; 1000]).expect("written"));
        }
        let (page, version, _) = first[0];
        let on_page: Vec<_> = first.iter().filter(|(p, _, _)| *p == page).collect();
        // Wait for the flush of the first page.
        for _ in 0..1000 {
            if !lock(&e.pages[page as usize]).active {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let before = e.stats();
        for _ in &on_page {
            assert!(e.delete(page, version.into(), 1, 1000));
        }
        let after = e.stats();
        assert_eq!(after.page_reclaims, before.page_reclaims + 1);
        assert_eq!(after.pages_free, before.pages_free + 1);
        assert!(!e.check(page, version.into()));
        assert!(
            !e.delete(page, version.into(), 1, 1000),
            "a freed page refuses deletes"
        );
        let (ret, _) = read(&e, page, version, 0, 1000);
        assert_eq!(ret, -2, "a read of a freed page fails");
        e.stop();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_full_store_evicts_its_oldest_page() {
        let d = tempdir();
        let e = engine(&d, 3);
        let mut written = Vec::new();
        for _ in 0..(2097 * 6) {
            if let Some(w) = write(&e, 0, &[9u8; 1000]) {
                written.push(w);
            }
        }
        let st = e.stats();
        assert!(st.page_evictions >= 1, "{st:?}");
        assert!(st.objects_evicted >= 2097, "{st:?}");
        // The oldest objects are gone; the newest read back.
        let (p0, v0, o0) = written[0];
        assert_eq!(read(&e, p0, v0, o0, 1000).0, -2);
        let &(p, v, o) = written.last().expect("some");
        assert_eq!(read(&e, p, v, o, 1000).0, 1000);
        e.stop();
        let _ = std::fs::remove_dir_all(&d);
    }
}
