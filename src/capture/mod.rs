//! Packet sources: capture files now, live interfaces behind the `live` feature.
//! A source hands out raw frames with their timestamps and link type; it never parses them.

#[cfg(feature = "live")]
pub mod bpf;
pub mod file;
#[cfg(feature = "live")]
pub mod live;
#[cfg(feature = "live")]
pub mod privilege;

use std::fmt;

/// Nanoseconds since the Unix epoch, as stamped by the capture.
///
/// Time below `capture` is always an argument taken from packets, never read from a clock,
/// so replay gives the same answers as live capture and tests are deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from whole seconds and nanoseconds.
    pub fn from_parts(secs: u64, nanos: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// This time plus a duration in nanoseconds, saturating.
    pub fn plus_nanos(self, ns: u64) -> Self {
        Timestamp(self.0.saturating_add(ns))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with microseconds, e.g. `2024-05-01T12:00:00.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1_000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Link-layer header type of a frame, as numbered by tcpdump's LINKTYPE_ registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback / null: a 4-byte address family in the writer's byte order.
    Null,
    /// Ethernet II, possibly with 802.1Q / 802.1ad tags.
    Ethernet,
    /// Raw IPv4 or IPv6, version taken from the first nibble.
    Raw,
    /// Raw IPv4 only.
    Ipv4,
    /// Raw IPv6 only.
    Ipv6,
    /// Linux cooked capture v1 (16-byte header).
    LinuxSll,
    /// Linux cooked capture v2 (20-byte header).
    LinuxSll2,
    /// OpenBSD loopback: like `Null` but the family is always big-endian.
    Loop,
    /// Any other link type, kept as data so the packet can be counted and skipped.
    Other(u32),
}

impl LinkType {
    /// Maps a LINKTYPE_ number to a link type.
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            other => LinkType::Other(other),
        }
    }

    /// The LINKTYPE_ number (raw IP as 101, LINKTYPE_RAW).
    pub fn as_u32(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Other(n) => n,
        }
    }
}

/// A read buffer shared by a capture source and the workers its frames go to.
pub type Chunk = std::sync::Arc<Vec<u8>>;

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Length on the wire (may exceed `data.len()` when the snaplen cut the frame).
    pub orig_len: u32,
    /// Link type of `data`.
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
    /// The shared chunk `data` lies in, so the frame can travel to a worker without a copy.
    pub chunk: &'a Chunk,
}

/// What a source gave.
#[derive(Debug)]
pub enum Read<'a> {
    /// A frame.
    Packet(RawPacket<'a>),
    /// Nothing for now (a quiet link's read timeout): time to flush and look around.
    Idle,
    /// No more frames.
    End,
}

/// Drop counters of a live source, widened to 64 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Packets the kernel dropped for lack of buffer space.
    pub kernel: u64,
    /// Packets the interface or its driver dropped.
    pub interface: u64,
}

/// Why a source stopped, as a message naming the source.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A source of captured frames, read one at a time (a lending iterator).
pub trait PacketSource {
    /// The next frame, `Idle`, `End`, or an error that ends this source.
    fn read(&mut self) -> Result<Read<'_>, SourceError>;
    /// Bytes of input consumed so far (for progress reports).
    fn position(&self) -> u64;
    /// Drop counters, for sources that have them.
    fn drops(&mut self) -> Option<DropCounts> {
        None
    }
    /// The time now, for live sources whose packets are stamped with the wall clock: when the
    /// link is quiet, flows still age by it. Files have no "now" beyond their packets.
    fn now(&self) -> Option<Timestamp> {
        None
    }
    /// CPU time of the source's own helper thread so far (a file read ahead), for benchmarks.
    fn helper_cpu(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// CPU time the calling thread has used so far (read once per thread, when it ends).
pub fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_display_rfc3339_micros() {
        let ts = Timestamp::from_parts(1_700_000_000, 123_456_789);
        assert_eq!(ts.to_string(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        // A leap day.
        assert_eq!(
            Timestamp::from_parts(951_782_400, 0).to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn link_type_from_u32_known_and_other() {
        assert_eq!(LinkType::from_u32(1), LinkType::Ethernet);
        assert_eq!(LinkType::from_u32(113), LinkType::LinuxSll);
        assert_eq!(LinkType::from_u32(276), LinkType::LinuxSll2);
        assert_eq!(LinkType::from_u32(9999), LinkType::Other(9999));
    }
}
