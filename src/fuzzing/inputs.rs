//! Fuzz entry points of the files a user hands Picket: capture files, rule files, the web config.

use super::{Bytes, Pipeline};
use crate::capture::file::{Compression, FileSource, MAX_FRAME};
use crate::capture::PacketSource;
use crate::decode::{self};
use crate::export::webconfig::{basic_credentials, Draft, WebConfigError};
use crate::rules::{self, CompiledRules, RuleSet, Source};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A reader that hands out at most `step` bytes per call, as pipes and sockets do.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A frame a worker still holds: its chunk, where the frame lies in it, and a copy of its bytes.
struct Held {
    chunk: crate::capture::Chunk,
    at: usize,
    bytes: Vec<u8>,
}

/// A capture file (pcap or pcapng) through the reader, the decoder and a flow tracker.
///
/// Input: one control byte, then the file. The control byte picks the read chunk size (64 B to
/// 8 KiB, so chunks turn over within small inputs), the bytes per `read` call (all, or 1 to 7),
/// and how many recent frames stay held, as workers hold them while later frames are read. A
/// file that starts with a gzip, zstd or xz magic is decompressed first, as `FileSource::open`
/// does.
///
/// Checks: frames within [`MAX_FRAME`] and their chunk; `orig_len` at least the captured length;
/// a frame still held keeps its bytes while later ones are read (chunks in use are never
/// reused); the read position never passes the input; the events are JSON.
pub fn capture_file(data: &[u8]) {
    let mut b = Bytes::new(data);
    let ctl = b.u8();
    let chunk = 64usize << (ctl & 7);
    let step = match ctl >> 3 & 7 {
        0 => usize::MAX,
        s => usize::from(s),
    };
    let hold = usize::from(ctl >> 6);
    let file = b.rest();
    let input = Trickle {
        data: file.to_vec(),
        at: 0,
        step,
    };
    // A compressed capture (gzip, zstd, xz by its magic) goes through the decompressor
    // `FileSource::open` puts in front of the reader; its errors end the file like any other.
    let compressed = Compression::of(file) != Compression::None;
    let input: Box<dyn std::io::Read + Send> = if compressed {
        match crate::capture::file::input::decompressed(Box::new(input)) {
            Ok((r, _)) => r,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    } else {
        Box::new(input)
    };
    let opened = FileSource::with_chunk_size(
        PathBuf::from("fuzz.pcap"),
        input,
        Some(file.len() as u64),
        chunk,
    );
    let mut src = match opened {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut held: Vec<Held> = Vec::new();
    let mut pipe = Pipeline::new();
    loop {
        let p = match src.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                break;
            }
        };
        assert!(p.data.len() <= MAX_FRAME as usize);
        assert!(p.orig_len as usize >= p.data.len());
        let at = (p.data.as_ptr() as usize).wrapping_sub(p.chunk.as_ptr() as usize);
        assert!(at <= p.chunk.len() && p.data.len() <= p.chunk.len() - at);
        for h in &held {
            assert_eq!(
                &h.chunk[h.at..h.at + h.bytes.len()],
                &h.bytes[..],
                "a held frame changed under its worker"
            );
        }
        if hold > 0 {
            if held.len() == hold {
                held.remove(0);
            }
            held.push(Held {
                chunk: Arc::clone(p.chunk),
                at,
                bytes: p.data.to_vec(),
            });
        }
        if let Ok(m) = decode::decode(p.link, p.ts, p.orig_len, p.data) {
            pipe.packet(&m, m.payload(p.data));
        }
    }
    assert!(compressed || src.position() <= file.len() as u64);
    pipe.finish();
}

/// The file stem an app file must have: its `id = "..."` value, found by a plain text search
/// (the parser insists the two agree).
fn stem_of(text: &str) -> &str {
    text.lines()
        .find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("id")?
                .trim_start()
                .strip_prefix('=')?;
            v.trim().strip_prefix('"')?.split('"').next()
        })
        .unwrap_or("fuzz")
}

