//! Classification: the one decision. [`decide`] takes what a flow revealed ([`Facts`]: its
//! server name, its payload's and STUN messages' rule matches, its JA4, what other flows
//! revealed of its endpoints, its addresses) and the compiled rules, and gives the app, the rule
//! that decided and the policy verdict. A pure function: no state, no clock; it allocates only
//! the small result. The flow tracker gathers the facts and says when they are complete; it never
//! decides.
//!
//! # Precedence
//!
//! The first row that applies decides:
//!
//! | # | signal | `app_source` | applies when |
//! |---|---|---|---|
//! | 1 | the flow's own bytes: a payload signature, a server reply's size, a STUN/TURN mark | `signature`, `stun` | matched when the bytes passed (bytes are not kept) |
//! | 2 | the ClientHello's server name (TCP, or QUIC Initials) | `sni`, `quic_sni` | the name is trusted (not real ECH's outer name, not beside ESNI, not an IP literal, not oversized) and a rule claims it |
//! | 3 | the ClientHello's JA4 | `ja4` | a rule names the fingerprint of the app's own TLS stack |
//! | — | a trusted server name that no rule claims | none | stops here: the name is what the client asked for, and an address must not overrule it |
//! | 4 | the server's TLS 1.2 certificate (seen when no ClientHello was: a one-way capture) | `certificate` | a rule claims its common name, or every claimed alternative name is one app's ([`certificate_name`]) |
//! | 4b | the name a DNS flow asked for | `dns_query` | a rule claims it |
//! | 5 | what other flows revealed of an endpoint when the flow started | `peer_cache`, `dns_answer` | a call's STUN exchange used the endpoint, or a DNS answer for an app's name gave the server's address |
//! | 5b | the flow's client socket marked by the app's STUN exchange while the flow lived (UDP) | `call_socket` | the flow ends undecided (another flow of the same call) |
//! | — | a public STUN server (`stun_servers.toml`) | none | stops here: any app's call may ask it |
//! | 6 | the server's address | `ip` | it is in an app's prefix list |
//! | 7 | the client's address | `ip` | which side is the server was only guessed (no SYN seen) and it is in an app's prefix list |
//!
//! # Evidence and confidence
//!
//! [`decide_explained`] decides as [`decide`] does and, for a flow it gives an app, also lists
//! every row that named an app ([`Evidence`], in the order of the table, the deciding one
//! first among them only by that order), whichever app it named: an SNI of one app on an
//! address of another's list keeps both. At most one item per row, so at most
//! [`MAX_EVIDENCE`] (8) per flow. Its [`Confidence`] comes from the deciding row: `high` for
//! rows 1–2 (the flow's own bytes or server name), `medium` for rows 3–5 (a fingerprint, the
//! server's certificate, a DNS question, what other flows revealed), `low` for rows 6–7 (an
//! address list); one step lower when another row named a different app.

use crate::decode::Transport;
use crate::flow::hints::Hint;
use crate::macros::counter_enum;
use crate::proto::shape::Shape;
use crate::proto::tls::TlsSummary;
use crate::rules::{CompiledRules, DomainMatch, Verdict};
use std::net::IpAddr;
use std::sync::Arc;

/// Which signal decided a flow's app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppSource {
    /// The TLS ClientHello's server name over TCP.
    Sni,
    /// The server name of a ClientHello in QUIC Initial packets.
    QuicSni,
    /// The server's address is in the app's IP prefix list (no server name decided).
    Ip,
    /// A DNS flow asked for one of the app's names.
    DnsQuery,
    /// The start of the client's payload matched one of the app's byte signatures.
    Signature,
    /// A STUN/TURN message of the flow carried one of the app's marks.
    Stun,
    /// The server's address came in a DNS answer for one of the app's names.
    DnsAnswer,
    /// An endpoint of the flow was revealed by the app's STUN/TURN exchange (a call's media).
    PeerCache,
    /// The ClientHello's JA4 fingerprint is the app's own TLS stack.
    Ja4,
    /// The flow's client socket (UDP) was marked by the app's STUN/TURN exchange during the
    /// flow's life: another flow of the same call (decided when the flow ended).
    CallSocket,
    /// The server's TLS 1.2 certificate names one of the app's domains (no ClientHello seen).
    Certificate,
}

