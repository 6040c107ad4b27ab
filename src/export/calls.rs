//! Calls: a client's flows of one call, grouped from the owned flow records the consumer
//! releases. Never reads a flow table; the workers' only part is the records (and the STUN and
//! ChannelData counts in each UDP flow's view).
//!
//! A call's flows hash to different workers (the binding to a public STUN server, the app's
//! TURN exchange, ICE checks, relayed and direct media), so a call cannot live in one worker.
//! It is assembled here, in the consumer, from the records in release order, which is the same
//! at any worker count: so are the calls.
//!
//! - **Which flows.** A flow with an app that a call's signal decided (`stun`, `peer_cache`,
//!   `call_socket`, a UDP `signature`: every UDP signature of the rules is a call's), or a UDP
//!   flow of an app that carried STUN messages.
//! - **Grouping.** A flow joins an open call of the same client address and app when it shares
//!   the call's client socket (ICE sends every check and the media from one socket) and its
//!   packets come within [`CALL_IDLE`] of the call's, or it goes to the address of one of the
//!   call's servers (a relay reached on another port or over TCP) while the call's flows are
//!   alive (a relay serves every call the app routes there, so it alone does not bridge a gap).
//! - **The end.** A call ends [`CALL_IDLE`] (30 s) after its last packet. Its flows come in as
//!   they end, so it is written once the release order passes its last packet plus the idle
//!   time plus the longest a live flow can go without a record (its UDP timeout, or an update
//!   interval): then no flow of it can still be running. At the end of the input every call
//!   ends.
//! - **Media.** A flow's packets that were not STUN messages; the call's start and end are the
//!   first and last packet of its flows that carried media (the set-up while it rang aside). The path: `relayed` when media
//!   went through a TURN relay (ChannelData), `server` when it went to one of the servers the
//!   app's own STUN exchange or signature spoke to (an SFU or the app's relay on its own
//!   framing), else
//!   `direct` (to the peer). A call with no media at all (set-up pings that never connected)
//!   is not written.
//! - **Bounded.** At most [`MAX_CALLS`] open calls (past it the oldest ends early, counted) and
//!   [`MAX_CALL_FLOWS`] flow ids listed per call (the counts include every flow).

use crate::capture::Timestamp;
use crate::classify::{AppSource, Classification};
use crate::decode::Transport;
use crate::export::record::{FlowRecord, FlowView};
use std::net::IpAddr;
use std::sync::Arc;

const SEC: u64 = 1_000_000_000;
/// A call ends this long after its last packet.
pub const CALL_IDLE: u64 = 30 * SEC;
/// Open calls held at most.
pub const MAX_CALLS: usize = 4096;
/// Flow ids listed per call at most.
pub const MAX_CALL_FLOWS: usize = 64;

/// How a call's media went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallPath {
    /// Through a TURN relay.
    Relayed,
    /// Straight between the two parties.
    Direct,
    /// To the app's own server (an SFU).
    Server,
}

impl CallPath {
    /// Every path, for metric labels.
    pub const ALL: [CallPath; 3] = [CallPath::Relayed, CallPath::Direct, CallPath::Server];

    /// Name as used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CallPath::Relayed => "relayed",
            CallPath::Direct => "direct",
            CallPath::Server => "server",
        }
    }
}

/// A call, as the `call` and `call_update` events show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallView {
    /// The call's id: its first flow's id.
    pub id: u64,
    /// The app and what attributed the call (its first flow with the app's own STUN marks, or
    /// else its first flow).
    pub class: Classification,
    /// The client's address.
    pub client: IpAddr,
    /// First packet of its flows that carried media (of any flow, when none did).
    pub first_ts: Timestamp,
    /// Last packet of its flows that carried media.
    pub last_ts: Timestamp,
    /// Media packets, client to server and back.
    pub media_packets: [u64; 2],
    /// Media bytes on the wire, the same way.
    pub media_bytes: [u64; 2],
    /// How the media went.
    pub path: CallPath,
    /// The flows grouped, at most [`MAX_CALL_FLOWS`], in the order they were grouped.
    pub flow_ids: Vec<u64>,
    /// Every flow grouped (ended ones, and live ones an update told of).
    pub flows: u64,
}

/// What the calls release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// A call of this app opened (for the active-calls gauge).
    Opened(Arc<str>),
    /// A call of this app ended, with media or not (the same).
    Closed(Arc<str>),
    /// A call ended.
    End(CallView),
    /// A long call's counters so far, at an update interval boundary.
    Update {
        /// The boundary.
        ts: Timestamp,
        /// The call so far.
        call: CallView,
    },
}

