//! Request-line tokenizer and command classifier, matching memcached 1.6.45's request parser:
//! tokens are separated by spaces only, at most 23 are indexed (the rest of the line is left to
//! the command), and meta commands record which flag letters appear after the key.
//!
//! Pure functions over bytes: no server state, so they are unit-tested on byte strings.

/// Most token offsets kept (one slot is the end cap).
pub const MAX_TOKENS: usize = 24;
/// Lines longer than this are only tokenized up to it (offsets are 16-bit).
const TOKENIZER_MAXLEN: usize = u16::MAX as usize - 1;

/// Token offsets into one request line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens {
    pub ntokens: usize,
    /// Token index from which meta flags are collected.
    pub mstart: usize,
    offsets: [u16; MAX_TOKENS],
    /// Bit (c - 'A') set for each flag token starting with letter c.
    pub metaflags: u64,
}

impl Tokens {
    /// Splits `line` (which ends in "\n" or "\r\n"). Tokens from index `mstart` on are meta
    /// flags: they must start with a letter or digit, else tokenizing fails (Err) and no tokens
    /// are recorded.
    pub fn tokenize(line: &[u8], mstart: usize) -> Result<Tokens, Tokens> {
        let mut t = Tokens::default();
        if t.tokenize_into(line, mstart) {
            Ok(t)
        } else {
            Err(t)
        }
    }

    /// `tokenize` into this value, which must be `Tokens::default()` (requests are parsed
    /// in place: a `Tokens` is too big to pass around by value on every request). False
    /// where `tokenize` gives Err; the tokens are then empty.
    pub fn tokenize_into(&mut self, line: &[u8], mstart: usize) -> bool {
        let t = self;
        t.mstart = mstart;
        let max = MAX_TOKENS - 1;
        let len = line.len().min(TOKENIZER_MAXLEN);
        if len < 2 {
            return true;
        }
        let end = if line[len - 2] == b'\r' {
            len - 2
        } else {
            len - 1
        };
        let body = &line[..end];
        let mut pos = 0usize;
        let mut cur = 0usize;
        // Tokens are the runs of non-space bytes; the end cap is where the last indexed
        // token ends (the line's end when fewer than `max` tokens were found).
        let cap = loop {
            // The line ending ('\r' or '\n' at `end`) is never a space: it stops this.
            while line.get(pos) == Some(&b' ') {
                pos += 1;
            }
            if pos >= end {
                break end;
            }
            t.offsets[cur] = pos as u16;
            if cur >= mstart {
                let c = body[pos];
                if c > 64 && c < 123 {
                    t.metaflags |= 1u64 << (c - 65);
                } else if !c.is_ascii_digit() {
                    *t = Tokens {
                        mstart,
                        ..Tokens::default()
                    };
                    return false;
                }
            }
            cur += 1;
            // Flag tokens are mostly one letter: look at the next byte before a word scan.
            let tok_end = if pos + 1 >= end || body[pos + 1] == b' ' {
                pos + 1
            } else {
                find_space(body, pos + 2)
            };
            if cur == max || tok_end == end {
                break tok_end;
            }
            pos = tok_end + 1;
        };
        t.offsets[cur] = cap as u16;
        t.ntokens = cur;
        true
    }

    /// The tokens of a line that holds exactly a command (ending at `cmd_end`) and one more
    /// token, as `tokenize` would record them, found with one scan of that token; None for
    /// any other line. `end` is where the line ending starts. Single-key gets are most of a
    /// cache's traffic: they skip the general loop.
    pub fn command_and_key(line: &[u8], cmd_end: usize, end: usize) -> Option<Tokens> {
        let mut t = Tokens::default();
        t.command_and_key_into(line, cmd_end, end).then_some(t)
    }

