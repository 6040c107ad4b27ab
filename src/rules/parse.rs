//! Rule and policy files: TOML text → validated [`RuleSet`], every problem as a [`RuleError`]
//! with file, line and column. Cold path: allocation and clarity over speed.

use super::{RuleError, RuleErrors, Source, Verdict};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Whether `s` is a category name: open names (`messaging`, `conferencing`, `social`, or an
/// organisation's own), `[a-z0-9_]+`, at most 32 characters.
fn is_category(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && is_valid_id(s)
}

/// Whether `s` is a rule id: 1 to 64 of `[A-Za-z0-9_.:-]`, e.g. `picket:whatsapp`.
fn is_rule_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// One domain entry of an app, normalised (lower case, no trailing dot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEntry {
    /// The name.
    pub name: String,
    /// Exact-only (`=name`) rather than a suffix.
    pub exact: bool,
    /// 1-based line in the file, for the events' `rule` field.
    pub line: usize,
}

/// One app, as its rule file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDef {
    /// App id (`[a-z0-9_]+`), the file's stem.
    pub id: String,
    /// The stable id of the file's rules (`rule_id`), unique across the set: what events carry
    /// beside `rule` (`file:line`, which moves when the file is edited).
    pub rule_id: String,
    /// Display name.
    pub name: String,
    /// Category (an open name: `messaging`, `conferencing`, `social`, …).
    pub category: String,
    /// Line of `rule_id`.
    pub rule_id_line: usize,
    /// Verdict after the policy was applied.
    pub verdict: Verdict,
    /// The policy asks for alerts on this app even though its verdict is `observe`.
    pub alert: bool,
    /// The file name, as events cite it.
    pub file: String,
    /// Domain entries in file order.
    pub domains: Vec<DomainEntry>,
    /// The app's IP prefix list, if it has one.
    pub prefixes: Option<PrefixList>,
    /// Payload signatures: byte patterns at the start of a flow's client data.
    pub signatures: Vec<Signature>,
    /// What marks the app's STUN/TURN messages.
    pub stun: Option<StunRule>,
    /// JA4 client fingerprints of the app's own TLS stack, with their lines.
    pub ja4: Vec<(String, usize)>,
}

/// What marks an app's STUN/TURN messages: any one of these facts is enough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StunRule {
    /// Message types only this app sends.
    pub message_types: Vec<u16>,
    /// Attribute types only this app sends.
    pub attributes: Vec<u16>,
    /// Substrings (lower case) of the REALM or SOFTWARE attribute.
    pub realms: Vec<String>,
    /// Line of the `[stun]` table.
    pub line: usize,
}

/// One byte position of a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BytePattern {
    /// Any byte (`??`).
    Any,
    /// One of these bytes (`45`, or `(02|04)`).
    OneOf(Vec<u8>),
}

/// Which side of a flow sends the bytes a signature describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The client (the default): its first datagrams or the start of its stream.
    Client,
    /// The server (UDP only): one of its first datagrams, so a capture of the server's side
    /// alone still finds the app, and the datagram says which side is the server.
    Server,
    /// Either side (UDP only): a message both ends send alike (an echoed keepalive).
    Either,
}

impl Sender {
    /// Whether bytes sent by the client (`true`) or the server match a signature of this sender.
    pub fn sends(self, client: bool) -> bool {
        match self {
            Sender::Client => client,
            Sender::Server => !client,
            Sender::Either => true,
        }
    }
}

/// A payload signature: bytes at an offset of the first payload of a flow (the client's unless
/// `from` says otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// TCP (the client's stream) or UDP (the client's first datagram).
    pub transport: crate::decode::Transport,
    /// Server ports it applies to (empty: any).
    pub ports: Vec<u16>,
    /// Offset of the first byte.
    pub offset: u16,
    /// The bytes.
    pub pattern: Vec<BytePattern>,
    /// A length field whose value must equal the length of the datagram (UDP) or of the
    /// client's first segment (TCP): the framing of protocols that announce their size.
    pub length: Option<LengthField>,
    /// The exact length of the datagram (UDP) or of the client's first segment (TCP).
    pub size: Option<u16>,
    /// TCP only: the exact length of the server's first segment, which then decides (a
    /// handshake whose messages have fixed sizes but random bytes).
    pub reply_size: Option<u16>,
    /// The side that sends these bytes.
    pub from: Sender,
    /// Line of the entry.
    pub line: usize,
}

/// A length field of a signature: `size` bytes at `offset`, in `order`, plus `adjust`, equal to
/// the payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthField {
    /// Offset of the field.
    pub offset: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    /// Big-endian (network order) rather than little-endian.
    pub big_endian: bool,
    /// Added to the field's value before the comparison (a header the value does not count).
    pub adjust: i32,
}

impl LengthField {
    /// The field's value plus the adjustment, when `data` holds the field.
    pub fn read(&self, data: &[u8]) -> Option<i64> {
        let at = usize::from(self.offset);
        let b = data.get(at..at + usize::from(self.size))?;
        let mut v: u64 = 0;
        for i in 0..b.len() {
            let byte = if self.big_endian {
                b[i]
            } else {
                b[b.len() - 1 - i]
            };
            v = (v << 8) | u64::from(byte);
        }
        Some(v as i64 + i64::from(self.adjust))
    }
}

/// Bits of evidence a signature needs: about one chance in 2^32 for a random payload, or 2^24
/// when it is limited to a few ports.
const MIN_BITS: f64 = 32.0;
/// Bits a port restriction (to at most [`MAX_PORTS_FOR_BITS`] ports) stands for.
const PORT_BITS: f64 = 8.0;
const MAX_PORTS_FOR_BITS: usize = 16;

/// Bits an exact size (of the client's first message, or of the server's reply) stands for:
/// sizes cluster, so one counts as a single byte.
const SIZE_BITS: f64 = 8.0;

/// The evidence of a signature in bits: 8 per fixed byte, less for alternatives, 8 per length
/// byte (at most 16), [`SIZE_BITS`] per exact size, and [`PORT_BITS`] for a short port list.
fn evidence_bits(
    pattern: &[BytePattern],
    length: Option<&LengthField>,
    sizes: usize,
    ports: &[u16],
) -> f64 {
    let bytes: f64 = pattern
        .iter()
        .map(|b| match b {
            BytePattern::Any => 0.0,
            BytePattern::OneOf(v) => 8.0 - (v.len().max(1) as f64).log2(),
        })
        .sum();
    let len = length.map_or(0.0, |l| (8.0 * f64::from(l.size)).min(16.0));
    let port = if !ports.is_empty() && ports.len() <= MAX_PORTS_FOR_BITS {
        PORT_BITS
    } else {
        0.0
    };
    bytes + len + SIZE_BITS * sizes as f64 + port
}

