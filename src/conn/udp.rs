//! UDP framing (the UDP parts of C's memcached.c): each request datagram starts with an
//! 8-byte frame header (request id, sequence number, datagram count, reserved) that
//! `try_read_udp` strips, and each reply datagram gets one in front from `transmit_udp`.

use super::resp::{resp_give, Resp};
use super::table::Peer;
use super::{Conn, ReadResult, TransmitResult};
use crate::stats;
use crate::sys;
use std::io::IoSlice;

/// A UDP conn's fixed read buffer (C's UDP_READ_BUFFER_SIZE).
pub(super) const UDP_READ_BUFFER_SIZE: usize = 65536;
/// Largest datagram we send, header included (C's UDP_MAX_PAYLOAD_SIZE).
const UDP_MAX_PAYLOAD_SIZE: usize = 1400;
const UDP_HEADER_SIZE: usize = 8;
/// Reply bytes per datagram.
const UDP_DATA_SIZE: usize = UDP_MAX_PAYLOAD_SIZE - UDP_HEADER_SIZE;

impl Conn {
    /// Reads one datagram and strips its frame header (C's try_read_udp).
    pub(super) fn try_read_udp(&mut self) -> ReadResult {
        match self.rbuf.recvfrom(self.fd) {
            Ok((n, from)) if n > UDP_HEADER_SIZE => {
                stats::bump(&self.worker.stats.bytes_read, n as u64);
                if let Some(a) = self.udp_addr.as_deref_mut() {
                    *a = from;
                }
                *self.slot.peer.lock().unwrap_or_else(|e| e.into_inner()) = Peer::new(&from);
                let b = &self.rbuf[0..UDP_HEADER_SIZE];
                self.request_id = u16::from_be_bytes([b[0], b[1]]);
                // Multi-datagram requests are not supported: drop them.
                if b[4] != 0 || b[5] != 1 {
                    return ReadResult::NoDataReceived;
                }
                self.rbuf.compact(UDP_HEADER_SIZE, n - UDP_HEADER_SIZE);
                self.rbytes = n - UDP_HEADER_SIZE;
                self.rcurr = 0;
                ReadResult::DataReceived
            }
            _ => ReadResult::NoDataReceived,
        }
    }

    /// Sends one datagram of the oldest response (C's transmit_udp).
    pub(super) fn transmit_udp(&mut self) -> TransmitResult {
        let Some(r) = self.resps.front_mut() else {
            return TransmitResult::Complete;
        };
        if r.skip {
            if let Some(r) = self.resps.pop_front() {
                resp_give(r, &mut self.recache_counter);
            }
            return TransmitResult::Incomplete;
        }
        if r.udp_total == 0 {
            let left = r.total() - r.sent;
            r.udp_total = left.div_ceil(UDP_DATA_SIZE).min(u16::MAX as usize) as u16;
        }
        let mut hdr = [0u8; UDP_HEADER_SIZE];
        hdr[0..2].copy_from_slice(&r.request_id.to_be_bytes());
        hdr[2..4].copy_from_slice(&r.udp_sequence.to_be_bytes());
        hdr[4..6].copy_from_slice(&r.udp_total.to_be_bytes());
        r.udp_sequence = r.udp_sequence.wrapping_add(1);
        let r: &Resp = r;
        let mut iovs: [IoSlice<'_>; 8] = [IoSlice::new(&[]); 8];
        iovs[0] = IoSlice::new(&hdr);
        let mut n = 1;
        let mut room = UDP_DATA_SIZE;
        let mut skip = r.sent;
        for part in r.parts() {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let take = (part.len() - skip).min(room);
            iovs[n] = IoSlice::new(&part[skip..skip + take]);
            n += 1;
            room -= take;
            skip = 0;
            // Eight is enough: one datagram spans at most the line, two value pieces (only
            // the last chunk of a value is short), the body and the tail.
            if room == 0 || n == iovs.len() {
                break;
            }
        }
        let to = r
            .request_addr
            .map_or_else(sys::SockAddr::empty, |a| sys::SockAddr::from_std(&a));
        let res = sys::sendmsg_to(self.fd, &iovs[..n], &to);
        self.transmit_done(res, UDP_HEADER_SIZE)
    }
}