    /// `command_and_key` into this value, which must be `Tokens::default()`; false (and the
    /// value unchanged) for any other line.
    pub fn command_and_key_into(&mut self, line: &[u8], cmd_end: usize, end: usize) -> bool {
        if line.len() > TOKENIZER_MAXLEN || end > line.len() {
            return false;
        }
        let body = &line[..end];
        let mut p = cmd_end;
        while p < end && body[p] == b' ' {
            p += 1;
        }
        if p >= end {
            return false;
        }
        let key_end = find_space(body, p + 1);
        if body[key_end..].iter().any(|&b| b != b' ') {
            return false;
        }
        self.ntokens = 2;
        self.mstart = 255;
        self.offsets[1] = p as u16;
        self.offsets[2] = end as u16;
        true
    }

    /// Token `idx` of `line`, or None past the last token.
    #[inline]
    pub fn get<'a>(&self, line: &'a [u8], idx: usize) -> Option<&'a [u8]> {
        if idx >= self.ntokens {
            return None;
        }
        let s = *self.offsets.get(idx)? as usize;
        let e = *self.offsets.get(idx + 1)? as usize;
        // A token runs up to the next one's start, less the spaces between them.
        let tok = line.get(s..e)?;
        let len = tok.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        Some(&tok[..len])
    }

    /// Where token `idx` starts in the line (the end cap for idx == ntokens).
    #[inline]
    pub fn offset(&self, idx: usize) -> usize {
        self.offsets[idx.min(self.ntokens)] as usize
    }

    /// Where the text after the indexed tokens starts (the end cap).
    pub fn end_offset(&self) -> usize {
        self.offsets[self.ntokens] as usize
    }

    /// Token `idx` (never the command, index 0) as a u32, with the parser's rules: digits only,
    /// at most 11 characters, no overflow.
    pub fn get_u32(&self, line: &[u8], idx: usize) -> Option<u32> {
        if idx == 0 {
            return None;
        }
        tok_to_u32(self.get(line, idx)?)
    }

    /// Token `idx` as an i32 (optional leading '-').
    pub fn get_i32(&self, line: &[u8], idx: usize) -> Option<i32> {
        if idx == 0 {
            return None;
        }
        tok_to_i32(self.get(line, idx)?)
    }
}

/// Index of the first space in `b` at or after `from`, or `b.len()`.
#[inline]
fn find_space(b: &[u8], from: usize) -> usize {
    find_byte(b, from, b' ')
}

pub use crate::sys::find_byte;

/// The key a line looks up first, if it is a fetch ("get", "gets" or "mg"), for prefetching
/// the lookup while an earlier line runs (see `items::lookahead`). A hint, not a parse: the
/// line is parsed properly when its turn comes, and a wrong key only wastes a prefetch. So a
/// get line is taken as one key to the line's end without looking for the spaces between
/// keys (a multiget's later keys are prefetched as its own lookups run); only an mg line,
/// whose flags follow the key, is searched for its end.
#[inline(always)]
pub fn lookup_key(line: &[u8]) -> Option<&[u8]> {
    let (skip, whole) = match line {
        [b'g', b'e', b't', b' ', ..] => (4, true),
        [b'g', b'e', b't', b's', b' ', ..] => (5, true),
        [b'm', b'g', b' ', ..] => (3, false),
        _ => return None,
    };
    let mut end = line.len();
    if line[end - 1] == b'\n' {
        end -= 1;
        if line[end - 1] == b'\r' {
            end -= 1;
        }
    }
    let mut start = skip;
    while start < end && line[start] == b' ' {
        start += 1;
    }
    if start >= end || end - start > 250 {
        return None;
    }
    if whole {
        return Some(&line[start..end]);
    }
    Some(&line[start..find_byte(&line[..end], start + 1, b' ')])
}

/// Digits-only conversion of at most `max_len` characters (the parser's rules: no sign, no
/// spaces, no overflow).
fn tok_to_unsigned(t: &[u8], max_len: usize) -> Option<u64> {
    if t.len() > max_len {
        return None;
    }
    t.iter().try_fold(0u64, |sum, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        sum.checked_mul(10)?.checked_add((c - b'0') as u64)
    })
}

