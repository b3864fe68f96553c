//! Wire protocols. `tokenizer` splits a request line the way memcached 1.6.45's parser does;
//! `text` runs ASCII commands against the server; `binary` the binary protocol; `meta` the meta commands (mg, ms, md, ma,
//! mn, me).

pub mod auth;
pub mod binary;
pub mod mem_session;
pub mod meta;
pub mod response;
pub mod sasl;
pub mod session;
pub mod text;
pub mod tokenizer;

/// Appends `v` in decimal: replies on the hot path use this rather than `write!`, whose
/// formatting machinery costs several times more per number.
#[inline]
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    // Flags and short lengths are mostly one or two digits: pushed as a fixed-size copy, not
    // through a variable-length memcpy.
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
        return;
    }
    let mut digits = [0u8; 20];
    out.extend_from_slice(crate::settings::cnum::u64_decimal(v, &mut digits));
}

/// Sends a header item's value from flash (C's storage_get_item as the get handlers call
/// it): the current response waits for the read. Err gives the item back when no memory
/// could be found to read the value into.
pub(crate) fn attach_flash(
    c: &mut dyn session::Session,
    it: crate::items::store::ItemRef,
    reply: response::FlashReply,
) -> Result<(), crate::items::store::ItemRef> {
    let f = crate::storage::read::FlashRead::start(it, c.counters().thread)?;
    if let Some(r) = c.resp() {
        r.flash = Some(f);
        r.flash_wait = true;
        r.flash_reply = reply;
        c.suspend();
    }
    Ok(())
}
