//! Meta's apps told apart on generated captures: WhatsApp (its chat servers, and WhatsApp Web in
//! a browser with its media hosts), a visit to WhatsApp's web site (not WhatsApp), Messenger,
//! Instagram and Facebook, each by its own names; Meta's shared CDN names name no app.

mod common;

use common::{flow_of, replay, write_capture};
use picket_synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, TcpConv};

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

/// A TLS connection from client `10.20.0.N` to a Meta-like server, naming `sni`.
fn tls(n: u8, sni: &str) -> Vec<Packet> {
    let path = SynthPath::new(
        format!("10.20.0.{n}:{}", 40_000 + u16::from(n))
            .parse()
            .expect("addr"),
        format!("192.0.2.{n}:443").parse().expect("addr"),
    );
    let at = u64::from(n);
    let mut c = TcpConv::new(path, T0 + at * SEC, at);
    c.handshake();
    c.client_send(&client_hello(&ClientHelloSpec::new(sni, at)));
    c.server_send(&[0x17; 600]);
    c.close();
    c.take_packets()
}

#[test]
fn whatsapp_messenger_instagram_facebook_and_a_site_visit_are_distinct() {
    // (client, server name, app, category, alerts)
    let cases: &[(u8, &str, Option<&str>, &str, bool)] = &[
        (1, "g.whatsapp.net", Some("whatsapp"), "messaging", true),
        (2, "web.whatsapp.com", Some("whatsapp"), "messaging", true),
        (3, "mmg.whatsapp.net", Some("whatsapp"), "messaging", true),
        (
            4,
            "www.whatsapp.com",
            Some("whatsapp_site"),
            "web_visit",
            false,
        ),
        (
            5,
            "faq.whatsapp.com",
            Some("whatsapp_site"),
            "web_visit",
            false,
        ),
        (
            6,
            "edge-chat.messenger.com",
            Some("messenger"),
            "messaging",
            false,
        ),
        (
            7,
            "edge-mqtt.facebook.com",
            Some("messenger"),
            "messaging",
            false,
        ),
        (8, "i.instagram.com", Some("instagram"), "social", false),
        (
            9,
            "scontent-fra3-1.cdninstagram.com",
            Some("instagram"),
            "social",
            false,
        ),
        (10, "www.facebook.com", Some("facebook"), "social", false),
        (11, "static.xx.fbcdn.net", None, "", false),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let packets: Vec<Packet> = cases.iter().flat_map(|c| tls(c.0, c.1)).collect();
    let cap = write_capture(dir.path(), "meta.pcap", packets);
    let events = replay(&cap, &[]);
    for &(n, sni, app, category, alerts) in cases {
        let client = format!("10.20.0.{n}");
        let f = flow_of(&events, &client);
        assert_eq!(f["sni"], sni, "{f}");
        assert_eq!(f["app"].as_str(), app, "{sni}: {f}");
        if let Some(app) = app {
            assert_eq!(f["app_category"], category, "{sni}: {f}");
            assert_eq!(f["rule_id"], format!("picket:{app}"), "{f}");
            let verdict = if app == "whatsapp" { "flag" } else { "observe" };
            assert_eq!(f["verdict"], verdict, "{sni}: {f}");
        }
        let alerted = events
            .iter()
            .any(|e| e["event"] == "alert" && e["src_ip"] == client.as_str());
        assert_eq!(alerted, alerts, "{sni}: a visit to the site never alerts");
    }
}
