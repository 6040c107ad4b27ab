//! What an analyst hands the sensor: files, folders of captures (walked recursively, capture
//! files picked by their first bytes, not their names), `-` for standard input, and captures
//! compressed with gzip, zstd or xz (recognised by their magic bytes, decompressed as a stream
//! in constant memory). Open errors say plainly what is wrong: no such file, permission denied.

use super::{CaptureError, CaptureErrorKind};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Bytes enough to recognise every magic below.
const MAGIC_LEN: usize = 6;
/// Most memory the xz decoder may take (its dictionary): more than any preset needs.
const MAX_XZ_MEMORY: u64 = 128 << 20;
/// Folders nested deeper than this are not walked (a loop of bind mounts, a hostile tree).
const MAX_DEPTH: usize = 32;

/// One input of a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file (or FIFO, or device) by its path.
    Path(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
}

impl Input {
    /// `-` is standard input; anything else a path.
    pub fn from_arg(p: &Path) -> Self {
        if p.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(p.to_path_buf())
        }
    }

    /// The name errors and reports give it.
    pub fn name(&self) -> PathBuf {
        match self {
            Input::Path(p) => p.clone(),
            Input::Stdin => PathBuf::from("(standard input)"),
        }
    }
}

/// How a stream is compressed, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952), members concatenated as `cat a.gz b.gz` makes them.
    Gzip,
    /// Zstandard (RFC 8878), frames concatenated.
    Zstd,
    /// xz, streams concatenated.
    Xz,
}

impl Compression {
    /// The compression whose magic `b` starts with.
    pub fn of(b: &[u8]) -> Self {
        if b.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// Whether `b` starts like a capture file: a pcap magic (either byte order, µs or ns) or a
/// pcapng section header.
pub fn looks_like_capture(b: &[u8]) -> bool {
    let Some(m) = b.get(..4) else {
        return false;
    };
    let m = [m[0], m[1], m[2], m[3]];
    let (le, be) = (u32::from_le_bytes(m), u32::from_be_bytes(m));
    [le, be]
        .iter()
        .any(|&v| v == super::pcap::PCAP_US_LE || v == super::pcap::PCAP_NS_LE)
        || le == super::pcapng::PCAPNG_SHB
}

/// The error of opening `path`, worded for the user.
pub(super) fn open_error(path: &Path, e: io::Error) -> CaptureError {
    CaptureError {
        path: path.to_path_buf(),
        offset: 0,
        packets: 0,
        kind: CaptureErrorKind::Open(e),
    }
}

/// Reads up to `n` bytes (fewer only at the end of the input).
fn read_prefix(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut b[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    b.truncate(got);
    Ok(b)
}

/// Zstandard frames one after another (`zstd` writes one, `cat` joins several).
struct ZstdFrames<R: Read> {
    dec: Option<ruzstd::decoding::StreamingDecoder<BufReader<R>, ruzstd::decoding::FrameDecoder>>,
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This frame is done: another may follow.
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let mut src = dec.into_inner();
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.dec =
                Some(ruzstd::decoding::StreamingDecoder::new(src).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                })?);
        }
    }
}

/// `input` decompressed as its first bytes say, and those bytes still to be read.
pub(crate) fn decompressed(
    mut input: Box<dyn Read + Send>,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    let prefix = read_prefix(&mut input, MAGIC_LEN)?;
    let kind = Compression::of(&prefix);
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(prefix).chain(input));
    let out: Box<dyn Read + Send> = match kind {
        Compression::None => whole,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(whole))),
        Compression::Xz => {
            // Bounded: an xz header may ask for a dictionary of 1.5 GiB; `xz -9` needs 65 MiB.
            let stream =
                xz2::stream::Stream::new_stream_decoder(MAX_XZ_MEMORY, xz2::stream::CONCATENATED)
                    .map_err(io::Error::other)?;
            Box::new(xz2::read::XzDecoder::new_stream(
                BufReader::new(whole),
                stream,
            ))
        }
        Compression::Zstd => Box::new(ZstdFrames {
            dec: Some(
                ruzstd::decoding::StreamingDecoder::new(BufReader::new(whole)).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                })?,
            ),
        }),
    };
    Ok((out, kind))
}

/// What expanding the command line's inputs gave.
#[derive(Debug, Default)]
pub struct Expanded {
    /// The inputs to read, folders replaced by the capture files in them (by path).
    pub inputs: Vec<Input>,
    /// Inputs that cannot be read, each a message naming it.
    pub errors: Vec<String>,
}

