//! Realistic TLS 1.3 ClientHello builder (Chrome-like extension order, GREASE, post-quantum
//! key share, ECH, record splitting) and the server-side TLS byte stream of a session.

use super::rng::{mix, Rng};

/// Largest TLS plaintext fragment (2^14 bytes).
const MAX_FRAGMENT: usize = 16_384;
/// Largest application-data record body written (fragment + content type + AEAD tag).
const MAX_CIPHERTEXT: usize = MAX_FRAGMENT + 17;
/// Smallest application-data record body written (content type + AEAD tag + a few bytes).
const MIN_CIPHERTEXT: usize = 22;
/// Cipher suites offered after the GREASE value, in Chrome's order.
const CIPHER_SUITES: [u16; 15] = [
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c,
    0x009d, 0x002f, 0x0035,
];
/// Signature algorithms offered, in Chrome's order.
const SIGNATURE_ALGORITHMS: [u16; 8] = [
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
];
/// Named group X25519MLKEM768, the hybrid post-quantum key exchange.
pub const GROUP_X25519_MLKEM768: u16 = 0x11ec;
/// Named group x25519.
const GROUP_X25519: u16 = 0x001d;
/// Size of an X25519MLKEM768 client key share.
const MLKEM_SHARE_LEN: usize = 1216;
/// Extension number of encrypted_client_hello.
pub const EXT_ECH: u16 = 0xfe0d;
/// Extension number of padding.
const EXT_PADDING: u16 = 0x0015;

/// Parameters of a generated ClientHello; `Default` is Chrome-like, without a server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHelloSpec {
    /// Host name for the server_name extension, if any.
    pub sni: Option<String>,
    /// ALPN protocols in preference order; empty leaves out ALPN and ALPS.
    pub alpn: Vec<String>,
    /// Adds an X25519MLKEM768 key share (1216 bytes) before x25519 (~1.55 KB hello; ~1.8 KB
    /// with `ech`, as Chrome always sends a real or GREASE ECH extension).
    pub post_quantum: bool,
    /// Adds an outer encrypted_client_hello extension (0xfe0d) with a random payload; `sni` is
    /// then the outer (public) name, or the real one for Chrome-style GREASE ECH.
    pub ech: bool,
    /// Adds GREASE cipher suite, extensions, group, key share and version like Chrome.
    pub grease: bool,
    /// Splits the handshake message over records of at most this many bytes.
    pub record_split: Option<usize>,
    /// The hello's legacy_version field (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// Versions for supported_versions (empty leaves it out); without 0x0304 no key_share is sent.
    pub supported_versions: Vec<u16>,
    /// Seed of the random, session id, key shares and GREASE values.
    pub seed: u64,
}

impl Default for ClientHelloSpec {
    fn default() -> Self {
        Self {
            sni: None,
            alpn: vec!["h2".into(), "http/1.1".into()],
            post_quantum: false,
            ech: false,
            grease: true,
            record_split: None,
            legacy_version: 0x0303,
            supported_versions: vec![0x0304, 0x0303],
            seed: 0,
        }
    }
}

impl ClientHelloSpec {
    /// Chrome-like hello for server name `sni`, randomised by `seed`.
    pub fn new(sni: &str, seed: u64) -> Self {
        Self {
            sni: Some(sni.into()),
            seed,
            ..Self::default()
        }
    }
}

/// Builds the ClientHello as TLS record bytes (starting `0x16 0x03 0x01`).
pub fn client_hello(spec: &ClientHelloSpec) -> Vec<u8> {
    let max = spec
        .record_split
        .unwrap_or(MAX_FRAGMENT)
        .clamp(1, MAX_FRAGMENT);
    records(0x16, 0x0301, &client_hello_message(spec), max)
}