/// Whether `s` has the form of a JA4 fingerprint: `[tqd]` + 2 version characters + `[di]` + 2
/// digits + 2 digits + 2 ALPN characters, then two 12-digit hex hashes.
fn is_ja4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('_').collect();
    let hex12 = |p: &str| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 3
        && parts[0].len() == 10
        && matches!(parts[0].as_bytes()[0], b't' | b'q' | b'd')
        && matches!(parts[0].as_bytes()[3], b'd' | b'i')
        && parts[0].as_bytes()[4..8].iter().all(u8::is_ascii_digit)
        && hex12(parts[1])
        && hex12(parts[2])
}

/// Parses `45 44 ?? (02|04) 08`: hex bytes, `??` for any byte, `(a|b|...)` for alternatives.
fn parse_pattern(text: &str) -> Result<Vec<BytePattern>, String> {
    let hex = |t: &str| {
        u8::from_str_radix(t, 16).map_err(|_| format!("'{t}' is not a hex byte in '{text}'"))
    };
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        if tok == "??" {
            out.push(BytePattern::Any);
        } else if let Some(inner) = tok.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
            let alts = inner.split('|').map(hex).collect::<Result<Vec<u8>, _>>()?;
            out.push(BytePattern::OneOf(alts));
        } else {
            out.push(BytePattern::OneOf(vec![hex(tok)?]));
        }
    }
    if out.len() > 64 {
        return Err(format!("'{text}': longer than 64 bytes"));
    }
    Ok(out)
}

/// An app's IP prefixes, with where they come from and how old they may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixList {
    /// Where the list comes from.
    pub source: String,
    /// The day the list was taken, as days since 1970-01-01.
    pub as_of_day: i64,
    /// The same day as written (YYYY-MM-DD).
    pub as_of: String,
    /// Past this age the list is reported stale.
    pub max_age_days: u32,
    /// Line of the `[prefixes]` table.
    pub line: usize,
    /// The prefixes: (network, prefix length, line).
    pub entries: Vec<(std::net::IpAddr, u8, usize)>,
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (years 1970 to 9999).
pub fn day_number(date: &str) -> Option<i64> {
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    // A four-digit year, like the format says; a longer one would overflow the arithmetic below.
    if it.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(1970..=9999).contains(&y)
    {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Parses `a.b.c.d/n` or `x::y/n`; the address must have no bits set past the prefix.
fn parse_prefix(text: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}': a prefix needs a length, as in 192.0.2.0/24"))?;
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("'{text}': not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("'{text}': bad prefix length"))?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    if len > bits {
        return Err(format!("'{text}': prefix length over {bits}"));
    }
    let host_bits_set = match ip {
        std::net::IpAddr::V4(v) => len < 32 && u32::from(v) << len != 0,
        std::net::IpAddr::V6(v) => len < 128 && u128::from(v) << len != 0,
    };
    if host_bits_set {
        return Err(format!(
            "'{text}': address has bits set past the prefix length"
        ));
    }
    Ok((ip, len))
}

/// A validated set of apps, ready to compile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// The apps, in file-name order.
    pub apps: Vec<AppDef>,
    /// Public names of ECH client-facing servers (`ech.toml`): a ClientHello with an ECH
    /// extension whose server name is one of these carries real ECH, and its name is only the
    /// outer one.
    pub ech_public_names: Vec<DomainEntry>,
    /// Traffic that hides what it carries (`hidden.toml`): encrypted-DNS resolvers, VPN names.
    pub hidden: hidden::HiddenLists,
    /// Public STUN servers (`stun_servers.toml`): every app's calls may use them, so no flow to
    /// one is claimed for an app by its address alone.
    pub public_stun: Vec<StunServer>,
}

/// A public STUN service: a prefix of its addresses and the ports it answers on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StunServer {
    /// Network address.
    pub addr: std::net::IpAddr,
    /// Prefix length.
    pub len: u8,
    /// UDP/TCP ports.
    pub ports: Vec<u16>,
    /// Line in the file.
    pub line: usize,
}

/// The file of public STUN servers.
pub const STUN_SERVERS_FILE: &str = "stun_servers.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StunServersFile {
    servers: Vec<Spanned<StunServerEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StunServerEntry {
    prefix: String,
    ports: Vec<u16>,
}

fn parse_stun_servers(src: &Source, set: &mut RuleSet, errors: &mut Vec<RuleError>) {
    let Some((file, mut cx)) = FileCtx::read::<StunServersFile>(src, errors) else {
        return;
    };
    for s in &file.servers {
        let e = s.get_ref();
        if e.ports.is_empty() {
            cx.err(s.span(), "a STUN server needs its ports");
            continue;
        }
        match parse_prefix(&e.prefix) {
            Ok((addr, len)) => {
                let (line, _) = cx.lines.at(s.span().start);
                set.public_stun.push(StunServer {
                    addr,
                    len,
                    ports: e.ports.clone(),
                    line,
                });
            }
            Err(msg) => cx.err(s.span(), msg),
        }
    }
}

#[path = "hidden.rs"]
pub mod hidden;

/// The file of ECH client-facing servers' public names.
pub const ECH_FILE: &str = "ech.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchFile {
    public_names: Vec<Spanned<String>>,
}