/// Replaces each folder by the capture files under it (recursively, in path order, picked by
/// their first bytes: pcap, pcapng, or either compressed); files and `-` stay as given. A
/// folder without a capture file is an error, and so is a file that cannot be opened or whose
/// capture header cannot be read.
pub fn expand(args: &[PathBuf]) -> Expanded {
    let mut out = Expanded::default();
    for a in args {
        let input = Input::from_arg(a);
        let Input::Path(p) = &input else {
            out.inputs.push(input);
            continue;
        };
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let before = out.inputs.len();
                walk(p, 0, &mut out);
                if out.inputs.len() == before {
                    out.errors.push(format!(
                        "{}: a folder with no capture file in it",
                        p.display()
                    ));
                }
            }
            // A file named on the command line must open as a capture: its header is read now,
            // so every input that cannot be read is named before anything is replayed (not a
            // FIFO's or a device's: what is read of them is gone).
            Ok(m) if !m.is_file() => out.inputs.push(input),
            Ok(_) => match super::FileSource::peek_input(&input) {
                Ok(_) => out.inputs.push(input),
                Err(e) => out.errors.push(e.to_string()),
            },
            Err(e) => out.errors.push(open_error(p, e).to_string()),
        }
    }
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Expanded) {
    if depth > MAX_DEPTH {
        out.errors.push(format!(
            "{}: folders nested deeper than {MAX_DEPTH} are not read",
            dir.display()
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push(open_error(dir, e).to_string());
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        // symlink_metadata: a link to a folder is not followed (no loops); a link to a file is.
        let Ok(lm) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if lm.is_dir() {
            walk(&p, depth + 1, out);
            continue;
        }
        match std::fs::metadata(&p) {
            // Only regular files: a FIFO or a device in a folder would block or never end.
            Ok(m) if m.is_file() => match sniff(&p) {
                Ok(true) => out.inputs.push(Input::Path(p)),
                Ok(false) => {}
                Err(e) => out.errors.push(open_error(&p, e).to_string()),
            },
            _ => {}
        }
    }
}

/// Whether the file at `p` is a capture, compressed or not, by its first bytes.
fn sniff(p: &Path) -> io::Result<bool> {
    let f = File::open(p)?;
    let Ok((mut r, _)) = decompressed(Box::new(f)) else {
        return Ok(false);
    };
    Ok(read_prefix(&mut r, 4).is_ok_and(|b| looks_like_capture(&b)))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::FileSource;
    use super::*;
    use std::io::Write;

    fn pcap_bytes() -> Vec<u8> {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        for i in 0..300u32 {
            pcap_record(&mut f, false, i, 0, &[i as u8; 700]);
        }
        f
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn xz(b: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zstd(b: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// gzip, xz and zstd captures (each also as two members joined by `cat`) give the frames the
    /// plain capture gives, by their magic whatever the name.
    #[test]
    fn open_decompresses_by_magic_bytes() {
        let plain = pcap_bytes();
        let dir = tempfile::tempdir().unwrap();
        let want = collect(&mut source(plain.clone()).unwrap());
        let half = plain.len() / 2;
        for (name, pack) in [
            ("g", gzip as fn(&[u8]) -> Vec<u8>),
            ("x", xz as fn(&[u8]) -> Vec<u8>),
            ("z", zstd as fn(&[u8]) -> Vec<u8>),
        ] {
            for joined in [false, true] {
                let bytes = if joined {
                    let mut b = pack(&plain[..half]);
                    b.extend(pack(&plain[half..]));
                    b
                } else {
                    pack(&plain)
                };
                assert_ne!(Compression::of(&bytes), Compression::None);
                let p = dir.path().join(format!("{name}{joined}.cap"));
                std::fs::write(&p, &bytes).unwrap();
                let got = collect(&mut FileSource::open(&p).unwrap());
                assert_eq!(got, want, "{name}, joined: {joined}");
            }
        }
    }

    /// A corrupt compressed stream is an error naming the file, after the packets before it.
    #[test]
    fn open_corrupt_gzip_is_an_error_not_a_panic() {
        let mut g = gzip(&pcap_bytes());
        let n = g.len();
        for b in &mut g[n / 2..n - 8] {
            *b ^= 0x5a;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pcap.gz");
        std::fs::write(&p, &g).unwrap();
        let mut src = FileSource::open(&p).unwrap();
        let e = loop {
            match src.next_packet() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a corrupt stream read to its end"),
                Err(e) => break e,
            }
        };
        assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
    }

    /// A folder is walked recursively, in path order; captures are picked by content (a capture
    /// named .txt, a gzip capture without a suffix), other files left out; a folder without a
    /// capture and a missing path are errors that say so.
    #[test]
    fn expand_walks_folders_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("b/c")).unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::write(d.join("a.txt"), pcap_bytes()).unwrap();
        std::fs::write(d.join("b/notes.pcap"), b"not a capture at all").unwrap();
        std::fs::write(d.join("b/c/z"), gzip(&pcap_bytes())).unwrap();
        std::fs::write(d.join("b/c/y.log"), gzip(b"log lines")).unwrap();
        std::fs::write(d.join("empty/readme"), b"x").unwrap();
        let got = expand(&[d.to_path_buf(), PathBuf::from("-")]);
        assert_eq!(
            got.inputs,
            [
                Input::Path(d.join("a.txt")),
                Input::Path(d.join("b/c/z")),
                Input::Stdin
            ]
        );
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        let got = expand(&[d.join("empty")]);
        assert_eq!(
            got.errors,
            [format!(
                "{}: a folder with no capture file in it",
                d.join("empty").display()
            )]
        );
        let got = expand(&[d.join("nope.pcap")]);
        assert_eq!(
            got.errors,
            [format!("{}: no such file", d.join("nope.pcap").display())]
        );
    }
}
