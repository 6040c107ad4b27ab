//! Live capture through libpcap (the `pcap` crate): an interface, a BPF filter, a large kernel
//! buffer, immediate delivery and nanosecond timestamps where the system has them. Frames are
//! copied once out of libpcap's ring into shared chunks that travel to the workers; never parses.

use super::{Chunk, DropCounts, LinkType, PacketSource, RawPacket, Read, SourceError, Timestamp};
use pcap::{Active, Capture, Precision};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::fmt;
use std::sync::Arc;

/// Size of a chunk frames are copied into.
const CHUNK: usize = 1 << 20;
/// Most retired chunks kept for reuse.
const MAX_POOL: usize = 64;

/// How to open an interface.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name, e.g. `eth1`.
    pub interface: String,
    /// A BPF filter expression (tcpdump syntax), if any.
    pub bpf: Option<String>,
    /// Bytes kept per packet.
    pub snaplen: i32,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Kernel capture buffer, in MiB.
    pub buffer_mib: i32,
    /// Read timeout in milliseconds: how long a quiet link may hold a read.
    pub timeout_ms: i32,
}

/// A live capture failed to open, filter or read.
#[derive(Debug)]
pub struct LiveError {
    /// What was being done.
    pub what: &'static str,
    /// The interface.
    pub interface: String,
    /// libpcap's message.
    pub message: String,
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.what, self.interface, self.message)
    }
}

impl std::error::Error for LiveError {}

/// Widens a wrapping 32-bit counter: adds the forward distance from the last reading.
#[derive(Clone, Copy, Debug, Default)]
struct Wide {
    last: u32,
    total: u64,
}

impl Wide {
    fn update(&mut self, now: u32) -> u64 {
        self.total += u64::from(now.wrapping_sub(self.last));
        self.last = now;
        self.total
    }
}

/// An open live capture.
pub struct LiveSource {
    cap: Capture<Active>,
    interface: String,
    link: LinkType,
    buf: Chunk,
    used: usize,
    pool: Vec<Chunk>,
    kernel: Wide,
    iface: Wide,
    /// Timestamps are in nanoseconds (else microseconds).
    nano: bool,
    timeout_ms: i32,
}

impl fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSource")
            .field("interface", &self.interface)
            .field("link", &self.link)
            .finish()
    }
}

impl LiveSource {
    /// Opens the interface and applies the filter.
    pub fn open(cfg: &LiveConfig) -> Result<Self, LiveError> {
        let err = |what, e: pcap::Error| LiveError {
            what,
            interface: cfg.interface.clone(),
            message: e.to_string(),
        };
        let inactive = Capture::from_device(cfg.interface.as_str())
            .map_err(|e| err("cannot find interface", e))?
            .snaplen(cfg.snaplen)
            .promisc(cfg.promisc)
            .buffer_size(cfg.buffer_mib.saturating_mul(1 << 20))
            .timeout(cfg.timeout_ms)
            .immediate_mode(true)
            .precision(Precision::Nano);
        let (cap, nano) = match inactive.open() {
            Ok(c) => (c, true),
            Err(_) => {
                // Some systems have no nanosecond timestamps; microseconds then.
                let c = Capture::from_device(cfg.interface.as_str())
                    .map_err(|e| err("cannot find interface", e))?
                    .snaplen(cfg.snaplen)
                    .promisc(cfg.promisc)
                    .buffer_size(cfg.buffer_mib.saturating_mul(1 << 20))
                    .timeout(cfg.timeout_ms)
                    .immediate_mode(true)
                    .open()
                    .map_err(|e| err("cannot open", e))?;
                (c, false)
            }
        };
        let mut cap = cap
            .setnonblock()
            .map_err(|e| err("cannot make non-blocking", e))?;
        if let Some(expr) = &cfg.bpf {
            cap.filter(expr, true)
                .map_err(|e| err("invalid BPF filter for", e))?;
        }
        let link = LinkType::from_u32(cap.get_datalink().0 as u32);
        Ok(LiveSource {
            cap,
            interface: cfg.interface.clone(),
            link,
            buf: Arc::new(vec![0; CHUNK]),
            used: 0,
            pool: Vec::new(),
            kernel: Wide::default(),
            iface: Wide::default(),
            nano,
            timeout_ms: cfg.timeout_ms,
        })
    }

