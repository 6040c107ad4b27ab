//! JA4, the TLS client fingerprint (FoxIO's specification, the BSD-licensed part of JA4+), of a
//! parsed ClientHello. A pure function of the hello; computed once per flow.

use super::tls::{ext, is_grease, ClientHello};

impl ClientHello<'_> {
    /// The JA4 client fingerprint (FoxIO's JA4 specification, the BSD-licensed part of JA4+):
    /// `{t|q}{version}{d|i}{ciphers:02}{extensions:02}{alpn first+last}_{sha256(sorted ciphers)
    /// [..12]}_{sha256(sorted extensions without SNI and ALPN "_" signature algorithms)[..12]}`,
    /// GREASE values left out everywhere.
    pub fn ja4(&self, quic: bool) -> String {
        use sha2::{Digest, Sha256};
        // Hex digits pushed by hand: once per hello, but `write!` per number was most of the
        // fingerprint's cost.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let push_hex = |s: &mut String, x: u16, digits: u32| {
            for i in (0..digits).rev() {
                s.push(char::from(HEX[usize::from((x >> (4 * i)) & 0xf)]));
            }
        };
        let hex_list = |v: &[u16]| {
            let mut s = String::with_capacity(v.len() * 5);
            for (i, &x) in v.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                push_hex(&mut s, x, 4);
            }
            s
        };
        let hash12 = |text: &str| {
            if text.is_empty() {
                return "000000000000".to_string();
            }
            let d = Sha256::digest(text.as_bytes());
            let mut s = String::with_capacity(12);
            for &b in &d[..6] {
                push_hex(&mut s, u16::from(b), 2);
            }
            s
        };
        let version = match self.max_version() {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            0x0200 => "s2",
            0xfeff => "d1",
            0xfefd => "d2",
            0xfefc => "d3",
            _ => "00",
        };
        let mut ciphers: Vec<u16> = self
            .ciphers
            .iter()
            .copied()
            .filter(|&c| !is_grease(c))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|&e| !is_grease(e))
            .collect();
        let alpn = match self.alpn.first() {
            Some(a) if !a.is_empty() => {
                let (f, l) = (a[0], a[a.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", f as char, l as char)
                } else {
                    let h = |b: u8| format!("{b:02x}");
                    let (hf, hl) = (h(f), h(l));
                    format!("{}{}", &hf[..1], &hl[1..])
                }
            }
            _ => "00".to_string(),
        };
        let a = format!(
            "{}{}{}{:02}{:02}{}",
            if quic { 'q' } else { 't' },
            version,
            if self.extensions.contains(&ext::SERVER_NAME) {
                'd'
            } else {
                'i'
            },
            ciphers.len().min(99),
            exts.len().min(99),
            alpn
        );
        ciphers.sort_unstable();
        let mut sorted: Vec<u16> = exts
            .into_iter()
            .filter(|&e| e != ext::SERVER_NAME && e != ext::ALPN)
            .collect();
        sorted.sort_unstable();
        let sigs: Vec<u16> = self
            .signature_algorithms
            .iter()
            .copied()
            .filter(|&x| !is_grease(x))
            .collect();
        let mut c = hex_list(&sorted);
        if !sigs.is_empty() {
            c.push('_');
            c.push_str(&hex_list(&sigs));
        }
        format!("{a}_{}_{}", hash12(&hex_list(&ciphers)), hash12(&c))
    }
}