impl AppSource {
    /// Name as used in events (`app_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            AppSource::Sni => "sni",
            AppSource::QuicSni => "quic_sni",
            AppSource::Ip => "ip",
            AppSource::DnsQuery => "dns_query",
            AppSource::Signature => "signature",
            AppSource::Stun => "stun",
            AppSource::DnsAnswer => "dns_answer",
            AppSource::PeerCache => "peer_cache",
            AppSource::Ja4 => "ja4",
            AppSource::CallSocket => "call_socket",
            AppSource::Certificate => "certificate",
        }
    }
}

/// A flow's app, with what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// App id.
    pub app: Arc<str>,
    /// The signal that decided.
    pub source: AppSource,
    /// The rule, `file:line`.
    pub rule: Arc<str>,
    /// The stable id of the app's rules (its file's `rule_id`), which edits do not move.
    pub rule_id: Arc<str>,
    /// The app's category from its rule file (`messaging`, `conferencing`, …).
    pub category: Arc<str>,
    /// The policy verdict for the app.
    pub verdict: Verdict,
    /// Flows of this app raise an alert (verdict `flag`, or named by the policy's `alert`).
    pub alert: bool,
}

/// Most [`Evidence`] items of one flow: one per row of the precedence table.
pub const MAX_EVIDENCE: usize = 8;

/// What an [`Evidence`] item's signal saw, as the flow's record holds it: the value itself is
/// read from the record when the event is written (no copy of the name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceValue {
    /// No value to show (a payload signature, a STUN mark: bytes are not kept).
    None,
    /// The ClientHello's server name.
    ServerName,
    /// The ClientHello's JA4.
    Ja4,
    /// The name the DNS flow asked for.
    DnsQuery,
    /// The server certificate's name that spoke.
    CertName,
    /// The server's address.
    Server,
    /// The client's address.
    Client,
    /// A name another flow revealed (the DNS answer's question).
    Name(Arc<str>),
}

/// One signal that named an app for a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The signal, named as `app_source` names it.
    pub source: AppSource,
    /// The app it named.
    pub app: Arc<str>,
    /// The rule that matched, `file:line`.
    pub rule: Arc<str>,
    /// The stable id of the app's rules.
    pub rule_id: Arc<str>,
    /// What it saw.
    pub value: EvidenceValue,
}

/// How far a decision can be trusted, from its precedence row and whether the others agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    /// An address list decided, or a stronger signal was contradicted.
    Low,
    /// A fingerprint, a DNS question or another flow's revelation decided.
    Medium,
    /// The flow's own bytes or its server name decided, and nothing disagreed.
    High,
}

impl Confidence {
    /// Name as used in events (`confidence`).
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// The confidence a decision by `source` starts from.
    pub fn of(source: AppSource) -> Confidence {
        match source {
            AppSource::Signature | AppSource::Stun | AppSource::Sni | AppSource::QuicSni => {
                Confidence::High
            }
            AppSource::Ja4
            | AppSource::Certificate
            | AppSource::DnsQuery
            | AppSource::DnsAnswer
            | AppSource::PeerCache
            | AppSource::CallSocket => Confidence::Medium,
            AppSource::Ip => Confidence::Low,
        }
    }

    fn lower(self) -> Confidence {
        match self {
            Confidence::High => Confidence::Medium,
            _ => Confidence::Low,
        }
    }
}