fn parse_ech(src: &Source, set: &mut RuleSet, errors: &mut Vec<RuleError>) {
    let Some((file, mut cx)) = FileCtx::read::<EchFile>(src, errors) else {
        return;
    };
    cx.domains(&file.public_names, &mut set.ech_public_names);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    id: Spanned<String>,
    rule_id: Spanned<String>,
    name: Spanned<String>,
    category: Spanned<String>,
    verdict: Spanned<String>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    prefixes: Option<Spanned<PrefixFile>>,
    #[serde(default)]
    signatures: Vec<Spanned<SignatureFile>>,
    stun: Option<Spanned<StunFile>>,
    #[serde(default)]
    ja4: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StunFile {
    #[serde(default)]
    message_types: Vec<u16>,
    #[serde(default)]
    attributes: Vec<u16>,
    #[serde(default)]
    realms: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    transport: Spanned<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    offset: u16,
    #[serde(default)]
    bytes: Option<Spanned<String>>,
    length: Option<Spanned<LengthFile>>,
    size: Option<Spanned<u16>>,
    reply_size: Option<Spanned<u16>>,
    from: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LengthFile {
    #[serde(default)]
    offset: u16,
    size: u8,
    order: String,
    #[serde(default)]
    adjust: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixFile {
    source: Spanned<String>,
    as_of: Spanned<String>,
    #[serde(default = "default_max_age")]
    max_age_days: Spanned<u32>,
    list: Vec<Spanned<String>>,
}

fn default_max_age() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_MAX_AGE_DAYS)
}

/// A prefix list older than this many days (unless the file says otherwise) is stale.
pub const DEFAULT_MAX_AGE_DAYS: u32 = 365;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    verdicts: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Apps that raise alerts whatever their verdict.
    #[serde(default)]
    alert: Vec<Spanned<String>>,
}

/// The name of the optional policy file inside a rules folder.
pub const POLICY_FILE: &str = "policy.toml";

/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;

/// Turns byte offsets into 1-based line and column in time independent of the file's size: the
/// line starts are found once, a line by binary search, a column by counting characters from the
/// line's start, or from the last place asked for when it is on the same line and before (spans
/// come in file order, so a file of one long line is not counted over and over).
struct Lines<'a> {
    text: &'a str,
    /// Byte offset of each line's first byte.
    starts: Vec<usize>,
    /// The last place asked for: (offset, its line's start, its column).
    last: std::cell::Cell<(usize, usize, usize)>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines {
            text,
            starts,
            last: std::cell::Cell::new((0, 0, 1)),
        }
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    fn at(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let (last_off, last_start, last_col) = self.last.get();
        let col = if last_start == start && last_off <= offset {
            last_col + self.text[last_off..offset].chars().count()
        } else {
            self.text[start..offset].chars().count() + 1
        };
        self.last.set((offset, start, col));
        (line, col)
    }
}

struct FileCtx<'a> {
    path: &'a Path,
    lines: Lines<'a>,
    errors: &'a mut Vec<RuleError>,
}

impl<'a> FileCtx<'a> {
    /// Reads `src` as the TOML file `T`, with the context its errors are reported in; a file
    /// that does not parse is one error (with its place) and `None`.
    fn read<T: serde::de::DeserializeOwned>(
        src: &'a Source,
        errors: &'a mut Vec<RuleError>,
    ) -> Option<(T, FileCtx<'a>)> {
        match toml::from_str(&src.text) {
            Ok(f) => Some((
                f,
                FileCtx {
                    path: &src.path,
                    lines: Lines::new(&src.text),
                    errors,
                },
            )),
            Err(e) => {
                errors.push(toml_error(&src.path, &src.text, &e));
                None
            }
        }
    }

    /// Checks each domain of `list`, pushing the good ones onto `out` with their lines and
    /// reporting the others.
    fn domains(&mut self, list: &[Spanned<String>], out: &mut Vec<DomainEntry>) {
        for n in list {
            match normalise_domain(n.get_ref()) {
                Ok((name, exact)) => {
                    let line = self.lines.line(n.span().start);
                    out.push(DomainEntry { name, exact, line });
                }
                Err(msg) => self.err(n.span(), msg),
            }
        }
    }

    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = self.lines.at(span.start);
        self.errors.push(RuleError {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }
}

/// Checks a domain entry and returns it normalised, or says what is wrong.
fn normalise_domain(raw: &str) -> Result<(String, bool), String> {
    let (exact, name) = match raw.strip_prefix('=') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty domain name".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("domain name longer than {MAX_NAME} characters"));
    }
    if name.contains('*') {
        return Err(format!(
            "'{raw}': wildcards are not supported; a plain name already matches its subdomains"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("'{raw}': invalid character {c:?} in a domain name"));
    }
    if name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(format!(
            "'{raw}': empty label or label longer than 63 characters"
        ));
    }
    // No top-level domain is all digits (RFC 3696 §2), so such a name is an address.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "'{raw}' is an address, not a domain name: addresses go in a prefix list"
        ));
    }
    if !name.contains('.') {
        return Err(format!(
            "'{raw}': a domain needs at least two labels (one label is a whole top-level domain)"
        ));
    }
    Ok((name, exact))
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Converts a toml parse error into a rule error at its place.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> RuleError {
    let (line, col) = e.span().map_or((0, 0), |s| Lines::new(text).at(s.start));
    RuleError {
        path: path.to_path_buf(),
        line,
        col,
        message: e.message().trim().to_string(),
    }
}

impl RuleSet {
    /// Parses and validates rule files and the policy (a `policy.toml` among the sources, and the
    /// extra `policy` file, applied in that order). Returns every error found.
    pub fn parse(sources: &[Source], policy: Option<&Source>) -> Result<RuleSet, RuleErrors> {
        let mut errors = Vec::new();
        let mut set = RuleSet::default();
        // name → (exact, where first seen) to report duplicates with both places.
        let mut seen = Seen::default();
        let mut ids: HashMap<String, PathBuf> = HashMap::new();
        let mut rule_ids: HashMap<String, (PathBuf, usize)> = HashMap::new();
        let mut policies: Vec<&Source> = Vec::new();
        for src in sources {
            if src.name == POLICY_FILE {
                policies.push(src);
                continue;
            }
            if src.name == ECH_FILE {
                parse_ech(src, &mut set, &mut errors);
                continue;
            }
            if src.name == STUN_SERVERS_FILE {
                parse_stun_servers(src, &mut set, &mut errors);
                continue;
            }
            if src.name == hidden::HIDDEN_FILE {
                hidden::parse_hidden(src, &mut set, &mut errors);
                continue;
            }
            let app = if src.name.ends_with(LIST_SUFFIX) {
                parse_list(src, &mut errors, &mut seen)
            } else {
                parse_app(src, &mut errors, &mut seen)
            };
            if let Some(app) = app {
                if let Some(first) = ids.get(&app.id) {
                    errors.push(RuleError {
                        path: src.path.clone(),
                        line: 1,
                        col: 1,
                        message: format!(
                            "app id '{}' is already defined in {}",
                            app.id,
                            first.display()
                        ),
                    });
                    continue;
                }
                if let Some((p, l)) = rule_ids.get(&app.rule_id) {
                    errors.push(RuleError {
                        path: src.path.clone(),
                        line: app.rule_id_line,
                        col: 1,
                        message: format!(
                            "rule_id '{}' is already used at {}:{l}",
                            app.rule_id,
                            p.display()
                        ),
                    });
                    continue;
                }
                rule_ids.insert(app.rule_id.clone(), (src.path.clone(), app.rule_id_line));
                ids.insert(app.id.clone(), src.path.clone());
                set.apps.push(app);
            }
        }
        policies.extend(policy);
        for p in policies {
            apply_policy(p, &mut set, &mut errors);
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(RuleErrors(errors))
        }
    }
}