/// A rule file and, after the first NUL byte, a policy file, through the parser and compiler.
///
/// Checks: error messages render; with a valid set, every domain entry, prefix and signature
/// matches what it was compiled from.
pub fn rule_file(data: &[u8]) {
    let (app, policy) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(app).into_owned();
    let name = format!("{}.toml", stem_of(&text));
    let app = Source {
        path: PathBuf::from("rules").join(&name),
        name,
        text,
    };
    let policy = policy.map(|p| Source {
        path: PathBuf::from("policy.toml"),
        name: "policy.toml".into(),
        text: String::from_utf8_lossy(p).into_owned(),
    });
    let set = match RuleSet::parse(std::slice::from_ref(&app), policy.as_ref()) {
        Ok(set) => set,
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                assert!(!e.to_string().is_empty());
            }
            return;
        }
    };
    let compiled = CompiledRules::build(&set);
    for (i, def) in set.apps.iter().enumerate() {
        let ours = |m: Option<&crate::rules::DomainMatch>| {
            m.and_then(|m| compiled.apps().get(usize::from(m.app)))
                .is_some_and(|a| *a.id == *def.id)
        };
        assert_eq!(
            compiled.apps().get(i).map(|a| &*a.id),
            Some(def.id.as_str())
        );
        for d in &def.domains {
            assert!(ours(compiled.match_host(d.name.as_bytes())), "{}", d.name);
        }
        if let Some(list) = &def.prefixes {
            for &(ip, _, _) in &list.entries {
                assert!(compiled.match_addr(ip).is_some(), "{ip}");
            }
        }
        for sig in &def.signatures {
            let mut payload = vec![0u8; usize::from(sig.offset)];
            payload.extend(sig.pattern.iter().map(|p| match p {
                crate::rules::BytePattern::Any => 0,
                crate::rules::BytePattern::OneOf(v) => v.first().copied().unwrap_or(0),
            }));
            if let Some(l) = sig.length {
                // Make the length field and the payload's length agree: grow the payload to
                // what the pattern's bytes already say, or write the payload's length.
                let end = usize::from(l.offset) + usize::from(l.size);
                if payload.len() < end {
                    payload.resize(end, 0);
                }
                let said = l.read(&payload).unwrap_or(0);
                if said >= payload.len() as i64 {
                    payload.resize(usize::try_from(said).unwrap_or(0), 0);
                } else {
                    let v = (payload.len() as i64 - i64::from(l.adjust)).max(0) as u64;
                    let size = usize::from(l.size);
                    let bytes = v.to_be_bytes();
                    let field = &mut payload[usize::from(l.offset)..end];
                    for i in 0..size {
                        field[i] = if l.big_endian {
                            bytes[8 - size + i]
                        } else {
                            bytes[7 - i]
                        };
                    }
                }
            }
            let port = sig.ports.first().copied().unwrap_or(443);
            let len = payload.len();
            assert!(
                compiled
                    .match_payload(sig.transport, port, &payload, len)
                    .is_some(),
                "signature at line {}",
                sig.line
            );
        }
    }
    for s in compiled.stale_lists(rules::today()) {
        assert!(!s.to_string().is_empty());
    }
}

/// bcrypt costs above this are not checked by `web_config`. Cost `c` runs `2^c` rounds of key
/// setup: at 4 (the least bcrypt allows) a check takes about a millisecond, at 10 (htpasswd's
/// default) about 60 ms, and a hash the fuzzer writes at 31 would take days. The code paths are
/// the same at every cost, so the target parses such files and stops before bcrypt.
const WEB_MAX_COST: u32 = 4;
/// Users above this are not checked by `web_config` (one bcrypt each at load).
const WEB_MAX_USERS: usize = 4;

/// A self-signed P-256 certificate and its PKCS#8 key (`tests/fixtures/web_ec.*`), served as
/// the files `web_config` inputs name.
const WEB_CERT: &[u8] = include_bytes!("../../tests/fixtures/web_ec.crt");
const WEB_KEY: &[u8] = include_bytes!("../../tests/fixtures/web_ec.key");

/// The files a fuzzed web config may name, from memory: `tls.crt` and `ca.crt` (the
/// certificate), `tls.key`, `empty.pem`, `key_as.crt` (a key where a certificate belongs), in
/// any folder; anything else is missing. Nothing is read from disk.
fn web_files(p: &Path) -> io::Result<Vec<u8>> {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name {
        "tls.crt" | "ca.crt" => Ok(WEB_CERT.to_vec()),
        "tls.key" | "key_as.crt" => Ok(WEB_KEY.to_vec()),
        "empty.pem" => Ok(Vec::new()),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not in the fuzz files",
        )),
    }
}

/// A web config file (the exporter toolkit's YAML), parsed from memory; after the first NUL, an
/// `Authorization` header checked against it.
///
/// Files with more than 4 users or a bcrypt cost above 4 are parsed but not built (bcrypt at a
/// high cost would take all the fuzzer's time; see `WEB_MAX_COST`).
///
/// Checks: errors name the config or a file it names, and say something; a built config
/// authorises exactly what bcrypt says about the header's user and password (no header: only
/// when no users are configured), the same again from the cache of passed credentials; the
/// hash unknown users are checked against costs what the first user's costs.
pub fn web_config(data: &[u8]) {
    let (text, header) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(text);
    let path = Path::new("/fuzz/web.yml");
    let refused = |e: WebConfigError| {
        assert!(e.path.is_absolute(), "{e}");
        assert!(!e.message.is_empty());
        assert!(e.to_string().starts_with(&*e.path.to_string_lossy()));
    };
    let draft = match Draft::parse(&text, path) {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(e.path, path);
            return refused(e);
        }
    };
    if draft.max_cost() > WEB_MAX_COST || draft.users() > WEB_MAX_USERS {
        return;
    }
    let first_cost = (draft.users() > 0).then(|| draft.max_cost());
    let cfg = match draft.finish(&web_files) {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    if cfg.needs_auth() {
        // Every cost is 4 (the least), so the first user's is the highest.
        assert_eq!(cfg.dummy_cost(), first_cost);
    } else {
        assert_eq!(cfg.dummy_cost(), None);
    }
    assert_eq!(cfg.authorized(None), !cfg.needs_auth());
    let Some(header) = header else {
        return;
    };
    let want = !cfg.needs_auth()
        || basic_credentials(header).is_some_and(|(user, password)| {
            cfg.hash_of(&user)
                .is_some_and(|h| bcrypt::verify(&password, h).unwrap_or(false))
        });
    assert_eq!(cfg.authorized(Some(header)), want);
    assert_eq!(
        cfg.authorized(Some(header)),
        want,
        "a second time, through the cache"
    );
}
