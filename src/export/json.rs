//! A JSON object written field by field into a caller's reused buffer: no `fmt`, no allocation,
//! no intermediate values. The event writers shape their lines with it.
//!
//! Keys are the writer's own `&'static str` names and are written as they are (they must be
//! plain JSON-safe text); string values are escaped as `serde_json` escapes them (RFC 8259 §7:
//! `"`, `\` and control bytes, with the short forms where JSON has them; everything else, UTF-8
//! included, is copied), so lines are byte for byte what serde would write. Times are RFC 3339 in UTC with microseconds;
//! addresses are written as `std` prints them.

use crate::capture::Timestamp;
use std::io::Write as _;
use std::net::IpAddr;

/// One JSON object being written at the end of `buf`.
pub struct Obj<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
    names: Option<Names>,
    prefix: &'static str,
}

/// A renaming of an object's top-level keys (another schema's names for the same fields): the
/// new name, or `None` to write the key under [`Obj::begin_named`]'s prefix.
pub type Names = fn(&str) -> Option<&'static str>;

/// Lower-case hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two decimal digits for each value below 100.
const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Bytes that a JSON string cannot hold as they are: control bytes, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends a short slice byte by byte (a loop the compiler keeps inline, where a call to
/// `memcpy` for a handful of bytes would cost more than the copy), a long one with one copy.
#[inline]
fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= 16 {
        for &b in bytes {
            buf.push(b);
        }
    } else {
        buf.extend_from_slice(bytes);
    }
}

impl<'a> Obj<'a> {
    /// Starts an object at the end of `buf`.
    pub fn begin(buf: &'a mut Vec<u8>) -> Self {
        buf.push(b'{');
        Obj {
            buf,
            first: true,
            names: None,
            prefix: "",
        }
    }

    /// Starts an object whose top-level keys `names` renames; a key it does not rename is
    /// written as `prefix` followed by the key. Nested objects keep their keys.
    pub fn begin_named(buf: &'a mut Vec<u8>, names: Names, prefix: &'static str) -> Self {
        let mut o = Obj::begin(buf);
        o.names = Some(names);
        o.prefix = prefix;
        o
    }

    /// Closes the object.
    pub fn end(self) {
        self.buf.push(b'}');
    }

    #[inline]
    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        match self.names.map(|n| n(k)) {
            None => put(self.buf, k.as_bytes()),
            Some(Some(renamed)) => put(self.buf, renamed.as_bytes()),
            Some(None) => {
                put(self.buf, self.prefix.as_bytes());
                put(self.buf, k.as_bytes());
            }
        }
        self.buf.push(b'"');
        self.buf.push(b':');
    }

    /// A string field.
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        string(self.buf, v);
    }

    /// A string field whose inside `f` writes, already escaped (e.g. with [`escape`]).
    pub fn text(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(k);
        self.buf.push(b'"');
        f(self.buf);
        self.buf.push(b'"');
    }

    /// A field whose JSON value `f` writes whole (it must write valid JSON).
    pub fn key_raw(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(k);
        f(self.buf);
    }

    /// A string field when `v` is some.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, k: &str, v: u64) {
        self.key(k);
        uint(self.buf, v);
    }

    /// A boolean field.
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// A number of seconds with microseconds, from nanoseconds (`1.500000`).
    pub fn secs(&mut self, k: &str, ns: u64) {
        self.key(k);
        uint(self.buf, ns / 1_000_000_000);
        self.buf.push(b'.');
        fixed(self.buf, (ns % 1_000_000_000) / 1_000, 6);
    }

    /// A time field, RFC 3339 in UTC with microseconds.
    pub fn ts(&mut self, k: &str, t: Timestamp) {
        self.key(k);
        self.buf.push(b'"');
        timestamp(self.buf, t);
        self.buf.push(b'"');
    }

    /// An address field, as text.
    pub fn ip(&mut self, k: &str, ip: IpAddr) {
        self.key(k);
        self.buf.push(b'"');
        addr(self.buf, ip);
        self.buf.push(b'"');
    }

    /// An array of strings.
    pub fn strs<'s>(&mut self, k: &str, vs: impl IntoIterator<Item = &'s str>) {
        self.key(k);
        self.buf.push(b'[');
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            string(self.buf, v);
        }
        self.buf.push(b']');
    }

    /// An array of unsigned integers.
    pub fn uints(&mut self, k: &str, vs: impl IntoIterator<Item = u64>) {
        self.key(k);
        self.buf.push(b'[');
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            uint(self.buf, v);
        }
        self.buf.push(b']');
    }

    /// A nested object, written by `f`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) {
        self.key(k);
        let mut o = Obj::begin(self.buf);
        f(&mut o);
        o.end();
    }

    /// An array of objects, each written by `f`.
    pub fn objs<T>(
        &mut self,
        k: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Obj<'_>, T),
    ) {
        self.key(k);
        self.buf.push(b'[');
        for (i, it) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            let mut o = Obj::begin(self.buf);
            f(&mut o, it);
            o.end();
        }
        self.buf.push(b']');
    }
}