fn parse_app(src: &Source, errors: &mut Vec<RuleError>, seen: &mut Seen) -> Option<AppDef> {
    let (file, mut cx) = FileCtx::read::<AppFile>(src, errors)?;
    let before = cx.errors.len();
    let path: Arc<Path> = Arc::from(src.path.as_path());
    let id = file.id.get_ref().clone();
    if !is_valid_id(&id) {
        cx.err(
            file.id.span(),
            format!("app id '{id}' must be lower-case letters, digits and '_'"),
        );
    }
    let stem = src.name.strip_suffix(".toml").unwrap_or(&src.name);
    if is_valid_id(&id) && stem != id {
        cx.err(
            file.id.span(),
            format!("app id '{id}' does not match the file name '{}'", src.name),
        );
    }
    if file.name.get_ref().trim().is_empty() {
        cx.err(file.name.span(), "display name is empty");
    }
    let category = file.category.get_ref();
    if !is_category(category) {
        cx.err(
            file.category.span(),
            format!(
                "category '{category}' must be lower-case letters, digits and '_' (at most 32), \
                 such as messaging, conferencing or social"
            ),
        );
    }
    let rule_id = file.rule_id.get_ref();
    if !is_rule_id(rule_id) {
        cx.err(
            file.rule_id.span(),
            format!(
                "rule_id '{rule_id}' must be 1 to 64 letters, digits and '_', '.', ':', '-' \
                 (such as picket:whatsapp)"
            ),
        );
    }
    let rule_id_line = cx.lines.line(file.rule_id.span().start);
    let verdict = Verdict::parse(file.verdict.get_ref());
    if verdict.is_none() {
        cx.err(
            file.verdict.span(),
            format!(
                "unknown verdict '{}' (expected flag or observe)",
                file.verdict.get_ref()
            ),
        );
    }
    let mut domains = Vec::with_capacity(file.domains.len());
    for d in &file.domains {
        match normalise_domain(d.get_ref()) {
            Ok((name, exact)) => {
                let line = cx.lines.line(d.span().start);
                let key = (name.clone(), exact);
                if let Some((p, l)) = seen.get(&key) {
                    let msg = format!(
                        "'{}' is already listed at {}:{}",
                        d.get_ref(),
                        p.display(),
                        l
                    );
                    cx.err(d.span(), msg);
                } else {
                    seen.insert(key, (Arc::clone(&path), line));
                    domains.push(DomainEntry { name, exact, line });
                }
            }
            Err(msg) => cx.err(d.span(), msg),
        }
    }
    let prefixes = file.prefixes.as_ref().and_then(|p| {
        let line = cx.lines.line(p.span().start);
        let p = p.get_ref();
        let Some(as_of_day) = day_number(p.as_of.get_ref()) else {
            cx.err(
                p.as_of.span(),
                format!("'{}': as_of must be a date YYYY-MM-DD", p.as_of.get_ref()),
            );
            return None;
        };
        if p.source.get_ref().trim().is_empty() {
            cx.err(
                p.source.span(),
                "a prefix list must say where it comes from (source)",
            );
        }
        let mut entries = Vec::with_capacity(p.list.len());
        for e in &p.list {
            match parse_prefix(e.get_ref()) {
                Ok((ip, len)) => entries.push((ip, len, cx.lines.line(e.span().start))),
                Err(msg) => cx.err(e.span(), msg),
            }
        }
        Some(PrefixList {
            source: p.source.get_ref().clone(),
            as_of_day,
            as_of: p.as_of.get_ref().clone(),
            max_age_days: *p.max_age_days.get_ref(),
            line,
            entries,
        })
    });
    let mut signatures = Vec::new();
    for sig in &file.signatures {
        let line = cx.lines.line(sig.span().start);
        let sig = sig.get_ref();
        let transport = match sig.transport.get_ref().as_str() {
            "tcp" => crate::decode::Transport::Tcp,
            "udp" => crate::decode::Transport::Udp,
            other => {
                cx.err(
                    sig.transport.span(),
                    format!("unknown transport '{other}' (expected tcp or udp)"),
                );
                continue;
            }
        };
        let pattern = match &sig.bytes {
            Some(b) => match parse_pattern(b.get_ref()) {
                Ok(p) => p,
                Err(msg) => {
                    cx.err(b.span(), msg);
                    continue;
                }
            },
            None => Vec::new(),
        };
        let length = match &sig.length {
            Some(l) => {
                let v = l.get_ref();
                let big_endian = match v.order.as_str() {
                    "be" => true,
                    "le" => false,
                    other => {
                        cx.err(
                            l.span(),
                            format!("length order '{other}' (expected be or le)"),
                        );
                        continue;
                    }
                };
                if ![1, 2, 4].contains(&v.size) {
                    cx.err(
                        l.span(),
                        format!("length size {} (expected 1, 2 or 4)", v.size),
                    );
                    continue;
                }
                Some(LengthField {
                    offset: v.offset,
                    size: v.size,
                    big_endian,
                    adjust: v.adjust,
                })
            }
            None => None,
        };
        let size = sig.size.as_ref().map(|v| *v.get_ref());
        let reply_size = match &sig.reply_size {
            Some(r) if transport != crate::decode::Transport::Tcp => {
                cx.err(
                    r.span(),
                    "reply_size is for TCP signatures: a UDP flow's first datagram decides",
                );
                continue;
            }
            Some(r) if *r.get_ref() == 0 => {
                cx.err(r.span(), "reply_size 0: a reply has at least one byte");
                continue;
            }
            Some(r) => Some(*r.get_ref()),
            None => None,
        };
        let from = match sig.from.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None | Some((_, "client")) => Sender::Client,
            Some((f, "server" | "either")) if transport != crate::decode::Transport::Udp => {
                cx.err(
                    f.span(),
                    "from server or either is for UDP signatures: a TCP signature reads the \
                     client's stream",
                );
                continue;
            }
            Some((_, "server")) => Sender::Server,
            Some((_, "either")) => Sender::Either,
            Some((f, other)) => {
                cx.err(
                    f.span(),
                    format!("unknown sender '{other}' (expected client, server or either)"),
                );
                continue;
            }
        };
        if size == Some(0) {
            if let Some(v) = &sig.size {
                cx.err(v.span(), "size 0: the first message has at least one byte");
            }
            continue;
        }
        let sizes = usize::from(size.is_some()) + usize::from(reply_size.is_some());
        let bits = evidence_bits(&pattern, length.as_ref(), sizes, &sig.ports);
        if bits < MIN_BITS - PORT_BITS || (bits < MIN_BITS && sig.ports.is_empty()) {
            let span = sig
                .bytes
                .as_ref()
                .map_or_else(|| sig.transport.span(), |b| b.span());
            cx.err(
                span,
                format!(
                    "a signature needs at least 4 fixed bytes of evidence (3 when limited to at \
                     most {MAX_PORTS_FOR_BITS} ports; a 2-byte length field counts as 2, an \
                     exact size or reply_size as 1), or it matches by chance; this one has {:.1}",
                    bits / 8.0
                ),
            );
            continue;
        }
        signatures.push(Signature {
            transport,
            ports: sig.ports.clone(),
            offset: sig.offset,
            pattern,
            length,
            size,
            reply_size,
            from,
            line,
        });
    }
    let stun = file.stun.as_ref().map(|t| {
        let line = cx.lines.line(t.span().start);
        let t = t.get_ref();
        let mut realms = Vec::new();
        for r in &t.realms {
            if r.get_ref().trim().len() < 4 {
                cx.err(
                    r.span(),
                    format!(
                        "'{}': a realm substring needs at least 4 characters",
                        r.get_ref()
                    ),
                );
            } else {
                realms.push(r.get_ref().to_ascii_lowercase());
            }
        }
        StunRule {
            message_types: t.message_types.clone(),
            attributes: t.attributes.clone(),
            realms,
            line,
        }
    });
    let mut ja4 = Vec::new();
    for j in &file.ja4 {
        let text = j.get_ref().trim().to_ascii_lowercase();
        if is_ja4(&text) {
            let line = cx.lines.line(j.span().start);
            ja4.push((text, line));
        } else {
            cx.err(
                j.span(),
                format!(
                    "'{}' is not a JA4 fingerprint (10 characters, '_', 12 hex digits, '_', 12 hex digits)",
                    j.get_ref()
                ),
            );
        }
    }
    if cx.errors.len() > before {
        return None;
    }
    Some(AppDef {
        id,
        rule_id: file.rule_id.get_ref().clone(),
        rule_id_line,
        name: file.name.into_inner(),
        category: file.category.into_inner(),
        verdict: verdict?,
        alert: false,
        file: src.name.clone(),
        domains,
        prefixes,
        signatures,
        stun,
        ja4,
    })
}

