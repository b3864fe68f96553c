//! Number parsing and formatting with the exact semantics of the C library calls that
//! memcached's option handling relies on (`atoi`, `strtol`, `strtoul`, `atof`/`strtod`,
//! memcached's own `safe_strtoul`/`safe_strtol`, and printf's `%f`), on an LP64 target.
//!
//! None of these panic: they take arbitrary bytes and saturate or wrap the way glibc does.

/// `isspace` in the "C" locale.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Drops leading C whitespace.
pub fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_c_space(b)).count();
    &s[n..]
}

/// The result of scanning an integer the way `strtol`/`strtoul` do.
struct IntScan {
    negative: bool,
    /// Magnitude of the digits, saturated at `u64::MAX`.
    magnitude: u64,
    /// The magnitude did not fit in 64 bits.
    overflow: bool,
    /// Bytes consumed (0 when no digits were found, as C sets endptr = str).
    consumed: usize,
}

fn digit_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 10),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        _ => None,
    }
}

/// Scans `[space][+-]digits` in `base` (8, 10 or 16; in base 16 an `0x` prefix is skipped
/// when a hex digit follows it, as strtoul does).
fn scan_int(s: &[u8], base: u32) -> IntScan {
    let mut i = s.len() - skip_space(s).len();
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = s.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    if base == 16
        && s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2)
            .and_then(|&b| digit_value(b))
            .is_some_and(|d| d < 16)
    {
        i += 2;
    }
    let start = i;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|&b| digit_value(b)).filter(|&d| d < base) {
        match magnitude
            .checked_mul(u64::from(base))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => magnitude = m,
            None => {
                overflow = true;
                magnitude = u64::MAX;
            }
        }
        i += 1;
    }
    if i == start {
        return IntScan {
            negative: false,
            magnitude: 0,
            overflow: false,
            consumed: 0,
        };
    }
    IntScan {
        negative,
        magnitude,
        overflow,
        consumed: i,
    }
}

/// `strtol(s, &end, base)` for a 64-bit `long`: (value, bytes consumed, ERANGE).
pub fn strtol(s: &[u8], base: u32) -> (i64, usize, bool) {
    let r = scan_int(s, base);
    let limit = if r.negative {
        i64::MIN.unsigned_abs()
    } else {
        i64::MAX as u64
    };
    if r.overflow || r.magnitude > limit {
        let v = if r.negative { i64::MIN } else { i64::MAX };
        return (v, r.consumed, true);
    }
    let v = if r.negative {
        0i64.wrapping_sub_unsigned(r.magnitude)
    } else {
        r.magnitude as i64
    };
    (v, r.consumed, false)
}

/// `strtoul(s, &end, 10)` for a 64-bit `unsigned long`: (value, bytes consumed, ERANGE).
/// A leading minus negates the value modulo 2^64, as C does.
pub fn strtoul(s: &[u8]) -> (u64, usize, bool) {
    let r = scan_int(s, 10);
    if r.overflow {
        return (u64::MAX, r.consumed, true);
    }
    let v = if r.negative {
        r.magnitude.wrapping_neg()
    } else {
        r.magnitude
    };
    (v, r.consumed, false)
}

/// `atoi(s)`: `(int) strtol(s, NULL, 10)`, i.e. saturate to 64 bits then truncate.
pub fn atoi(s: &[u8]) -> i32 {
    strtol(s, 10).0 as i32
}

/// The tail check shared by memcached's `safe_strto*` helpers: something was parsed and it is
/// followed by the end of the string, a NUL (where C's string ends) or whitespace; whatever
/// comes after that is ignored, as C ignores it.
fn safe_tail_ok(s: &[u8], consumed: usize) -> bool {
    consumed != 0 && s.get(consumed).is_none_or(|&b| b == 0 || is_c_space(b))
}

