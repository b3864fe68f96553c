//! The response object a command writes its reply into (C's mc_resp): a line buffer, an
//! item whose value is sent from item memory, an owned body and a static tail. The connection
//! queues them, takes them from its worker's caches and writes them out with one sendmsg.

use crate::items::store::ItemRef;
use crate::sys;

/// Size of a pooled read buffer (C's READ_BUFFER_SIZE).
pub const READ_BUFFER_SIZE: usize = 16384;
/// Size of a response's line buffer (C's WRITE_BUFFER_SIZE).
pub const WRITE_BUFFER_SIZE: usize = 1024;

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
    // UDP: where the reply goes and how it is split into datagrams.
    pub(crate) request_id: u16,
    pub(crate) request_addr: sys::SockAddr,
    /// The bundle and slot this object belongs to (see `Bundle`).
    pub(crate) home: (u32, u8),
    pub(crate) udp_sequence: u16,
    pub(crate) udp_total: u16,
}

impl Resp {
    /// An empty response object.
    pub fn new() -> Resp {
        Resp {
            wbuf: Vec::with_capacity(WRITE_BUFFER_SIZE),
            item: None,
            item_trim: 0,
            tail: b"",
            body: Vec::new(),
            sent: 0,
            skip: false,
            mset_res: false,
            set_stale: false,
            request_id: 0,
            request_addr: sys::SockAddr::empty(),
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
        self.parts().map(|p| p.len()).sum()
    }
}

impl Default for Resp {
    fn default() -> Resp {
        Resp::new()
    }
}