/// Conversion with an optional leading '-', at most `max_len` characters, no overflow.
fn tok_to_signed(t: &[u8], max_len: usize) -> Option<i64> {
    if t.len() > max_len {
        return None;
    }
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    digits.iter().try_fold(0i64, |sum, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        let sum = sum.checked_mul(10)?;
        if neg {
            sum.checked_sub(d)
        } else {
            sum.checked_add(d)
        }
    })
}

/// Digits-only u32 of at most 11 characters.
pub fn tok_to_u32(t: &[u8]) -> Option<u32> {
    tok_to_unsigned(t, 11).and_then(|v| u32::try_from(v).ok())
}

/// Digits-only u64 of at most 22 characters.
pub fn tok_to_u64(t: &[u8]) -> Option<u64> {
    tok_to_unsigned(t, 22)
}

/// i32 of at most 11 characters with an optional leading '-'.
pub fn tok_to_i32(t: &[u8]) -> Option<i32> {
    tok_to_signed(t, 11).and_then(|v| i32::try_from(v).ok())
}

/// i64 of at most 22 characters with an optional leading '-'.
pub fn tok_to_i64(t: &[u8]) -> Option<i64> {
    tok_to_signed(t, 22)
}

/// The commands the parser recognises by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Mg,
    Ms,
    Md,
    Mn,
    Ma,
    Me,
    Get,
    Gat,
    Set,
    Add,
    Cas,
    Gets,
    Incr,
    Decr,
    Gats,
    Quit,
    Touch,
    Stats,
    Watch,
    Delete,
    Append,
    Replace,
    Prepend,
    Version,
}

/// What `parse_request` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Ok,
    BadFormat,
    NotFound,
}

/// A classified request line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request {
    pub command: Option<Command>,
    pub tokens: Tokens,
    /// Index of the key token.
    pub keytoken: usize,
    /// Value length including "\r\n" for storage commands.
    pub vlen: usize,
    pub noreply: bool,
}

fn noreply_of(line: &[u8], t: &Tokens) -> bool {
    t.ntokens > 0 && t.get(line, t.ntokens - 1) == Some(b"noreply")
}

/// Classifies and tokenizes one request line (including its "\n"), as C's process_request.
pub fn parse_request(line: &[u8]) -> (Parsed, Request) {
    let mut r = Request::default();
    let parsed = parse_request_into(line, &mut r);
    (parsed, r)
}