/// Writes `v` as a JSON string.
pub fn string(buf: &mut Vec<u8>, v: &str) {
    buf.push(b'"');
    escape(buf, v);
    buf.push(b'"');
}

/// Writes `v` escaped for the inside of a JSON string (no quotes).
pub fn escape(buf: &mut Vec<u8>, v: &str) {
    let bytes = v.as_bytes();
    // The common case: nothing to escape, one copy.
    let Some(first) = bytes.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]) else {
        put(buf, bytes);
        return;
    };
    buf.extend_from_slice(&bytes[..first]);
    let mut start = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Writes `v` in decimal.
pub fn uint(buf: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        buf.push(b'0' + v as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i] = DIGITS2[d];
        digits[i + 1] = DIGITS2[d + 1];
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        digits[i] = DIGITS2[d];
        digits[i + 1] = DIGITS2[d + 1];
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    put(buf, &digits[i..]);
}

/// Writes `v` (below 100) as two digits.
#[inline]
fn two(buf: &mut Vec<u8>, v: u64) {
    let d = (v % 100) as usize * 2;
    buf.push(DIGITS2[d]);
    buf.push(DIGITS2[d + 1]);
}

/// Writes `v` in decimal with exactly `width` digits (leading zeros; `v` below 10^width).
fn fixed(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let at = buf.len();
    buf.resize(at + width, b'0');
    for d in buf[at..].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Writes a time as RFC 3339 in UTC with microseconds, e.g. `2024-05-01T12:00:00.123456Z`: the
/// same text as `Timestamp`'s `Display`.
pub fn timestamp(buf: &mut Vec<u8>, t: Timestamp) {
    let secs = t.0 / 1_000_000_000;
    let (y, m, d) = crate::capture::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let y = y.max(0) as u64;
    two(buf, y / 100);
    two(buf, y);
    buf.push(b'-');
    two(buf, u64::from(m));
    buf.push(b'-');
    two(buf, u64::from(d));
    buf.push(b'T');
    two(buf, rem / 3600);
    buf.push(b':');
    two(buf, (rem / 60) % 60);
    buf.push(b':');
    two(buf, rem % 60);
    buf.push(b'.');
    let us = (t.0 % 1_000_000_000) / 1_000;
    two(buf, us / 10_000);
    two(buf, us / 100);
    two(buf, us);
    buf.push(b'Z');
}

/// Writes an address as `std` prints it: dotted IPv4 by hand, IPv6 through `Display` into a
/// stack buffer (RFC 5952's compression is `std`'s to get right).
pub fn addr(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v) => {
            for (i, o) in v.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                uint(buf, u64::from(o));
            }
        }
        IpAddr::V6(v) => {
            let mut text = [0u8; 48];
            let mut w = &mut text[..];
            // 39 bytes at most (45 for an IPv4-mapped form): the buffer cannot run out.
            let _ = write!(w, "{v}");
            let n = 48 - w.len();
            buf.extend_from_slice(&text[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(f: impl FnOnce(&mut Obj<'_>)) -> String {
        let mut buf = Vec::new();
        let mut o = Obj::begin(&mut buf);
        f(&mut o);
        o.end();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn obj_fields_of_every_kind_parse_back() {
        let text = line(|o| {
            o.str("s", "a\"b\\c\nd\u{1}é");
            o.u64("n", 18_446_744_073_709_551_615);
            o.u64("z", 0);
            o.bool("t", true);
            o.secs("d", 1_500_000_999);
            o.ts("ts", Timestamp(1_700_000_000_123_456_789));
            o.ip("a", "10.1.0.255".parse().unwrap());
            o.ip("b", "2001:db8::1".parse().unwrap());
            o.ip("c", "::ffff:1.2.3.4".parse().unwrap());
            o.strs("l", ["h2", "x\"y"]);
            o.uints("v", [10, 20]);
            o.obj("o", |o| o.u64("id", 5));
            o.objs("e", [1u64, 2], |o, i| o.u64("i", i));
            o.opt_str("absent", None);
        });
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["s"], "a\"b\\c\nd\u{1}é");
        assert_eq!(v["n"], 18_446_744_073_709_551_615u64);
        assert_eq!(v["z"], 0);
        assert_eq!(v["t"], true);
        assert_eq!(v["d"].as_f64(), Some(1.5));
        assert_eq!(v["ts"], Timestamp(1_700_000_000_123_456_789).to_string());
        assert_eq!(v["a"], "10.1.0.255");
        assert_eq!(v["b"], "2001:db8::1");
        assert_eq!(v["c"], "::ffff:1.2.3.4");
        assert_eq!(v["l"], serde_json::json!(["h2", "x\"y"]));
        assert_eq!(v["v"], serde_json::json!([10, 20]));
        assert_eq!(v["o"], serde_json::json!({"id": 5}));
        assert_eq!(v["e"], serde_json::json!([{"i": 1}, {"i": 2}]));
        assert!(v.get("absent").is_none());
        assert!(!text.contains('\n'), "one line: {text}");
    }

    proptest! {
        /// Any text is written as serde_json writes it, on one line, and parses back.
        #[test]
        fn string_escapes_any_text_as_serde_does(s in "\\PC*|[\\x00-\\x7f]*") {
            let mut buf = Vec::new();
            string(&mut buf, &s);
            let text = String::from_utf8(buf).unwrap();
            prop_assert!(!text.contains('\n') && !text.contains('\r'));
            prop_assert_eq!(&text, &serde_json::to_string(&s).unwrap());
            let back: String = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, s);
        }

        /// Times are written as `Display` writes them, at any instant up to year 9999.
        #[test]
        fn timestamp_matches_display(ns in 0u64..u64::MAX) {
            let mut buf = Vec::new();
            timestamp(&mut buf, Timestamp(ns));
            prop_assert_eq!(String::from_utf8(buf).unwrap(), Timestamp(ns).to_string());
        }

        /// Addresses are written as `Display` writes them.
        #[test]
        fn addr_matches_display(v4 in any::<u32>(), v6 in any::<u128>()) {
            for ip in [IpAddr::from(v4.to_be_bytes()), IpAddr::from(v6.to_be_bytes())] {
                let mut buf = Vec::new();
                addr(&mut buf, ip);
                prop_assert_eq!(String::from_utf8(buf).unwrap(), ip.to_string());
            }
        }

        /// Integers are written as `Display` writes them.
        #[test]
        fn uint_matches_display(v in any::<u64>()) {
            let mut buf = Vec::new();
            uint(&mut buf, v);
            prop_assert_eq!(String::from_utf8(buf).unwrap(), v.to_string());
        }
    }
}
