//! Live capture through libpcap (the `pcap` crate): an interface, a BPF filter, a large kernel
//! buffer, immediate delivery and nanosecond timestamps where the system has them. Frames are
//! copied once out of libpcap's ring into shared chunks that travel to the workers; never parses.
//!
//! [`LiveSource::open_queues`] opens several handles on one interface and joins them in one
//! `PACKET_FANOUT` group (Linux): the kernel hands each packet to one handle by a hash of its
//! addresses and ports that is the same for both directions, after reassembling IP fragments,
//! so each handle — a queue — sees whole flows (see `pipeline::queues`).

use super::{Chunk, DropCounts, LinkType, PacketSource, RawPacket, Read, SourceError, Timestamp};
use pcap::{Active, Capture, Precision};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::fmt;
use std::sync::Arc;

/// Size of a chunk frames are copied into (at least four frames of the snaplen).
const CHUNK: usize = 2 << 20;
/// Most frames copied per fill.
const MAX_PENDING: usize = 4096;

/// Where a copied frame lies in the chunk.
#[derive(Clone, Copy, Debug)]
struct Pending {
    ts: Timestamp,
    orig_len: u32,
    at: usize,
    len: usize,
}
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

// setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &u32): the group id in the low 16 bits, the mode and
// flags in the high 16 (packet(7)). nix's macro wraps the call.
#[cfg(target_os = "linux")]
nix::sockopt_impl!(
    /// The `PACKET_FANOUT` socket option of an `AF_PACKET` socket.
    PacketFanout,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_FANOUT,
    u32
);
#[cfg(target_os = "linux")]
use nix::{setsockopt_impl, sockopt_impl};

/// The fanout mode and flags: a flow hash the kernel computes symmetrically (both directions
/// alike), on datagrams reassembled from their fragments first.
#[cfg(target_os = "linux")]
const FANOUT_HASH_DEFRAG: u32 = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;

/// Most capture queues of one fanout group (the kernel allows 256 sockets in a group by default;
/// more queues than cores only cost).
pub const MAX_QUEUES: usize = 64;

/// An open live capture.
pub struct LiveSource {
    cap: Capture<Active>,
    interface: String,
    link: LinkType,
    buf: Chunk,
    /// Frames copied into `buf`, handed out from `next` on.
    pending: Vec<Pending>,
    next: usize,
    /// The last fill emptied libpcap's ring.
    drained: bool,
    pool: Vec<Chunk>,
    chunk_size: usize,
    max_frame: usize,
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
        let configured = || -> Result<Capture<pcap::Inactive>, LiveError> {
            Ok(Capture::from_device(cfg.interface.as_str())
                .map_err(|e| err("cannot find interface", e))?
                .snaplen(cfg.snaplen)
                .promisc(cfg.promisc)
                .buffer_size(cfg.buffer_mib.saturating_mul(1 << 20))
                .timeout(cfg.timeout_ms)
                .immediate_mode(true))
        };
        let (cap, nano) = match configured()?.precision(Precision::Nano).open() {
            Ok(c) => (c, true),
            Err(_) => {
                // Some systems have no nanosecond timestamps; microseconds then.
                let c = configured()?.open().map_err(|e| err("cannot open", e))?;
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
        let max_frame = usize::try_from(cfg.snaplen.max(64)).unwrap_or(65_536);
        let chunk_size = CHUNK.max(4 * max_frame);
        Ok(LiveSource {
            cap,
            interface: cfg.interface.clone(),
            link,
            buf: Arc::new(vec![0; chunk_size]),
            pending: Vec::with_capacity(MAX_PENDING),
            next: 0,
            drained: false,
            pool: Vec::new(),
            chunk_size,
            max_frame,
            kernel: Wide::default(),
            iface: Wide::default(),
            nano,
            timeout_ms: cfg.timeout_ms,
        })
    }

    /// Opens `queues` handles on the interface (each as [`LiveSource::open`] does) joined in one
    /// fanout group (`group`, unique on this host among running sensors), so that the kernel
    /// hands each flow, both directions and every fragment, to one of them. Linux only.
    pub fn open_queues(
        cfg: &LiveConfig,
        queues: usize,
        group: u16,
    ) -> Result<Vec<Self>, LiveError> {
        if queues == 0 || queues > MAX_QUEUES {
            return Err(LiveError {
                what: "cannot open this many capture queues on",
                interface: cfg.interface.clone(),
                message: format!("{queues} asked, 1 to {MAX_QUEUES} possible"),
            });
        }
        let mut out = Vec::with_capacity(queues);
        for _ in 0..queues {
            let src = Self::open(cfg)?;
            src.join_fanout(group)?;
            out.push(src);
        }
        Ok(out)
    }

    /// Joins fanout group `group` in hash mode with defragmentation. The handle must be active
    /// (libpcap binds the socket to the interface when it activates it).
    #[cfg(target_os = "linux")]
    fn join_fanout(&self, group: u16) -> Result<(), LiveError> {
        let arg = u32::from(group) | (FANOUT_HASH_DEFRAG << 16);
        nix::sys::socket::setsockopt(&self.cap, PacketFanout, &arg)
            .map_err(|e| self.error("cannot join the fanout group on", e.desc().to_string()))
    }

    #[cfg(not(target_os = "linux"))]
    fn join_fanout(&self, _group: u16) -> Result<(), LiveError> {
        Err(self.error(
            "cannot join a fanout group on",
            "PACKET_FANOUT is Linux only".to_string(),
        ))
    }

    /// The capture's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The next frame, or `Ok(None)` when nothing arrived within the read timeout or the ring
    /// has just been emptied.
    ///
    /// Frames are copied out of libpcap's ring a chunk at a time: while the chunk is still ours
    /// alone, every frame that is ready is copied in, and then they are handed out one by one
    /// (the chunk is shared with the workers from the first one on, and never written again).
    /// The handle is non-blocking and waits in `poll(2)` on its descriptor: libpcap's own
    /// timeout is not honoured everywhere (Linux's TPACKET_V3 keeps waiting on a silent link),
    /// and the reader must come back regularly to flush batches, publish counters and stop.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, LiveError> {
        if self.next >= self.pending.len() && self.drained {
            // The ring was empty after the last frames: say so once, so the reader sends what it
            // holds now instead of waiting for more traffic (an alert should not wait for it).
            self.drained = false;
            return Ok(None);
        }
        if self.next >= self.pending.len() {
            self.fill()?;
            if self.pending.is_empty() {
                self.wait()?;
                self.fill()?;
            }
            if self.pending.is_empty() {
                return Ok(None);
            }
        }
        let f = self.pending[self.next];
        self.next += 1;
        Ok(Some(RawPacket {
            ts: f.ts,
            orig_len: f.orig_len,
            link: self.link,
            data: &self.buf[f.at..f.at + f.len],
            chunk: &self.buf,
        }))
    }