/// Builds what a TLS 1.3 server sends back: a ServerHello record, a ChangeCipherSpec record and
/// application-data records of random content, about `len` bytes in all.
pub fn server_hello_and_more(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut body = Vec::with_capacity(128);
    put16(&mut body, 0x0303);
    body.extend(rng.bytes(32));
    put_vec(&mut body, 1, &rng.bytes(32));
    put16(&mut body, 0x1301);
    body.push(0);
    let mut exts = Vec::with_capacity(48);
    ext(&mut exts, 0x002b, &[3, 4]);
    let mut share = u16s(&[GROUP_X25519]);
    put_vec(&mut share, 2, &rng.bytes(32));
    ext(&mut exts, 0x0033, &share);
    put_vec(&mut body, 2, &exts);
    let mut out = records(0x16, 0x0303, &handshake(2, &body), MAX_FRAGMENT);
    out.extend(records(0x14, 0x0303, &[1], MAX_FRAGMENT));
    out.extend(app_data(mix(seed, 1), len.saturating_sub(out.len())));
    out
}

/// One DER element: `tag`, its length (short or long form), `body`.
fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(body);
    out
}

/// A certificate (DER, RFC 5280's layout) for subject common name `cn` with `sans` as its
/// subject alternative DNS names; the key and signature are random bytes (never checked).
pub fn certificate(seed: u64, cn: &str, sans: &[&str]) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let oid = |b: &[u8]| der(0x06, b);
    let sha256_rsa = der(
        0x30,
        &oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]),
    );
    let name = |cn: &str| {
        let mut atv = oid(&[0x55, 0x04, 0x03]);
        atv.extend(der(0x0c, cn.as_bytes()));
        der(0x30, &der(0x31, &der(0x30, &atv)))
    };
    let mut tbs = der(0xa0, &der(0x02, &[2]));
    tbs.extend(der(0x02, &rng.bytes(16)));
    tbs.extend(&sha256_rsa);
    tbs.extend(name("Picket Synth CA"));
    let mut validity = der(0x17, b"240101000000Z");
    validity.extend(der(0x17, b"341231000000Z"));
    tbs.extend(der(0x30, &validity));
    tbs.extend(name(cn));
    let mut spki = der(0x30, &oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]));
    spki.extend(der(0x03, &rng.bytes(66)));
    tbs.extend(der(0x30, &spki));
    let general: Vec<u8> = sans.iter().flat_map(|n| der(0x82, n.as_bytes())).collect();
    let mut san = oid(&[0x55, 0x1d, 0x11]);
    san.extend(der(0x04, &der(0x30, &general)));
    tbs.extend(der(0xa3, &der(0x30, &der(0x30, &san))));
    let mut cert = der(0x30, &tbs);
    cert.extend(&sha256_rsa);
    cert.extend(der(0x03, &rng.bytes(257)));
    der(0x30, &cert)
}

/// What a TLS 1.2 server sends first: ServerHello, Certificate (the server's own certificate
/// for `cn` and `sans`, then an issuer's) and ServerHelloDone, in records of at most `max` bytes.
pub fn server_flight_tls12(seed: u64, cn: &str, sans: &[&str], max: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut hello = Vec::with_capacity(80);
    put16(&mut hello, 0x0303);
    hello.extend(rng.bytes(32));
    put_vec(&mut hello, 1, &rng.bytes(32));
    put16(&mut hello, 0xc02f);
    hello.push(0);
    let mut exts = Vec::new();
    ext(&mut exts, 0xff01, &[0]);
    put_vec(&mut hello, 2, &exts);
    let mut certs = Vec::new();
    for c in [
        certificate(seed, cn, sans),
        certificate(mix(seed, 2), "Picket Synth CA", &[]),
    ] {
        put_vec(&mut certs, 3, &c);
    }
    let mut list = Vec::new();
    put_vec(&mut list, 3, &certs);
    let mut flight = handshake(2, &hello);
    flight.extend(handshake(11, &list));
    flight.extend(handshake(14, &[]));
    records(0x16, 0x0303, &flight, max)
}

/// Builds TLS 1.3 application-data records of random content, at least one and about `len` bytes.
pub fn app_data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 32);
    loop {
        let body = len
            .saturating_sub(out.len() + 5)
            .clamp(MIN_CIPHERTEXT, MAX_CIPHERTEXT);
        out.extend(records(0x17, 0x0303, &rng.bytes(body), MAX_CIPHERTEXT));
        if out.len() >= len {
            return out;
        }
    }
}