/// Every domain entry seen so far, (name, exact) → where: to report duplicates with both places.
/// A fast hash: a list of a million names goes through it.
type Seen = HashMap<(String, bool), (Arc<Path>, usize), foldhash::fast::FixedState>;

/// The file-name ending of plain list files.
const LIST_SUFFIX: &str = ".list";

/// The header keys of a list file.
const LIST_KEYS: &[&str] = &[
    "id",
    "rule_id",
    "name",
    "category",
    "verdict",
    "source",
    "as_of",
    "max_age_days",
];

/// Parses a plain list file: a header of `key = value` lines (`id`, `rule_id`, `category`,
/// `verdict`; `name`, and `source`, `as_of`, `max_age_days` for addresses, optional), then one
/// entry a line: a domain (a suffix, or exact with `=`), an IP prefix (`192.0.2.0/24`) or an
/// address (a `/32` or `/128`). `#` starts a comment, blank lines are skipped. One pass over the
/// lines: a list of a million entries loads in about a second.
fn parse_list(src: &Source, errors: &mut Vec<RuleError>, seen: &mut Seen) -> Option<AppDef> {
    let before = errors.len();
    let path: Arc<Path> = Arc::from(src.path.as_path());
    let err = |errors: &mut Vec<RuleError>, line: usize, col: usize, message: String| {
        errors.push(RuleError {
            path: src.path.clone(),
            line,
            col,
            message,
        });
    };
    let mut header: HashMap<&str, (&str, usize)> = HashMap::new();
    let mut domains = Vec::new();
    let mut prefixes = Vec::new();
    let mut in_header = true;
    for (i, raw) in src.text.lines().enumerate() {
        let line = i + 1;
        let text = raw.split_once('#').map_or(raw, |(t, _)| t);
        let col = text.len() - text.trim_start().len() + 1;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if let Some((k, v)) = text.split_once('=').filter(|(k, _)| !k.trim().is_empty()) {
            let key = k.trim();
            if !in_header {
                err(
                    errors,
                    line,
                    col,
                    format!(
                        "header line '{key} = …' after the first entry: the header comes first"
                    ),
                );
                continue;
            }
            if !LIST_KEYS.contains(&key) {
                err(
                    errors,
                    line,
                    col,
                    format!(
                        "unknown header key '{key}' (expected {})",
                        LIST_KEYS.join(", ")
                    ),
                );
                continue;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if header.insert(key, (v, line)).is_some() {
                err(errors, line, col, format!("header key '{key}' given twice"));
            }
            continue;
        }
        in_header = false;
        if text.contains(['/', ':']) || text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let cidr;
            let text = if text.contains('/') {
                text
            } else {
                cidr = format!("{text}/{}", if text.contains(':') { 128 } else { 32 });
                &cidr
            };
            match parse_prefix(text) {
                Ok((ip, len)) => prefixes.push((ip, len, line)),
                Err(msg) => err(errors, line, col, msg),
            }
            continue;
        }
        match normalise_domain(text) {
            Ok((name, exact)) => {
                let key = (name, exact);
                if let Some((p, l)) = seen.get(&key) {
                    let msg = format!("'{text}' is already listed at {}:{l}", p.display());
                    err(errors, line, col, msg);
                } else {
                    let (name, exact) = key.clone();
                    seen.insert(key, (Arc::clone(&path), line));
                    domains.push(DomainEntry { name, exact, line });
                }
            }
            Err(msg) => err(errors, line, col, msg),
        }
    }
    let first_entry = domains
        .first()
        .map(|d| d.line)
        .into_iter()
        .chain(prefixes.first().map(|p| p.2))
        .min()
        .unwrap_or(1);
    let mut need = |key: &str| match header.get(key) {
        Some(&(v, line)) => Some((v, line)),
        None => {
            err(
                errors,
                1,
                1,
                format!("a list file's header needs '{key} = …' before its entries"),
            );
            None
        }
    };
    let id = need("id");
    let rule_id = need("rule_id");
    let category = need("category");
    let verdict = need("verdict");
    let (id, rule_id, category, verdict) = (id?, rule_id?, category?, verdict?);
    let stem = src.name.strip_suffix(LIST_SUFFIX).unwrap_or(&src.name);
    if !is_valid_id(id.0) {
        err(
            errors,
            id.1,
            1,
            format!(
                "app id '{}' must be lower-case letters, digits and '_'",
                id.0
            ),
        );
    } else if stem != id.0 {
        err(
            errors,
            id.1,
            1,
            format!(
                "app id '{}' does not match the file name '{}'",
                id.0, src.name
            ),
        );
    }
    if !is_rule_id(rule_id.0) {
        err(
            errors,
            rule_id.1,
            1,
            format!(
                "rule_id '{}' must be 1 to 64 letters, digits and '_', '.', ':', '-'",
                rule_id.0
            ),
        );
    }
    if !is_category(category.0) {
        err(
            errors,
            category.1,
            1,
            format!(
                "category '{}' must be lower-case letters, digits and '_' (at most 32)",
                category.0
            ),
        );
    }
    let v = Verdict::parse(verdict.0);
    if v.is_none() {
        err(
            errors,
            verdict.1,
            1,
            format!("unknown verdict '{}' (expected flag or observe)", verdict.0),
        );
    }
    let prefixes = if prefixes.is_empty() {
        None
    } else {
        let source = header.get("source").map(|s| s.0).unwrap_or_default();
        if source.trim().is_empty() {
            err(
                errors,
                first_entry,
                1,
                "a list with addresses must say where they come from: 'source = …' in its header"
                    .into(),
            );
        }
        let as_of = header.get("as_of").map(|s| s.0).unwrap_or_default();
        let as_of_day = day_number(as_of);
        if as_of_day.is_none() {
            err(
                errors,
                header.get("as_of").map_or(first_entry, |s| s.1),
                1,
                format!(
                    "'{as_of}': a list with addresses needs 'as_of = YYYY-MM-DD' in its header"
                ),
            );
        }
        let max_age_days = match header.get("max_age_days") {
            Some(&(m, line)) => m.parse().unwrap_or_else(|_| {
                err(
                    errors,
                    line,
                    1,
                    format!("max_age_days '{m}' is not a number of days"),
                );
                DEFAULT_MAX_AGE_DAYS
            }),
            None => DEFAULT_MAX_AGE_DAYS,
        };
        Some(PrefixList {
            source: source.to_string(),
            as_of_day: as_of_day.unwrap_or_default(),
            as_of: as_of.to_string(),
            max_age_days,
            line: first_entry,
            entries: prefixes,
        })
    };
    if errors.len() > before {
        return None;
    }
    Some(AppDef {
        id: id.0.to_string(),
        rule_id: rule_id.0.to_string(),
        rule_id_line: rule_id.1,
        name: header.get("name").map_or(id.0, |n| n.0).to_string(),
        category: category.0.to_string(),
        verdict: v?,
        alert: false,
        file: src.name.clone(),
        domains,
        prefixes,
        signatures: Vec::new(),
        stun: None,
        ja4: Vec::new(),
    })
}