    /// The capture's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The next frame, or `Ok(None)` when nothing arrived within the read timeout.
    ///
    /// The handle is non-blocking and waits in `poll(2)` on its descriptor: libpcap's own
    /// timeout is not honoured everywhere (Linux's TPACKET_V3 keeps waiting on a silent link),
    /// and the reader must come back regularly to flush batches, publish counters and stop.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, LiveError> {
        let mut polled = false;
        let (h, at, len) = loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    let h = *p.header;
                    let len = p.data.len();
                    // A chunk still shared with workers is never written again: move to one
                    // nobody holds.
                    if self.used + len > self.buf.len() || Arc::get_mut(&mut self.buf).is_none() {
                        let size = CHUNK.max(len);
                        let fresh = match self
                            .pool
                            .iter()
                            .position(|c| Arc::strong_count(c) == 1 && c.len() >= size)
                        {
                            Some(i) => self.pool.swap_remove(i),
                            None => Arc::new(vec![0; size]),
                        };
                        let old = std::mem::replace(&mut self.buf, fresh);
                        if self.pool.len() < MAX_POOL {
                            self.pool.push(old);
                        }
                        self.used = 0;
                    }
                    let at = self.used;
                    if let Some(b) = Arc::get_mut(&mut self.buf) {
                        b[at..at + len].copy_from_slice(p.data);
                    }
                    self.used += len;
                    break (h, at, len);
                }
                Err(pcap::Error::TimeoutExpired) if !polled => {
                    polled = true;
                    let mut fds = [PollFd::new(&self.cap, PollFlags::IN)];
                    let ms = i64::from(self.timeout_ms.max(1));
                    let t = Timespec {
                        tv_sec: ms / 1000,
                        tv_nsec: (ms % 1000) * 1_000_000,
                    };
                    match poll(&mut fds, Some(&t)) {
                        Ok(0) => return Ok(None),
                        Ok(_) => {}
                        Err(e) if e == rustix::io::Errno::INTR => return Ok(None),
                        Err(e) => {
                            return Err(LiveError {
                                what: "cannot wait for packets on",
                                interface: self.interface.clone(),
                                message: e.to_string(),
                            })
                        }
                    }
                }
                Err(pcap::Error::TimeoutExpired) => return Ok(None),
                Err(e) => {
                    return Err(LiveError {
                        what: "capture failed on",
                        interface: self.interface.clone(),
                        message: e.to_string(),
                    })
                }
            }
        };
        // With nanosecond precision libpcap stores nanoseconds in tv_usec.
        let frac = u64::try_from(h.ts.tv_usec).unwrap_or(0);
        let secs = u64::try_from(h.ts.tv_sec).unwrap_or(0);
        let nanos = if self.nano { frac } else { frac * 1_000 };
        Ok(Some(RawPacket {
            ts: Timestamp::from_parts(secs, nanos),
            orig_len: h.len,
            link: self.link,
            data: &self.buf[at..at + len],
            chunk: &self.buf,
        }))
    }

    /// Kernel and interface drop counts so far, widened across libpcap's 32-bit wrap.
    pub fn drops(&mut self) -> DropCounts {
        match self.cap.stats() {
            Ok(s) => DropCounts {
                kernel: self.kernel.update(s.dropped),
                interface: self.iface.update(s.if_dropped),
            },
            Err(_) => DropCounts {
                kernel: self.kernel.total,
                interface: self.iface.total,
            },
        }
    }
}

impl PacketSource for LiveSource {
    fn read(&mut self) -> Result<Read<'_>, SourceError> {
        match self.next_packet() {
            Ok(Some(p)) => Ok(Read::Packet(p)),
            Ok(None) => Ok(Read::Idle),
            Err(e) => Err(Box::new(e)),
        }
    }

    fn position(&self) -> u64 {
        0
    }

    fn drops(&mut self) -> Option<DropCounts> {
        Some(LiveSource::drops(self))
    }

    fn now(&self) -> Option<Timestamp> {
        // Read only when the link is quiet, never per packet.
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(Timestamp::from_parts(
            d.as_secs(),
            u64::from(d.subsec_nanos()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_counter_survives_32_bit_wrap() {
        let mut w = Wide::default();
        assert_eq!(w.update(10), 10);
        assert_eq!(w.update(u32::MAX - 5), u64::from(u32::MAX) - 5);
        assert_eq!(w.update(4), u64::from(u32::MAX) + 5);
    }
}
