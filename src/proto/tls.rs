//! TLS ClientHello: pure functions from the client's first stream bytes to a typed summary.
//! Holds no state; reassembly lives in `flow::reasm`, JSON shaping in `export::events`, the JA4
//! fingerprint in `proto::ja4`.
//!
//! A ClientHello may span several TLS records (and so several TCP segments): RFC 8446 §5.1 lets a
//! handshake message be fragmented over records of the same content type. Post-quantum key shares
//! make 1.5–2 KB hellos ordinary, so this is the normal case, not an oddity.
//!
//! ```text
//! TLSPlaintext { type(1)=22, legacy_record_version(2), length(2), fragment[length] }
//! Handshake    { msg_type(1)=1, length(3), ClientHello[length] }
//! ClientHello  { legacy_version(2), random(32), session_id<0..32>, cipher_suites<2..2^16-2>,
//!                legacy_compression_methods<1..2^8-1>, extensions<8..2^16-1> }
//! ```

use tls_parser::{
    parse_tls_extension_alpn_content, parse_tls_extension_sni_content,
    parse_tls_handshake_client_hello, SNIType, TlsExtension,
};

/// TLS record content type of handshake messages.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const HS_CLIENT_HELLO: u8 = 1;
/// Largest record fragment a peer may send (RFC 8446 §5.1 plus the ciphertext expansion slack).
pub const MAX_RECORD: usize = 16_384 + 2_048;
/// Largest ClientHello accepted; the reassembly buffer is smaller anyway.
pub const MAX_HELLO: usize = 64 * 1024;

/// Extension numbers that matter here (IANA "TLS ExtensionType Values").
pub(crate) mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const ECH: u16 = 0xfe0d;
    pub const ECH_DRAFTS: std::ops::RangeInclusive<u16> = 0xfe08..=0xfe0c;
    pub const ESNI: u16 = 0xffce;
}

/// Why no ClientHello could be read (yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsError {
    /// More bytes are needed: at least `needed` in total from the start of the first record.
    Incomplete {
        /// Total stream bytes needed from the record start.
        needed: usize,
    },
    /// The bytes do not start with a TLS handshake record.
    NotTls,
    /// A handshake record, but its first message is not a ClientHello.
    NotClientHello,
    /// A ClientHello whose fields do not add up.
    Malformed(&'static str),
}

/// What a ClientHello says, borrowing the stream or the caller's scratch buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version` of the ClientHello body.
    pub legacy_version: u16,
    /// Versions listed in `supported_versions`, GREASE values removed, in order.
    pub supported_versions: Vec<u16>,
    /// The first host_name of the (first) server_name extension.
    pub sni: Option<&'a [u8]>,
    /// A second server_name extension came (servers refuse such a hello, RFC 8446 §4.2: a
    /// decoy, or a probe of the sensor); its host name is `other_sni`.
    pub duplicate_sni: bool,
    /// The host name of a later server_name extension, when it differs from `sni`.
    pub other_sni: Option<&'a [u8]>,
    /// ALPN protocol names in the order offered.
    pub alpn: Vec<&'a [u8]>,
    /// An encrypted_client_hello extension (RFC 9849 or a late draft) is present.
    pub ech: bool,
    /// An encrypted_server_name extension (the ESNI draft) is present.
    pub esni: bool,
    /// The extension list did not hold together (a length running past the end): the walk
    /// stopped there, keeping what came before.
    pub malformed_extensions: bool,
    /// Stream bytes the hello took, record headers included.
    pub consumed: usize,
    /// Cipher suites offered, in order (GREASE included, as on the wire).
    pub ciphers: Vec<u16>,
    /// Extension types, in order (GREASE included).
    pub extensions: Vec<u16>,
    /// The signature_algorithms extension's list, in order.
    pub signature_algorithms: Vec<u16>,
}

impl ClientHello<'_> {
    /// The highest version offered: the top of `supported_versions`, else `legacy_version`.
    pub fn max_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .max()
            .unwrap_or(self.legacy_version)
    }
}

