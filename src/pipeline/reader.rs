//! The reader: the loop over one source's packets, on the thread that feeds the workers. Per
//! packet it decodes (with the reassembly of IP fragments), lets the hint writer look at DNS
//! responses and STUN, and hands the packet to the dispatcher.
//!
//! Between packets it looks around every few thousand packets and whenever a live link is
//! quiet: it publishes its counters, applies a requested rule reload, and stops when asked. Those
//! checks are plain loads of flags; nothing is locked per packet.

use super::dispatch::Dispatch;
use super::hints::HintWriter;
use super::{Control, Hooks};
use crate::capture::{PacketSource, Read, Timestamp};
use crate::decode::{Decoded, Decoder, PacketMeta, Transport};
use crate::export::record::ReadStats;
use crate::rules::CompiledRules;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Look around every this many packets.
const TICK_EVERY: u64 = 4096;

/// How a source's pumping ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// The source has no more packets.
    End,
    /// A stop was requested.
    Stopped,
    /// The source failed; the message names it and the place.
    Failed(String),
}

/// Feeds sources into the running pipeline.
pub struct Reader<'s, 'h> {
    dispatch: Dispatch<'s>,
    /// Decoding, with the reassembly of fragments.
    decoder: Decoder,
    /// Time of the latest packet read.
    last_ts: Timestamp,
    /// Reading and decoding counters so far.
    pub read: ReadStats,
    hooks: Hooks<'h>,
    /// Bytes of finished inputs, for progress.
    done_bytes: u64,
    /// The rules in force (the hint writer classifies DNS names and STUN marks with them).
    rules: Arc<CompiledRules>,
    /// Finds the updates of the hint caches, in capture order.
    hints: HintWriter,
    /// Multi-queue live capture: this reader's queue (its counters are published in the queue's
    /// slot, its worker is worker `queue`, and reloads are announced by the caller, once).
    queue: Option<usize>,
}

impl<'s, 'h> Reader<'s, 'h> {
    /// A reader feeding `dispatch`.
    pub(super) fn new(dispatch: Dispatch<'s>, hooks: Hooks<'h>, rules: Arc<CompiledRules>) -> Self {
        Reader {
            dispatch,
            decoder: Decoder::new(),
            last_ts: Timestamp(0),
            read: ReadStats::default(),
            hooks,
            done_bytes: 0,
            rules,
            hints: HintWriter::new(),
            queue: None,
        }
    }

    /// The reader of capture queue `queue`, feeding that queue's own worker.
    pub(super) fn for_queue(
        dispatch: Dispatch<'s>,
        hooks: Hooks<'h>,
        rules: Arc<CompiledRules>,
        queue: usize,
    ) -> Self {
        Reader {
            queue: Some(queue),
            ..Reader::new(dispatch, hooks, rules)
        }
    }

    /// The dispatcher and the final reading counters.
    pub(super) fn into_parts(self) -> (Dispatch<'s>, ReadStats) {
        let Reader {
            dispatch,
            mut read,
            decoder,
            ..
        } = self;
        read.decode = decoder.stats();
        (read.clock_ahead, read.clock_behind) = dispatch.clock_adjusted();
        (dispatch, read)
    }

    /// Reads `src` until it ends, fails, or a stop is requested.
    pub fn pump<S: PacketSource + ?Sized>(&mut self, src: &mut S) -> PumpEnd {
        self.read.files += 1;
        let mut since_tick = 0u64;
        loop {
            match src.read() {
                Ok(Read::Packet(p)) => {
                    self.read.packets += 1;
                    self.read.bytes += u64::from(p.orig_len);
                    self.last_ts = p.ts;
                    match self.decoder.decode(p.link, p.ts, p.orig_len, p.data) {
                        Ok(decoded) => {
                            self.read.decoded += 1;
                            // A reassembled datagram's payload lies in the decoder's buffer.
                            let (meta, frame, copied) = match decoded {
                                Decoded::Frame(m) => (m, p.data, false),
                                Decoded::Reassembled { meta, frame } => (meta, frame, true),
                            };
                            if may_hint(&meta, frame) {
                                let (src, dst) = (meta.src.ip(), meta.dst.ip());
                                for u in self.hints.observe(
                                    &self.rules,
                                    meta.transport == Transport::Tcp,
                                    SocketAddr::new(src, meta.sport),
                                    SocketAddr::new(dst, meta.dport),
                                    meta.payload(frame),
                                    meta.ts,
                                ) {
                                    self.dispatch.hint(u);
                                }
                            }
                            if copied {
                                self.dispatch.push_copy(&meta, frame);
                            } else {
                                self.dispatch.push(&meta, p.data, p.chunk);
                            }
                        }
                        Err(skip) => self.read.skips[skip.index()] += 1,
                    }
                    since_tick += 1;
                    if since_tick == TICK_EVERY {
                        since_tick = 0;
                        // Every worker's progress moves on, even one that gets no packets.
                        self.dispatch.tick(Timestamp(0));
                        if self.tick(src) {
                            return PumpEnd::Stopped;
                        }
                    }
                }
                Ok(Read::Idle) => {
                    match src.now() {
                        Some(now) => {
                            self.dispatch.tick(now);
                            self.decoder.expire(now);
                        }
                        None => self.dispatch.flush(),
                    }
                    if self.tick(src) {
                        return PumpEnd::Stopped;
                    }
                }
                Ok(Read::End) => {
                    self.done_bytes += src.position();
                    self.read.helper_cpu += src.helper_cpu();
                    self.tick(src);
                    return PumpEnd::End;
                }
                Err(e) => {
                    self.done_bytes += src.position();
                    self.read.helper_cpu += src.helper_cpu();
                    self.tick(src);
                    return PumpEnd::Failed(e.to_string());
                }
            }
        }
    }