/// Builds the ClientHello handshake message (type, 24-bit length, body).
fn client_hello_message(spec: &ClientHelloSpec) -> Vec<u8> {
    let mut rng = Rng::new(spec.seed);
    let grease = spec.grease.then(|| grease_values(&mut rng));
    let mut body = Vec::with_capacity(2048);
    put16(&mut body, spec.legacy_version);
    body.extend(rng.bytes(32));
    put_vec(&mut body, 1, &rng.bytes(32));
    let suites: Vec<u16> = grease.iter().map(|g| g[0]).chain(CIPHER_SUITES).collect();
    put_vec(&mut body, 2, &u16s(&suites));
    put_vec(&mut body, 1, &[0]);
    let mut exts = extensions(spec, &mut rng, grease);
    // BoringSSL pads a hello whose message is 256..512 bytes long up to 512 bytes.
    let unpadded = 4 + body.len() + 2 + exts.len();
    if (256..512).contains(&unpadded) {
        let gap = 512 - unpadded;
        ext(
            &mut exts,
            EXT_PADDING,
            &vec![0; if gap >= 5 { gap - 4 } else { 1 }],
        );
    }
    put_vec(&mut body, 2, &exts);
    handshake(1, &body)
}

/// Builds the extension block in Chrome's order.
fn extensions(spec: &ClientHelloSpec, rng: &mut Rng, grease: Option<[u16; 5]>) -> Vec<u8> {
    let tls13 = spec.supported_versions.contains(&0x0304);
    let mut e = Vec::with_capacity(2048);
    if let Some(g) = grease {
        ext(&mut e, g[1], &[]);
    }
    if let Some(name) = &spec.sni {
        let mut entry = vec![0];
        put_vec(&mut entry, 2, name.as_bytes());
        ext(&mut e, 0x0000, &with_len(2, &entry));
    }
    ext(&mut e, 0x0017, &[]);
    ext(&mut e, 0xff01, &[0]);
    let mut groups: Vec<u16> = grease.iter().map(|g| g[3]).collect();
    if spec.post_quantum {
        groups.push(GROUP_X25519_MLKEM768);
    }
    groups.extend([GROUP_X25519, 0x0017, 0x0018]);
    ext(&mut e, 0x000a, &with_len(2, &u16s(&groups)));
    ext(&mut e, 0x000b, &[1, 0]);
    ext(&mut e, 0x0023, &[]);
    if !spec.alpn.is_empty() {
        let mut list = Vec::new();
        for proto in &spec.alpn {
            put_vec(&mut list, 1, proto.as_bytes());
        }
        ext(&mut e, 0x0010, &with_len(2, &list));
    }
    ext(&mut e, 0x0005, &[1, 0, 0, 0, 0]);
    ext(&mut e, 0x000d, &with_len(2, &u16s(&SIGNATURE_ALGORITHMS)));
    ext(&mut e, 0x0012, &[]);
    if tls13 {
        let mut shares = Vec::with_capacity(1300);
        if let Some(g) = grease {
            put16(&mut shares, g[3]);
            put_vec(&mut shares, 2, &[0]);
        }
        if spec.post_quantum {
            put16(&mut shares, GROUP_X25519_MLKEM768);
            put_vec(&mut shares, 2, &rng.bytes(MLKEM_SHARE_LEN));
        }
        put16(&mut shares, GROUP_X25519);
        put_vec(&mut shares, 2, &rng.bytes(32));
        ext(&mut e, 0x0033, &with_len(2, &shares));
        ext(&mut e, 0x002d, &[1, 1]);
    }
    if !spec.supported_versions.is_empty() {
        let versions: Vec<u16> = grease
            .iter()
            .map(|g| g[4])
            .chain(spec.supported_versions.iter().copied())
            .collect();
        ext(&mut e, 0x002b, &with_len(1, &u16s(&versions)));
    }
    ext(&mut e, 0x001b, &[2, 0, 2]);
    if spec.alpn.iter().any(|p| p == "h2") {
        ext(&mut e, 0x4469, &with_len(2, &with_len(1, b"h2")));
    }
    if spec.ech {
        // Outer ECH: type, HKDF-SHA256, AES-128-GCM, config id, encapsulated key, payload.
        let mut ech = vec![0, 0, 1, 0, 1, rng.range(0, 256) as u8];
        put_vec(&mut ech, 2, &rng.bytes(32));
        let payload = 144 + 32 * rng.range(0, 4) as usize;
        put_vec(&mut ech, 2, &rng.bytes(payload));
        ext(&mut e, EXT_ECH, &ech);
    }
    if let Some(g) = grease {
        ext(&mut e, g[2], &[0]);
    }
    e
}