/// Longest server name a DNS name allows (RFC 1035, in text form); longer ones are anomalies and
/// are cut to [`MAX_SNI_KEPT`] bytes.
pub const MAX_SNI: usize = 253;
/// Bytes of a server name kept.
pub const MAX_SNI_KEPT: usize = 255;

/// What a flow's ClientHello said, owned: built once per hello and kept with the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSummary {
    /// The JA4 client fingerprint.
    pub ja4: Box<str>,
    /// The server name as text (lossy UTF-8, NULs replaced), cut at [`MAX_SNI_KEPT`] bytes.
    pub sni: Option<Box<str>>,
    /// The ALPN protocols offered, in order, as text.
    pub alpn: Box<[Box<str>]>,
    /// The server name was longer than a DNS name can be (cut in `sni`; never trusted).
    pub sni_oversized: bool,
    /// Highest version offered.
    pub version: u16,
    /// An ECH extension was present (with real ECH the SNI is the outer, public name; Chrome also
    /// sends a placeholder that looks the same).
    pub ech: bool,
    /// An ESNI extension was present.
    pub esni: bool,
    /// Real ECH: the ECH extension came with the public name of a known ECH client-facing
    /// server (rules' `ech.toml`), so the server name is only the outer one. An ECH extension
    /// with any other name is taken for GREASE. Set by whoever knows the rules.
    pub ech_outer: bool,
    /// The hello came in QUIC Initials rather than over TCP.
    pub quic: bool,
    /// The client's user agent, where the handshake says it (Google QUIC's CHLO `UAID` tag).
    pub user_agent: Option<Box<str>>,
}

/// Bytes as text for events: lossy UTF-8, NUL bytes replaced.
fn text(b: &[u8]) -> Box<str> {
    String::from_utf8_lossy(b).replace('\0', "\u{fffd}").into()
}

impl TlsSummary {
    /// Builds the summary from the hello's raw fields.
    pub fn new(
        ja4: &str,
        sni: Option<&[u8]>,
        alpn: &[&[u8]],
        version: u16,
        ech: bool,
        esni: bool,
    ) -> Self {
        TlsSummary {
            ja4: ja4.into(),
            sni: sni.map(|n| text(&n[..n.len().min(MAX_SNI_KEPT)])),
            alpn: alpn.iter().map(|a| text(a)).collect(),
            sni_oversized: sni.is_some_and(|n| n.len() > MAX_SNI),
            version,
            ech,
            esni,
            ech_outer: false,
            quic: false,
            user_agent: None,
        }
    }

    /// From Google QUIC's client hello (QUIC crypto's CHLO, not TLS): its server name and user
    /// agent; no JA4, ALPN or TLS version.
    pub fn from_chlo(chlo: &crate::proto::quic::gquic::Chlo<'_>) -> Self {
        TlsSummary {
            quic: true,
            user_agent: chlo.uaid.map(|u| text(&u[..u.len().min(MAX_SNI_KEPT)])),
            ..TlsSummary::new("", chlo.sni, &[], 0, false, false)
        }
    }

    /// From a parsed hello; `quic` when it came in QUIC Initials (for JA4).
    pub fn from_hello(ch: &ClientHello<'_>, quic: bool) -> Self {
        TlsSummary {
            quic,
            ..TlsSummary::new(
                &ch.ja4(quic),
                ch.sni,
                &ch.alpn,
                ch.max_version(),
                ch.ech,
                ch.esni,
            )
        }
    }

    /// The server name, when it names the server the client wants: not the outer name of real
    /// ECH, not beside ESNI, and not an IP address written as a name.
    pub fn trusted_sni(&self) -> Option<&str> {
        let sni = self.sni()?;
        // Control bytes (or bytes that were not UTF-8) are no server's name.
        if sni.chars().any(|c| c.is_control() || c == '\u{fffd}') {
            return None;
        }
        let literal = sni.parse::<std::net::IpAddr>().is_ok()
            || sni
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        (!self.ech_outer && !self.esni && !literal && !self.sni_oversized).then_some(sni)
    }

    /// The JA4 client fingerprint.
    pub fn ja4(&self) -> &str {
        &self.ja4
    }