fn apply_policy(src: &Source, set: &mut RuleSet, errors: &mut Vec<RuleError>) {
    let Some((file, mut cx)) = FileCtx::read::<PolicyFile>(src, errors) else {
        return;
    };
    for (app, verdict) in &file.verdicts {
        let Some(v) = Verdict::parse(verdict.get_ref()) else {
            cx.err(
                verdict.span(),
                format!(
                    "unknown verdict '{}' (expected flag or observe)",
                    verdict.get_ref()
                ),
            );
            continue;
        };
        match set.apps.iter_mut().find(|a| a.id == *app.get_ref()) {
            Some(a) => a.verdict = v,
            None => cx.err(
                app.span(),
                format!(
                    "policy names app '{}', which no rule file defines",
                    app.get_ref()
                ),
            ),
        }
    }
    for app in &file.alert {
        match set.apps.iter_mut().find(|a| a.id == *app.get_ref()) {
            Some(a) => a.alert = true,
            None => cx.err(
                app.span(),
                format!(
                    "policy names app '{}', which no rule file defines",
                    app.get_ref()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            path: PathBuf::from("r").join(name),
            name: name.into(),
            text: text.into(),
        }
    }

    const GOOD: &str = r#"
id = "chat"
rule_id = "t:chat"
name = "Chat"
category = "messaging"
verdict = "flag"
domains = [
  "Chat.Example.",
  "=exact.example.net",
]
"#;

    #[test]
    fn parse_good_file_normalises_domains() {
        let set = RuleSet::parse(&[src("chat.toml", GOOD)], None).unwrap();
        let app = &set.apps[0];
        assert_eq!(app.id, "chat");
        assert_eq!(app.verdict, Verdict::Flag);
        assert_eq!(
            app.domains,
            vec![
                DomainEntry {
                    name: "chat.example".into(),
                    exact: false,
                    line: 8
                },
                DomainEntry {
                    name: "exact.example.net".into(),
                    exact: true,
                    line: 9
                },
            ]
        );
    }

    #[test]
    fn parse_reports_every_error_with_line_and_col() {
        let bad = r#"id = "chat"
rule_id = "t:chat"
name = "Chat"
category = "Gaming"
verdict = "block"
domains = ["ok.example", "*.wild.example", "bad name.example", "a..b"]
"#;
        let errs = RuleSet::parse(&[src("chat.toml", bad)], None)
            .unwrap_err()
            .0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 5, "{shown:#?}");
        assert!(
            shown[0].starts_with("r/chat.toml:4:12: category 'Gaming' must be lower-case"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].starts_with("r/chat.toml:5:11: unknown verdict 'block'"),
            "{}",
            shown[1]
        );
        assert!(
            shown[2].starts_with("r/chat.toml:6:26: '*.wild.example': wildcards"),
            "{}",
            shown[2]
        );
        assert!(shown[3].contains("invalid character ' '"), "{}", shown[3]);
        assert!(shown[4].contains("empty label"), "{}", shown[4]);
    }

    #[test]
    fn parse_toml_syntax_error_and_unknown_key_have_places() {
        let errs = RuleSet::parse(&[src("chat.toml", "id = \"chat\"\nname = \n")], None)
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 2, "{}", errs[0]);
        let errs = RuleSet::parse(&[src("chat.toml", &format!("{GOOD}\nports = [1]\n"))], None)
            .unwrap_err()
            .0;
        assert!(errs[0].message.contains("unknown field"), "{}", errs[0]);
        assert_eq!(errs[0].line, 12, "{}", errs[0]);
    }

    #[test]
    fn parse_duplicate_domain_across_files_names_both_places() {
        let other = GOOD
            .replace("\"chat\"", "\"other\"")
            .replace("=exact", "=x");
        let errs = RuleSet::parse(&[src("chat.toml", GOOD), src("other.toml", &other)], None)
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "r/other.toml:8:3: 'Chat.Example.' is already listed at r/chat.toml:8"
        );
    }

    #[test]
    fn parse_prefix_lists_with_provenance() {
        let text = format!(
            "{GOOD}\n[prefixes]\nsource = \"AS64500 announcements\"\nas_of = \"2024-10-01\"\nlist = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n"
        );
        let set = RuleSet::parse(&[src("chat.toml", &text)], None).unwrap();
        let p = set.apps[0].prefixes.as_ref().unwrap();
        assert_eq!(p.as_of_day, day_number("2024-10-01").unwrap());
        assert_eq!(p.max_age_days, DEFAULT_MAX_AGE_DAYS);
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries[1].1, 32);
        let bad = format!(
            "{GOOD}\n[prefixes]\nsource = \"x\"\nas_of = \"yesterday\"\nlist = [\"192.0.2.1/24\"]\n"
        );
        let errs = RuleSet::parse(&[src("chat.toml", &bad)], None)
            .unwrap_err()
            .0;
        assert!(
            errs[0].message.contains("as_of must be a date"),
            "{}",
            errs[0]
        );
        let bad = format!(
            "{GOOD}\n[prefixes]\nsource = \"x\"\nas_of = \"2024-01-01\"\nlist = [\"192.0.2.1/24\", \"10.0.0.0/33\", \"nope/8\"]\n"
        );
        let errs = RuleSet::parse(&[src("chat.toml", &bad)], None)
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].to_string().starts_with("r/chat.toml:15:"),
            "{}",
            errs[0]
        );
        assert!(errs[0].message.contains("bits set past the prefix"));
    }

    #[test]
    fn lines_and_columns_on_one_long_line_and_many() {
        let text = "ab\ncdé f\n\ngh";
        let l = Lines::new(text);
        assert_eq!(l.at(0), (1, 1));
        assert_eq!(l.at(3), (2, 1));
        assert_eq!(l.at(4), (2, 2));
        assert_eq!(l.at(7), (2, 4), "é is one column");
        assert_eq!(l.at(2), (1, 3), "backwards");
        assert_eq!(l.at(10), (3, 1));
        assert_eq!(l.at(12), (4, 2));
        assert_eq!(l.at(99), (4, 3), "past the end");
        assert_eq!(l.line(11), 4);
        // Errors on one long line, in order, each with its column.
        let one = format!("id = \"chat\"\nrule_id = \"t:chat\"\nname = \"Chat\"\ncategory = \"messaging\"\nverdict = \"flag\"\ndomains = [{}]\n",
            (0..50).map(|i| format!("\"bad{i}..x\"")).collect::<Vec<_>>().join(", "));
        let errs = RuleSet::parse(&[src("chat.toml", &one)], None)
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 50);
        for (i, e) in errs.iter().enumerate() {
            let want = one.find(&format!("\"bad{i}..")).unwrap_or_default()
                - one.rfind("\ndomains").unwrap_or_default();
            assert_eq!((e.line, e.col), (6, want), "{e}");
        }
    }

    #[test]
    fn day_number_known_dates() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2000-03-01"), Some(11_017));
        assert_eq!(day_number("2024-13-01"), None);
        assert_eq!(day_number("9999-12-31"), Some(2_932_896));
    }

    /// Found while writing the `rule_file` fuzz target: a year of 17 digits or more overflowed
    /// the day arithmetic (a panic in debug builds, a wrapped day in release ones).
    #[test]
    fn day_number_rejects_years_past_9999() {
        assert_eq!(day_number("10000-01-01"), None);
        assert_eq!(day_number("99999999999999999-03-01"), None);
        assert_eq!(day_number("9223372036854775807-01-01"), None);
        let text = GOOD.to_string()
            + "[prefixes]\nsource = \"s\"\nas_of = \"99999999999999999-03-01\"\nlist = []\n";
        let errs = RuleSet::parse(&[src("chat.toml", &text)], None)
            .unwrap_err()
            .0;
        assert!(errs[0].message.contains("as_of must be a date"), "{errs:?}");
    }

    #[test]
    fn rule_ids_are_declared_unique_and_well_formed_and_categories_open() {
        let set = RuleSet::parse(&[src("chat.toml", GOOD)], None).unwrap();
        assert_eq!(set.apps[0].rule_id, "t:chat");
        assert_eq!(set.apps[0].category, "messaging");
        let other = GOOD
            .replace("id = \"chat\"", "id = \"other\"")
            .replace("rule_id = \"t:other\"", "rule_id = \"t:chat\"")
            .replace("\"Chat.Example.\",", "")
            .replace("=exact", "=x")
            .replace("\"messaging\"", "\"local_block\"");
        let errs = RuleSet::parse(&[src("chat.toml", GOOD), src("other.toml", &other)], None)
            .unwrap_err()
            .0;
        assert_eq!(
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["r/other.toml:3:1: rule_id 't:chat' is already used at r/chat.toml:3"]
        );
        let unique = other.replace("rule_id = \"t:chat\"", "rule_id = \"org:other-1.2\"");
        let set =
            RuleSet::parse(&[src("chat.toml", GOOD), src("other.toml", &unique)], None).unwrap();
        assert_eq!(set.apps[1].category, "local_block", "open category names");
        let bad = GOOD.replace("\"t:chat\"", "\"has space\"");
        let errs = RuleSet::parse(&[src("chat.toml", &bad)], None)
            .unwrap_err()
            .0;
        assert!(
            errs[0]
                .to_string()
                .starts_with("r/chat.toml:3:11: rule_id 'has space' must be"),
            "{}",
            errs[0]
        );
        let missing = GOOD.replace("rule_id = \"t:chat\"\n", "");
        let errs = RuleSet::parse(&[src("chat.toml", &missing)], None)
            .unwrap_err()
            .0;
        assert!(
            errs[0].message.contains("missing field `rule_id`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn domains_need_two_labels_and_are_not_addresses() {
        for (bad, why) in [
            ("com", "at least two labels"),
            ("=localhost", "at least two labels"),
            ("10.0.0.1", "is an address"),
            ("192.168.1", "is an address"),
        ] {
            let text = GOOD.replace("\"Chat.Example.\"", &format!("\"{bad}\""));
            let errs = RuleSet::parse(&[src("chat.toml", &text)], None)
                .unwrap_err()
                .0;
            assert!(errs[0].message.contains(why), "{bad}: {}", errs[0]);
            assert_eq!(errs[0].line, 8, "{bad}: {}", errs[0]);
        }
        assert!(normalise_domain("a.co").is_ok());
        assert!(
            normalise_domain("1.2.3.example").is_ok(),
            "digits below a TLD"
        );
    }

    const LIST: &str = "# An organisation's block list.
id = local_block
rule_id = org:local-block
name = \"Local block list\"
category = local
verdict = flag
source = \"our firewall team\"
as_of = 2026-11-30

Blocked.Example.   # a suffix
=exact.example.net
192.0.2.0/24
198.51.100.7
2001:db8::/32
";

    #[test]
    fn list_files_have_a_header_and_one_entry_a_line() {
        let set = RuleSet::parse(&[src("local_block.list", LIST)], None).unwrap();
        let a = &set.apps[0];
        assert_eq!(
            (&*a.id, &*a.rule_id, &*a.name, &*a.category, a.verdict),
            (
                "local_block",
                "org:local-block",
                "Local block list",
                "local",
                Verdict::Flag
            )
        );
        assert_eq!(
            a.domains,
            vec![
                DomainEntry {
                    name: "blocked.example".into(),
                    exact: false,
                    line: 10
                },
                DomainEntry {
                    name: "exact.example.net".into(),
                    exact: true,
                    line: 11
                },
            ]
        );
        let p = a.prefixes.as_ref().unwrap();
        assert_eq!(p.source, "our firewall team");
        assert_eq!(p.as_of, "2026-11-30");
        let lens: Vec<(u8, usize)> = p.entries.iter().map(|e| (e.1, e.2)).collect();
        assert_eq!(lens, [(24, 12), (32, 13), (32, 14)]);
    }

    #[test]
    fn list_file_errors_have_file_line_and_col() {
        let bad = LIST
            .replace("verdict = flag\n", "verdict = block\ncolour = red\n")
            .replace("=exact.example.net", "  com\n10.1.2.3.4\nid = again")
            .replace("192.0.2.0/24", "192.0.2.1/24");
        let errs = RuleSet::parse(&[src("local_block.list", &bad)], None)
            .unwrap_err()
            .0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let want = [
            "r/local_block.list:7:1: unknown header key 'colour'",
            "r/local_block.list:12:3: 'com': a domain needs at least two labels",
            "r/local_block.list:13:1: '10.1.2.3.4/32': not an IP address",
            "r/local_block.list:14:1: header line 'id = …' after the first entry",
            "r/local_block.list:15:1: '192.0.2.1/24': address has bits set",
            "r/local_block.list:6:1: unknown verdict 'block'",
        ];
        assert_eq!(shown.len(), want.len(), "{shown:#?}");
        for (s, w) in shown.iter().zip(want) {
            assert!(s.starts_with(w), "{s}\nwant {w}");
        }
        // The header names the app; its id is the file's name; addresses need a source.
        let errs = RuleSet::parse(&[src("other.list", "id = x\nexample.com\n")], None)
            .unwrap_err()
            .0;
        let shown = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for key in ["rule_id", "category", "verdict"] {
            assert!(shown.contains(&format!("needs '{key} = …'")), "{shown}");
        }
        let no_source = LIST.replace("source = \"our firewall team\"\n", "");
        let errs = RuleSet::parse(&[src("local_block.list", &no_source)], None)
            .unwrap_err()
            .0;
        assert!(
            errs[0].message.contains("must say where they come from"),
            "{}",
            errs[0]
        );
        let other = LIST.replace("local_block", "mine");
        let errs = RuleSet::parse(
            &[
                src("mine.list", &other),
                src(
                    "chat.toml",
                    &GOOD.replace("Chat.Example.", "blocked.example"),
                ),
            ],
            None,
        )
        .unwrap_err()
        .0;
        assert_eq!(
            errs[0].to_string(),
            "r/chat.toml:8:3: 'blocked.example' is already listed at r/mine.list:10"
        );
    }

    #[test]
    fn parse_id_must_match_file_name() {
        let errs = RuleSet::parse(&[src("talk.toml", GOOD)], None)
            .unwrap_err()
            .0;
        assert!(errs[0].message.contains("does not match the file name"));
    }

    #[test]
    fn parse_policy_overrides_verdicts_and_rejects_unknown_apps() {
        let pol = src("policy.toml", "[verdicts]\nchat = \"observe\"\n");
        let set = RuleSet::parse(&[src("chat.toml", GOOD), pol], None).unwrap();
        assert_eq!(set.apps[0].verdict, Verdict::Observe);
        assert!(!set.apps[0].alert);
        let pol = src(
            "policy.toml",
            "alert = [\"chat\"]\n[verdicts]\nchat = \"observe\"\n",
        );
        let set = RuleSet::parse(&[src("chat.toml", GOOD), pol], None).unwrap();
        assert!(set.apps[0].alert && set.apps[0].verdict == Verdict::Observe);
        let extra = src(
            "mine.toml",
            "[verdicts]\nchat = \"flag\"\nnope = \"flag\"\n",
        );
        let errs = RuleSet::parse(&[src("chat.toml", GOOD)], Some(&extra))
            .unwrap_err()
            .0;
        assert_eq!(
            errs[0].to_string(),
            "r/mine.toml:3:1: policy names app 'nope', which no rule file defines"
        );
    }
}