/// Draws Chrome's GREASE values: cipher, first and (distinct) last extension, group, version.
fn grease_values(rng: &mut Rng) -> [u16; 5] {
    let mut g = [0u16; 5];
    for v in &mut g {
        let n = rng.range(0, 16) as u16;
        *v = 0x0a0a | (n << 12) | (n << 4);
    }
    if g[2] == g[1] {
        g[2] ^= 0x1010;
    }
    g
}

/// Wraps `body` in records of content type `ctype`, each carrying at most `max` bytes.
fn records(ctype: u8, version: u16, body: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5 * (body.len() / max + 1));
    for chunk in body.chunks(max) {
        out.push(ctype);
        put16(&mut out, version);
        put_vec(&mut out, 2, chunk);
    }
    out
}

/// Builds a handshake message: type byte, 24-bit length, body.
fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![msg_type];
    put_vec(&mut msg, 3, body);
    msg
}

/// Appends one extension: type, 16-bit length, body.
fn ext(out: &mut Vec<u8>, ty: u16, body: &[u8]) {
    put16(out, ty);
    put_vec(out, 2, body);
}

/// Appends a big-endian u16.
fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend(v.to_be_bytes());
}

/// Appends `body` preceded by its length as an `n`-byte (1..=3) big-endian number.
fn put_vec(out: &mut Vec<u8>, n: usize, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[4 - n..]);
    out.extend_from_slice(body);
}

/// Returns `body` preceded by its `n`-byte length.
fn with_len(n: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + body.len());
    put_vec(&mut out, n, body);
    out
}