/// One flow's part in a call.
#[derive(Clone, Copy, Debug)]
struct Member {
    id: u64,
    first_ts: Timestamp,
    last_ts: Timestamp,
    server: IpAddr,
    marked: bool,
    channel: bool,
    media_packets: [u64; 2],
    media_bytes: [u64; 2],
}

#[derive(Debug)]
struct Open {
    id: u64,
    class: Classification,
    client: IpAddr,
    sockets: Vec<u16>,
    servers: Vec<IpAddr>,
    first_ts: Timestamp,
    last_ts: Timestamp,
    members: Vec<Member>,
    flows: u64,
    updates: u64,
}

impl Open {
    fn view(&self) -> CallView {
        let mut media_packets = [0; 2];
        let mut media_bytes = [0; 2];
        let mut path = None;
        let mut span: Option<(Timestamp, Timestamp)> = None;
        let marked: Vec<IpAddr> = self
            .members
            .iter()
            .filter(|m| m.marked)
            .map(|m| m.server)
            .collect();
        for m in &self.members {
            for d in 0..2 {
                media_packets[d] += m.media_packets[d];
                media_bytes[d] += m.media_bytes[d];
            }
            if m.media_packets == [0, 0] {
                continue;
            }
            span = Some(span.map_or((m.first_ts, m.last_ts), |(a, b)| {
                (a.min(m.first_ts), b.max(m.last_ts))
            }));
            let p = if m.channel {
                CallPath::Relayed
            } else if marked.contains(&m.server) {
                CallPath::Server
            } else {
                CallPath::Direct
            };
            path = Some(match (path, p) {
                (Some(CallPath::Relayed), _) | (_, CallPath::Relayed) => CallPath::Relayed,
                (Some(CallPath::Direct), _) | (_, CallPath::Direct) => CallPath::Direct,
                _ => CallPath::Server,
            });
        }
        CallView {
            id: self.id,
            class: self.class.clone(),
            client: self.client,
            first_ts: span.map_or(self.first_ts, |s| s.0),
            last_ts: span.map_or(self.last_ts, |s| s.1),
            media_packets,
            media_bytes,
            path: path.unwrap_or(CallPath::Server),
            flow_ids: self.members.iter().map(|m| m.id).collect(),
            flows: self.flows,
        }
    }

    fn has_media(&self) -> bool {
        self.members.iter().any(|m| m.media_packets != [0, 0])
    }
}

/// The consumer's open calls.
#[derive(Debug)]
pub struct Calls {
    open: Vec<Open>,
    /// The longest a live flow goes without a record.
    margin: u64,
    /// `call_update` interval (0: none).
    update_every: u64,
    /// The release order's time so far.
    now: Timestamp,
    /// Calls ended early to stay within [`MAX_CALLS`].
    pub evicted: u64,
}

/// Whether a flow is part of a call, and its app.
fn call_class(f: &FlowView) -> Option<&Classification> {
    let c = f.app.as_deref()?;
    let udp = f.transport == Transport::Udp;
    // Every UDP signature of the rules is a call's (a media server's connect request, a voice
    // server's IP discovery, a reflector's header).
    let by_call = matches!(
        c.source,
        AppSource::Stun | AppSource::PeerCache | AppSource::CallSocket
    ) || (udp && c.source == AppSource::Signature);
    let stun = udp && f.calls.stun_packets != [0, 0];
    (by_call || stun).then_some(c)
}

fn member(f: &FlowView) -> Member {
    let c = &f.calls;
    let media = |d: usize, packets: u64, bytes: u64| {
        (
            packets.saturating_sub(u64::from(c.stun_packets[d])),
            bytes.saturating_sub(u64::from(c.stun_bytes[d])),
        )
    };
    let (ps, bs) = media(0, f.to_server.packets, f.to_server.bytes);
    let (pc, bc) = media(1, f.to_client.packets, f.to_client.bytes);
    Member {
        id: f.id,
        first_ts: f.first_ts,
        last_ts: f.last_ts,
        server: f.server.0.ip(),
        marked: f
            .app
            .as_deref()
            .is_some_and(|a| matches!(a.source, AppSource::Stun | AppSource::Signature)),
        channel: c.channel_packets > 0,
        media_packets: [ps, pc],
        media_bytes: [bs, bc],
    }
}

