//! The response object a command writes its reply into (C's mc_resp): a line buffer, an
//! item whose value is sent from item memory, an owned body and a static tail. The connection
//! queues them, takes them from its worker's caches and writes them out with one sendmsg.

use crate::items::store::ItemRef;
use crate::storage::read::FlashRead;
use std::io::IoSlice;
use std::mem::MaybeUninit;

/// How a reply whose value comes from flash turns into a miss when the value cannot be read
/// (C's _storage_get_item_cb rewrites per protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashReply {
    /// `get`: the VALUE line goes, the rest (a trailing "END") stays.
    Text,
    /// `mg ... v`: the reply becomes "EN".
    Meta,
    /// A binary get: status "not found" with no extras or value (the key stays for GETK);
    /// quiet gets send nothing.
    Binary { quiet: bool },
}

/// Size of a pooled read buffer (C's READ_BUFFER_SIZE).
pub const READ_BUFFER_SIZE: usize = 16384;
/// Size of a response's line buffer (C's WRITE_BUFFER_SIZE): the longest line `out_string`
/// sends.
pub const WRITE_BUFFER_SIZE: usize = 1024;
/// What a response's line buffer is made with. Every reply line but the longest error
/// strings fits (a VALUE line with a 250-byte key and a CAS is ~300 bytes, a binary header
/// with its key 278): half of C's inline buffer, so a bundle of objects takes ~9 KiB of
/// resident memory rather than ~16. A longer line grows the buffer once; it keeps its size.
const WBUF_INITIAL: usize = 512;

/// One queued reply (C's mc_resp). It is written as up to four parts, in this order: the line
/// buffer, the value of a held item (pointing into item memory; the reference is released when
/// the reply is done), an owned body, and a static tail such as "END\r\n".
pub struct Resp {
    /// Reply line(s) built in place; at most WRITE_BUFFER_SIZE for out_string replies.
    pub wbuf: Vec<u8>,
    /// An item whose value is sent after `wbuf`.
    pub item: Option<ItemRef>,
    /// Bytes of the value's end not sent (binary replies leave out the "\r\n").
    pub item_trim: usize,
    /// Static bytes sent last.
    pub tail: &'static [u8],
    /// A large body written after `wbuf` (C's write_and_free), e.g. a stats dump.
    pub body: Vec<u8>,
    /// Bytes of this response already written.
    pub(crate) sent: usize,
    /// Nothing of this response is sent (noreply).
    pub skip: bool,
    /// A meta set waits for its value: `wbuf` holds the return flags it asked for.
    pub mset_res: bool,
    /// A meta set with `I`: a lower CAS may store the value as stale.
    pub set_stale: bool,
    /// The value is being read from flash (C's resp->io_pending); `item` gets it.
    pub flash: Option<Box<FlashRead>>,
    /// The read has not come back yet (C's resp->suspended).
    pub flash_wait: bool,
    pub flash_reply: FlashReply,
    // UDP: where the reply goes and how it is split into datagrams.
    pub(crate) request_id: u16,
    // (std's form, 32 bytes where a sockaddr_storage takes 128: every response object
    // carries it, and UDP peers are always INET or INET6.)
    pub(crate) request_addr: Option<std::net::SocketAddr>,
    /// The bundle and slot this object belongs to (see `Bundle`).
    pub(crate) home: (u32, u8),
    pub(crate) udp_sequence: u16,
    pub(crate) udp_total: u16,
}

impl Resp {
    /// An empty response object.
    pub fn new() -> Resp {
        Resp {
            wbuf: Vec::with_capacity(WBUF_INITIAL),
            item: None,
            item_trim: 0,
            tail: b"",
            body: Vec::new(),
            sent: 0,
            skip: false,
            mset_res: false,
            set_stale: false,
            flash: None,
            flash_wait: false,
            flash_reply: FlashReply::Text,
            request_id: 0,
            request_addr: None,
            udp_sequence: 0,
            udp_total: 0,
            home: (0, 0),
        }
    }