/// Why a decision was made: every signal that spoke, and the confidence they give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The signals, in precedence order (at most [`MAX_EVIDENCE`]).
    pub evidence: Vec<Evidence>,
    /// The decision's confidence.
    pub confidence: Confidence,
}

counter_enum! {
    /// Why a flow ended without an app (`unattributed` in flow events,
    /// `picket_unattributed_flows_total{reason}`): the first that applies, in this order.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Unattributed {
        /// Real ECH (or ESNI): the server name is encrypted, only the outer one is seen.
        Ech => "ech",
        /// DNS over TLS or QUIC (port 853), or over HTTPS to a public resolver named in
        /// `rules/hidden.toml` (by server name or address).
        EncryptedDns => "encrypted_dns",
        /// A VPN tunnel: WireGuard, OpenVPN over UDP or TCP, IKE (IPsec) by their packets'
        /// shape, or a commercial VPN service's server name from `rules/hidden.toml`.
        Vpn => "vpn",
        /// Tor. Not told yet: its TLS looks like any other with a random name, and telling it
        /// needs the relays' list; kept so the set of reasons is stable.
        Tor => "tor",
        /// A QUIC long header of a version whose Initials cannot be opened, or Initials that
        /// did not open.
        QuicUnknown => "quic_unknown",
        /// A ClientHello without a server name.
        TlsNoSni => "tls_no_sni",
        /// A server name, certificate name or DNS question that no rule claims: traffic of no
        /// app watched.
        UnclaimedName => "unclaimed_name",
        /// Packets one way only: the other side was never seen.
        OneWay => "one_way",
        /// Nothing that could name an app was seen.
        NoSignal => "no_signal",
    }
}

/// What an unattributed flow showed besides its [`Facts`].
#[derive(Clone, Copy, Debug)]
pub struct Unseen {
    /// TCP or UDP.
    pub transport: Transport,
    /// The server's port.
    pub server_port: u16,
    /// The shape of its first client payload.
    pub shape: Shape,
    /// Packets went one way only.
    pub one_way: bool,
}

/// Port 853: DNS over TLS (RFC 7858 §3.1) and DNS over QUIC (RFC 9250 §4.1.1).
const ENCRYPTED_DNS_PORT: u16 = 853;

/// Why a flow without an app stayed so: the first of [`Unattributed`]'s reasons that applies.
pub fn unattributed(f: &Facts<'_>, u: &Unseen, rules: &CompiledRules) -> Unattributed {
    let name = f.tls.and_then(|t| t.sni());
    if f.tls.is_some_and(|t| t.esni || t.ech_outer) {
        return Unattributed::Ech;
    }
    let resolver_port = u.server_port == 443 || u.server_port == ENCRYPTED_DNS_PORT;
    if u.server_port == ENCRYPTED_DNS_PORT
        || name.is_some_and(|n| rules.is_resolver_name(n))
        || (resolver_port && u.transport == Transport::Tcp && rules.is_resolver_addr(f.server))
        || (resolver_port && f.tls.is_some_and(|t| t.quic) && rules.is_resolver_addr(f.server))
    {
        return Unattributed::EncryptedDns;
    }
    if u.shape.is_vpn() || name.is_some_and(|n| rules.is_vpn_name(n)) {
        return Unattributed::Vpn;
    }
    if u.shape == Shape::QuicUnknown && f.tls.is_none() {
        return Unattributed::QuicUnknown;
    }
    if let Some(t) = f.tls {
        return if t.sni().is_some() {
            Unattributed::UnclaimedName
        } else {
            Unattributed::TlsNoSni
        };
    }
    if f.dns_query.is_some() || f.cert_name.is_some() {
        return Unattributed::UnclaimedName;
    }
    if u.one_way {
        return Unattributed::OneWay;
    }
    Unattributed::NoSignal
}