impl Calls {
    /// No open calls; `margin` is the longest a live flow can go without a record (the UDP
    /// timeout, or the update interval when that is longer), `update_every` the `call_update`
    /// interval (0: none).
    pub fn new(margin: u64, update_every: u64) -> Self {
        Calls {
            open: Vec::new(),
            margin,
            update_every,
            now: Timestamp(0),
            evicted: 0,
        }
    }

    /// Calls open now.
    pub fn active(&self) -> usize {
        self.open.len()
    }

    /// Moves the release order's time to `at`: the calls nothing more can join end.
    pub fn advance(&mut self, at: Timestamp, out: &mut impl FnMut(CallEvent)) {
        if at <= self.now {
            return;
        }
        self.now = at;
        let cut = CALL_IDLE.saturating_add(self.margin);
        let mut k = 0;
        while k < self.open.len() {
            if self.open[k].last_ts.plus_nanos(cut) < at {
                let c = self.open.remove(k);
                end(c, out);
            } else {
                k += 1;
            }
        }
    }

    /// Takes an ended flow: it joins its call, or opens one.
    pub fn flow(&mut self, rec: &FlowRecord, out: &mut impl FnMut(CallEvent)) {
        self.take(&rec.flow, out);
    }

    /// Takes a long flow's update: the call's counters so far, and a `call_update` when the
    /// call has passed another interval.
    pub fn update(&mut self, ts: Timestamp, f: &FlowView, out: &mut impl FnMut(CallEvent)) {
        let Some(k) = self.take(f, out) else {
            return;
        };
        let every = self.update_every;
        let c = &mut self.open[k];
        if every == 0 || !c.has_media() {
            return;
        }
        let age = ts.0.saturating_sub(c.first_ts.0);
        if age >= (c.updates + 1).saturating_mul(every) {
            c.updates = age / every;
            out(CallEvent::Update {
                ts: c.first_ts.plus_nanos(c.updates * every),
                call: c.view(),
            });
        }
    }

    /// Ends every call (end of input).
    pub fn finish(&mut self, out: &mut impl FnMut(CallEvent)) {
        for c in std::mem::take(&mut self.open) {
            end(c, out);
        }
    }

    fn take(&mut self, f: &FlowView, out: &mut impl FnMut(CallEvent)) -> Option<usize> {
        let class = call_class(f)?;
        let client = f.client.0.ip();
        let socket = f.client.1;
        let server = f.server.0.ip();
        let udp = f.transport == Transport::Udp;
        // The client socket is the call's own (ICE sends everything from it): a flow on it
        // joins within the idle time. A relay address is shared by every call the app routes
        // there: a flow to it joins only while the call's flows are alive.
        let k = self.open.iter().position(|c| {
            let overlap = f.first_ts <= c.last_ts && c.first_ts <= f.last_ts;
            let near = f.first_ts <= c.last_ts.plus_nanos(CALL_IDLE)
                && c.first_ts <= f.last_ts.plus_nanos(CALL_IDLE);
            c.client == client
                && c.class.app == class.app
                && ((udp && c.sockets.contains(&socket) && near)
                    || (c.servers.contains(&server) && overlap))
        });
        let k = match k {
            Some(k) => k,
            None => {
                if self.open.len() >= MAX_CALLS {
                    self.evicted += 1;
                    let c = self.open.remove(0);
                    end(c, out);
                }
                out(CallEvent::Opened(Arc::clone(&class.app)));
                self.open.push(Open {
                    id: f.id,
                    class: class.clone(),
                    client,
                    sockets: Vec::new(),
                    servers: Vec::new(),
                    first_ts: f.first_ts,
                    last_ts: f.last_ts,
                    members: Vec::new(),
                    flows: 0,
                    updates: 0,
                });
                self.open.len() - 1
            }
        };
        let c = &mut self.open[k];
        if udp && !c.sockets.contains(&socket) && c.sockets.len() < MAX_CALL_FLOWS {
            c.sockets.push(socket);
        }
        if !c.servers.contains(&server) && c.servers.len() < MAX_CALL_FLOWS {
            c.servers.push(server);
        }
        c.first_ts = c.first_ts.min(f.first_ts);
        c.last_ts = c.last_ts.max(f.last_ts);
        // The app's own marks attribute the call better than what they revealed.
        let own = |s| matches!(s, AppSource::Stun | AppSource::Signature);
        if own(class.source) && !own(c.class.source) {
            c.class = class.clone();
        }
        let m = member(f);
        match c.members.iter_mut().find(|x| x.id == f.id) {
            Some(x) => *x = m,
            None => {
                c.flows += 1;
                if c.members.len() < MAX_CALL_FLOWS {
                    c.members.push(m);
                }
            }
        }
        Some(k)
    }
}