/// 1-18 decimal digits and nothing else, the shape of nearly every number a client sends
/// (flags, exptime, lengths): its value, which no strto* rule can change (no sign, space or
/// overflow), without their general scan. None for anything else.
#[inline]
fn plain_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// memcached's `safe_strtoull`: a 64-bit unsigned number, refusing a minus sign only when the
/// value wraps to a negative signed one.
pub fn safe_strtoull(s: &[u8]) -> Option<u64> {
    if let Some(v) = plain_digits(s) {
        return Some(v);
    }
    let (v, consumed, erange) = strtoul(s);
    if erange || !safe_tail_ok(s, consumed) {
        return None;
    }
    if (v as i64) < 0 && s[..consumed].contains(&b'-') {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoull_hex`: as `safe_strtoull`, in base 16.
pub fn safe_strtoull_hex(s: &[u8]) -> Option<u64> {
    let r = scan_int(s, 16);
    if r.overflow || !safe_tail_ok(s, r.consumed) {
        return None;
    }
    let v = if r.negative {
        r.magnitude.wrapping_neg()
    } else {
        r.magnitude
    };
    if (v as i64) < 0 && s[..r.consumed].contains(&b'-') {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoll`: a 64-bit signed number.
pub fn safe_strtoll(s: &[u8]) -> Option<i64> {
    let (v, consumed, erange) = strtol(s, 10);
    if erange || !safe_tail_ok(s, consumed) {
        return None;
    }
    Some(v)
}

/// Formats `v` in decimal at the end of `buf` without allocating; returns the digits.
pub fn u64_decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    // Two digits per division: reply lines carry a length and flags for every value.
    const PAIRS: [u8; 200] = {
        let mut t = [0u8; 200];
        let mut i = 0;
        while i < 100 {
            t[2 * i] = b'0' + (i / 10) as u8;
            t[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        t
    };
    let mut i = buf.len();
    while v >= 100 {
        let r = (v % 100) as usize;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[2 * r..2 * r + 2]);
    }
    if v >= 10 {
        i -= 2;
        let r = v as usize;
        buf[i..i + 2].copy_from_slice(&PAIRS[2 * r..2 * r + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    &buf[i..]
}

/// memcached's `safe_strtoul`: parses into a 32-bit value (the 64-bit result is truncated,
/// exactly like the C assignment). Rejects negative numbers only when they wrap to a value
/// that is negative as a signed long.
pub fn safe_strtoul(s: &[u8]) -> Option<u32> {
    safe_strtoull(s).map(|v| v as u32)
}

/// memcached's `safe_strtol`: parses a long and truncates it to 32 bits.
pub fn safe_strtol(s: &[u8]) -> Option<i32> {
    if let Some(v) = plain_digits(s) {
        return Some(v as i32);
    }
    let (v, consumed, erange) = strtol(s, 10);
    if erange || !safe_tail_ok(s, consumed) {
        return None;
    }
    Some(v as i32)
}

/// `strtod(s, &end)` in the "C" locale: (value, bytes consumed). Overflow yields ±inf, as
/// glibc returns HUGE_VAL.
pub fn strtod(s: &[u8]) -> (f64, usize) {
    let lead = s.len() - skip_space(s).len();
    let mut i = lead;
    let mut negative = false;
    if let Some(&sign @ (b'+' | b'-')) = s.get(i) {
        negative = sign == b'-';
        i += 1;
    }
    let rest = &s[i..];
    let (magnitude, used) = if let Some(n) = scan_inf_nan(rest) {
        n
    } else if rest.len() > 1 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        match scan_hex_float(&rest[2..]) {
            Some((v, n)) => (v, n + 2),
            // "0x" without hex digits: only the "0" is a number.
            None => (0.0, 1),
        }
    } else {
        match scan_decimal(rest) {
            Some(n) => n,
            None => return (0.0, 0),
        }
    };
    let v = if negative { -magnitude } else { magnitude };
    (v, i + used)
}

/// C's safe_strtod: a number followed by the end, a NUL or whitespace, without overflow.
pub fn safe_strtod(s: &[u8]) -> Option<f64> {
    let (v, used) = strtod(s);
    if !safe_tail_ok(s, used) {
        return None;
    }
    // glibc reports ERANGE for an overflow to infinity (a literal "inf" is fine).
    let t = skip_space(s);
    let unsigned = t.strip_prefix(b"-").or(t.strip_prefix(b"+")).unwrap_or(t);
    let literal_inf = scan_inf_nan(unsigned).is_some();
    if v.is_infinite() && !literal_inf {
        return None;
    }
    Some(v)
}

/// `atof(s)`: `strtod(s, NULL)`.
pub fn atof(s: &[u8]) -> f64 {
    strtod(s).0
}

fn starts_with_ignore_case(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

fn scan_inf_nan(s: &[u8]) -> Option<(f64, usize)> {
    if starts_with_ignore_case(s, b"infinity") {
        return Some((f64::INFINITY, 8));
    }
    if starts_with_ignore_case(s, b"inf") {
        return Some((f64::INFINITY, 3));
    }
    if starts_with_ignore_case(s, b"nan") {
        // An optional "(n-char-sequence)" is part of the number when it is closed.
        let mut used = 3;
        if s.get(3) == Some(&b'(') {
            let body = s[4..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            if s.get(4 + body) == Some(&b')') {
                used = 4 + body + 1;
            }
        }
        return Some((f64::NAN, used));
    }
    None
}

fn count_digits(s: &[u8], pred: fn(&u8) -> bool) -> usize {
    s.iter().take_while(|b| pred(b)).count()
}

/// Decimal floating point: digits[.digits][e[+-]digits], at least one mantissa digit.
fn scan_decimal(s: &[u8]) -> Option<(f64, usize)> {
    let int_digits = count_digits(s, u8::is_ascii_digit);
    let mut i = int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        frac_digits = count_digits(&s[i + 1..], u8::is_ascii_digit);
        if int_digits > 0 || frac_digits > 0 {
            i += 1 + frac_digits;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_digits = count_digits(&s[j.min(s.len())..], u8::is_ascii_digit);
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    // The scanned text is plain ASCII in a grammar Rust's parser accepts.
    let text = std::str::from_utf8(&s[..i]).ok()?;
    let v = text.parse::<f64>().ok()?;
    Some((v, i))
}

/// Hexadecimal floating point after the "0x": hexdigits[.hexdigits][p[+-]digits].
fn scan_hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut mantissa: u64 = 0;
    let mut exp2: i64 = 0;
    let mut any = false;
    let mut sticky = false;
    let mut i = 0;
    let mut seen_point = false;
    while let Some(&b) = s.get(i) {
        if b == b'.' && !seen_point {
            seen_point = true;
            i += 1;
            continue;
        }
        let Some(d) = digit_value(b).filter(|&d| d < 16) else {
            break;
        };
        any = true;
        if mantissa >> 60 == 0 {
            mantissa = mantissa * 16 + u64::from(d);
            if seen_point {
                exp2 -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_point {
                exp2 += 4;
            }
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let (e, used, _) = strtol_exponent(&s[i + 1..]);
        if used > 0 {
            exp2 = exp2.saturating_add(e);
            i += 1 + used;
        }
    }
    let m = (mantissa | u64::from(sticky)) as f64;
    let e = exp2.clamp(-2200, 2200) as i32;
    // Scale in two steps so intermediate powers of two stay finite.
    let half = e / 2;
    Some((m * 2f64.powi(half) * 2f64.powi(e - half), i))
}

/// `[+-]digits` for a binary exponent (no leading whitespace allowed).
fn strtol_exponent(s: &[u8]) -> (i64, usize, bool) {
    match s.first() {
        Some(b'+' | b'-') if s.get(1).is_some_and(u8::is_ascii_digit) => strtol(s, 10),
        Some(b) if b.is_ascii_digit() => strtol(s, 10),
        _ => (0, 0, false),
    }
}

/// printf's `%.<prec>f`, including glibc's spelling of infinities and NaNs.
pub fn fmt_fixed(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    format!("{v:.prec$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_long_long_as_memcached_parses_them() {
        assert_eq!(safe_strtoull_hex(b"0x7f0012345000"), Some(0x7f00_1234_5000));
        assert_eq!(safe_strtoull_hex(b"7F00"), Some(0x7f00));
        assert_eq!(safe_strtoull_hex(b"0x"), None); // "0" then "x": a bad tail
        assert_eq!(safe_strtoull_hex(b"0xg"), None);
        assert_eq!(safe_strtoull_hex(b""), None);
        assert_eq!(safe_strtoull_hex(b"(nil)"), None);
        assert_eq!(safe_strtoull_hex(b"1ffffffffffffffff"), None);
        assert_eq!(safe_strtoll(b"-5"), Some(-5));
        assert_eq!(safe_strtoll(b"1733320000 "), Some(1_733_320_000));
        assert_eq!(safe_strtoll(b"12a"), None);
        assert_eq!(safe_strtoll(b"99999999999999999999"), None);
    }

    #[test]
    fn atoi_matches_glibc() {
        assert_eq!(atoi(b"42"), 42);
        assert_eq!(atoi(b"  -17xyz"), -17);
        assert_eq!(atoi(b"+8"), 8);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b"- 5"), 0);
        // Truncation of a long to int.
        assert_eq!(atoi(b"99999999999"), 1_215_752_191);
        assert_eq!(atoi(b"4294967296"), 0);
        // Saturation to LONG_MAX / LONG_MIN, then truncation.
        assert_eq!(atoi(b"99999999999999999999999"), -1);
        assert_eq!(atoi(b"-99999999999999999999999"), 0);
    }

    #[test]
    fn strtol_octal() {
        assert_eq!(strtol(b"755", 8).0, 0o755);
        assert_eq!(strtol(b"0777", 8).0, 0o777);
        assert_eq!(strtol(b"789", 8).0, 7);
        assert_eq!(strtol(b"-1", 8).0, -1);
    }

    #[test]
    fn safe_parsers_stop_at_nul_or_space_as_c_strings_do() {
        assert_eq!(safe_strtoul(b"5\0"), Some(5));
        assert_eq!(safe_strtoul(b"5\0xyz"), Some(5));
        assert_eq!(safe_strtol(b"-3\r"), Some(-3));
        assert_eq!(safe_strtoull(b"99\0x\r\n"), Some(99));
        assert_eq!(safe_strtoull(b"99\r\n"), Some(99));
        assert_eq!(safe_strtoull(b"99x\r\n"), None);
        assert_eq!(safe_strtoull(b"\0"), None);
        assert_eq!(safe_strtod(b"2\0"), Some(2.0));
        assert_eq!(safe_strtod(b"2\t"), Some(2.0));
        assert_eq!(safe_strtod(b"0.1\r"), Some(0.1));
        assert_eq!(safe_strtod(b"2x"), None);
    }

    #[test]
    fn decimal_formatting_without_allocation() {
        let mut buf = [0u8; 20];
        assert_eq!(u64_decimal(0, &mut buf), b"0");
        assert_eq!(u64_decimal(7, &mut buf), b"7");
        assert_eq!(u64_decimal(1234567890, &mut buf), b"1234567890");
        assert_eq!(u64_decimal(u64::MAX, &mut buf), b"18446744073709551615");
        for v in (0..100_000u64).chain([u64::MAX - 1, 10u64.pow(19), 99, 100, 101]) {
            assert_eq!(u64_decimal(v, &mut buf), v.to_string().as_bytes());
        }
    }

    #[test]
    fn plain_digits_give_what_the_general_scan_gives() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..20000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 20) as usize + 1;
            let digits: Vec<u8> = (0..len)
                .map(|i| b'0' + ((seed >> (i * 3)) % 10) as u8)
                .collect();
            let (v, consumed, erange) = strtoul(&digits);
            let want = (!erange && consumed == len).then_some(v);
            assert_eq!(safe_strtoull(&digits), want, "{digits:?}");
            let (l, consumed, erange) = strtol(&digits, 10);
            let want = (!erange && consumed == len).then_some(l as i32);
            assert_eq!(safe_strtol(&digits), want, "{digits:?}");
        }
    }

    #[test]
    fn safe_strtoul_semantics() {
        assert_eq!(safe_strtoul(b"10"), Some(10));
        assert_eq!(safe_strtoul(b"10 "), Some(10));
        assert_eq!(safe_strtoul(b" +10"), Some(10));
        assert_eq!(safe_strtoul(b"10x"), None);
        assert_eq!(safe_strtoul(b""), None);
        assert_eq!(safe_strtoul(b"x"), None);
        assert_eq!(safe_strtoul(b"-1"), None);
        assert_eq!(safe_strtoul(b"4294967296"), Some(0));
        assert_eq!(safe_strtoul(b"4294967297"), Some(1));
        assert_eq!(safe_strtoul(b"18446744073709551616"), None);
        assert_eq!(safe_strtoul(b"-18446744073709551615"), Some(1));
    }

    #[test]
    fn safe_strtol_semantics() {
        assert_eq!(safe_strtol(b"-5"), Some(-5));
        assert_eq!(safe_strtol(b"2147483648"), Some(i32::MIN));
        assert_eq!(safe_strtol(b"9223372036854775808"), None);
        assert_eq!(safe_strtol(b"1k"), None);
    }

    #[test]
    fn strtod_forms() {
        assert_eq!(atof(b"1.5"), 1.5);
        assert_eq!(atof(b" 1.5xyz"), 1.5);
        assert_eq!(atof(b".5"), 0.5);
        assert_eq!(atof(b"5."), 5.0);
        assert_eq!(atof(b"1e3"), 1000.0);
        assert_eq!(atof(b"1e"), 1.0);
        assert_eq!(atof(b"1e+"), 1.0);
        assert_eq!(atof(b"-2.5E-1"), -0.25);
        assert_eq!(atof(b"."), 0.0);
        assert_eq!(atof(b"abc"), 0.0);
        assert_eq!(atof(b"0x10"), 16.0);
        assert_eq!(atof(b"0x1.8p1"), 3.0);
        assert_eq!(atof(b"0x"), 0.0);
        assert_eq!(strtod(b"0xg").1, 1);
        assert!(atof(b"inf").is_infinite());
        assert!(atof(b"-Infinity") < 0.0);
        assert!(atof(b"nan").is_nan());
        assert_eq!(strtod(b"nan(12)x").1, 7);
        assert_eq!(strtod(b"nan(12x").1, 3);
        assert!(atof(b"1e999").is_infinite());
    }

    #[test]
    fn fixed_formatting_matches_printf() {
        assert_eq!(fmt_fixed(1.25, 2), "1.25");
        assert_eq!(fmt_fixed(0.125, 2), "0.12");
        assert_eq!(fmt_fixed(2.675, 2), "2.67");
        assert_eq!(fmt_fixed(f64::NAN, 2), "nan");
        assert_eq!(fmt_fixed(-f64::NAN, 2), "-nan");
        assert_eq!(fmt_fixed(f64::INFINITY, 2), "inf");
        assert_eq!(fmt_fixed(f64::NEG_INFINITY, 2), "-inf");
    }
}
