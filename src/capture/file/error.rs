//! What can go wrong reading a capture file, with the place it went wrong: [`CaptureError`]
//! names the file, the packet and the byte offset. Plain data; never decides whether to go on.

use super::{MAX_BLOCK, MAX_FRAME, MAX_INTERFACES};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a capture file could not be read (further).
#[derive(Debug)]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// The operating system refused a read.
    Io(io::Error),
    /// The input could not be opened (no such file, permission denied, a folder where a file
    /// was expected).
    Open(io::Error),
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
    /// A pcapng block larger than any this sensor reads (a frame of [`MAX_FRAME`] bytes and
    /// room for options): refused, so memory stays bounded.
    BlockTooLarge {
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
            Self::Open(e) => match e.kind() {
                io::ErrorKind::NotFound => write!(f, "no such file"),
                io::ErrorKind::PermissionDenied => write!(f, "permission denied"),
                io::ErrorKind::IsADirectory => write!(f, "is a folder"),
                _ => write!(f, "cannot open: {e}"),
            },
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
            Self::BlockTooLarge { len } => write!(
                f,
                "a pcapng block of {len} bytes, more than the {MAX_BLOCK} picket reads (frames over {MAX_FRAME} bytes)"
            ),
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
        if let CaptureErrorKind::Open(_) = self.kind {
            return write!(f, "{}: {}", self.path.display(), self.kind);
        }
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