/// `parse_request` into `r`, which must be `Request::default()`: the server parses every
/// request in place rather than move the request (with its token table) by value.
pub fn parse_request_into(line: &[u8], r: &mut Request) -> Parsed {
    let cmdlen = line.len();
    if cmdlen < 4 {
        return Parsed::BadFormat;
    }
    let endlen = if line[cmdlen - 2] == b'\r' {
        cmdlen - 2
    } else {
        cmdlen - 1
    };
    let cl = line[..endlen]
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(endlen);
    let cm = &line[..cl];
    // With no meta flags to check, tokenizing cannot fail.
    let generic = |t: &mut Tokens| {
        t.tokenize_into(line, 255);
    };

    // How each command's line is tokenized and checked (C's _process_request_* helpers).
    enum Shape {
        /// Key at token 1, at least `min` tokens, optional noreply.
        Simple(usize),
        /// `<cmd> <key> <flags> <exptime> <bytes> [...]`.
        Storage,
        /// Meta: flags from token `mstart`, at least `min` tokens; `ms` also has a length.
        Meta {
            min: usize,
            mstart: usize,
            has_len: bool,
        },
        /// `gat[s] <exptime> <key>*`.
        Gat,
        /// Just the tokens.
        Plain,
        /// No tokenizing at all.
        Bare,
    }
    use Command as C;
    if (cm == b"get" || cm == b"gets") && r.tokens.command_and_key_into(line, cl, endlen) {
        r.command = Some(if cl == 3 { C::Get } else { C::Gets });
        r.keytoken = 1;
        r.noreply = noreply_of(line, &r.tokens);
        return Parsed::Ok;
    }
    let (cmd, shape) = match cm {
        b"mg" => (
            C::Mg,
            Shape::Meta {
                min: 2,
                mstart: 2,
                has_len: false,
            },
        ),
        b"ms" => (
            C::Ms,
            Shape::Meta {
                min: 3,
                mstart: 3,
                has_len: true,
            },
        ),
        b"md" => (
            C::Md,
            Shape::Meta {
                min: 2,
                mstart: 2,
                has_len: false,
            },
        ),
        b"mn" => (C::Mn, Shape::Bare),
        b"ma" => (
            C::Ma,
            Shape::Meta {
                min: 2,
                mstart: 2,
                has_len: false,
            },
        ),
        b"me" => (
            C::Me,
            Shape::Meta {
                min: 2,
                mstart: 2,
                has_len: false,
            },
        ),
        b"get" => (C::Get, Shape::Simple(2)),
        b"gat" => (C::Gat, Shape::Gat),
        b"set" => (C::Set, Shape::Storage),
        b"add" => (C::Add, Shape::Storage),
        b"cas" => (C::Cas, Shape::Storage),
        b"gets" => (C::Gets, Shape::Simple(2)),
        b"incr" => (C::Incr, Shape::Simple(3)),
        b"decr" => (C::Decr, Shape::Simple(3)),
        b"gats" => (C::Gats, Shape::Gat),
        b"quit" => (C::Quit, Shape::Bare),
        b"touch" => (C::Touch, Shape::Simple(3)),
        b"stats" => (C::Stats, Shape::Plain),
        b"watch" => (C::Watch, Shape::Plain),
        b"delete" => (C::Delete, Shape::Simple(2)),
        b"append" => (C::Append, Shape::Storage),
        b"replace" => (C::Replace, Shape::Storage),
        b"prepend" => (C::Prepend, Shape::Storage),
        b"version" => (C::Version, Shape::Plain),
        _ => {
            generic(&mut r.tokens);
            r.noreply = noreply_of(line, &r.tokens);
            return Parsed::NotFound;
        }
    };
    r.command = Some(cmd);
    // A value length token: non-negative and room for the trailing "\r\n".
    let vlen_at = |r: &mut Request, idx: usize| match r.tokens.get_i32(line, idx) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => {
            r.vlen = v as usize + 2;
            true
        }
        _ => false,
    };
    let ok = match shape {
        Shape::Bare => true,
        Shape::Plain => {
            generic(&mut r.tokens);
            true
        }
        // noreply is only looked for once the line passed its checks, as in C, so a malformed
        // line always gets its error.
        Shape::Simple(min) => {
            generic(&mut r.tokens);
            r.keytoken = 1;
            let ok = r.tokens.ntokens >= min;
            r.noreply = ok && noreply_of(line, &r.tokens);
            ok
        }
        Shape::Storage => {
            generic(&mut r.tokens);
            r.keytoken = 1;
            let ok = r.tokens.ntokens >= 5 && vlen_at(r, 4);
            r.noreply = ok && noreply_of(line, &r.tokens);
            ok
        }
        Shape::Gat => {
            generic(&mut r.tokens);
            r.keytoken = 2;
            r.tokens.ntokens >= 3
        }
        Shape::Meta {
            min,
            mstart,
            has_len,
        } => {
            r.tokens.tokenize_into(line, mstart);
            r.keytoken = 1;
            r.tokens.ntokens >= min && (!has_len || vlen_at(r, 2))
        }
    };
    if ok {
        Parsed::Ok
    } else {
        Parsed::BadFormat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_key_is_the_first_key_of_a_fetch() {
        assert_eq!(lookup_key(b"get foo\r\n"), Some(&b"foo"[..]));
        // A get line's key runs to the line's end (a hint, not a parse).
        assert_eq!(lookup_key(b"gets  a b c\r\n"), Some(&b"a b c"[..]));
        assert_eq!(lookup_key(b"mg key\r\n"), Some(&b"key"[..]));
        assert_eq!(lookup_key(b"mg key v f t\r\n"), Some(&b"key"[..]));
        assert_eq!(lookup_key(b"get k\n"), Some(&b"k"[..]));
        assert_eq!(lookup_key(b"get k"), Some(&b"k"[..]));
        for line in [
            &b"get \r\n"[..],
            b"get",
            b"set foo 0 0 1\r\n",
            b"gat 0 foo\r\n",
            b"GET foo\r\n",
            b"",
            b"mg\r\n",
            &[b"get ".as_slice(), &[b'k'; 251], b"\r\n"].concat(),
        ] {
            assert_eq!(
                lookup_key(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    fn toks(line: &[u8]) -> Vec<Vec<u8>> {
        let t = Tokens::tokenize(line, 255).unwrap();
        (0..t.ntokens)
            .map(|i| t.get(line, i).unwrap().to_vec())
            .collect()
    }

    #[test]
    fn splits_on_spaces_only() {
        assert_eq!(
            toks(b"get a b\r\n"),
            vec![b"get".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            toks(b"get  a   b  \r\n"),
            vec![b"get".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(toks(b"get\ta\n"), vec![b"get\ta".to_vec()]);
        assert_eq!(toks(b"stats\n"), vec![b"stats".to_vec()]);
        assert_eq!(toks(b" \r\n").len(), 0);
    }

    #[test]
    fn the_single_key_path_tokenizes_as_the_general_loop() {
        let lines: [&[u8]; 12] = [
            b"get foo\r\n",
            b"gets foo\n",
            b"get   foo   \r\n",
            b"get noreply\r\n",
            b"get a\r\n",
            b"get a b\r\n",
            b"get \r\n",
            b"get    \r\n",
            b"gets a noreply\r\n",
            b"get\tx y\r\n",
            b"get ab\r\r\n",
            b"get k\x00 \r\n",
        ];
        for line in lines {
            let end = if line[line.len() - 2] == b'\r' {
                line.len() - 2
            } else {
                line.len() - 1
            };
            let cl = line.iter().position(|&b| b == b' ').unwrap_or(end);
            let general = Tokens::tokenize(line, 255).unwrap();
            if let Some(t) = Tokens::command_and_key(line, cl, end) {
                assert_eq!(general.ntokens, 2, "{:?}", line);
                assert_eq!(t.offsets[..3], general.offsets[..3], "{:?}", line);
                assert_eq!(t.mstart, general.mstart);
                assert_eq!(t.metaflags, general.metaflags);
            } else {
                assert!(general.ntokens != 2 || cl == end, "{:?}", line);
            }
        }
        let (p, r) = parse_request(b"get noreply\r\n");
        assert_eq!(
            (p, r.command, r.noreply, r.keytoken),
            (Parsed::Ok, Some(Command::Get), true, 1)
        );
        let (p, r) = parse_request(b"gets k\r\n");
        assert_eq!(
            (p, r.command, r.noreply),
            (Parsed::Ok, Some(Command::Gets), false)
        );
        assert_eq!(parse_request(b"get \r\n").0, Parsed::BadFormat);
    }

    #[test]
    fn caps_at_23_tokens() {
        let mut line = b"get".to_vec();
        for i in 0..30 {
            line.extend_from_slice(format!(" k{}", i).as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        let t = Tokens::tokenize(&line, 255).unwrap();
        assert_eq!(t.ntokens, 23);
        assert_eq!(t.get(&line, 22), Some(&b"k21"[..]));
        assert_eq!(&line[t.end_offset()..t.end_offset() + 4], b" k22");
    }

    #[test]
    fn meta_flags() {
        let line = b"mg foo v t k\r\n";
        let t = Tokens::tokenize(line, 2).unwrap();
        assert_eq!(t.ntokens, 5);
        assert!(t.metaflags & (1 << (b'v' - 65)) != 0);
        assert!(Tokens::tokenize(b"mg foo !x\r\n", 2).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(tok_to_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(tok_to_u32(b"4294967296"), None);
        assert_eq!(tok_to_u32(b"-1"), None);
        assert_eq!(tok_to_u32(b"000000000001"), None);
        assert_eq!(tok_to_i32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(tok_to_i32(b"2147483648"), None);
        assert_eq!(tok_to_u64(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn classifies() {
        assert_eq!(parse_request(b"a\r\n").0, Parsed::BadFormat);
        assert_eq!(parse_request(b"foo\r\n").0, Parsed::NotFound);
        let (p, r) = parse_request(b"set k 0 0 5 noreply\r\n");
        assert_eq!(p, Parsed::Ok);
        assert_eq!(r.vlen, 7);
        assert!(r.noreply);
        assert_eq!(parse_request(b"set k 0 0\r\n").0, Parsed::BadFormat);
        assert_eq!(parse_request(b"set k 0 0 -1\r\n").0, Parsed::BadFormat);
        assert_eq!(
            parse_request(b"version\r\n").1.command,
            Some(Command::Version)
        );
        assert_eq!(parse_request(b"get\r\n").0, Parsed::BadFormat);
        // A malformed line never counts as noreply.
        let (p, r) = parse_request(b"set k 0 0 -1 noreply\r\n");
        assert_eq!(p, Parsed::BadFormat);
        assert!(!r.noreply);
    }

    /// The byte-at-a-time tokenizer this module used before `find_space`, kept as the
    /// reference the faster one must agree with.
    impl Tokens {
        fn tokenize_bytewise(line: &[u8], mstart: usize) -> Result<Tokens, Tokens> {
            let mut t = Tokens {
                mstart,
                ..Tokens::default()
            };
            let max = MAX_TOKENS - 1;
            let len = line.len().min(TOKENIZER_MAXLEN);
            if len < 2 {
                return Ok(t);
            }
            let end = if line[len - 2] == b'\r' {
                len - 2
            } else {
                len - 1
            };
            let mut cur = 0usize;
            let mut s = 0usize;
            let mut n = 0usize;
            let flag_ok = |t: &mut Tokens, cur: usize, c: u8| -> bool {
                if cur >= mstart {
                    if c > 64 && c < 123 {
                        t.metaflags |= 1u64 << (c - 65);
                    } else if !c.is_ascii_digit() {
                        return false;
                    }
                }
                true
            };
            while n != end {
                if line[n] == b' ' {
                    if s != n {
                        t.offsets[cur] = s as u16;
                        if !flag_ok(&mut t, cur, line[s]) {
                            return Err(Tokens {
                                mstart,
                                ..Tokens::default()
                            });
                        }
                        cur += 1;
                        if cur == max {
                            s = match line[s + 1..end].iter().position(|&b| b == b' ') {
                                Some(p) => s + 1 + p,
                                None => end,
                            };
                            n = s;
                            break;
                        }
                        s = n;
                    }
                    s += 1;
                }
                n += 1;
            }
            if s != n {
                t.offsets[cur] = s as u16;
                if !flag_ok(&mut t, cur, line[s]) {
                    return Err(Tokens {
                        mstart,
                        ..Tokens::default()
                    });
                }
                cur += 1;
                while s != end && line[s] != b' ' {
                    s += 1;
                }
            }
            t.offsets[cur] = s as u16;
            t.ntokens = cur;
            Ok(t)
        }
    }

    #[test]
    fn agrees_with_bytewise_tokenizer() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"  ab9!Zz\t\r\xa0\x00\xff\x21";
        for _ in 0..20000 {
            let n = (rnd() % 200) as usize;
            let mut line: Vec<u8> = (0..n)
                .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
                .collect();
            line.extend_from_slice(if rnd() % 2 == 0 { b"\r\n" } else { b"\n" });
            for mstart in [0usize, 1, 2, 255] {
                let a = Tokens::tokenize(&line, mstart);
                let b = Tokens::tokenize_bytewise(&line, mstart);
                assert_eq!(a.is_ok(), b.is_ok(), "{:?}", line);
                let (a, b) = (a.unwrap_or_else(|e| e), b.unwrap_or_else(|e| e));
                assert_eq!(a.ntokens, b.ntokens, "{:?}", line);
                assert_eq!(a.offsets, b.offsets, "{:?}", line);
                assert_eq!(a.metaflags, b.metaflags, "{:?}", line);
            }
        }
    }
}