    /// The server name.
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// The ALPN protocols offered, in order.
    pub fn alpn(&self) -> impl Iterator<Item = &str> {
        self.alpn.iter().map(|a| &**a)
    }
}

/// Whether a version or group value is a GREASE value (RFC 8701: 0x?A?A with both bytes equal).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A short name for a TLS version number ("1.3", "1.2", ..., "ssl3"), or None when unknown.
pub fn version_name(v: u16) -> Option<&'static str> {
    Some(match v {
        0x0300 => "ssl3",
        0x0301 => "1.0",
        0x0302 => "1.1",
        0x0303 => "1.2",
        0x0304 => "1.3",
        _ => return None,
    })
}

/// Whether `b` could begin a TLS record that carries a ClientHello: the first bytes of a handshake
/// record header followed by the ClientHello message type. Needs 6 bytes; fewer gives false.
pub fn looks_like_client_hello(b: &[u8]) -> bool {
    b.len() >= 6
        && b[0] == CONTENT_HANDSHAKE
        && b[1] == 3
        && b[2] <= 4
        && usize::from(u16::from_be_bytes([b[3], b[4]])) <= MAX_RECORD
        && b[5] == HS_CLIENT_HELLO
}

/// Reads a ClientHello from a client stream that starts with a TLS record header.
///
/// When the handshake message spans several records, their fragments are concatenated into
/// `scratch` (cleared first), and the result borrows from it. `Incomplete` asks for more stream.
pub fn parse_client_hello<'a>(
    stream: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<ClientHello<'a>, TlsError> {
    let (first, mut at) = record(stream, 0)?;
    if first.len() < 4 {
        // A handshake header split over records is legal but unseen in practice; handle it anyway.
        if first.first().is_some_and(|&t| t != HS_CLIENT_HELLO) {
            return Err(TlsError::NotClientHello);
        }
    } else if first[0] != HS_CLIENT_HELLO {
        return Err(TlsError::NotClientHello);
    }
    // Collect fragments until the 4-byte header and the message it announces are complete.
    let hs: &'a [u8] = if first.len() >= 4 && first.len() >= 4 + hs_len(first) {
        &first[..4 + hs_len(first)]
    } else {
        scratch.clear();
        scratch.extend_from_slice(first);
        loop {
            if scratch.len() >= 4 {
                let need = 4 + hs_len(scratch);
                if need > MAX_HELLO {
                    return Err(TlsError::Malformed("ClientHello longer than 64 KiB"));
                }
                if scratch.len() >= need {
                    scratch.truncate(need);
                    break;
                }
            }
            let (frag, next) = record(stream, at)?;
            scratch.extend_from_slice(frag);
            at = next;
        }
        scratch.as_slice()
    };
    let mut out = parse_client_hello_message(hs)?;
    out.consumed = at;
    Ok(out)
}

/// Reads a ClientHello handshake message that is not wrapped in TLS records, as QUIC carries it
/// in CRYPTO frames (RFC 9001 §4). `Incomplete` asks for more bytes.
pub fn parse_client_hello_message(hs: &[u8]) -> Result<ClientHello<'_>, TlsError> {
    match hs.first() {
        None => return Err(TlsError::Incomplete { needed: 4 }),
        Some(&HS_CLIENT_HELLO) => {}
        Some(_) => return Err(TlsError::NotClientHello),
    }
    if hs.len() < 4 {
        return Err(TlsError::Incomplete { needed: 4 });
    }
    let need = 4 + hs_len(hs);
    if need > MAX_HELLO {
        return Err(TlsError::Malformed("ClientHello longer than 64 KiB"));
    }
    let body = hs
        .get(4..need)
        .ok_or(TlsError::Incomplete { needed: need })?;
    let (_, ch) = parse_tls_handshake_client_hello(body)
        .map_err(|_| TlsError::Malformed("ClientHello body does not parse"))?;
    let mut out = ClientHello {
        legacy_version: ch.version.0,
        supported_versions: Vec::new(),
        sni: None,
        duplicate_sni: false,
        other_sni: None,
        alpn: Vec::new(),
        ech: false,
        esni: false,
        malformed_extensions: false,
        consumed: need,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        extensions: Vec::new(),
        signature_algorithms: Vec::new(),
    };
    if let Some(exts) = ch.ext {
        read_extensions(exts, &mut out);
    }
    Ok(out)
}

