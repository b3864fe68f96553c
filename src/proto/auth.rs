//! Ascii authentication (`-Y`; C's try_read_command_asciiauth): until a connection has
//! authenticated, the only request it may send is `set <any key> <any> <any> <N>\r\n` followed
//! by an N-byte value `user password\r\n`. Anything else gets an error and the connection
//! stays unauthenticated; input that cannot be a request at all closes it.
//!
//! The connection frames the bytes (it owns the read buffer); this module decides what they
//! mean and writes the reply.

use super::session::Session;
use crate::authfile;
use crate::stats;

/// The largest token value accepted (C's MAX_AUTH_REQ_LEN).
pub const MAX_AUTH_REQ_LEN: u32 = 16384;
/// Shorter request lines cannot be an auth request (C's MIN_AUTH_REQ_LEN).
const MIN_AUTH_REQ_LEN: usize = 6;
/// Unparsed bytes allowed without a newline before the client is taken for junk.
const MAX_LINE_WAIT: usize = 2048;
/// Tokens C's tokenizer finds at most (MCMC_PARSER_MAX_TOKENS less its end cap).
const MAX_TOKENS: usize = 23;

/// What the unparsed bytes of an unauthenticated connection hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLine {
    /// Not a whole line yet.
    NeedMore,
    /// Junk: close the connection.
    Close,
    /// A line of `consumed` bytes to answer with this error.
    Refuse {
        consumed: usize,
        reply: &'static str,
    },
    /// A `set` line of `consumed` bytes announcing a token of `size` bytes plus "\r\n".
    Token { consumed: usize, size: u32 },
}

/// Reads the request line at the start of `window` (the connection's unparsed bytes).
pub fn parse_line(window: &[u8]) -> AuthLine {
    if window.len() < 3 {
        return AuthLine::NeedMore;
    }
    let Some(el) = window.iter().position(|&b| b == b'\n') else {
        if window.len() > MAX_LINE_WAIT {
            return AuthLine::Close;
        }
        return AuthLine::NeedMore;
    };
    if el < MIN_AUTH_REQ_LEN {
        return AuthLine::Close;
    }
    let consumed = el + 1;
    let tokens = tokenize(&window[..el]);
    let line = &window[..el];
    let size = if tokens.len() >= 5 && line.starts_with(b"set") {
        let (s, e) = tokens[4];
        to_u32(&line[s..e])
    } else {
        None
    };
    match size {
        None => AuthLine::Refuse {
            consumed,
            reply: "CLIENT_ERROR unauthenticated",
        },
        Some(size) if size > MAX_AUTH_REQ_LEN => AuthLine::Refuse {
            consumed,
            reply: "CLIENT_ERROR auth token too long",
        },
        Some(size) => AuthLine::Token { consumed, size },
    }
}

/// Space-separated tokens of a request line given without its `\n`, as C's mcmc tokenizer
/// cuts them when handed that length: the line's last byte is taken for the `\r` and left out
/// (so a line that ends without `\r` loses its last character), or the last two when the
/// next-to-last is `\r`.
fn tokenize(line: &[u8]) -> Vec<(usize, usize)> {
    let len = line.len();
    let end = if len >= 2 && line[len - 2] == b'\r' {
        len - 2
    } else {
        len.saturating_sub(1)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < end && out.len() < MAX_TOKENS {
        if line[i] == b' ' {
            i += 1;
            continue;
        }
        let s = i;
        while i < end && line[i] != b' ' {
            i += 1;
        }
        out.push((s, i));
    }
    out
}

/// A decimal u32 of at most 11 digits, nothing else (C's mcmc_toktou32).
fn to_u32(t: &[u8]) -> Option<u32> {
    if t.len() > 11 {
        return None;
    }
    let mut sum: u32 = 0;
    for &c in t {
        if !c.is_ascii_digit() {
            return None;
        }
        sum = sum.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(sum)
}

/// Checks a token (`size + 2` bytes, its "\r\n" included) against the auth file and replies.
/// True when the connection is now authenticated.
pub fn process_token(s: &mut dyn Session, token: &[u8]) -> bool {
    let Some(body) = token.strip_suffix(b"\r\n") else {
        s.out_string("CLIENT_ERROR bad command line termination");
        return false;
    };
    // The space is looked for in the whole token; it cannot be in the "\r\n".
    let Some(mid) = token.iter().position(|&b| b == b' ') else {
        s.out_string("CLIENT_ERROR bad authentication token format");
        return false;
    };
    let ok = authfile::check(&body[..mid], &body[mid + 1..]);
    let c = s.counters();
    stats::bump(&c.thread.auth_cmds, 1);
    if ok {
        s.out_string("STORED");
    } else {
        stats::bump(&c.thread.auth_errors, 1);
        s.out_string("CLIENT_ERROR authentication failure");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(consumed: usize, reply: &'static str) -> AuthLine {
        AuthLine::Refuse { consumed, reply }
    }

    #[test]
    fn a_set_line_announces_the_token() {
        assert_eq!(
            parse_line(b"set foo 0 0 10\r\nuser pass\r\n"),
            AuthLine::Token {
                consumed: 16,
                size: 10
            }
        );
        // Key, flags and TTL are not looked at; "set" is only a prefix.
        assert_eq!(
            parse_line(b"setx  k  a  b  7 extra\r\n"),
            AuthLine::Token {
                consumed: 24,
                size: 7
            }
        );
    }

    #[test]
    fn waits_for_a_line_and_drops_junk() {
        assert_eq!(parse_line(b"se"), AuthLine::NeedMore);
        assert_eq!(parse_line(b"set foo 0 0"), AuthLine::NeedMore);
        assert_eq!(parse_line(&[b'x'; 2049]), AuthLine::Close);
        assert_eq!(parse_line(&[b'x'; 2048]), AuthLine::NeedMore);
        assert_eq!(parse_line(b"get\r\n"), AuthLine::Close);
        assert_eq!(
            parse_line(b"stats\r\n"),
            refuse(7, "CLIENT_ERROR unauthenticated")
        );
    }

    #[test]
    fn other_lines_are_refused() {
        let u = "CLIENT_ERROR unauthenticated";
        assert_eq!(parse_line(b"get foo bar baz\r\n"), refuse(17, u));
        assert_eq!(parse_line(b"set foo 0 0\r\n"), refuse(13, u));
        assert_eq!(parse_line(b"set foo 0 0 x\r\n"), refuse(15, u));
        assert_eq!(parse_line(b"set foo 0 0 -1\r\n"), refuse(16, u));
        assert_eq!(parse_line(b"set foo 0 0 4294967296\r\n"), refuse(24, u));
        assert_eq!(
            parse_line(b"set foo 0 0 16385\r\n"),
            refuse(19, "CLIENT_ERROR auth token too long")
        );
    }

    #[test]
    fn without_cr_the_last_character_is_lost() {
        assert_eq!(
            parse_line(b"set foo 0 0 10\n"),
            AuthLine::Token {
                consumed: 15,
                size: 1
            }
        );
        assert_eq!(
            parse_line(b"set foo 0 0 5\n"),
            refuse(14, "CLIENT_ERROR unauthenticated")
        );
    }
}