fn end(c: Open, out: &mut impl FnMut(CallEvent)) {
    if c.has_media() {
        out(CallEvent::End(c.view()));
    }
    out(CallEvent::Closed(c.class.app));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::record::{DirStats, EndReason};
    use crate::rules::Verdict;

    fn rec(
        id: u64,
        client: (&str, u16),
        server: (&str, u16),
        span: (u64, u64),
        source: AppSource,
        media: u64,
    ) -> FlowRecord {
        let mut f = FlowView::sample(
            (client.0.parse().unwrap(), client.1),
            (server.0.parse().unwrap(), server.1),
            Timestamp(span.0 * SEC),
            Timestamp(span.1 * SEC),
        );
        f.id = id;
        f.transport = Transport::Udp;
        f.to_server = DirStats {
            packets: media + 2,
            bytes: (media + 2) * 100,
            ..DirStats::default()
        };
        f.calls.stun_packets = [2, 0];
        f.calls.stun_bytes = [200, 0];
        f.app = Some(Box::new(Classification {
            app: Arc::from("whatsapp"),
            source,
            rule: Arc::from("whatsapp.toml:1"),
            rule_id: Arc::from("picket:whatsapp"),
            category: Arc::from("messaging"),
            verdict: Verdict::Flag,
            alert: true,
        }));
        FlowRecord {
            flow: f,
            reason: EndReason::Idle,
            at: Timestamp((span.1 + 60) * SEC),
        }
    }

    #[test]
    fn flows_sharing_a_socket_make_one_call_until_it_goes_idle() {
        let mut calls = Calls::new(360 * SEC, 0);
        let mut got = Vec::new();
        let mut out = |e| got.push(e);
        let c = ("10.0.0.5", 50000);
        let feed = |calls: &mut Calls, r: FlowRecord, out: &mut dyn FnMut(CallEvent)| {
            let mut o = |e| out(e);
            calls.advance(r.at, &mut o);
            calls.flow(&r, &mut o);
        };
        feed(
            &mut calls,
            rec(
                1,
                c,
                ("74.125.250.129", 19302),
                (100, 100),
                AppSource::CallSocket,
                0,
            ),
            &mut out,
        );
        feed(
            &mut calls,
            rec(2, c, ("192.0.2.80", 3478), (100, 101), AppSource::Stun, 0),
            &mut out,
        );
        feed(
            &mut calls,
            rec(
                3,
                c,
                ("198.51.100.9", 40000),
                (101, 160),
                AppSource::PeerCache,
                500,
            ),
            &mut out,
        );
        assert_eq!(calls.active(), 1);
        // The same socket again long after: another call, after the first ends.
        feed(
            &mut calls,
            rec(4, c, ("192.0.2.80", 3478), (400, 401), AppSource::Stun, 3),
            &mut out,
        );
        calls.finish(&mut out);
        got.retain(|e| matches!(e, CallEvent::End(_)));
        assert_eq!(got.len(), 2);
        let CallEvent::End(first) = &got[0] else {
            panic!("an end")
        };
        assert_eq!(first.id, 1);
        assert_eq!(first.flow_ids, [1, 2, 3]);
        assert_eq!(first.class.source, AppSource::Stun);
        assert_eq!(
            (first.first_ts, first.last_ts),
            (Timestamp(101 * SEC), Timestamp(160 * SEC)),
            "the media's span"
        );
        assert_eq!(first.media_packets, [500, 0]);
        assert_eq!(first.path, CallPath::Direct);
        let CallEvent::End(second) = &got[1] else {
            panic!("an end")
        };
        assert_eq!(
            second.path,
            CallPath::Server,
            "media to the marked server itself"
        );
    }

    #[test]
    fn set_up_without_media_is_no_call() {
        let mut calls = Calls::new(360 * SEC, 0);
        let mut got = Vec::new();
        let r = rec(
            1,
            ("10.0.0.5", 50000),
            ("192.0.2.80", 3478),
            (1, 2),
            AppSource::Stun,
            0,
        );
        calls.flow(&r, &mut |e| got.push(e));
        calls.finish(&mut |e| got.push(e));
        assert_eq!(
            got,
            [
                CallEvent::Opened(Arc::from("whatsapp")),
                CallEvent::Closed(Arc::from("whatsapp"))
            ]
        );
    }
}