/// 24-bit handshake length of a handshake header.
fn hs_len(h: &[u8]) -> usize {
    (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3])
}

/// The fragment of the handshake record starting at `at`, and the offset after it.
fn record(stream: &[u8], at: usize) -> Result<(&[u8], usize), TlsError> {
    let hdr = stream
        .get(at..at + 5)
        .ok_or(TlsError::Incomplete { needed: at + 5 })?;
    if hdr[0] != CONTENT_HANDSHAKE || hdr[1] != 3 || hdr[2] > 4 {
        return Err(if at == 0 {
            TlsError::NotTls
        } else {
            TlsError::Malformed("ClientHello continues in a non-handshake record")
        });
    }
    let len = usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
    if len == 0 || len > MAX_RECORD {
        return Err(TlsError::Malformed("handshake record length out of range"));
    }
    let end = at + 5 + len;
    let frag = stream
        .get(at + 5..end)
        .ok_or(TlsError::Incomplete { needed: end })?;
    Ok((frag, end))
}

/// Walks the extension list by hand, so one malformed extension spoils only itself.
fn read_extensions<'a>(mut exts: &'a [u8], out: &mut ClientHello<'a>) {
    while exts.len() >= 4 {
        let ty = u16::from_be_bytes([exts[0], exts[1]]);
        let len = usize::from(u16::from_be_bytes([exts[2], exts[3]]));
        let Some(data) = exts.get(4..4 + len) else {
            out.malformed_extensions = true;
            break;
        };
        exts = &exts[4 + len..];
        out.extensions.push(ty);
        match ty {
            ext::SERVER_NAME => {
                if let Ok((_, TlsExtension::SNI(names))) = parse_tls_extension_sni_content(data) {
                    let name = names
                        .iter()
                        .find(|(t, _)| *t == SNIType::HostName)
                        .map(|(_, n)| *n)
                        .filter(|n| !n.is_empty());
                    if out.extensions[..out.extensions.len() - 1].contains(&ext::SERVER_NAME) {
                        // The first one stays; the other is kept as a name seen.
                        out.duplicate_sni = true;
                        if out.other_sni.is_none() && name != out.sni {
                            out.other_sni = name;
                        }
                    } else {
                        out.sni = name;
                    }
                }
            }
            ext::ALPN => {
                if let Ok((_, TlsExtension::ALPN(list))) = parse_tls_extension_alpn_content(data) {
                    out.alpn = list;
                }
            }
            ext::SUPPORTED_VERSIONS => {
                // ClientHello form: a 1-byte list length, then 2-byte versions.
                if let Some((&n, list)) = data.split_first() {
                    let list = list.get(..usize::from(n)).unwrap_or(list);
                    out.supported_versions = list
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .filter(|&v| !is_grease(v))
                        .collect();
                }
            }
            ext::SIGNATURE_ALGORITHMS => {
                // A 2-byte list length, then 2-byte scheme values.
                if let Some(list) = data.get(2..) {
                    let n = usize::from(u16::from_be_bytes([
                        data[0],
                        data.get(1).copied().unwrap_or(0),
                    ]));
                    out.signature_algorithms = list
                        .get(..n.min(list.len()))
                        .unwrap_or(list)
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                }
            }
            ext::ECH => out.ech = true,
            t if ext::ECH_DRAFTS.contains(&t) => out.ech = true,
            ext::ESNI => out.esni = true,
            _ => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ClientHello handshake message (header included) with the given extensions.
    pub(crate) fn hello_message(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([0x11; 32]); // random
        body.push(32);
        body.extend([0x22; 32]); // session id
        body.extend([0x00, 0x04, 0x13, 0x01, 0x13, 0x02]); // two cipher suites
        body.extend([0x01, 0x00]); // null compression
        let mut e = Vec::new();
        for (ty, data) in exts {
            e.extend(ty.to_be_bytes());
            e.extend((data.len() as u16).to_be_bytes());
            e.extend(data);
        }
        body.extend((e.len() as u16).to_be_bytes());
        body.extend(e);
        let mut hs = vec![HS_CLIENT_HELLO];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        hs
    }

    pub(crate) fn sni_ext(name: &str) -> (u16, Vec<u8>) {
        let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend((name.len() as u16).to_be_bytes());
        d.extend(name.as_bytes());
        (ext::SERVER_NAME, d)
    }

    fn alpn_ext(protos: &[&str]) -> (u16, Vec<u8>) {
        let mut l = Vec::new();
        for p in protos {
            l.push(p.len() as u8);
            l.extend(p.as_bytes());
        }
        let mut d = (l.len() as u16).to_be_bytes().to_vec();
        d.extend(l);
        (ext::ALPN, d)
    }

    /// Wraps a handshake message into records of at most `max` fragment bytes.
    pub(crate) fn records(hs: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in hs.chunks(max) {
            out.extend([CONTENT_HANDSHAKE, 3, 1]);
            out.extend((chunk.len() as u16).to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    /// A hello with SNI, ALPN, supported_versions (with GREASE) and a 1.2 KB post-quantum-sized key share.
    pub(crate) fn big_hello(name: &str) -> Vec<u8> {
        hello_message(&[
            (0x0a0a, vec![]),
            sni_ext(name),
            alpn_ext(&["h2", "http/1.1"]),
            (ext::SUPPORTED_VERSIONS, vec![6, 0x1a, 0x1a, 3, 4, 3, 3]),
            (51, vec![0x5a; 1250]), // key_share, X25519MLKEM768-sized
        ])
    }

    #[test]
    fn parse_client_hello_single_record() {
        let stream = records(&big_hello("chat.signal.org"), 16_384);
        let mut scratch = Vec::new();
        let ch = parse_client_hello(&stream, &mut scratch).unwrap();
        assert_eq!(ch.sni, Some(&b"chat.signal.org"[..]));
        assert_eq!(ch.alpn, vec![&b"h2"[..], &b"http/1.1"[..]]);
        assert_eq!(ch.supported_versions, vec![0x0304, 0x0303]);
        assert_eq!(ch.max_version(), 0x0304);
        assert_eq!(ch.legacy_version, 0x0303);
        assert!(!ch.ech && !ch.esni);
        assert_eq!(ch.consumed, stream.len());
        assert!(stream.len() > 1300);
    }

    #[test]
    fn parse_client_hello_spans_three_records() {
        let hs = big_hello("g.whatsapp.net");
        let stream = records(&hs, 600);
        assert_eq!(stream.len(), hs.len() + 5 * 3);
        let mut scratch = Vec::new();
        let ch = parse_client_hello(&stream, &mut scratch).unwrap();
        assert_eq!(ch.sni, Some(&b"g.whatsapp.net"[..]));
        assert_eq!(ch.consumed, stream.len());
    }

    #[test]
    fn parse_client_hello_incomplete_asks_for_more() {
        let stream = records(&big_hello("zoom.us"), 600);
        let mut scratch = Vec::new();
        for cut in [0, 3, 5, 400, 605, 700, stream.len() - 1] {
            match parse_client_hello(&stream[..cut], &mut scratch) {
                Err(TlsError::Incomplete { needed }) => assert!(needed > cut, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_client_hello_not_tls_and_not_client_hello() {
        let mut scratch = Vec::new();
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n", &mut scratch),
            Err(TlsError::NotTls)
        );
        // A ServerHello (type 2) record.
        let mut sh = big_hello("x");
        sh[0] = 2;
        assert_eq!(
            parse_client_hello(&records(&sh, 16_384), &mut scratch),
            Err(TlsError::NotClientHello)
        );
    }

    #[test]
    fn parse_client_hello_ech_and_esni_flags() {
        let hs = hello_message(&[sni_ext("cloudflare-ech.com"), (ext::ECH, vec![0; 200])]);
        let mut scratch = Vec::new();
        let s = records(&hs, 16_384);
        let ch = parse_client_hello(&s, &mut scratch).unwrap();
        assert!(ch.ech);
        assert_eq!(ch.sni, Some(&b"cloudflare-ech.com"[..]));
        let hs = hello_message(&[(ext::ESNI, vec![0; 40])]);
        let s = records(&hs, 16_384);
        let ch = parse_client_hello(&s, &mut scratch).unwrap();
        assert!(ch.esni && ch.sni.is_none());
    }

    #[test]
    fn parse_client_hello_malformed_extension_spoils_only_itself() {
        let hs = hello_message(&[(ext::ALPN, vec![0, 9, 1]), sni_ext("web.telegram.org")]);
        let mut scratch = Vec::new();
        let s = records(&hs, 16_384);
        let ch = parse_client_hello(&s, &mut scratch).unwrap();
        assert_eq!(ch.sni, Some(&b"web.telegram.org"[..]));
        assert!(ch.alpn.is_empty());
    }

    #[test]
    fn parse_client_hello_arbitrary_bytes_never_panic() {
        let base = records(&big_hello("discord.com"), 300);
        let mut scratch = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut s = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % s.len();
                s[i] = (x >> 32) as u8;
            }
            let cut = (x as usize >> 8) % (s.len() + 1);
            let _ = parse_client_hello(&s[..cut], &mut scratch);
        }
    }

    #[test]
    fn parse_client_hello_message_without_records() {
        let hs = big_hello("www.google.com");
        let ch = parse_client_hello_message(&hs).unwrap();
        assert_eq!(ch.sni, Some(&b"www.google.com"[..]));
        assert_eq!(ch.consumed, hs.len());
        assert_eq!(
            parse_client_hello_message(&hs[..100]),
            Err(TlsError::Incomplete { needed: hs.len() })
        );
        assert_eq!(
            parse_client_hello_message(&[2, 0, 0, 1, 0]),
            Err(TlsError::NotClientHello)
        );
    }

    /// The JA4 specification's worked example (FoxIO, JA4 technical details): a Chrome-like
    /// hello with 15 ciphers and 16 extensions gives `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    #[test]
    fn ja4_specification_example() {
        let ciphers: &[u16] = &[
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let exts: &[u16] = &[
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ];
        let sigs: &[u16] = &[
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let ch = ClientHello {
            legacy_version: 0x0303,
            supported_versions: vec![0x0304, 0x0303],
            sni: Some(b"example.com"),
            duplicate_sni: false,
            other_sni: None,
            alpn: vec![b"h2", b"http/1.1"],
            ech: false,
            esni: false,
            malformed_extensions: false,
            consumed: 0,
            ciphers: ciphers.to_vec(),
            extensions: exts.to_vec(),
            signature_algorithms: sigs.to_vec(),
        };
        assert_eq!(ch.ja4(false), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert!(ch.ja4(true).starts_with("q13d1516h2_"));
    }

    #[test]
    fn is_grease_values() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0304) && !is_grease(0x0a1a));
    }

    #[test]
    fn looks_like_client_hello_header() {
        let s = records(&big_hello("a.b"), 16_384);
        assert!(looks_like_client_hello(&s));
        assert!(!looks_like_client_hello(&s[..5]));
        assert!(!looks_like_client_hello(b"\x17\x03\x03\x00\x10\x01"));
    }

    #[test]
    fn tls_summary_names_round_trip() {
        let t = TlsSummary::new(
            "t13d",
            Some(b"a.example"),
            &[b"h2", b"http/1.1"],
            0x0304,
            false,
            false,
        );
        assert_eq!(t.ja4(), "t13d");
        assert_eq!(t.sni(), Some("a.example"));
        assert_eq!(t.alpn().collect::<Vec<_>>(), ["h2", "http/1.1"]);
        let t = TlsSummary::new("j", None, &[b"h\0x"], 0x0303, false, false);
        assert_eq!(t.sni(), None);
        assert_eq!(t.alpn().collect::<Vec<_>>(), ["h\u{fffd}x"]);
        let t = TlsSummary::new("j", Some(b"b.example"), &[], 0x0303, false, false);
        assert_eq!((t.sni(), t.alpn().count()), (Some("b.example"), 0));
    }
}
