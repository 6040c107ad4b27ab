//! Capture files: classic pcap (both byte orders, µs and ns) and pcapng (sections, interfaces,
//! `if_tsresol`/`if_tsoffset`), read in constant memory without libpcap. Never parses frames.
//!
//! Errors name the file, the packet number and the byte offset where the input went wrong; the
//! packets read before an error stay valid and the caller decides whether to go on.
//!
//! | file | owns |
//! |---|---|
//! | `pcap.rs` | classic pcap record headers |
//! | `pcapng.rs` | pcapng blocks: sections, interfaces, packets |
//! | `readahead.rs` | the read-ahead thread and the chunks going round |
//! | `error.rs` | [`CaptureError`] and its kinds |
//!
//! This file holds [`FileSource`]: the buffer, reading in place, and the file header.

mod error;
pub mod input;
mod merge;
mod pcap;
mod pcapng;
mod readahead;

#[cfg(test)]
mod fixtures;

pub use error::{CaptureError, CaptureErrorKind};
pub use input::{expand, Compression, Expanded, Input};
pub use merge::{Filter, FrameFilter, Merge, Order};

use crate::capture::{Chunk, LinkType, PacketSource, RawPacket, Read as SourceRead, SourceError};
use pcapng::Interface;
use readahead::ReadAhead;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest captured length accepted for one frame; anything larger is an impossible record.
pub const MAX_FRAME: u32 = 256 * 1024;
/// Largest pcapng block accepted (a frame plus generous room for options).
pub const MAX_BLOCK: u32 = MAX_FRAME + 64 * 1024;
/// Most interfaces one pcapng section may describe.
pub const MAX_INTERFACES: usize = 65_536;
/// Size of a read chunk.
const BUF_SIZE: usize = 1 << 20;
/// Size of a read chunk when only the first packet is wanted.
const PEEK_CHUNK: usize = 64 << 10;
/// Most retired chunks kept for reuse.
const MAX_POOL: usize = 64;

/// Timestamp units of one pcapng interface or a pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsUnit {
    /// 10^-n seconds.
    Dec(u8),
    /// 2^-n seconds.
    Bin(u8),
}

impl TsUnit {
    fn to_nanos(self, units: u64) -> u64 {
        match self {
            TsUnit::Dec(n) if n <= 9 => units.saturating_mul(10u64.pow(9 - u32::from(n))),
            TsUnit::Dec(n) => {
                let div = 10u128.pow(u32::from(n.min(38)) - 9);
                (u128::from(units) / div) as u64
            }
            TsUnit::Bin(n) => {
                let ns = (u128::from(units) * 1_000_000_000) >> n.min(127);
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }
}

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        unit: TsUnit,
        link: LinkType,
        max_len: u32,
    },
    PcapNg {
        big_endian: bool,
        in_section: bool,
        interfaces: Vec<Interface>,
    },
}

/// A capture file read record by record through one reusable buffer.
pub struct FileSource {
    path: PathBuf,
    input: Box<dyn Read + Send>,
    /// Regular files opened by path are read ahead on a thread ([`ReadAhead`]); FIFOs,
    /// devices and other inputs are read in place.
    ahead: Option<ReadAhead>,
    /// The chunk being read; frames handed out borrow it, and workers may hold it.
    buf: Chunk,
    /// Retired chunks, reused once no worker holds them.
    pool: Vec<Chunk>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
    /// Bytes of a record cut at [`MAX_FRAME`] still to pass over.
    skip: u64,
    format: Format,
    packets: u64,
    len: Option<u64>,
    /// Smallest read chunk ([`BUF_SIZE`] except in tests and fuzzing).
    chunk: usize,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("packets", &self.packets)
            .finish()
    }
}