/// Encodes u16 values big-endian.
fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Splits TLS records, checking each header; returns (content type, body) pairs.
    pub(crate) fn walk_records(mut b: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
            assert!(b.len() >= 5 + len, "record overruns input");
            assert_eq!(b[1], 3);
            out.push((b[0], &b[5..5 + len]));
            b = &b[5 + len..];
        }
        out
    }

    /// Parses a ClientHello message, checking all lengths; returns its extensions in order.
    pub(crate) fn walk_hello(msg: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(msg[0], 1);
        let len = u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize;
        assert_eq!(len + 4, msg.len());
        let b = &msg[4..];
        let sid = 34 + 1 + usize::from(b[34]);
        let suites = sid + 2 + usize::from(u16::from_be_bytes([b[sid], b[sid + 1]]));
        let comp = suites + 1 + usize::from(b[suites]);
        let ext_len = usize::from(u16::from_be_bytes([b[comp], b[comp + 1]]));
        assert_eq!(comp + 2 + ext_len, b.len(), "extensions length");
        let (mut e, mut out) = (&b[comp + 2..], Vec::new());
        while !e.is_empty() {
            let ty = u16::from_be_bytes([e[0], e[1]]);
            let n = usize::from(u16::from_be_bytes([e[2], e[3]]));
            out.push((ty, e[4..4 + n].to_vec()));
            e = &e[4 + n..];
        }
        out
    }

    /// Returns the handshake bytes carried by the records of `rec`.
    fn message(rec: &[u8]) -> Vec<u8> {
        walk_records(rec)
            .into_iter()
            .flat_map(|(t, b)| {
                assert_eq!(t, 0x16);
                b.to_vec()
            })
            .collect()
    }

    fn is_grease(ty: u16) -> bool {
        ty & 0x0f0f == 0x0a0a
    }

    #[test]
    fn client_hello_lengths_consistent() {
        let rec = client_hello(&ClientHelloSpec::new("g.whatsapp.net", 3));
        assert_eq!(&rec[..3], &[0x16, 3, 1]);
        let exts = walk_hello(&message(&rec));
        let order: Vec<u16> = exts
            .iter()
            .map(|e| e.0)
            .filter(|t| !is_grease(*t))
            .collect();
        assert_eq!(
            order,
            [
                0, 0x17, 0xff01, 0x0a, 0x0b, 0x23, 0x10, 5, 0x0d, 0x12, 0x33, 0x2d, 0x2b, 0x1b,
                0x4469, 0x15
            ]
        );
        assert_eq!(&exts[1].1[5..], b"g.whatsapp.net");
    }

    #[test]
    fn client_hello_padded_to_512() {
        let rec = client_hello(&ClientHelloSpec::new("example.com", 1));
        assert_eq!(message(&rec).len(), 512);
    }

    #[test]
    fn client_hello_post_quantum_size() {
        let spec = ClientHelloSpec {
            post_quantum: true,
            ..ClientHelloSpec::new("mmg.whatsapp.net", 2)
        };
        let rec = client_hello(&spec);
        assert!((1500..=2000).contains(&rec.len()), "{}", rec.len());
        let exts = walk_hello(&message(&rec));
        let share = &exts.iter().find(|e| e.0 == 0x33).unwrap().1;
        let pq = share.windows(4).position(|w| w == [0x11, 0xec, 0x04, 0xc0]);
        assert!(pq.is_some(), "1216-byte X25519MLKEM768 share");
        let chrome = client_hello(&ClientHelloSpec { ech: true, ..spec });
        assert!((1700..=2000).contains(&chrome.len()), "{}", chrome.len());
    }

    #[test]
    fn client_hello_record_split() {
        let spec = ClientHelloSpec::new("chat.signal.org", 4);
        let whole = message(&client_hello(&spec));
        let split = client_hello(&ClientHelloSpec {
            record_split: Some(100),
            ..spec
        });
        let recs = walk_records(&split);
        assert_eq!(recs.len(), whole.len().div_ceil(100));
        assert!(recs.iter().all(|r| r.1.len() <= 100));
        assert_eq!(message(&split), whole);
    }

    #[test]
    fn client_hello_ech_and_legacy() {
        let ech = ClientHelloSpec {
            ech: true,
            ..ClientHelloSpec::new("cloudflare-ech.com", 5)
        };
        assert!(walk_hello(&message(&client_hello(&ech)))
            .iter()
            .any(|e| e.0 == EXT_ECH));
        let old = ClientHelloSpec {
            grease: false,
            supported_versions: vec![],
            ..ClientHelloSpec::new("a.b", 5)
        };
        let types: Vec<u16> = walk_hello(&message(&client_hello(&old)))
            .iter()
            .map(|e| e.0)
            .collect();
        assert!(!types
            .iter()
            .any(|&t| t == 0x2b || t == 0x33 || is_grease(t)));
    }

    #[test]
    fn client_hello_deterministic() {
        let spec = ClientHelloSpec::new("zoom.us", 9);
        assert_eq!(client_hello(&spec), client_hello(&spec));
        assert_ne!(
            client_hello(&spec),
            client_hello(&ClientHelloSpec {
                seed: 10,
                ..spec.clone()
            })
        );
        let none = ClientHelloSpec { sni: None, ..spec };
        assert!(!walk_hello(&message(&client_hello(&none)))
            .iter()
            .any(|e| e.0 == 0));
    }

    #[test]
    fn server_hello_and_more_layout() {
        let out = server_hello_and_more(1, 20_000);
        assert!((20_000..20_100).contains(&out.len()), "{}", out.len());
        let recs = walk_records(&out);
        assert_eq!((recs[0].0, recs[0].1[0], recs[1].0), (0x16, 2, 0x14));
        assert!(recs[2..]
            .iter()
            .all(|r| r.0 == 0x17 && r.1.len() <= MAX_CIPHERTEXT));
    }

    #[test]
    fn app_data_small_len() {
        assert_eq!(walk_records(&app_data(1, 0)).len(), 1);
    }
}