/// What a flow revealed, as [`decide`] reads it: a view of the flow's own state.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// A rule match of the flow's own bytes (payload signature, reply size, STUN mark), made
    /// when the bytes passed.
    pub marks: Option<&'a Classification>,
    /// What the ClientHello said (over TCP or in QUIC Initials).
    pub tls: Option<&'a TlsSummary>,
    /// The name a DNS flow asked for.
    pub dns_query: Option<&'a [u8]>,
    /// The server certificate's name that speaks for it ([`certificate_name`]).
    pub cert_name: Option<&'a [u8]>,
    /// What the hint caches said of the flow's endpoints when it started.
    pub hint: Option<&'a Hint>,
    /// The server's address.
    pub server: IpAddr,
    /// The client's address.
    pub client: IpAddr,
    /// Which side is the client is known (the client's SYN was seen), not guessed.
    pub client_known: bool,
    /// The server's port.
    pub server_port: u16,
}

/// The decision: the first signal of the precedence (see the module documentation) that names
/// an app, or `None`.
pub fn decide(f: &Facts<'_>, rules: &CompiledRules) -> Option<Classification> {
    if let Some(c) = f.marks {
        return Some(c.clone());
    }
    if let Some(tls) = f.tls {
        let source = if tls.quic {
            AppSource::QuicSni
        } else {
            AppSource::Sni
        };
        let named = tls.trusted_sni();
        let by_name = named.and_then(|n| by_server_name(rules, n.as_bytes(), source));
        if let Some(c) = by_name.or_else(|| by_ja4(rules, tls.ja4())) {
            return Some(c);
        }
        if named.is_some() {
            return None;
        }
    }
    if let Some(c) = f
        .cert_name
        .map(|n| n.strip_prefix(b"*.").unwrap_or(n))
        .and_then(|n| by_server_name(rules, n, AppSource::Certificate))
    {
        return Some(c);
    }
    if let Some(c) = f
        .dns_query
        .and_then(|q| by_server_name(rules, q, AppSource::DnsQuery))
    {
        return Some(c);
    }
    if let Some(h) = f.hint {
        return Some(h.class.clone());
    }
    if rules.is_public_stun(std::net::SocketAddr::new(f.server, f.server_port)) {
        return None;
    }
    by_address(rules, f.server).or_else(|| {
        if f.client_known {
            None
        } else {
            by_address(rules, f.client)
        }
    })
}

/// [`decide`], and for a flow with an app, every signal that spoke and the confidence (see
/// the module documentation). Allocates the explanation once per decided flow.
pub fn decide_explained(
    f: &Facts<'_>,
    rules: &CompiledRules,
) -> Option<(Classification, Explanation)> {
    let c = decide(f, rules)?;
    let mut evidence = Vec::with_capacity(MAX_EVIDENCE);
    let mut add = |c: Option<Classification>, value: EvidenceValue| {
        if let Some(c) = c {
            evidence.push(Evidence {
                source: c.source,
                app: c.app,
                rule: c.rule,
                rule_id: c.rule_id,
                value,
            });
        }
    };
    add(f.marks.cloned(), EvidenceValue::None);
    if let Some(tls) = f.tls {
        let source = if tls.quic {
            AppSource::QuicSni
        } else {
            AppSource::Sni
        };
        let named = tls
            .trusted_sni()
            .and_then(|n| by_server_name(rules, n.as_bytes(), source));
        add(named, EvidenceValue::ServerName);
        add(by_ja4(rules, tls.ja4()), EvidenceValue::Ja4);
    }
    let certified = f
        .cert_name
        .map(|n| n.strip_prefix(b"*.").unwrap_or(n))
        .and_then(|n| by_server_name(rules, n, AppSource::Certificate));
    add(certified, EvidenceValue::CertName);
    let asked = f
        .dns_query
        .and_then(|q| by_server_name(rules, q, AppSource::DnsQuery));
    add(asked, EvidenceValue::DnsQuery);
    if let Some(h) = f.hint {
        let value = match (&h.name, h.class.source) {
            (Some(n), AppSource::DnsAnswer) => EvidenceValue::Name(Arc::clone(n)),
            _ => EvidenceValue::Server,
        };
        add(Some(h.class.clone()), value);
    }
    add(by_address(rules, f.server), EvidenceValue::Server);
    if !f.client_known {
        add(by_address(rules, f.client), EvidenceValue::Client);
    }
    let mut confidence = Confidence::of(c.source);
    if evidence.iter().any(|e| e.app != c.app) {
        confidence = confidence.lower();
    }
    Some((
        c,
        Explanation {
            evidence,
            confidence,
        },
    ))
}

