//! The compiled matcher: an immutable, shareable lookup from a host name to the app and rule
//! that claim it. A lookup allocates nothing: the name is lower-cased into a stack buffer and
//! its suffixes are looked up as borrowed slices.

use super::parse::{AppDef, RuleSet};
use super::Verdict;
use std::collections::HashMap;
use std::sync::Arc;

/// One app of the compiled set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// App id.
    pub id: Arc<str>,
    /// The stable id of its rules (`rule_id` of its file).
    pub rule_id: Arc<str>,
    /// Display name.
    pub name: Arc<str>,
    /// Category (`messaging`, `conferencing`, …: open names).
    pub category: Arc<str>,
    /// Verdict (policy applied).
    pub verdict: Verdict,
    /// Its flows raise alerts.
    pub alert: bool,
}

/// The app and rule a name matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainMatch {
    /// Index of the app in [`CompiledRules::apps`].
    pub app: u16,
    /// The rule's place, `file:line`.
    pub rule: Arc<str>,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    exact: Option<DomainMatch>,
    suffix: Option<DomainMatch>,
}

/// Longest-prefix tables, one hash map per prefix length, longest first.
#[derive(Clone, Debug, Default)]
struct Prefixes {
    v4: Vec<(u8, HashMap<u32, DomainMatch, foldhash::fast::FixedState>)>,
    v6: Vec<(u8, HashMap<u128, DomainMatch, foldhash::fast::FixedState>)>,
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len)))
    }
}

/// A prefix list past its age, to be reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleList {
    /// App id.
    pub app: Arc<str>,
    /// `file:line` of the list.
    pub rule: Arc<str>,
    /// The day the list was taken.
    pub as_of: String,
    /// Its age in days.
    pub age_days: i64,
    /// The age it may reach.
    pub max_age_days: u32,
}

/// Rules compiled for matching; build once, share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct CompiledRules {
    apps: Vec<App>,
    names: HashMap<Box<[u8]>, Entry, foldhash::fast::FixedState>,
    domain_count: usize,
    prefixes: Prefixes,
    prefix_count: usize,
    lists: Vec<ListAge>,
    signatures: Vec<(super::Signature, DomainMatch)>,
    /// Client bytes the longest TCP signature needs.
    signature_reach: usize,
    /// Some TCP signature waits for the server's reply.
    reply_signatures: bool,
    stun: Vec<(super::StunRule, DomainMatch)>,
    /// Public names of ECH client-facing servers: (name, exact only).
    ech_public: Vec<(Box<str>, bool)>,
    /// Public STUN servers: (address, prefix length, ports).
    public_stun: Vec<(std::net::IpAddr, u8, Box<[u16]>)>,
    /// JA4 fingerprints of apps' own TLS stacks.
    ja4: HashMap<Box<str>, DomainMatch, foldhash::fast::FixedState>,
    /// Traffic that hides what it carries (`hidden.toml`).
    hidden: Hidden,
}

/// The compiled `hidden.toml`: small lists, read once per unattributed flow at its end.
#[derive(Clone, Debug, Default)]
struct Hidden {
    resolver_names: Vec<(Box<str>, bool)>,
    resolver_prefixes: Vec<(std::net::IpAddr, u8)>,
    vpn_names: Vec<(Box<str>, bool)>,
}

/// Whether `host` is one of `list`'s names, exactly or (entries not marked exact) as a
/// subdomain; case and a final dot aside.
fn name_in(list: &[(Box<str>, bool)], host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    list.iter().any(|(n, exact)| {
        host.eq_ignore_ascii_case(n)
            || (!exact
                && host.len() > n.len()
                && host.as_bytes()[host.len() - n.len() - 1] == b'.'
                && host
                    .get(host.len() - n.len()..)
                    .is_some_and(|t| t.eq_ignore_ascii_case(n)))
    })
}