    fn error(&self, what: &'static str, message: String) -> LiveError {
        LiveError {
            what,
            interface: self.interface.clone(),
            message,
        }
    }

    /// Copies every frame that is ready (up to a chunk's worth) into a chunk nobody else holds.
    fn fill(&mut self) -> Result<(), LiveError> {
        self.pending.clear();
        self.next = 0;
        if Arc::get_mut(&mut self.buf).is_none() {
            let fresh = match self.pool.iter().position(|c| Arc::strong_count(c) == 1) {
                Some(i) => self.pool.swap_remove(i),
                None => Arc::new(vec![0; self.chunk_size]),
            };
            let old = std::mem::replace(&mut self.buf, fresh);
            if self.pool.len() < MAX_POOL {
                self.pool.push(old);
            }
        }
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            return Ok(()); // unreachable: the chunk was made unique above
        };
        let mut used = 0;
        // Room for the largest frame the snaplen allows, so no frame read is ever left over.
        while used + self.max_frame <= buf.len() && self.pending.len() < MAX_PENDING {
            match self.cap.next_packet() {
                Ok(p) => {
                    let h = *p.header;
                    let len = p.data.len().min(self.max_frame);
                    buf[used..used + len].copy_from_slice(&p.data[..len]);
                    // With nanosecond precision libpcap stores nanoseconds in tv_usec.
                    let frac = u64::try_from(h.ts.tv_usec).unwrap_or(0);
                    let secs = u64::try_from(h.ts.tv_sec).unwrap_or(0);
                    let nanos = if self.nano { frac } else { frac * 1_000 };
                    self.pending.push(Pending {
                        ts: Timestamp::from_parts(secs, nanos),
                        orig_len: h.len,
                        at: used,
                        len,
                    });
                    used += len;
                }
                Err(pcap::Error::TimeoutExpired) => {
                    self.drained = !self.pending.is_empty();
                    break;
                }
                Err(e) => return Err(self.error("capture failed on", e.to_string())),
            }
        }
        Ok(())
    }

    /// Waits until the capture has frames or the timeout passes.
    fn wait(&mut self) -> Result<(), LiveError> {
        let mut fds = [PollFd::new(&self.cap, PollFlags::IN)];
        let ms = i64::from(self.timeout_ms.max(1));
        let t = Timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        match poll(&mut fds, Some(&t)) {
            Ok(_) => Ok(()),
            Err(e) if e == rustix::io::Errno::INTR => Ok(()),
            Err(e) => Err(self.error("cannot wait for packets on", e.to_string())),
        }
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