/// The classification a rule match gives, with the app's verdict under the rules in force.
fn decided(rules: &CompiledRules, m: &DomainMatch, source: AppSource) -> Option<Classification> {
    let app = rules.apps().get(usize::from(m.app))?;
    Some(Classification {
        app: Arc::clone(&app.id),
        source,
        rule: Arc::clone(&m.rule),
        rule_id: Arc::clone(&app.rule_id),
        category: Arc::clone(&app.category),
        verdict: app.verdict,
        alert: app.alert,
    })
}

/// Classifies a server name seen by `source`; `None` when no rule claims it.
pub fn by_server_name(
    rules: &CompiledRules,
    name: &[u8],
    source: AppSource,
) -> Option<Classification> {
    let m = rules.match_host(name)?;
    decided(rules, m, source)
}

/// The name of a server certificate that speaks for the server: its common name when a rule
/// claims it; otherwise its alternative names' claim when every claimed one is the same app's (a
/// shared certificate naming several apps' domains says nothing); otherwise its first name,
/// claimed by none. Wildcards (`*.example.com`) are matched as a name under their domain.
pub fn certificate_name(rules: &CompiledRules, names: &[&[u8]]) -> Option<Box<str>> {
    let text = |n: &[u8]| String::from_utf8_lossy(n).into_owned().into_boxed_str();
    let claim = |n: &[u8]| {
        let bare = n.strip_prefix(b"*.").unwrap_or(n);
        rules.match_host(bare).map(|m| m.app)
    };
    let (first, rest) = names.split_first()?;
    if claim(first).is_some() {
        return Some(text(first));
    }
    let mut chosen: Option<(&[u8], u16)> = None;
    for &n in rest {
        if let Some(app) = claim(n) {
            match &chosen {
                Some((_, a)) if *a != app => return Some(text(first)),
                Some(_) => {}
                None => chosen = Some((n, app)),
            }
        }
    }
    Some(text(chosen.map_or(*first, |(n, _)| n)))
}

/// Classifies the start of a flow's client payload by the rules' byte signatures; `frame_len`
/// is what length fields are compared with (see [`CompiledRules::match_payload`]).
pub fn by_payload(
    rules: &CompiledRules,
    transport: crate::decode::Transport,
    server_port: u16,
    data: &[u8],
    frame_len: usize,
) -> Option<Classification> {
    let m = rules.match_payload(transport, server_port, data, frame_len)?;
    decided(rules, m, AppSource::Signature)
}

/// Classifies a UDP datagram that the server sent (from `server_port`) by the rules' signatures
/// of the server's bytes.
pub fn by_server_payload(
    rules: &CompiledRules,
    server_port: u16,
    data: &[u8],
) -> Option<Classification> {
    let m = rules.match_server_payload(crate::decode::Transport::Udp, server_port, data)?;
    decided(rules, m, AppSource::Signature)
}

/// Classifies a TCP flow by the size of the server's first segment, for signature `index` (from
/// [`CompiledRules::reply_candidate`]) that the client's first segment matched.
pub fn by_reply(rules: &CompiledRules, index: u16, reply_len: usize) -> Option<Classification> {
    let m = rules.match_reply(index, reply_len)?;
    decided(rules, m, AppSource::Signature)
}

