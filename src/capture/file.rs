//! Capture files: classic pcap (both byte orders, µs and ns) and pcapng (sections, interfaces,
//! `if_tsresol`/`if_tsoffset`), read in constant memory without libpcap. Never parses frames.
//!
//! Errors name the file, the packet number and the byte offset where the input went wrong; the
//! packets read before an error stay valid and the caller decides whether to go on.

use super::{Chunk, LinkType, PacketSource, RawPacket, Read as SourceRead, SourceError, Timestamp};
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
/// Most retired chunks kept for reuse.
const MAX_POOL: usize = 64;
/// Room before the data of a read-ahead chunk: the unread end of the previous chunk (less than
/// one block) is copied there, so a record that straddles two reads lies in one chunk.
const HEADROOM: usize = MAX_BLOCK as usize;
/// Chunks the read-ahead thread fills before the reader takes them.
const AHEAD: usize = 2;

const PCAP_US_LE: u32 = 0xA1B2_C3D4;
const PCAP_NS_LE: u32 = 0xA1B2_3C4D;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

/// Why a capture file could not be read (further).
#[derive(Debug)]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// The operating system refused a read or open.
    Io(io::Error),
    /// The file starts with bytes that are no pcap or pcapng magic.
    NotACapture {
        /// The first bytes of the file.
        magic: [u8; 4],
    },
    /// The file is empty or shorter than a file header.
    TooShort {
        /// Its length.
        len: u64,
    },
    /// The file ends inside a record or block.
    Truncated {
        /// Bytes the record or block needs.
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// A record claims more captured bytes than any capture can hold.
    ImpossibleLength {
        /// The claimed length.
        len: u32,
        /// The largest accepted.
        max: u32,
    },
    /// A pcapng block length is not a multiple of 4, too small, too large, or its trailer differs.
    BadBlockLength {
        /// The length in the block header.
        len: u32,
    },
    /// A pcapng byte-order magic is neither 0x1A2B3C4D nor its swap.
    BadByteOrder {
        /// The value found.
        magic: u32,
    },
    /// A pcapng packet names an interface that no Interface Description Block declared.
    UnknownInterface {
        /// The interface id.
        id: u32,
    },
    /// A pcapng packet block appears before any section header.
    NoSection,
    /// A pcapng section describes more interfaces than any capture has.
    TooManyInterfaces,
}

impl fmt::Display for CaptureErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::NotACapture { magic } => write!(
                f,
                "not a pcap or pcapng file (starts with {:02x} {:02x} {:02x} {:02x})",
                magic[0], magic[1], magic[2], magic[3]
            ),
            Self::TooShort { len } => {
                write!(f, "file too short for a capture header ({len} bytes)")
            }
            Self::Truncated { need, have } => write!(
                f,
                "truncated: the record needs {need} bytes, only {have} remain"
            ),
            Self::ImpossibleLength { len, max } => {
                write!(f, "impossible captured length {len} (more than {max})")
            }
            Self::BadBlockLength { len } => write!(f, "bad pcapng block length {len}"),
            Self::BadByteOrder { magic } => {
                write!(f, "bad pcapng byte-order magic {magic:#010x}")
            }
            Self::UnknownInterface { id } => {
                write!(f, "packet names interface {id}, which was never described")
            }
            Self::NoSection => write!(f, "pcapng block before the first section header"),
            Self::TooManyInterfaces => write!(
                f,
                "more than {MAX_INTERFACES} interfaces described in one pcapng section"
            ),
        }
    }
}

/// A capture-file error with the place it happened.
#[derive(Debug)]
pub struct CaptureError {
    /// The file.
    pub path: PathBuf,
    /// Byte offset of the record or block that failed.
    pub offset: u64,
    /// Packets read successfully before the failure (the failing one is number `packets + 1`).
    pub packets: u64,
    /// What was wrong.
    pub kind: CaptureErrorKind,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: packet {} at byte offset {}: {}",
            self.path.display(),
            self.packets + 1,
            self.offset,
            self.kind
        )
    }
}

impl std::error::Error for CaptureError {}

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

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    unit: TsUnit,
    offset_secs: i64,
    snaplen: u32,
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