fn u16_at(b: &[u8], big: bool) -> u16 {
    let a = [b[0], b[1]];
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn u32_at(b: &[u8], big: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

impl FileSource {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let err = |kind| CaptureError {
            path: path.clone(),
            offset: 0,
            packets: 0,
            kind,
        };
        let file = File::open(&path).map_err(|e| input::open_error(&path, e))?;
        let meta = file.metadata().ok();
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(input::open_error(
                &path,
                io::Error::from(io::ErrorKind::IsADirectory),
            ));
        }
        let len = meta.as_ref().map(|m| m.len());
        // Read ahead only from a regular file: a FIFO or a device (`tcpdump -U -w fifo`) gives
        // packets as they come, and the thread would hold them until a whole chunk had arrived.
        let ahead = meta.is_some_and(|m| m.is_file());
        let (input, _) =
            input::decompressed(Box::new(file)).map_err(|e| err(CaptureErrorKind::Io(e)))?;
        Self::build(path.clone(), input, len, BUF_SIZE, ahead)
    }

    /// Opens an input: a path as [`FileSource::open`] does, or standard input (read in place,
    /// as packets come, decompressed as its first bytes say).
    pub fn open_input(input: &Input) -> Result<Self, CaptureError> {
        match input {
            Input::Path(p) => Self::open(p),
            Input::Stdin => {
                let name = input.name();
                let (r, _) =
                    input::decompressed(Box::new(io::stdin())).map_err(|e| CaptureError {
                        path: name.clone(),
                        offset: 0,
                        packets: 0,
                        kind: CaptureErrorKind::Io(e),
                    })?;
                Self::build(name, r, None, BUF_SIZE, false)
            }
        }
    }

    /// Like [`FileSource::open_input`], reading small chunks in place: enough to look at the
    /// first packet of many files without a thread and a full buffer for each.
    pub(crate) fn peek_input(input: &Input) -> Result<Self, CaptureError> {
        let Input::Path(path) = input else {
            return Self::open_input(input);
        };
        let file = File::open(path).map_err(|e| input::open_error(path, e))?;
        let len = file.metadata().ok().map(|m| m.len());
        let (r, _) = input::decompressed(Box::new(file)).map_err(|e| CaptureError {
            path: path.clone(),
            offset: 0,
            packets: 0,
            kind: CaptureErrorKind::Io(e),
        })?;
        Self::build(path.clone(), r, len, PEEK_CHUNK, false)
    }

    /// Reads a capture from any byte stream; `path` names it in errors.
    pub fn from_reader(
        path: PathBuf,
        input: Box<dyn Read + Send>,
        len: Option<u64>,
    ) -> Result<Self, CaptureError> {
        Self::with_chunk_size(path, input, len, BUF_SIZE)
    }

    /// Like [`FileSource::from_reader`], reading in chunks of at least `chunk` bytes instead of
    /// 1 MiB, so small inputs reach the chunk hand-over in `fill` (fuzzing and tests).
    pub(crate) fn with_chunk_size(
        path: PathBuf,
        input: Box<dyn Read + Send>,
        len: Option<u64>,
        chunk: usize,
    ) -> Result<Self, CaptureError> {
        Self::build(path, input, len, chunk, false)
    }

    /// Like [`FileSource::with_chunk_size`], read ahead on a thread ([`ReadAhead`]): what
    /// [`FileSource::open`] does, open to tests with any input and chunk size. Chunks much
    /// smaller than a record make the reader copy the record's start once per chunk; `open`
    /// reads 1 MiB chunks, more than the largest block, so a record spans at most two.
    #[cfg(test)]
    pub(crate) fn read_ahead(
        path: PathBuf,
        input: Box<dyn Read + Send>,
        len: Option<u64>,
        chunk: usize,
    ) -> Result<Self, CaptureError> {
        Self::build(path, input, len, chunk, true)
    }

    fn build(
        path: PathBuf,
        input: Box<dyn Read + Send>,
        len: Option<u64>,
        chunk: usize,
        ahead: bool,
    ) -> Result<Self, CaptureError> {
        let chunk = chunk.max(1);
        let (input, ahead): (Box<dyn Read + Send>, _) = if ahead {
            match ReadAhead::start(input, chunk) {
                Ok(a) => (Box::new(io::empty()), Some(a)),
                // Without a thread the input is gone; a file opened by path could be opened
                // again, but a failed spawn means the process is out of threads: say so.
                Err(e) => {
                    return Err(CaptureError {
                        path,
                        offset: 0,
                        packets: 0,
                        kind: CaptureErrorKind::Io(e),
                    })
                }
            }
        } else {
            (input, None)
        };
        let mut src = FileSource {
            path,
            input,
            ahead,
            buf: Arc::new(vec![0; chunk]),
            pool: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            skip: 0,
            format: Format::PcapNg {
                big_endian: false,
                in_section: false,
                interfaces: Vec::new(),
            },
            packets: 0,
            len,
            chunk,
        };
        src.read_file_header()?;
        Ok(src)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length, when known.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether the file is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len == Some(0)
    }

    /// Packets handed out so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    fn error(&self, kind: CaptureErrorKind) -> CaptureError {
        CaptureError {
            path: self.path.clone(),
            offset: self.offset,
            packets: self.packets,
            kind,
        }
    }

    /// Makes at least `need` bytes available from `start`; false when the input ends first.
    ///
    /// Frames handed out stay valid in their chunk for as long as a worker holds it, so a chunk
    /// still shared is never written again: the unread rest moves to a chunk nobody holds (a
    /// recycled one when possible), and the shared one is left to its holders.
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        if self.ahead.is_some() {
            return self.fill_ahead(need);
        }
        let size = need.next_power_of_two().max(self.chunk);
        let rest = self.end - self.start;
        match Arc::get_mut(&mut self.buf) {
            Some(b) if b.len() >= size => b.copy_within(self.start..self.end, 0),
            _ => {
                let mut fresh = self.take_chunk(size);
                if let Some(b) = Arc::get_mut(&mut fresh) {
                    b[..rest].copy_from_slice(&self.buf[self.start..self.end]);
                }
                let old = std::mem::replace(&mut self.buf, fresh);
                if self.pool.len() < MAX_POOL {
                    self.pool.push(old);
                }
            }
        }
        self.start = 0;
        self.end = rest;
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            return Ok(false); // unreachable: the chunk was made unique above
        };
        while self.end < need && !self.eof {
            match self.input.read(&mut buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(CaptureError {
                        path: self.path.clone(),
                        offset: self.offset,
                        packets: self.packets,
                        kind: CaptureErrorKind::Io(e),
                    })
                }
            }
        }
        Ok(self.end - self.start >= need)
    }

    /// A chunk of at least `size` bytes that no one else holds: recycled, or new.
    fn take_chunk(&mut self, size: usize) -> Chunk {
        if let Some(i) = self
            .pool
            .iter()
            .position(|c| Arc::strong_count(c) == 1 && c.len() >= size)
        {
            return self.pool.swap_remove(i);
        }
        Arc::new(vec![0; size])
    }

    fn truncated(&self, need: usize) -> CaptureError {
        self.error(CaptureErrorKind::Truncated {
            need: need as u64,
            have: (self.end - self.start) as u64,
        })
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }
}