/// Whether `ip` is in the prefix `net`/`len`.
fn in_prefix(ip: std::net::IpAddr, net: std::net::IpAddr, len: u8) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (ip, net) {
        (V4(a), V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (V6(a), V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A compiled prefix list's provenance: app, `file:line`, as-of date and day, max age.
#[derive(Clone, Debug)]
struct ListAge {
    app: Arc<str>,
    rule: Arc<str>,
    as_of: String,
    day: i64,
    max_age: u32,
}

/// The table of one prefix length, made on first use.
fn table_for<K>(
    tables: &mut Vec<(u8, HashMap<K, DomainMatch, foldhash::fast::FixedState>)>,
    len: u8,
) -> &mut HashMap<K, DomainMatch, foldhash::fast::FixedState> {
    let i = match tables.iter().position(|(l, _)| *l == len) {
        Some(i) => i,
        None => {
            tables.push((len, HashMap::default()));
            tables.len() - 1
        }
    };
    &mut tables[i].1
}

/// Longest name looked up; longer names match nothing.
const MAX_NAME: usize = 255;

/// Whether the bytes of signature `s` match (the client's, or the server's for a signature of
/// the server's bytes): transport, port, exact size, length field and bytes. `frame_len` is the
/// datagram's length (UDP) or the client's first segment's (TCP; `usize::MAX` when the data did
/// not start with it).
fn client_side(
    s: &super::Signature,
    transport: crate::decode::Transport,
    server_port: u16,
    data: &[u8],
    frame_len: usize,
) -> bool {
    s.transport == transport
        && (s.ports.is_empty() || s.ports.contains(&server_port))
        && s.size.is_none_or(|n| usize::from(n) == frame_len)
        && s.length
            .is_none_or(|l| l.read(data) == i64::try_from(frame_len).ok())
        && data.get(usize::from(s.offset)..).is_some_and(|d| {
            d.len() >= s.pattern.len()
                && s.pattern.iter().zip(d).all(|(p, b)| match p {
                    super::BytePattern::Any => true,
                    super::BytePattern::OneOf(v) => v.contains(b),
                })
        })
}

/// Names of a list as the compiled matchers hold them.
fn names_of(list: &[super::parse::DomainEntry]) -> Vec<(Box<str>, bool)> {
    list.iter()
        .map(|d| (d.name.clone().into_boxed_str(), d.exact))
        .collect()
}

impl CompiledRules {
    /// Compiles a validated rule set.
    pub fn build(set: &RuleSet) -> Self {
        let mut names: HashMap<Box<[u8]>, Entry, _> = HashMap::default();
        let mut domain_count = 0;
        let mut prefixes = Prefixes::default();
        let mut prefix_count = 0;
        let mut lists = Vec::new();
        let mut signatures = Vec::new();
        let mut stun = Vec::new();
        let mut ja4: HashMap<Box<str>, DomainMatch, foldhash::fast::FixedState> =
            HashMap::default();
        let apps = set
            .apps
            .iter()
            .enumerate()
            .map(|(i, a): (usize, &AppDef)| {
                for d in &a.domains {
                    let m = DomainMatch {
                        app: i as u16,
                        rule: Arc::from(format!("{}:{}", a.file, d.line)),
                    };
                    let e = names
                        .entry(d.name.as_bytes().to_vec().into_boxed_slice())
                        .or_default();
                    if d.exact {
                        e.exact = Some(m);
                    } else {
                        e.suffix = Some(m);
                    }
                    domain_count += 1;
                }
                for (j, line) in &a.ja4 {
                    ja4.insert(
                        j.clone().into_boxed_str(),
                        DomainMatch {
                            app: i as u16,
                            rule: Arc::from(format!("{}:{}", a.file, line)),
                        },
                    );
                }
                if let Some(r) = &a.stun {
                    stun.push((
                        r.clone(),
                        DomainMatch {
                            app: i as u16,
                            rule: Arc::from(format!("{}:{}", a.file, r.line)),
                        },
                    ));
                }
                for sig in &a.signatures {
                    signatures.push((
                        sig.clone(),
                        DomainMatch {
                            app: i as u16,
                            rule: Arc::from(format!("{}:{}", a.file, sig.line)),
                        },
                    ));
                }
                if let Some(p) = &a.prefixes {
                    lists.push(ListAge {
                        app: Arc::from(a.id.as_str()),
                        rule: Arc::from(format!("{}:{}", a.file, p.line)),
                        as_of: p.as_of.clone(),
                        day: p.as_of_day,
                        max_age: p.max_age_days,
                    });
                    for &(ip, len, line) in &p.entries {
                        let m = DomainMatch {
                            app: i as u16,
                            rule: Arc::from(format!("{}:{}", a.file, line)),
                        };
                        prefix_count += 1;
                        match ip {
                            std::net::IpAddr::V4(v) => {
                                let t = table_for(&mut prefixes.v4, len);
                                t.entry(mask4(u32::from(v), len)).or_insert(m);
                            }
                            std::net::IpAddr::V6(v) => {
                                let t = table_for(&mut prefixes.v6, len);
                                t.entry(mask6(u128::from(v), len)).or_insert(m);
                            }
                        }
                    }
                }
                App {
                    id: Arc::from(a.id.as_str()),
                    rule_id: Arc::from(a.rule_id.as_str()),
                    name: Arc::from(a.name.as_str()),
                    category: Arc::from(a.category.as_str()),
                    verdict: a.verdict,
                    alert: a.verdict == Verdict::Flag || a.alert,
                }
            })
            .collect();
        prefixes.v4.sort_by_key(|t| std::cmp::Reverse(t.0));
        prefixes.v6.sort_by_key(|t| std::cmp::Reverse(t.0));
        let reply_signatures = signatures.iter().any(|(s, _)| s.reply_size.is_some());
        let signature_reach = signatures
            .iter()
            .filter(|(s, _)| s.transport == crate::decode::Transport::Tcp && s.reply_size.is_none())
            .map(|(s, _)| {
                let len = s
                    .length
                    .map_or(0, |l| usize::from(l.offset) + usize::from(l.size));
                (usize::from(s.offset) + s.pattern.len()).max(len).max(1)
            })
            .max()
            .unwrap_or(0);
        CompiledRules {
            apps,
            names,
            domain_count,
            prefixes,
            prefix_count,
            lists,
            signatures,
            signature_reach,
            reply_signatures,
            stun,
            ja4,
            ech_public: set
                .ech_public_names
                .iter()
                .map(|d| (d.name.clone().into_boxed_str(), d.exact))
                .collect(),
            hidden: Hidden {
                resolver_names: names_of(&set.hidden.resolver_names),
                resolver_prefixes: set
                    .hidden
                    .resolver_prefixes
                    .iter()
                    .map(|p| (p.addr, p.len))
                    .collect(),
                vpn_names: names_of(&set.hidden.vpn_names),
            },
            public_stun: set
                .public_stun
                .iter()
                .map(|s| (s.addr, s.len, s.ports.clone().into_boxed_slice()))
                .collect(),
        }
    }

    /// Whether `server` is a public STUN server's (from `stun_servers.toml`): any app's call
    /// may ask it for its mapped address, so its address says nothing of the app.
    pub fn is_public_stun(&self, server: std::net::SocketAddr) -> bool {
        use std::net::IpAddr;
        self.public_stun.iter().any(|(net, len, ports)| {
            ports.contains(&server.port())
                && match (server.ip(), net) {
                    (IpAddr::V4(a), IpAddr::V4(n)) => mask4(u32::from(a), *len) == u32::from(*n),
                    (IpAddr::V6(a), IpAddr::V6(n)) => mask6(u128::from(a), *len) == u128::from(*n),
                    _ => false,
                }
        })
    }

    /// The rule whose JA4 fingerprint this is.
    pub fn match_ja4(&self, ja4: &str) -> Option<&DomainMatch> {
        if self.ja4.is_empty() {
            return None;
        }
        self.ja4.get(ja4)
    }

    /// Whether `host` is a public encrypted-DNS resolver's server name (`hidden.toml`).
    pub fn is_resolver_name(&self, host: &str) -> bool {
        name_in(&self.hidden.resolver_names, host)
    }

    /// Whether `ip` is a public encrypted-DNS resolver's address (`hidden.toml`).
    pub fn is_resolver_addr(&self, ip: std::net::IpAddr) -> bool {
        self.hidden
            .resolver_prefixes
            .iter()
            .any(|&(n, l)| in_prefix(ip, n, l))
    }

    /// Whether `host` is a commercial VPN service's server name (`hidden.toml`).
    pub fn is_vpn_name(&self, host: &str) -> bool {
        name_in(&self.hidden.vpn_names, host)
    }

    /// Whether `host` is the public name of an ECH client-facing server (from `ech.toml`): a
    /// ClientHello naming it with an ECH extension hides its real server name.
    pub fn is_ech_public(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.ech_public.iter().any(|(n, exact)| {
            host.eq_ignore_ascii_case(n)
                || (!exact
                    && host.len() > n.len()
                    && host.as_bytes()[host.len() - n.len() - 1] == b'.'
                    && host[host.len() - n.len()..].eq_ignore_ascii_case(n))
        })
    }

    /// Client stream bytes the longest TCP signature needs (0: there are none). UDP signatures
    /// are matched on whole datagrams.
    pub fn signature_reach(&self, transport: crate::decode::Transport) -> usize {
        match transport {
            crate::decode::Transport::Tcp => self.signature_reach,
            crate::decode::Transport::Udp => 0,
        }
    }

    /// The signature that the start of a flow's client payload matches. `frame_len` is the
    /// length of the datagram (UDP) or of the client's first segment (TCP), for length fields.
    pub fn match_payload(
        &self,
        transport: crate::decode::Transport,
        server_port: u16,
        data: &[u8],
        frame_len: usize,
    ) -> Option<&DomainMatch> {
        self.signatures.iter().find_map(|(s, m)| {
            (s.reply_size.is_none()
                && s.from.sends(true)
                && client_side(s, transport, server_port, data, frame_len))
            .then_some(m)
        })
    }

    /// The signature (`from = "server"` or `"either"`) that a datagram the server sent matches:
    /// `server_port` is the port it was sent from, `data` the whole datagram.
    pub fn match_server_payload(
        &self,
        transport: crate::decode::Transport,
        server_port: u16,
        data: &[u8],
    ) -> Option<&DomainMatch> {
        self.signatures.iter().find_map(|(s, m)| {
            (s.from.sends(false) && client_side(s, transport, server_port, data, data.len()))
                .then_some(m)
        })
    }

    /// Whether any TCP signature waits for the server's reply.
    pub fn has_reply_signatures(&self) -> bool {
        self.reply_signatures
    }

    /// The first signature that waits for the server's reply and whose client side the client's
    /// first segment (`data`, `frame_len` bytes) matches: its index for [`Self::match_reply`].
    pub fn reply_candidate(&self, server_port: u16, data: &[u8], frame_len: usize) -> Option<u16> {
        let tcp = crate::decode::Transport::Tcp;
        let i = self.signatures.iter().position(|(s, _)| {
            s.reply_size.is_some() && client_side(s, tcp, server_port, data, frame_len)
        })?;
        u16::try_from(i).ok()
    }

    /// The rule when signature `index` (from [`Self::reply_candidate`]) expects a server reply of
    /// `reply_len` bytes.
    pub fn match_reply(&self, index: u16, reply_len: usize) -> Option<&DomainMatch> {
        let (s, m) = self.signatures.get(usize::from(index))?;
        (s.reply_size.map(usize::from) == Some(reply_len)).then_some(m)
    }

    /// The rule that a STUN/TURN message matches: by message type, attribute type, or a
    /// substring of its REALM or SOFTWARE.
    pub fn match_stun(&self, msg: &crate::proto::stun::Message<'_>) -> Option<&DomainMatch> {
        use crate::proto::stun::{ATTR_REALM, ATTR_SOFTWARE};
        if self.stun.is_empty() {
            return None;
        }
        self.stun.iter().find_map(|(r, m)| {
            let hit = r.message_types.contains(&msg.msg_type)
                || msg.attributes().any(|(ty, v)| {
                    if r.attributes.contains(&ty) {
                        return true;
                    }
                    (ty == ATTR_REALM || ty == ATTR_SOFTWARE)
                        && r.realms.iter().any(|s| {
                            v.windows(s.len())
                                .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
                        })
                });
            hit.then_some(m)
        })
    }

    /// Number of IP prefixes compiled.
    pub fn prefix_count(&self) -> usize {
        self.prefix_count
    }

    /// The rule whose prefix holds `ip`, longest prefix first.
    pub fn match_addr(&self, ip: std::net::IpAddr) -> Option<&DomainMatch> {
        match ip {
            std::net::IpAddr::V4(v) => {
                let a = u32::from(v);
                self.prefixes
                    .v4
                    .iter()
                    .find_map(|(len, t)| t.get(&mask4(a, *len)))
            }
            std::net::IpAddr::V6(v) => {
                let a = u128::from(v);
                self.prefixes
                    .v6
                    .iter()
                    .find_map(|(len, t)| t.get(&mask6(a, *len)))
            }
        }
    }

    /// Prefix lists older than they may be on `today` (days since 1970-01-01): an IP list that
    /// goes stale is reported, never trusted silently.
    pub fn stale_lists(&self, today: i64) -> Vec<StaleList> {
        self.lists
            .iter()
            .filter(|l| today - l.day > i64::from(l.max_age))
            .map(|l| StaleList {
                app: Arc::clone(&l.app),
                rule: Arc::clone(&l.rule),
                as_of: l.as_of.clone(),
                age_days: today - l.day,
                max_age_days: l.max_age,
            })
            .collect()
    }

    /// The apps, indexed by [`DomainMatch::app`].
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// The app with this id.
    pub fn app_by_id(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| &*a.id == id)
    }

    /// Number of domain entries compiled.
    pub fn domain_count(&self) -> usize {
        self.domain_count
    }

    /// The rule that claims `host`: an exact entry for the whole name first, then the longest
    /// suffix entry on a label boundary. Case-insensitive; a trailing dot is ignored.
    pub fn match_host(&self, host: &[u8]) -> Option<&DomainMatch> {
        let host = host.strip_suffix(b".").unwrap_or(host);
        if host.is_empty() || host.len() > MAX_NAME {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        let name = &mut buf[..host.len()];
        name.copy_from_slice(host);
        name.make_ascii_lowercase();
        let name = &*name;
        if let Some(m) = self.names.get(name).and_then(|e| e.exact.as_ref()) {
            return Some(m);
        }
        let mut rest = name;
        loop {
            if let Some(m) = self.names.get(rest).and_then(|e| e.suffix.as_ref()) {
                return Some(m);
            }
            let dot = rest.iter().position(|&b| b == b'.')?;
            rest = &rest[dot + 1..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load, Source};
    use super::*;
    use std::path::PathBuf;

    fn rules() -> CompiledRules {
        let a = r#"id = "ms"
rule_id = "t:ms"
name = "MS"
category = "social"
verdict = "observe"
domains = ["microsoft.example"]
"#;
        let b = r#"id = "teams"
rule_id = "t:teams"
name = "Teams"
category = "conferencing"
verdict = "flag"
domains = [
  "teams.microsoft.example",
  "=login.example",
]
"#;
        let src = |n: &str, t: &str| Source {
            path: PathBuf::from(n),
            name: n.into(),
            text: t.into(),
        };
        load(&[src("ms.toml", a), src("teams.toml", b)], None).unwrap()
    }

    fn app_of(r: &CompiledRules, host: &str) -> Option<String> {
        r.match_host(host.as_bytes())
            .map(|m| format!("{}@{}", r.apps()[m.app as usize].id, m.rule))
    }

    #[test]
    fn match_host_longest_suffix_wins_on_label_boundary() {
        let r = rules();
        assert_eq!(
            app_of(&r, "teams.microsoft.example").as_deref(),
            Some("teams@teams.toml:7")
        );
        assert_eq!(
            app_of(&r, "EU.Teams.Microsoft.Example.").as_deref(),
            Some("teams@teams.toml:7")
        );
        assert_eq!(
            app_of(&r, "www.microsoft.example").as_deref(),
            Some("ms@ms.toml:6")
        );
        assert_eq!(
            app_of(&r, "microsoft.example").as_deref(),
            Some("ms@ms.toml:6")
        );
        // Not on a label boundary.
        assert_eq!(app_of(&r, "notmicrosoft.example"), None);
        assert_eq!(app_of(&r, "example"), None);
    }

    #[test]
    fn match_host_exact_entry_does_not_cover_subdomains() {
        let r = rules();
        assert_eq!(
            app_of(&r, "login.example").as_deref(),
            Some("teams@teams.toml:8")
        );
        assert_eq!(app_of(&r, "a.login.example"), None);
    }

    #[test]
    fn match_addr_longest_prefix_wins_and_stale_lists_are_reported() {
        let a = r#"id = "wide"
rule_id = "t:wide"
name = "Wide"
category = "social"
verdict = "observe"
[prefixes]
source = "test"
as_of = "2024-01-01"
list = ["198.51.100.0/24", "2001:db8::/32"]
"#;
        let b = r#"id = "narrow"
rule_id = "t:narrow"
name = "Narrow"
category = "messaging"
verdict = "flag"
[prefixes]
source = "test"
as_of = "2024-06-01"
max_age_days = 30
list = [
  "198.51.100.128/25",
  "2001:db8:1::/48",
]
"#;
        let src = |n: &str, t: &str| Source {
            path: PathBuf::from(n),
            name: n.into(),
            text: t.into(),
        };
        let r = load(&[src("wide.toml", a), src("narrow.toml", b)], None).unwrap();
        let app = |ip: &str| {
            r.match_addr(ip.parse().unwrap())
                .map(|m| format!("{}@{}", r.apps()[m.app as usize].id, m.rule))
        };
        assert_eq!(
            app("198.51.100.200").as_deref(),
            Some("narrow@narrow.toml:11")
        );
        assert_eq!(app("198.51.100.7").as_deref(), Some("wide@wide.toml:9"));
        assert_eq!(
            app("2001:db8:1::5").as_deref(),
            Some("narrow@narrow.toml:12")
        );
        assert_eq!(app("2001:db8:2::5").as_deref(), Some("wide@wide.toml:9"));
        assert_eq!(app("192.0.2.1"), None);
        assert_eq!(r.prefix_count(), 4);
        let day = super::super::day_number("2024-08-01").unwrap();
        let stale = r.stale_lists(day);
        assert_eq!(stale.len(), 1);
        assert_eq!(&*stale[0].app, "narrow");
        assert_eq!(stale[0].age_days, 61);
        assert!(r
            .stale_lists(super::super::day_number("2024-06-15").unwrap())
            .is_empty());
    }

    #[test]
    fn match_payload_patterns_ports_and_transport() {
        let a = r#"id = "chat"
rule_id = "t:chat"
name = "Chat"
category = "messaging"
verdict = "flag"
[[signatures]]
transport = "tcp"
ports = [5222]
bytes = "45 44 ?? (02|04) 08 aa"
[[signatures]]
transport = "udp"
offset = 2
bytes = "ff ff ff ff"
"#;
        let r = load(
            &[Source {
                path: PathBuf::from("chat.toml"),
                name: "chat.toml".into(),
                text: a.into(),
            }],
            None,
        )
        .unwrap();
        use crate::decode::Transport::{Tcp, Udp};
        let hit = |t, port, d: &[u8]| {
            r.match_payload(t, port, d, d.len())
                .map(|m| m.rule.to_string())
        };
        assert_eq!(
            hit(Tcp, 5222, &[0x45, 0x44, 0x99, 0x04, 0x08, 0xaa, 1]).as_deref(),
            Some("chat.toml:6")
        );
        assert_eq!(
            hit(Tcp, 5222, &[0x45, 0x44, 0x99, 0x03, 0x08, 0xaa]),
            None,
            "not an alternative"
        );
        assert_eq!(
            hit(Tcp, 443, &[0x45, 0x44, 0x99, 0x04, 0x08, 0xaa]),
            None,
            "other port"
        );
        assert_eq!(
            hit(Tcp, 5222, &[0x45, 0x44, 0x99, 0x04, 0x08]),
            None,
            "too short"
        );
        assert_eq!(
            hit(Udp, 9, &[0, 0, 0xff, 0xff, 0xff, 0xff]).as_deref(),
            Some("chat.toml:10")
        );
        assert_eq!(r.signature_reach(Tcp), 6);
        let weak = a.replace("bytes = \"ff ff ff ff\"", "bytes = \"ff ?? ff\"");
        let e = load(
            &[Source {
                path: PathBuf::from("chat.toml"),
                name: "chat.toml".into(),
                text: weak,
            }],
            None,
        )
        .unwrap_err();
        assert!(e.0[0].message.contains("at least 4 fixed bytes"), "{e}");
        // A length field and a port list make up for fixed bytes; alone they do not.
        let framed = a.replace(
            "bytes = \"ff ff ff ff\"",
            "ports = [7000]\nbytes = \"ab\"\nlength = { offset = 0, size = 2, order = \"le\", adjust = 3 }",
        );
        let r = load(
            &[Source {
                path: PathBuf::from("chat.toml"),
                name: "chat.toml".into(),
                text: framed.clone(),
            }],
            None,
        )
        .unwrap();
        let m = |d: &[u8], len| {
            r.match_payload(Udp, 7000, d, len)
                .map(|m| m.rule.to_string())
        };
        assert!(m(&[5, 0, 0xab, 9, 9], 8).is_some(), "5 + 3 = 8");
        assert!(m(&[5, 0, 0xab, 9, 9], 9).is_none(), "wrong length");
        assert!(m(&[5, 0, 0xac, 9, 9], 8).is_none(), "wrong byte");
        assert!(
            r.match_payload(Udp, 7001, &[5, 0, 0xab], 8).is_none(),
            "port"
        );
        let portless = framed.replace("ports = [7000]\n", "");
        let e = load(
            &[Source {
                path: PathBuf::from("chat.toml"),
                name: "chat.toml".into(),
                text: portless,
            }],
            None,
        )
        .unwrap_err();
        assert!(e.0[0].message.contains("has 3.0"), "{e}");
    }

    #[test]
    fn reply_size_signatures_wait_for_the_server() {
        let base = r#"id = "fixed"
rule_id = "t:fixed"
name = "Fixed"
category = "messaging"
verdict = "observe"
[[signatures]]
transport = "tcp"
ports = [5222, 443]
size = 48
reply_size = 80
"#;
        let one = |text: &str| {
            load(
                &[Source {
                    path: PathBuf::from("fixed.toml"),
                    name: "fixed.toml".into(),
                    text: text.into(),
                }],
                None,
            )
        };
        use crate::decode::Transport::Tcp;
        let r = one(base).unwrap();
        assert!(r.has_reply_signatures());
        let d = [0x5a; 48];
        // Never decided by the client's bytes alone.
        assert!(r.match_payload(Tcp, 5222, &d, 48).is_none());
        let ix = r.reply_candidate(5222, &d, 48).expect("client side");
        assert_eq!(
            r.match_reply(ix, 80).map(|m| m.rule.to_string()).as_deref(),
            Some("fixed.toml:6")
        );
        assert!(r.match_reply(ix, 81).is_none(), "another reply size");
        assert!(r.reply_candidate(5222, &d[..47], 47).is_none(), "size");
        assert!(r.reply_candidate(5223, &d, 48).is_none(), "port");
        assert!(
            r.reply_candidate(5222, &d, usize::MAX).is_none(),
            "data that did not start with the first segment"
        );
        assert_eq!(
            r.signature_reach(Tcp),
            0,
            "nothing to read for reply signatures"
        );
        // Two sizes and ports are 3 bytes of evidence; fewer are refused, with the place.
        for (weak, why) in [
            (base.replace("ports = [5222, 443]\n", ""), "no ports"),
            (base.replace("reply_size = 80\n", ""), "no reply size"),
        ] {
            let e = one(&weak).unwrap_err();
            assert!(e.0[0].message.contains("has 2.0"), "{why}: {e}");
            assert_eq!(e.0[0].line, 7, "{why}: {e}");
        }
        let udp = base.replace("\"tcp\"", "\"udp\"");
        let e = one(&udp).unwrap_err();
        assert!(e.0[0].message.contains("reply_size is for TCP"), "{e}");
        assert_eq!((e.0[0].line, e.0[0].col), (10, 14), "{e}");
        let e = one(&base.replace("size = 48", "size = 0")).unwrap_err();
        assert!(e.0[0].message.contains("size 0"), "{e}");
    }

    #[test]
    fn signatures_of_the_server_or_either_side() {
        let base = r#"id = "voice"
rule_id = "t:voice"
name = "Voice"
category = "messaging"
verdict = "observe"
[[signatures]]
transport = "udp"
ports = [50004]
from = "server"
bytes = "00 02 00 46"
[[signatures]]
transport = "udp"
from = "either"
bytes = "13 37 ca fe"
size = 8
"#;
        let one = |text: &str| {
            load(
                &[Source {
                    path: PathBuf::from("voice.toml"),
                    name: "voice.toml".into(),
                    text: text.into(),
                }],
                None,
            )
        };
        use crate::decode::Transport::Udp;
        let r = one(base).unwrap();
        let resp = [0, 2, 0, 0x46, 1, 2, 3, 4];
        let rule = |m: Option<&DomainMatch>| m.map(|m| m.rule.to_string());
        // The server's bytes only, from the server's port.
        assert_eq!(
            rule(r.match_server_payload(Udp, 50004, &resp)).as_deref(),
            Some("voice.toml:6")
        );
        assert!(
            r.match_payload(Udp, 50004, &resp, 8).is_none(),
            "sent by a client"
        );
        assert!(r.match_server_payload(Udp, 50005, &resp).is_none(), "port");
        // Either side's keepalive, of its exact size.
        let ping = [0x13, 0x37, 0xca, 0xfe, 0, 0, 0, 9];
        assert_eq!(
            rule(r.match_payload(Udp, 1234, &ping, 8)).as_deref(),
            Some("voice.toml:11")
        );
        assert_eq!(
            rule(r.match_server_payload(Udp, 1234, &ping)).as_deref(),
            Some("voice.toml:11")
        );
        assert!(r.match_server_payload(Udp, 1234, &ping[..7]).is_none());
        // A client signature is not the server's.
        let client = one(&base.replace("from = \"server\"\n", "")).unwrap();
        assert!(client.match_server_payload(Udp, 50004, &resp).is_none());
        assert!(client.match_payload(Udp, 50004, &resp, 8).is_some());
        // TCP signatures read the client's stream; an unknown side is named.
        let e = one(&base.replacen("\"udp\"", "\"tcp\"", 1)).unwrap_err();
        assert!(e.0[0].message.contains("for UDP signatures"), "{e}");
        assert_eq!(e.0[0].line, 9, "{e}");
        let e = one(&base.replace("\"either\"", "\"both\"")).unwrap_err();
        assert!(e.0[0].message.contains("unknown sender 'both'"), "{e}");
    }

    #[test]
    fn match_host_rejects_empty_and_overlong() {
        let r = rules();
        assert_eq!(r.match_host(b""), None);
        assert_eq!(r.match_host(b"."), None);
        let long = format!("{}.microsoft.example", "a".repeat(300));
        assert_eq!(r.match_host(long.as_bytes()), None);
    }
}