/// Classifies a STUN/TURN message by the rules' STUN marks.
pub fn by_stun(
    rules: &CompiledRules,
    msg: &crate::proto::stun::Message<'_>,
) -> Option<Classification> {
    let m = rules.match_stun(msg)?;
    decided(rules, m, AppSource::Stun)
}

/// Classifies a ClientHello by its JA4 fingerprint.
pub fn by_ja4(rules: &CompiledRules, ja4: &str) -> Option<Classification> {
    let m = rules.match_ja4(ja4)?;
    decided(rules, m, AppSource::Ja4)
}

/// Classifies an address by the rules' IP prefixes; `None` when no list holds it.
pub fn by_address(rules: &CompiledRules, ip: std::net::IpAddr) -> Option<Classification> {
    let m = rules.match_addr(ip)?;
    decided(rules, m, AppSource::Ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule set with one app whose JA4 and address list are known.
    fn rules_with_ja4() -> CompiledRules {
        let text = r#"
id = "chat"
rule_id = "t:chat"
name = "Chat"
category = "messaging"
verdict = "flag"
domains = ["chat.example"]
ja4 = ["t13d1516h2_8daaf6152771_b186095e22b6"]
[prefixes]
source = "test"
as_of = "2026-01-01"
list = ["192.0.2.0/24"]
"#;
        crate::rules::load(
            &[crate::rules::Source {
                path: "chat.toml".into(),
                name: "chat.toml".into(),
                text: text.into(),
            }],
            None,
        )
        .unwrap()
    }

    /// One row of the precedence table: the facts given, the source that must decide.
    #[test]
    fn decide_follows_the_precedence_table() {
        let rules = rules_with_ja4();
        let ja4 = "t13d1516h2_8daaf6152771_b186095e22b6";
        let tls =
            |sni: Option<&[u8]>, ja4: &str| TlsSummary::new(ja4, sni, &[], 0x0304, false, false);
        let class = |app: &str, source| Classification {
            app: Arc::from(app),
            source,
            rule: Arc::from("x.toml:1"),
            rule_id: Arc::from("x"),
            category: Arc::from("messaging"),
            verdict: Verdict::Observe,
            alert: false,
        };
        let in_list: IpAddr = "192.0.2.7".parse().unwrap();
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        let base = Facts {
            marks: None,
            tls: None,
            dns_query: None,
            cert_name: None,
            hint: None,
            server: elsewhere,
            client: elsewhere,
            client_known: true,
            server_port: 443,
        };
        let named_other = tls(
            Some(b"www.example.org"),
            "t13d0000h2_000000000000_000000000000",
        );
        let named_chat = tls(Some(b"chat.example"), "x");
        let unnamed_ja4 = tls(None, ja4);
        let mark = class("marked", AppSource::Stun);
        let hint = Hint {
            class: class("hinted", AppSource::PeerCache),
            name: None,
        };
        let source = |f: Facts<'_>| decide(&f, &rules).map(|c| (c.app.to_string(), c.source));
        type Row<'a> = (&'a str, Facts<'a>, Option<(&'a str, AppSource)>);
        let rows: Vec<Row<'_>> = vec![
            (
                "1 own bytes beat a name",
                Facts {
                    marks: Some(&mark),
                    tls: Some(&named_chat),
                    ..base
                },
                Some(("marked", AppSource::Stun)),
            ),
            (
                "2 a claimed server name",
                Facts {
                    tls: Some(&named_chat),
                    server: in_list,
                    ..base
                },
                Some(("chat", AppSource::Sni)),
            ),
            (
                "3 JA4 without a name",
                Facts {
                    tls: Some(&unnamed_ja4),
                    hint: Some(&hint),
                    ..base
                },
                Some(("chat", AppSource::Ja4)),
            ),
            (
                "- an unclaimed trusted name stops",
                Facts {
                    tls: Some(&named_other),
                    hint: Some(&hint),
                    server: in_list,
                    ..base
                },
                None,
            ),
            (
                "4 a DNS question",
                Facts {
                    dns_query: Some(b"chat.example"),
                    hint: Some(&hint),
                    ..base
                },
                Some(("chat", AppSource::DnsQuery)),
            ),
            (
                "5 a hint beats addresses",
                Facts {
                    hint: Some(&hint),
                    server: in_list,
                    ..base
                },
                Some(("hinted", AppSource::PeerCache)),
            ),
            (
                "6 the server's address",
                Facts {
                    server: in_list,
                    ..base
                },
                Some(("chat", AppSource::Ip)),
            ),
            (
                "7 the client's address, sides guessed",
                Facts {
                    client: in_list,
                    client_known: false,
                    ..base
                },
                Some(("chat", AppSource::Ip)),
            ),
            (
                "7 not when the SYN told the sides",
                Facts {
                    client: in_list,
                    ..base
                },
                None,
            ),
            ("nothing", base, None),
        ];
        for (row, facts, want) in rows {
            let want = want.map(|(a, s)| (a.to_string(), s));
            assert_eq!(source(facts), want, "{row}");
        }
        // QUIC's hello gives quic_sni.
        let mut quic = named_chat.clone();
        quic.quic = true;
        assert_eq!(
            source(Facts {
                tls: Some(&quic),
                ..base
            }),
            Some(("chat".into(), AppSource::QuicSni))
        );
    }

    /// Every row that spoke is listed in precedence order, a disagreeing one too, and the
    /// confidence follows the deciding row, one step lower on disagreement.
    #[test]
    fn decide_explained_lists_every_signal_and_keeps_disagreements() {
        let other = r#"
id = "other"
rule_id = "t:other"
name = "Other"
category = "messaging"
verdict = "observe"
domains = ["other.example"]
[prefixes]
source = "test"
as_of = "2026-01-01"
list = ["198.51.100.0/24"]
"#;
        let chat = r#"
id = "chat"
rule_id = "t:chat"
name = "Chat"
category = "messaging"
verdict = "flag"
domains = ["chat.example"]
ja4 = ["t13d1516h2_8daaf6152771_b186095e22b6"]
[prefixes]
source = "test"
as_of = "2026-01-01"
list = ["192.0.2.0/24"]
"#;
        let src = |name: &str, text: &str| crate::rules::Source {
            path: name.into(),
            name: name.into(),
            text: text.into(),
        };
        let rules =
            crate::rules::load(&[src("chat.toml", chat), src("other.toml", other)], None).unwrap();
        let ja4 = "t13d1516h2_8daaf6152771_b186095e22b6";
        let hello = TlsSummary::new(ja4, Some(b"chat.example"), &[], 0x0304, false, false);
        let base = Facts {
            marks: None,
            tls: Some(&hello),
            dns_query: None,
            cert_name: None,
            hint: None,
            server: "192.0.2.9".parse().unwrap(),
            server_port: 443,
            client: "198.51.100.3".parse().unwrap(),
            client_known: false,
        };
        let (c, x) = decide_explained(&base, &rules).unwrap();
        assert_eq!((&*c.app, c.source), ("chat", AppSource::Sni));
        let got: Vec<_> = x
            .evidence
            .iter()
            .map(|e| (e.source, &*e.app, e.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (AppSource::Sni, "chat", EvidenceValue::ServerName),
                (AppSource::Ja4, "chat", EvidenceValue::Ja4),
                (AppSource::Ip, "chat", EvidenceValue::Server),
                (AppSource::Ip, "other", EvidenceValue::Client),
            ]
        );
        assert!(x.evidence.iter().all(|e| e.rule.contains(".toml:")));
        assert!(x.evidence.len() <= MAX_EVIDENCE);
        assert_eq!(x.confidence, Confidence::Medium, "another app disagreed");
        // The sides known: the client's address says nothing, all agree.
        let (_, x) = decide_explained(
            &Facts {
                client_known: true,
                ..base
            },
            &rules,
        )
        .unwrap();
        assert_eq!(x.evidence.len(), 3);
        assert_eq!(x.confidence, Confidence::High);
        // An address alone: low.
        let (c, x) = decide_explained(
            &Facts {
                tls: None,
                client_known: true,
                ..base
            },
            &rules,
        )
        .unwrap();
        assert_eq!(c.source, AppSource::Ip);
        assert_eq!(x.confidence, Confidence::Low);
        // No app: no explanation.
        assert!(decide_explained(
            &Facts {
                tls: None,
                server: "203.0.113.1".parse().unwrap(),
                client_known: true,
                ..base
            },
            &rules
        )
        .is_none());
    }

    #[test]
    fn by_server_name_with_default_rules() {
        let rules = crate::rules::defaults().unwrap();
        let c = by_server_name(&rules, b"g.whatsapp.net", AppSource::Sni).unwrap();
        assert_eq!(&*c.app, "whatsapp");
        assert_eq!(c.verdict, Verdict::Flag);
        assert!(c.rule.starts_with("whatsapp.toml:"), "{}", c.rule);
        assert_eq!(
            (&*c.rule_id, &*c.category),
            ("picket:whatsapp", "messaging")
        );
        assert!(by_server_name(&rules, b"www.example.com", AppSource::Sni).is_none());
        // Meta's shared infrastructure is not WhatsApp.
        let fb = by_server_name(&rules, b"static.xx.fbcdn.net", AppSource::Sni);
        assert!(fb.as_ref().is_none_or(|c| &*c.app != "whatsapp"), "{fb:?}");
    }

    /// Meta's names, one app each or none: chat channels name their app, Facebook's and
    /// Instagram's own names theirs, a visit to whatsapp.com's web site the site (not
    /// WhatsApp); shared CDN and SDK names name nothing.
    #[test]
    fn meta_names_are_told_apart() {
        let rules = crate::rules::defaults().unwrap();
        let app =
            |name: &[u8]| by_server_name(&rules, name, AppSource::Sni).map(|c| c.app.to_string());
        assert_eq!(app(b"edge-mqtt.facebook.com").as_deref(), Some("messenger"));
        assert_eq!(
            app(b"edge-chat.messenger.com").as_deref(),
            Some("messenger")
        );
        assert_eq!(app(b"g.whatsapp.net").as_deref(), Some("whatsapp"));
        assert_eq!(app(b"web.whatsapp.com").as_deref(), Some("whatsapp"));
        assert_eq!(app(b"mmg.whatsapp.net").as_deref(), Some("whatsapp"));
        for (name, want) in [
            (&b"www.facebook.com"[..], "facebook"),
            (b"mqtt-mini.facebook.com", "facebook"),
            (b"graph.facebook.com", "facebook"),
            (b"xedge-mqtt.facebook.com", "facebook"),
            (b"scontent.cdninstagram.com", "instagram"),
            (b"i.instagram.com", "instagram"),
            (b"www.whatsapp.com", "whatsapp_site"),
            (b"faq.whatsapp.com", "whatsapp_site"),
            (b"whatsapp.com", "whatsapp_site"),
            (b"wa.me", "whatsapp_site"),
        ] {
            assert_eq!(
                app(name).as_deref(),
                Some(want),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        let site = by_server_name(&rules, b"www.whatsapp.com", AppSource::Sni).unwrap();
        assert_eq!(
            (&*site.category, site.verdict, site.alert),
            ("web_visit", Verdict::Observe, false)
        );
        for shared in [
            &b"static.xx.fbcdn.net"[..],
            b"connect.facebook.net",
            b"edge-mqtt.facebook.com.example.org",
            b"notwhatsapp.com",
        ] {
            assert_eq!(app(shared), None, "{}", String::from_utf8_lossy(shared));
        }
    }
}