impl FileSource {
    /// The next frame, `Ok(None)` at the end of the file, or the error that ends it.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        match self.format {
            Format::Pcap {
                big_endian,
                unit,
                link,
                max_len,
            } => self.next_pcap(big_endian, unit, link, max_len),
            Format::PcapNg { .. } => self.next_pcapng(),
        }
    }
}

impl PacketSource for FileSource {
    fn read(&mut self) -> Result<SourceRead<'_>, SourceError> {
        match self.next_packet() {
            Ok(Some(p)) => Ok(SourceRead::Packet(p)),
            Ok(None) => Ok(SourceRead::End),
            Err(e) => Err(Box::new(e)),
        }
    }

    fn position(&self) -> u64 {
        self.offset
    }

    fn helper_cpu(&self) -> std::time::Duration {
        self.ahead.as_ref().map_or(std::time::Duration::ZERO, |a| {
            std::time::Duration::from_nanos(a.cpu.load(std::sync::atomic::Ordering::Relaxed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn with_chunk_size_small_chunks_never_change_a_held_frame() {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        for i in 0..40u8 {
            pcap_record(&mut f, false, u32::from(i), 0, &[i; 37]);
        }
        let len = f.len() as u64;
        let mut src = FileSource::with_chunk_size(
            PathBuf::from("t.pcap"),
            Box::new(io::Cursor::new(f)),
            Some(len),
            64,
        )
        .unwrap();
        // Hold every other frame's chunk, as workers do, while later frames are read.
        let mut held = Vec::new();
        let mut n = 0u8;
        while let Some(p) = src.next_packet().unwrap() {
            assert_eq!(p.data, [n; 37]);
            let at = p.data.as_ptr() as usize - p.chunk.as_ptr() as usize;
            if n % 2 == 0 {
                held.push((Arc::clone(p.chunk), at, n));
            }
            for (c, at, i) in &held {
                assert_eq!(c[*at..*at + 37], [*i; 37]);
            }
            n += 1;
        }
        assert_eq!(n, 40);
    }

    #[test]
    fn next_packet_large_records_cross_buffer_refills() {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        let frame = vec![0xAB; 200_000];
        for i in 0..12 {
            pcap_record(&mut f, false, i, 0, &frame);
        }
        let mut src = source(f).unwrap();
        let got = collect(&mut src);
        assert_eq!(got.len(), 12);
        assert!(got.iter().all(|g| g.2 == frame));
    }

    /// A FIFO (a live `tcpdump -U -w fifo`) is read in place: a packet comes out while the
    /// writer still holds the FIFO open, not when a whole chunk has arrived.
    #[test]
    fn open_reads_a_fifo_as_packets_come() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("live.pcap");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: mkfifo (coreutils) is not available");
            return;
        }
        let closed = Arc::new(AtomicBool::new(false));
        let (got_tx, got_rx) = crossbeam_channel::bounded::<()>(1);
        let writer = {
            let (fifo, closed) = (fifo.clone(), Arc::clone(&closed));
            std::thread::spawn(move || {
                let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let mut f = pcap_header(PCAP_US_LE, false, 1);
                pcap_record(&mut f, false, 1, 0, &[0x42; 100]);
                std::io::Write::write_all(&mut w, &f).unwrap();
                // Hold the FIFO open until the reader has the packet (or long enough to fail).
                let _ = got_rx.recv_timeout(std::time::Duration::from_secs(20));
                closed.store(true, Ordering::SeqCst);
            })
        };
        let mut src = FileSource::open(&fifo).unwrap();
        let p = src.next_packet().unwrap().map(|p| p.data.to_vec());
        let writer_closed = closed.load(Ordering::SeqCst);
        let _ = got_tx.send(());
        writer.join().unwrap();
        assert_eq!(p, Some(vec![0x42; 100]));
        assert!(
            !writer_closed,
            "the packet waited for the writer to close the FIFO"
        );
    }
}
