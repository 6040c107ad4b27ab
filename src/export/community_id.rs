//! Community ID v1: the flow hash that Suricata, Zeek, Arkime and Elastic write, so records of
//! one flow from different tools can be joined. Computed from a flow's tuple into a fixed buffer:
//! no allocation.
//!
//! The input, as the specification (Corelight's community-id-spec, version 1) lays it out: the
//! seed (2 bytes, big-endian), the source address, the destination address (4 or 16 bytes each),
//! the IP protocol number (1 byte), a zero byte, then for protocols with ports the source and
//! destination ports (2 bytes each, big-endian). The endpoints are ordered so the smaller one
//! (address, then port) comes first. ICMP and ICMPv6 put the type and code in the ports; a type
//! with a counterpart (echo request and reply, …) uses the counterpart as the destination port
//! and is ordered like a two-way flow, every other type is taken as one-way and never reordered.
//! The SHA-1 digest of the input is base64-encoded and prefixed with `1:`.

use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// IP protocol numbers with port-like fields.
const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// A Community ID: `1:` and 28 base64 characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId {
    text: [u8; 30],
}

impl CommunityId {
    /// The ID as text (`1:wCb3OG7yAFWelaUydu0D+125CLM=`).
    pub fn as_str(&self) -> &str {
        // "1:" and base64: ASCII only.
        std::str::from_utf8(&self.text).unwrap_or("")
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// For an ICMP (`v6` false) or ICMPv6 type, the type of its counterpart message when it has one
/// (the mapping Zeek and the specification's reference implementation use).
fn icmp_counterpart(v6: bool, ty: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        // echo, router, neighbor, MLD query/report, who-are-you, home agent discovery
        &[
            (128, 129),
            (133, 134),
            (135, 136),
            (130, 131),
            (139, 140),
            (144, 145),
        ]
    } else {
        // echo, timestamp, information, address mask; a router solicitation's answer is an
        // advertisement (not the other way round)
        &[(8, 0), (13, 14), (15, 16), (17, 18)]
    };
    for &(a, b) in pairs {
        if ty == a {
            return Some(b);
        }
        if ty == b {
            return Some(a);
        }
    }
    (!v6 && ty == 10).then_some(9)
}

/// The 16 bytes of an address, and how many of them it has.
fn octets(ip: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v) => {
            b[..4].copy_from_slice(&v.octets());
            (b, 4)
        }
        IpAddr::V6(v) => (v.octets(), 16),
    }
}

/// The Community ID of a flow from `src` to `dst` over IP protocol `proto`, under `seed`.
/// `ports` are the source and destination ports for TCP, UDP and SCTP, the type and code for
/// ICMP and ICMPv6, and `None` for protocols without ports.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> CommunityId {
    let (mut a, mut b) = (octets(src), octets(dst));
    let mut ports = match proto {
        TCP | UDP | SCTP | ICMP | ICMPV6 => ports,
        _ => None,
    };
    let mut one_way = false;
    if let (ICMP | ICMPV6, Some((ty, code))) = (proto, ports) {
        let ty8 = u8::try_from(ty).unwrap_or(u8::MAX);
        ports = Some(match icmp_counterpart(proto == ICMPV6, ty8) {
            Some(other) => (ty, u16::from(other)),
            None => {
                one_way = true;
                (ty, code)
            }
        });
    }
    let (sp, dp) = ports.unwrap_or((0, 0));
    let src_first = (&a.0[..a.1], sp) <= (&b.0[..b.1], dp);
    if !one_way && !src_first {
        std::mem::swap(&mut a, &mut b);
        ports = ports.map(|(s, d)| (d, s));
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&a.0[..a.1]);
    h.update(&b.0[..b.1]);
    h.update([proto, 0]);
    if let Some((s, d)) = ports {
        h.update(s.to_be_bytes());
        h.update(d.to_be_bytes());
    }
    let digest = h.finalize();
    let mut text = [0u8; 30];
    text[0] = b'1';
    text[1] = b':';
    use base64::Engine;
    // 20 bytes are 28 base64 characters: the buffer is exactly large enough.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut text[2..]);
    CommunityId { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's baseline data (corelight/community-id-spec, `baseline/README.md`,
    /// tables "Default settings" and "A custom seed=1 value", produced by its reference
    /// implementation): protocol, source, destination, ports (type and code for ICMP), the ID
    /// with seed 0 and with seed 1.
    type Row = (
        u8,
        &'static str,
        &'static str,
        Option<(u16, u16)>,
        &'static str,
        &'static str,
    );
    #[rustfmt::skip]
    const BASELINE: &[Row] = &[
        (6, "1.2.3.4", "5.6.7.8", Some((1122, 3344)), "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
        (6, "5.6.7.8", "1.2.3.4", Some((3344, 1122)), "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
        (17, "1.2.3.4", "5.6.7.8", Some((1122, 3344)), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
        (17, "5.6.7.8", "1.2.3.4", Some((3344, 1122)), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
        (132, "1.2.3.4", "5.6.7.8", Some((1122, 3344)), "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
        (132, "5.6.7.8", "1.2.3.4", Some((3344, 1122)), "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
        (1, "1.2.3.4", "5.6.7.8", Some((8, 0)), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
        (1, "5.6.7.8", "1.2.3.4", Some((0, 0)), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
        (1, "1.2.3.4", "5.6.7.8", Some((11, 0)), "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="),
        (58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some((128, 0)), "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
        (58, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", Some((129, 0)), "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
        (58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", Some((146, 0)), "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="),
        (46, "1.2.3.4", "5.6.7.8", None, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
        (46, "5.6.7.8", "1.2.3.4", None, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
        (46, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", None, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
        (46, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", None, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
    ];

    /// Flows of the specification's `pcaps/combined.pcap.gz` as its `baseline/baseline_deflt.json`
    /// lists them (seed 0): TCP and UDP over IPv4 and IPv6, both directions.
    type JsonRow = (u8, &'static str, &'static str, (u16, u16), &'static str);
    #[rustfmt::skip]
    const BASELINE_JSON: &[JsonRow] = &[
        (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", (63943, 25), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
        (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", (25, 63943), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
        (6, "128.232.110.120", "66.35.250.204", (34855, 80), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        (6, "66.35.250.204", "128.232.110.120", (80, 34855), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        (17, "192.168.1.52", "8.8.8.8", (54585, 53), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
        (17, "8.8.8.8", "192.168.1.52", (53, 54585), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
        (132, "192.168.170.8", "192.168.170.56", (7, 7), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    ];

    #[test]
    fn community_id_matches_the_specification_baseline() {
        for &(proto, src, dst, ports, seed0, seed1) in BASELINE {
            let (s, d) = (src.parse().unwrap(), dst.parse().unwrap());
            let row = format!("{proto} {src} {dst} {ports:?}");
            assert_eq!(community_id(0, s, d, proto, ports).as_str(), seed0, "{row}");
            assert_eq!(community_id(1, s, d, proto, ports).as_str(), seed1, "{row}");
        }
        for &(proto, src, dst, ports, want) in BASELINE_JSON {
            let (s, d) = (src.parse().unwrap(), dst.parse().unwrap());
            assert_eq!(community_id(0, s, d, proto, Some(ports)).as_str(), want);
        }
    }

    #[test]
    fn community_id_ignores_ports_of_protocols_without_them() {
        let (s, d) = ("1.2.3.4".parse().unwrap(), "5.6.7.8".parse().unwrap());
        assert_eq!(
            community_id(0, s, d, 46, Some((1, 2))),
            community_id(0, s, d, 46, None)
        );
    }
}