    /// Empties it for reuse, releasing a held item.
    pub fn reset(&mut self) {
        self.wbuf.clear();
        self.item = None;
        self.item_trim = 0;
        self.tail = b"";
        if self.body.capacity() > READ_BUFFER_SIZE {
            self.body = Vec::new();
        } else {
            self.body.clear();
        }
        self.sent = 0;
        self.skip = false;
        self.mset_res = false;
        self.set_stale = false;
        self.flash = None;
        self.flash_wait = false;
        self.udp_sequence = 0;
        self.udp_total = 0;
    }

    /// The byte ranges to send, in order: line buffer, the item's value (one piece per chunk
    /// of a chunked item), body, tail.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut left = self
            .item
            .as_ref()
            .map_or(0, |it| it.value_len().saturating_sub(self.item_trim));
        let value = self.item.as_ref().map(|it| it.segments());
        let value = value.into_iter().flatten().map(move |seg| {
            let n = seg.len().min(left);
            left -= n;
            &seg[..n]
        });
        std::iter::once(&self.wbuf[..])
            .chain(value)
            .chain([&self.body[..], self.tail])
    }

    /// Bytes it sends.
    pub fn total(&self) -> usize {
        let value = match &self.item {
            None => 0,
            Some(it) => match it.contiguous() {
                Some(v) => v.len().saturating_sub(self.item_trim),
                None => return self.parts().map(|p| p.len()).sum(),
            },
        };
        self.wbuf.len() + value + self.body.len() + self.tail.len()
    }

    /// Appends what is not sent yet (past `sent`) to `iovs`, from entry `n` on, as `parts`
    /// gives it but without its iterator chain (this runs for every reply). Returns the new
    /// count of entries and whether everything fitted.
    #[inline]
    pub fn push_unsent<'a>(
        &'a self,
        iovs: &mut [MaybeUninit<IoSlice<'a>>],
        mut n: usize,
    ) -> (usize, bool) {
        let mut skip = self.sent;
        let mut push = |part: &'a [u8], n: &mut usize| -> bool {
            if skip >= part.len() {
                skip -= part.len();
                return true;
            }
            let Some(slot) = iovs.get_mut(*n) else {
                return false;
            };
            slot.write(IoSlice::new(&part[skip..]));
            skip = 0;
            *n += 1;
            true
        };
        if !push(&self.wbuf, &mut n) {
            return (n, false);
        }
        if let Some(it) = &self.item {
            match it.contiguous() {
                Some(v) => {
                    let len = v.len().saturating_sub(self.item_trim);
                    if !push(&v[..len], &mut n) {
                        return (n, false);
                    }
                }
                None => {
                    let mut left = it.value_len().saturating_sub(self.item_trim);
                    for seg in it.segments() {
                        let k = seg.len().min(left);
                        left -= k;
                        if !push(&seg[..k], &mut n) {
                            return (n, false);
                        }
                    }
                }
            }
        }
        let done = push(&self.body, &mut n) && push(self.tail, &mut n);
        (n, done)
    }
}

impl Resp {
    /// The value could not be read from flash: answer as C does for this protocol.
    pub fn flash_miss(&mut self) {
        self.item = None;
        match self.flash_reply {
            FlashReply::Text => self.wbuf.clear(),
            FlashReply::Meta => {
                self.wbuf.clear();
                self.wbuf.extend_from_slice(b"EN\r\n");
                self.body.clear();
                self.tail = b"";
            }
            FlashReply::Binary { quiet } => {
                if quiet {
                    self.skip = true;
                    return;
                }
                if self.wbuf.len() >= 28 {
                    // Extras (the 4-byte flags) go; the body is the key alone, if any.
                    let keylen = u16::from_be_bytes([self.wbuf[2], self.wbuf[3]]);
                    self.wbuf[4] = 0;
                    self.wbuf[6..8].copy_from_slice(&1u16.to_be_bytes());
                    self.wbuf[8..12].copy_from_slice(&u32::from(keylen).to_be_bytes());
                    self.wbuf.drain(24..28);
                }
            }
        }
    }
}

impl Default for Resp {
    fn default() -> Resp {
        Resp::new()
    }
}
