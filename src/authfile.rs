//! The `-Y` password file of ascii authentication (C's authfile.c): up to eight `user:password`
//! lines, loaded at start-up and again on SIGHUP. A reload that fails keeps the entries of the
//! last good load, so a bad edit never locks every client out.
//!
//! The file is read the way C reads it, quirks included, so that a file C accepts gives the
//! same entries here: each line is read in pieces of at most 255 bytes, a password ends at the
//! first `\n`, `\r` or NUL, and a piece without a newline (the last line, an overlong line, a
//! NUL byte) ends the file.

use std::io::{self, Read};
use std::sync::Mutex;

/// Entries kept at most; later lines are ignored, as in C.
const MAX_ENTRIES: usize = 8;
/// The longest piece read as one line, newline included (C's MAX_ENTRY_LEN less its NUL).
const MAX_LINE: usize = 255;

/// One `user:password` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: Vec<u8>,
    pub pass: Vec<u8>,
}

/// Why a load failed (C's authfile_ret).
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be opened or read; the error says why.
    Open(io::Error),
    /// A line has no `:` (an empty line counts).
    Malformed,
}

static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Parses the file's bytes into its entries.
pub fn parse(data: &[u8]) -> Result<Vec<Entry>, LoadError> {
    let mut entries = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        // One fgets: up to 255 bytes, through the first newline.
        let rest = &data[pos..];
        let mut n = rest.len().min(MAX_LINE);
        if let Some(nl) = rest[..n].iter().position(|&b| b == b'\n') {
            n = nl + 1;
        }
        let piece = &rest[..n];
        pos += n;
        // The piece as C's string sees it: up to its first NUL.
        let line = &piece[..piece.iter().position(|&b| b == 0).unwrap_or(piece.len())];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(LoadError::Malformed);
        };
        let after = &line[colon + 1..];
        let plen = after
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(after.len());
        entries.push(Entry {
            user: line[..colon].to_vec(),
            pass: after[..plen].to_vec(),
        });
        if entries.len() == MAX_ENTRIES {
            break;
        }
        // The password ended at the string's end, not at a line end: C stops reading here.
        if plen == after.len() {
            break;
        }
    }
    Ok(entries)
}

/// Reads `path` and, if it parses, makes its entries the ones checked (C's authfile_load).
pub fn load(path: &str) -> Result<(), LoadError> {
    if path.is_empty() {
        return Err(LoadError::Open(io::Error::from_raw_os_error(libc::ENOENT)));
    }
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(LoadError::Open)?;
    let entries = parse(&data)?;
    *ENTRIES.lock().unwrap_or_else(|e| e.into_inner()) = entries;
    Ok(())
}

/// Compares in time that depends only on the length (C's safe_memcmp), so a wrong password
/// does not tell how much of it was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// True when `user` and `pass` match a loaded entry (C's authfile_check).
pub fn check(user: &[u8], pass: &[u8]) -> bool {
    let entries = ENTRIES.lock().unwrap_or_else(|e| e.into_inner());
    entries
        .iter()
        .any(|e| same_bytes(&e.user, user) & same_bytes(&e.pass, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(data: &[u8]) -> Vec<(String, String)> {
        parse(data)
            .expect("parses")
            .into_iter()
            .map(|e| {
                (
                    String::from_utf8(e.user).unwrap(),
                    String::from_utf8(e.pass).unwrap(),
                )
            })
            .collect()
    }

    fn p(u: &str, w: &str) -> (String, String) {
        (u.to_string(), w.to_string())
    }

    #[test]
    fn lines_split_at_the_first_colon() {
        assert_eq!(
            pairs(b"user:pass\nfoo:b:ar\r\n:empty\n"),
            vec![p("user", "pass"), p("foo", "b:ar"), p("", "empty")]
        );
    }

    #[test]
    fn the_last_line_needs_no_newline() {
        assert_eq!(pairs(b"a:b\nc:d"), vec![p("a", "b"), p("c", "d")]);
        assert_eq!(pairs(b""), vec![]);
    }

    #[test]
    fn a_line_without_colon_is_malformed() {
        assert!(matches!(
            parse(b"a:b\nnocolon\n"),
            Err(LoadError::Malformed)
        ));
        assert!(matches!(parse(b"a:b\n\n"), Err(LoadError::Malformed)));
    }

    #[test]
    fn eight_entries_at_most() {
        let mut f = Vec::new();
        for i in 0..10 {
            f.extend_from_slice(format!("u{}:p{}\n", i, i).as_bytes());
        }
        // Line nine and later are never read, so their form does not matter.
        f.extend_from_slice(b"malformed\n");
        let got = pairs(&f);
        assert_eq!(got.len(), 8);
        assert_eq!(got[7], p("u7", "p7"));
    }

    #[test]
    fn a_nul_or_an_overlong_line_ends_the_file() {
        assert_eq!(pairs(b"a:b\0x\nc:d\n"), vec![p("a", "b")]);
        let mut long = b"u:".to_vec();
        long.extend(std::iter::repeat_n(b'x', 300));
        long.extend_from_slice(b"\nc:d\n");
        let got = pairs(&long);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), MAX_LINE - 2);
    }

    #[test]
    fn check_wants_both_exactly() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(same_bytes(b"", b""));
    }
}