    /// Publishes counters, reports progress, applies a reload; true when a stop was requested.
    fn tick<S: PacketSource + ?Sized>(&mut self, src: &mut S) -> bool {
        self.decoder.expire(self.last_ts);
        self.read.decode = self.decoder.stats();
        if let Some(m) = self.hooks.metrics {
            let (r, first) = match self.queue {
                Some(q) => (m.queues.get(q).unwrap_or(&m.reader), q),
                None => (&m.reader, 0),
            };
            r.packets.store(self.read.packets, Ordering::Relaxed);
            r.bytes.store(self.read.bytes, Ordering::Relaxed);
            for (a, v) in r.skips.iter().zip(self.read.skips) {
                a.store(v, Ordering::Relaxed);
            }
            r.publish_decode(&self.read.decode);
            let (ahead, behind) = self.dispatch.clock_adjusted();
            r.clock_adjusted[0].store(ahead, Ordering::Relaxed);
            r.clock_adjusted[1].store(behind, Ordering::Relaxed);
            if let Some(d) = src.drops() {
                r.kernel_drops.store(d.kernel, Ordering::Relaxed);
                r.interface_drops.store(d.interface, Ordering::Relaxed);
            }
            r.hint_drops
                .store(self.dispatch.hint_drops, Ordering::Relaxed);
            for (w, depth) in m
                .workers
                .iter()
                .skip(first)
                .zip(self.dispatch.queue_depths())
            {
                w.queue_depth.store(depth as u64, Ordering::Relaxed);
            }
        }
        if let Some(f) = self.hooks.progress {
            f(self.done_bytes + src.position());
        }
        let Some(c) = self.hooks.control else {
            return false;
        };
        if Control::take(&c.reload) {
            if let Some(reload) = self.hooks.reload {
                match reload() {
                    Ok(rules) if self.queue.is_some() => {
                        self.dispatch.set_rules(&rules);
                        self.rules = rules;
                    }
                    Ok(rules) => {
                        tracing::info!(
                            apps = rules.apps().len(),
                            domains = rules.domain_count(),
                            "rules reloaded"
                        );
                        if let Some(m) = self.hooks.metrics {
                            m.reload(true);
                            m.rules_loaded(&rules);
                        }
                        self.dispatch.set_rules(&rules);
                        self.rules = rules;
                    }
                    Err(_) if self.queue.is_some() => {}
                    Err(e) => {
                        tracing::error!(error = %e, "rule reload refused; the old rules stay");
                        if let Some(m) = self.hooks.metrics {
                            m.reload(false);
                        }
                    }
                }
            }
        }
        c.stop.load(Ordering::Relaxed)
    }
}

/// Whether the reader gives a packet to the hint writer: a DNS response (from port 53, UDP or
/// TCP) or a UDP datagram that could be STUN or TURN ChannelData. A few compares per packet.
fn may_hint(m: &PacketMeta, frame: &[u8]) -> bool {
    if m.payload_len == 0 {
        return false;
    }
    if m.sport == 53 {
        return true;
    }
    if m.transport != Transport::Udp || m.payload_len < 20 {
        return false;
    }
    let p = m.payload(frame);
    // STUN, or STUN inside a TURN ChannelData message (first byte 0x40-0x4f).
    crate::proto::stun::looks_like_stun(p) || (p[0] & 0xf0 == 0x40 && p.len() >= 24)
}