/// Reads a file on a thread of its own, a chunk ahead of the reader, so the copy out of the page
/// cache overlaps with decoding: the reader only walks records. Each chunk has [`HEADROOM`]
/// free bytes before its data, where the reader puts the unread end of the chunk before.
struct ReadAhead {
    /// Filled chunks and their data lengths, in file order; an error ends the stream, and so
    /// does the end of the file (the thread leaves, which disconnects the channel).
    full: crossbeam_channel::Receiver<io::Result<(Chunk, usize)>>,
    /// Chunks no worker holds any more, for the thread to fill again (still in their `Arc`, so
    /// a chunk's round trip allocates nothing).
    empty: crossbeam_channel::Sender<Chunk>,
    /// The thread's CPU time in nanoseconds, written when it ends (before its channel closes).
    cpu: Arc<std::sync::atomic::AtomicU64>,
}

/// Writes its thread's CPU time when dropped: at every way out of the read-ahead thread.
struct CpuOnExit(Arc<std::sync::atomic::AtomicU64>);

impl Drop for CpuOnExit {
    fn drop(&mut self) {
        let ns = u64::try_from(super::thread_cpu().as_nanos()).unwrap_or(u64::MAX);
        self.0.store(ns, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ReadAhead {
    fn start(input: Box<dyn Read + Send>, chunk: usize) -> io::Result<Self> {
        let (full_tx, full) = crossbeam_channel::bounded(AHEAD);
        let (empty, empty_rx) = crossbeam_channel::unbounded::<Chunk>();
        let cpu = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let on_exit = CpuOnExit(Arc::clone(&cpu));
        std::thread::Builder::new()
            .name("picket-read".into())
            .spawn(move || {
                // Dropped at the end of this body, before the captured sender closes the channel.
                let _on_exit = on_exit;
                Self::run(input, chunk, &full_tx, &empty_rx);
            })?;
        Ok(ReadAhead { full, empty, cpu })
    }

    /// The thread's loop: fills chunks until the file ends, fails, or the reader leaves.
    fn run(
        mut input: Box<dyn Read + Send>,
        chunk: usize,
        full_tx: &crossbeam_channel::Sender<io::Result<(Chunk, usize)>>,
        empty_rx: &crossbeam_channel::Receiver<Chunk>,
    ) {
        loop {
            let mut buf = empty_rx
                .try_iter()
                .find(|c| Arc::strong_count(c) == 1)
                .unwrap_or_else(|| Arc::new(vec![0; HEADROOM + chunk]));
            let Some(bytes) = Arc::get_mut(&mut buf) else {
                continue; // not reached: only unshared chunks come back
            };
            let mut n = 0;
            let result = loop {
                let Some(room) = bytes.get_mut(HEADROOM + n..).filter(|r| !r.is_empty()) else {
                    break Ok(true);
                };
                match input.read(room) {
                    Ok(0) => break Ok(false),
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            // The reader has gone (stopped early): so does the thread.
            if n > 0 && full_tx.send(Ok((buf, n))).is_err() {
                return;
            }
            match result {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = full_tx.send(Err(e));
                    return;
                }
            }
        }
    }
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
        let file = File::open(&path).map_err(|e| err(CaptureErrorKind::Io(e)))?;
        let meta = file.metadata().ok();
        let len = meta.as_ref().map(|m| m.len());
        // Read ahead only from a regular file: a FIFO or a device (`tcpdump -U -w fifo`) gives
        // packets as they come, and the thread would hold them until a whole chunk had arrived.
        let ahead = meta.is_some_and(|m| m.is_file());
        Self::build(path.clone(), Box::new(file), len, BUF_SIZE, ahead)
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

    /// [`FileSource::fill`] from the read-ahead thread: takes its next chunk and puts the unread
    /// rest of the current one in the room before its data.
    fn fill_ahead(&mut self, need: usize) -> Result<bool, CaptureError> {
        self.give_back();
        while self.end - self.start < need && !self.eof {
            let Some(ahead) = &self.ahead else {
                return Ok(false);
            };
            match ahead.full.recv() {
                // The thread has left: the file ended.
                Err(_) => self.eof = true,
                Ok(Err(e)) => {
                    self.eof = true;
                    return Err(self.error(CaptureErrorKind::Io(e)));
                }
                Ok(Ok((mut next, n))) => {
                    let rest = self.end - self.start;
                    let (chunk, start) = match Arc::get_mut(&mut next) {
                        Some(b) if rest <= HEADROOM => {
                            b[HEADROOM - rest..HEADROOM]
                                .copy_from_slice(&self.buf[self.start..self.end]);
                            (next, HEADROOM - rest)
                        }
                        _ => {
                            // More unread bytes than the room holds (chunks smaller than a
                            // record): join them in a new chunk.
                            let mut joined = Vec::with_capacity(rest + n);
                            joined.extend_from_slice(&self.buf[self.start..self.end]);
                            joined.extend_from_slice(&next[HEADROOM..HEADROOM + n]);
                            let _ = self.ahead.as_ref().map(|a| a.empty.send(next));
                            (Arc::new(joined), 0)
                        }
                    };
                    let old = std::mem::replace(&mut self.buf, chunk);
                    if self.pool.len() < MAX_POOL {
                        self.pool.push(old);
                    }
                    self.start = start;
                    self.end = start + rest + n;
                }
            }
        }
        Ok(self.end - self.start >= need)
    }

    /// Hands the read-ahead thread the retired chunks that no worker holds any more.
    fn give_back(&mut self) {
        let Some(ahead) = &self.ahead else {
            return;
        };
        let mut i = 0;
        while i < self.pool.len() {
            if Arc::strong_count(&self.pool[i]) == 1 {
                let c = self.pool.swap_remove(i);
                if c.len() >= HEADROOM + self.chunk {
                    let _ = ahead.empty.send(c);
                }
            } else {
                i += 1;
            }
        }
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

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(24)? && !self.fill(12)? {
            let have = (self.end - self.start) as u64;
            return Err(self.error(CaptureErrorKind::TooShort { len: have }));
        }
        let b = &self.buf[self.start..self.end];
        let magic = [b[0], b[1], b[2], b[3]];
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let (big_endian, unit) = match (le, be) {
            (PCAP_US_LE, _) => (false, TsUnit::Dec(6)),
            (PCAP_NS_LE, _) => (false, TsUnit::Dec(9)),
            (_, PCAP_US_LE) => (true, TsUnit::Dec(6)),
            (_, PCAP_NS_LE) => (true, TsUnit::Dec(9)),
            (PCAPNG_SHB, _) => return Ok(()), // blocks are read by next_packet
            _ => return Err(self.error(CaptureErrorKind::NotACapture { magic })),
        };
        if b.len() < 24 {
            let have = b.len() as u64;
            return Err(self.error(CaptureErrorKind::TooShort { len: have }));
        }
        let snaplen = u32_at(&b[16..], big_endian);
        let link = LinkType::from_u32(u32_at(&b[20..], big_endian) & 0x0FFF_FFFF);
        self.format = Format::Pcap {
            big_endian,
            unit,
            link,
            max_len: snaplen.clamp(MAX_FRAME, 16 * MAX_FRAME),
        };
        self.consume(24);
        Ok(())
    }

    fn next_pcap(
        &mut self,
        big: bool,
        unit: TsUnit,
        link: LinkType,
        max_len: u32,
    ) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if !self.fill(16)? {
            if self.end == self.start {
                return Ok(None);
            }
            return Err(self.truncated(16));
        }
        let h = &self.buf[self.start..self.start + 16];
        let secs = u64::from(u32_at(h, big));
        let frac = u64::from(u32_at(&h[4..], big));
        let caplen = u32_at(&h[8..], big);
        let orig_len = u32_at(&h[12..], big);
        if caplen > max_len {
            return Err(self.error(CaptureErrorKind::ImpossibleLength {
                len: caplen,
                max: max_len,
            }));
        }
        let total = 16 + caplen as usize;
        if !self.fill(total)? {
            return Err(self.truncated(total));
        }
        let data_at = self.start + 16;
        self.consume(total);
        self.packets += 1;
        Ok(Some(RawPacket {
            ts: Timestamp(
                secs.saturating_mul(1_000_000_000)
                    .saturating_add(unit.to_nanos(frac)),
            ),
            orig_len: orig_len.max(caplen),
            link,
            data: &self.buf[data_at..data_at + caplen as usize],
            chunk: &self.buf,
        }))
    }

    /// Reads pcapng blocks until a packet block, handling section and interface blocks on the way.
    fn next_pcapng(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        loop {
            if !self.fill(12)? {
                if self.end == self.start {
                    return Ok(None);
                }
                return Err(self.truncated(12));
            }
            let b = &self.buf[self.start..self.start + 12];
            let raw_type = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let Format::PcapNg {
                big_endian,
                in_section,
                ..
            } = self.format
            else {
                return Ok(None);
            };
            let big = if raw_type == PCAPNG_SHB {
                match u32::from_le_bytes([b[8], b[9], b[10], b[11]]) {
                    PCAPNG_BOM => false,
                    m if m.swap_bytes() == PCAPNG_BOM => true,
                    magic => return Err(self.error(CaptureErrorKind::BadByteOrder { magic })),
                }
            } else {
                big_endian
            };
            let block_type = u32_at(b, big);
            let len = u32_at(&b[4..], big);
            if len < 12 || len % 4 != 0 || len > MAX_BLOCK {
                return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
            }
            let total = len as usize;
            if !self.fill(total)? {
                return Err(self.truncated(total));
            }
            let blk = &self.buf[self.start..self.start + total];
            if u32_at(&blk[total - 4..], big) != len {
                return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
            }
            let body_start = self.start + 8;
            let body_end = self.start + total - 4;
            if block_type == PCAPNG_SHB {
                self.format = Format::PcapNg {
                    big_endian: big,
                    in_section: true,
                    interfaces: Vec::new(),
                };
                self.consume(total);
                continue;
            }
            if !in_section {
                return Err(self.error(CaptureErrorKind::NoSection));
            }
            match block_type {
                1 => {
                    let iface = parse_idb(&self.buf[body_start..body_end], big);
                    match iface {
                        Some(i) => {
                            if let Format::PcapNg { interfaces, .. } = &mut self.format {
                                if interfaces.len() >= MAX_INTERFACES {
                                    return Err(self.error(CaptureErrorKind::TooManyInterfaces));
                                }
                                interfaces.push(i);
                            }
                        }
                        None => return Err(self.error(CaptureErrorKind::BadBlockLength { len })),
                    }
                    self.consume(total);
                }
                2 | 6 => {
                    // Enhanced Packet Block (6) or the obsolete Packet Block (2).
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 20 {
                        return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
                    }
                    let id = if block_type == 6 {
                        u32_at(body, big)
                    } else {
                        u32::from(u16_at(body, big))
                    };
                    let hi = u64::from(u32_at(&body[4..], big));
                    let lo = u64::from(u32_at(&body[8..], big));
                    let caplen = u32_at(&body[12..], big);
                    let orig_len = u32_at(&body[16..], big);
                    if caplen as usize > body.len() - 20 {
                        return Err(self.error(CaptureErrorKind::ImpossibleLength {
                            len: caplen,
                            max: (body.len() - 20) as u32,
                        }));
                    }
                    let Some(iface) = self.interface(id) else {
                        return Err(self.error(CaptureErrorKind::UnknownInterface { id }));
                    };
                    let ts = iface_time(&iface, (hi << 32) | lo);
                    let data_at = body_start + 20;
                    self.consume(total);
                    self.packets += 1;
                    return Ok(Some(RawPacket {
                        ts,
                        orig_len: orig_len.max(caplen),
                        link: iface.link,
                        data: &self.buf[data_at..data_at + caplen as usize],
                        chunk: &self.buf,
                    }));
                }
                3 => {
                    // Simple Packet Block: interface 0, no timestamp.
                    let body = &self.buf[body_start..body_end];
                    if body.len() < 4 {
                        return Err(self.error(CaptureErrorKind::BadBlockLength { len }));
                    }
                    let orig_len = u32_at(body, big);
                    let Some(iface) = self.interface(0) else {
                        return Err(self.error(CaptureErrorKind::UnknownInterface { id: 0 }));
                    };
                    let mut caplen = orig_len.min((body.len() - 4) as u32);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen);
                    }
                    let data_at = body_start + 4;
                    self.consume(total);
                    self.packets += 1;
                    return Ok(Some(RawPacket {
                        ts: Timestamp(0),
                        orig_len,
                        link: iface.link,
                        data: &self.buf[data_at..data_at + caplen as usize],
                        chunk: &self.buf,
                    }));
                }
                _ => self.consume(total), // statistics, name resolution, custom: not ours
            }
        }
    }

    fn interface(&self, id: u32) -> Option<Interface> {
        match &self.format {
            Format::PcapNg { interfaces, .. } => interfaces.get(id as usize).copied(),
            Format::Pcap { .. } => None,
        }
    }
}

fn iface_time(iface: &Interface, units: u64) -> Timestamp {
    let ns = iface.unit.to_nanos(units);
    let off = iface.offset_secs.saturating_mul(1_000_000_000);
    Timestamp(ns.saturating_add_signed(off))
}

/// Parses an Interface Description Block body: link type, snaplen and the time options.
fn parse_idb(body: &[u8], big: bool) -> Option<Interface> {
    if body.len() < 8 {
        return None;
    }
    let mut iface = Interface {
        link: LinkType::from_u32(u32::from(u16_at(body, big))),
        unit: TsUnit::Dec(6),
        offset_secs: 0,
        snaplen: u32_at(&body[4..], big),
    };
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = u16_at(opts, big);
        let len = usize::from(u16_at(&opts[2..], big));
        let padded = (len + 3) & !3;
        if opts.len() < 4 + len {
            break; // a damaged option list ends the options, not the interface
        }
        let val = &opts[4..4 + len];
        match (code, len) {
            (0, _) => break,
            (9, 1) => {
                iface.unit = if val[0] & 0x80 == 0 {
                    TsUnit::Dec(val[0])
                } else {
                    TsUnit::Bin(val[0] & 0x7F)
                }
            }
            (14, 8) => {
                let a = [
                    val[0], val[1], val[2], val[3], val[4], val[5], val[6], val[7],
                ];
                iface.offset_secs = if big {
                    i64::from_be_bytes(a)
                } else {
                    i64::from_le_bytes(a)
                };
            }
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    Some(iface)
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
    use super::*;

    fn pcap_header(magic: u32, big: bool, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let p32 = |v: &mut Vec<u8>, x: u32| {
            v.extend(if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        p32(&mut v, magic);
        v.extend(if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        p32(&mut v, 0);
        p32(&mut v, 0);
        p32(&mut v, 65535);
        p32(&mut v, link);
        v
    }

    fn pcap_record(v: &mut Vec<u8>, big: bool, secs: u32, frac: u32, data: &[u8]) {
        for x in [secs, frac, data.len() as u32, data.len() as u32] {
            v.extend(if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        }
        v.extend_from_slice(data);
    }

    fn source(bytes: Vec<u8>) -> Result<FileSource, CaptureError> {
        let len = bytes.len() as u64;
        FileSource::from_reader(
            PathBuf::from("t.pcap"),
            Box::new(io::Cursor::new(bytes)),
            Some(len),
        )
    }

    fn collect(src: &mut FileSource) -> Vec<(u64, LinkType, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(p) = src.next_packet().unwrap() {
            out.push((p.ts.0, p.link, p.data.to_vec()));
        }
        out
    }

    #[test]
    fn next_packet_pcap_both_byte_orders_and_resolutions() {
        for (magic, big, frac, want_ns) in [
            (PCAP_US_LE, false, 250_000, 250_000_000),
            (PCAP_US_LE, true, 250_000, 250_000_000),
            (PCAP_NS_LE, false, 7, 7),
            (PCAP_NS_LE, true, 7, 7),
        ] {
            let mut f = pcap_header(magic, big, 1);
            pcap_record(&mut f, big, 10, frac, b"abcd");
            pcap_record(&mut f, big, 11, 0, b"ef");
            let mut src = source(f).unwrap();
            let got = collect(&mut src);
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0, 10_000_000_000 + want_ns);
            assert_eq!(got[0].1, LinkType::Ethernet);
            assert_eq!(got[0].2, b"abcd");
            assert_eq!(got[1].2, b"ef");
        }
    }

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
    fn next_packet_pcap_truncated_record_names_offset_and_packet() {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        pcap_record(&mut f, false, 1, 0, b"0123456789");
        let keep = f.len();
        pcap_record(&mut f, false, 2, 0, b"0123456789");
        f.truncate(keep + 20);
        let mut src = source(f).unwrap();
        assert!(src.next_packet().unwrap().is_some());
        let e = src.next_packet().unwrap_err();
        assert!(matches!(
            e.kind,
            CaptureErrorKind::Truncated { need: 26, have: 20 }
        ));
        assert_eq!(e.offset, keep as u64);
        assert_eq!(
            e.to_string(),
            format!("t.pcap: packet 2 at byte offset {keep}: truncated: the record needs 26 bytes, only 20 remain")
        );
    }

    #[test]
    fn next_packet_pcap_impossible_length() {
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        f.extend(1u32.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(0xFFFF_FFF0u32.to_le_bytes());
        f.extend(60u32.to_le_bytes());
        let mut src = source(f).unwrap();
        let e = src.next_packet().unwrap_err();
        assert!(
            matches!(e.kind, CaptureErrorKind::ImpossibleLength { .. }),
            "{e}"
        );
    }

    #[test]
    fn open_rejects_non_capture_and_short_files() {
        let e = source(b"GET / HTTP/1.1\r\n\r\n garbage garbage".to_vec()).unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::NotACapture { .. }));
        assert!(e.to_string().contains("not a pcap or pcapng file"));
        let e = source(vec![0xd4, 0xc3]).unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::TooShort { len: 2 }));
    }

    fn block(v: &mut Vec<u8>, big: bool, ty: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let w = |x: u32| {
            if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        };
        v.extend(w(ty));
        v.extend(w(len));
        v.extend(body);
        v.extend(w(len));
    }

    fn shb(v: &mut Vec<u8>, big: bool) {
        let mut b = Vec::new();
        b.extend(if big {
            PCAPNG_BOM.to_be_bytes()
        } else {
            PCAPNG_BOM.to_le_bytes()
        });
        b.extend(if big { [0, 1, 0, 0] } else { [1, 0, 0, 0] });
        b.extend([0xFF; 8]);
        block(v, big, PCAPNG_SHB, &b);
    }

    fn idb(v: &mut Vec<u8>, big: bool, link: u16, tsresol: Option<u8>) {
        let w16 = |x: u16| {
            if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend(w16(link));
        b.extend(w16(0));
        b.extend(if big {
            0u32.to_be_bytes()
        } else {
            0u32.to_le_bytes()
        });
        if let Some(r) = tsresol {
            b.extend(w16(9));
            b.extend(w16(1));
            b.extend([r, 0, 0, 0]);
            b.extend(w16(0));
            b.extend(w16(0));
        }
        block(v, big, 1, &b);
    }

    fn epb(v: &mut Vec<u8>, big: bool, iface: u32, ts: u64, data: &[u8]) {
        let w = |x: u32| {
            if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend(w(iface));
        b.extend(w((ts >> 32) as u32));
        b.extend(w(ts as u32));
        b.extend(w(data.len() as u32));
        b.extend(w(data.len() as u32));
        b.extend(data);
        block(v, big, 6, &b);
    }

    #[test]
    fn next_packet_pcapng_sections_interfaces_tsresol() {
        let mut f = Vec::new();
        shb(&mut f, false);
        idb(&mut f, false, 1, None); // µs
        idb(&mut f, false, 113, Some(9)); // ns
        idb(&mut f, false, 101, Some(0x80 | 10)); // 2^-10 s
        epb(&mut f, false, 0, 5_000_001, b"eth");
        epb(&mut f, false, 1, 5_000_000_002, b"sll");
        epb(&mut f, false, 2, 1024 * 3 + 512, b"raw");
        block(&mut f, false, 5, &[0; 8]); // interface statistics: skipped
                                          // A second, big-endian section resets interfaces.
        shb(&mut f, true);
        idb(&mut f, true, 276, Some(3));
        epb(&mut f, true, 0, 1_500, b"sll2");
        let mut src = source(f).unwrap();
        let got = collect(&mut src);
        assert_eq!(
            got,
            vec![
                (5_000_001_000, LinkType::Ethernet, b"eth".to_vec()),
                (5_000_000_002, LinkType::LinuxSll, b"sll".to_vec()),
                (3_500_000_000, LinkType::Raw, b"raw".to_vec()),
                (1_500_000_000, LinkType::LinuxSll2, b"sll2".to_vec()),
            ]
        );
    }

    #[test]
    fn next_packet_pcapng_unknown_interface_and_bad_length() {
        let mut f = Vec::new();
        shb(&mut f, false);
        idb(&mut f, false, 1, None);
        epb(&mut f, false, 3, 0, b"x");
        let mut src = source(f).unwrap();
        let e = src.next_packet().unwrap_err();
        assert!(matches!(
            e.kind,
            CaptureErrorKind::UnknownInterface { id: 3 }
        ));

        let mut f = Vec::new();
        shb(&mut f, false);
        f.extend(6u32.to_le_bytes());
        f.extend(13u32.to_le_bytes());
        f.extend([0; 8]);
        let mut src = source(f).unwrap();
        let e = src.next_packet().unwrap_err();
        assert!(matches!(
            e.kind,
            CaptureErrorKind::BadBlockLength { len: 13 }
        ));
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

    /// Frames of every size, in pcap and pcapng, read ahead on a thread and in place, at chunk
    /// sizes that put record boundaries everywhere: the same frames, and a chunk a worker still
    /// holds is never written again.
    #[test]
    fn read_ahead_gives_the_frames_reading_in_place_gives() {
        let sizes = [1usize, 60, 1514, 9000, 70_000, 200_000, 256 * 1024, 3, 4096];
        let frame =
            |i: usize, n: usize| -> Vec<u8> { (0..n).map(|j| (i * 31 + j * 7) as u8).collect() };
        let mut pcap = pcap_header(PCAP_US_LE, false, 1);
        let mut ng = Vec::new();
        shb(&mut ng, false);
        idb(&mut ng, false, 1, None);
        for (i, &n) in sizes.iter().cycle().take(40).enumerate() {
            pcap_record(&mut pcap, false, i as u32, 0, &frame(i, n));
            epb(&mut ng, false, 0, i as u64, &frame(i, n));
        }
        for bytes in [pcap, ng] {
            let len = bytes.len() as u64;
            let open = |ahead: bool, chunk: usize| {
                let input = Box::new(io::Cursor::new(bytes.clone()));
                let path = PathBuf::from("t");
                if ahead {
                    FileSource::read_ahead(path, input, Some(len), chunk)
                } else {
                    FileSource::with_chunk_size(path, input, Some(len), chunk)
                }
                .unwrap()
            };
            let want = collect(&mut open(false, BUF_SIZE));
            assert_eq!(want.len(), 40);
            for chunk in [4096, 65_536, 300_000, BUF_SIZE] {
                let mut src = open(true, chunk);
                // Every third frame is held, as a lagging worker would: the chunks of the
                // others go back to the thread and are filled again meanwhile.
                let mut held: Vec<(usize, Chunk, usize, usize)> = Vec::new();
                let mut got = Vec::new();
                while let Some(p) = src.next_packet().unwrap() {
                    let off = p.data.as_ptr() as usize - p.chunk.as_ptr() as usize;
                    if got.len() % 3 == 0 {
                        held.push((got.len(), Arc::clone(p.chunk), off, p.data.len()));
                    }
                    got.push((p.ts.0, p.link, p.data.to_vec()));
                }
                assert_eq!(got, want, "chunk {chunk}");
                assert_eq!(held.len(), 14);
                for (i, c, off, n) in &held {
                    let w = &want[*i];
                    assert_eq!(
                        &c[*off..off + n],
                        &w.2[..],
                        "chunk {chunk}: a held frame changed"
                    );
                }
            }
        }
    }

    /// The end of a truncated file, and a read that fails, read ahead: the same error, after
    /// the same packets.
    #[test]
    fn read_ahead_reports_truncation_and_read_errors_in_place() {
        struct Failing(io::Cursor<Vec<u8>>);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(io::Error::other("disk went away")),
                    n => Ok(n),
                }
            }
        }
        let mut f = pcap_header(PCAP_US_LE, false, 1);
        for i in 0..5 {
            pcap_record(&mut f, false, i, 0, &[i as u8; 1000]);
        }
        let cut = f[..f.len() - 10].to_vec();
        let len = cut.len() as u64;
        let mut a = FileSource::read_ahead(
            PathBuf::from("t.pcap"),
            Box::new(io::Cursor::new(cut.clone())),
            Some(len),
            64,
        )
        .unwrap();
        let mut b = FileSource::with_chunk_size(
            PathBuf::from("t.pcap"),
            Box::new(io::Cursor::new(cut)),
            Some(len),
            64,
        )
        .unwrap();
        for _ in 0..4 {
            assert!(a.next_packet().unwrap().is_some());
            assert!(b.next_packet().unwrap().is_some());
        }
        let (ea, eb) = (a.next_packet().unwrap_err(), b.next_packet().unwrap_err());
        assert_eq!(ea.to_string(), eb.to_string());
        assert!(ea.to_string().contains("truncated"), "{ea}");
        let mut c = FileSource::read_ahead(
            PathBuf::from("t.pcap"),
            Box::new(Failing(io::Cursor::new(f))),
            None,
            64,
        )
        .unwrap();
        let mut n = 0;
        let e = loop {
            match c.next_packet() {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("a failing read is no end of file"),
                Err(e) => break e,
            }
        };
        assert_eq!(n, 5, "every packet before the failure");
        assert!(e.to_string().contains("disk went away"), "{e}");
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
