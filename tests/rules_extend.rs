//! Rules an organisation extends: `--rules-add DIR` layers rule files and plain lists on the
//! embedded set (a file of an app already defined replaces it), and `rules check` reports every
//! problem of the added files with file:line.

mod common;

use common::{flow_of, replay, write_capture};
use picket_synth::{client_hello, ClientHelloSpec, Packet, Path as SynthPath, TcpConv};
use std::process::Command;

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

/// A TLS connection from `client` to `server` naming `sni`.
fn tls(client: &str, server: &str, sni: &str, at: u64) -> Vec<Packet> {
    let path = SynthPath::new(client.parse().expect("addr"), server.parse().expect("addr"));
    let mut c = TcpConv::new(path, T0 + at * SEC, at);
    c.handshake();
    c.client_send(&client_hello(&ClientHelloSpec::new(sni, at)));
    c.server_send(&[0x17; 600]);
    c.close();
    c.take_packets()
}

fn picket(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(args)
        .output()
        .expect("picket runs")
}

const BLOCK: &str = "# Our own block list.
id = local_block
rule_id = org:local-block
category = local
verdict = flag
source = firewall team
as_of = 2026-11-30

blocked.example
198.51.100.0/24
";

/// Zoom, observed rather than flagged, and known by one name only.
const ZOOM: &str = "id = zoom
rule_id = org:zoom
name = Zoom (ours)
category = conferencing
verdict = observe
zoom-only.example
";

#[test]
fn rules_add_layers_lists_on_the_embedded_rules_and_replaces_same_app() {
    let dir = tempfile::tempdir().expect("temp dir");
    let add = dir.path().join("rules.d");
    std::fs::create_dir(&add).expect("mkdir");
    std::fs::write(add.join("local_block.list"), BLOCK).expect("write");
    std::fs::write(add.join("zoom.list"), ZOOM).expect("write");
    let add_s = add.to_str().expect("utf-8");

    let o = picket(&["rules", "check", "--rules-add", add_s]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("zoom.list replaces rules/zoom.toml"),
        "the replacement is said: {out}"
    );
    assert!(out.contains("ok: 18 apps"), "{out}");
    assert!(
        out.contains("flagged: signal, whatsapp, local_block"),
        "zoom is now observed: {out}"
    );

    let mut packets = tls("10.1.0.1:40001", "192.0.2.10:443", "www.blocked.example", 1);
    packets.extend(tls("10.1.0.2:40002", "192.0.2.11:443", "signal.org", 2));
    packets.extend(tls("10.1.0.3:40003", "192.0.2.12:443", "zoom.us", 3));
    packets.extend(tls(
        "10.1.0.4:40004",
        "192.0.2.13:443",
        "zoom-only.example",
        4,
    ));
    packets.extend(tls("10.1.0.5:40005", "198.51.100.9:443", "", 5));
    let cap = write_capture(dir.path(), "c.pcap", packets);
    let ev = replay(&cap, &["--rules-add", add_s]);
    let f = flow_of(&ev, "10.1.0.1");
    assert_eq!(f["app"], "local_block", "{f}");
    assert_eq!(f["rule"], "local_block.list:9", "{f}");
    assert_eq!(f["rule_id"], "org:local-block", "{f}");
    assert_eq!(f["app_category"], "local", "{f}");
    assert_eq!(f["verdict"], "flag", "{f}");
    // The embedded rules are still in force...
    assert_eq!(flow_of(&ev, "10.1.0.2")["app"], "signal");
    // ...except the app the added folder replaced: its embedded names are gone with it.
    assert!(flow_of(&ev, "10.1.0.3").get("app").is_none(), "{ev:?}");
    let z = flow_of(&ev, "10.1.0.4");
    assert_eq!(
        (&z["app"], &z["verdict"]),
        (&"zoom".into(), &"observe".into())
    );
    let ip = flow_of(&ev, "10.1.0.5");
    assert_eq!(ip["app"], "local_block", "{ip}");
    assert_eq!(ip["app_source"], "ip", "{ip}");
    // An alert for the flagged list, none for the observed Zoom.
    let alerts: Vec<_> = ev.iter().filter(|e| e["event"] == "alert").collect();
    assert!(alerts.iter().any(|a| a["app"] == "local_block"));
    assert!(alerts.iter().all(|a| a["app"] != "zoom"));
}

#[test]
fn rules_check_reports_every_problem_of_added_files_with_file_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.list"),
        "id = bad\nrule_id = picket:signal\ncategory = local\nverdict = flag\ncom\n10.0.0.1.5\nsignal.org\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("bad.toml"), "id = \"bad\"\n").expect("write");
    let o = picket(&[
        "rules",
        "check",
        "--rules-add",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml: ") && err.contains("one file per app id"),
        "{err}"
    );
    // The same id twice in the folder stops there; the list alone shows each line's problem.
    std::fs::remove_file(dir.path().join("bad.toml")).expect("rm");
    let o = picket(&[
        "rules",
        "check",
        "--rules-add",
        dir.path().to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "bad.list:5:1: 'com': a domain needs at least two labels",
        "bad.list:6:1: '10.0.0.1.5/32': not an IP address",
        "bad.list:7:1: 'signal.org' is already listed at rules/signal.toml:",
        "3 error(s)",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
    // With the lines fixed, the rule id taken by the embedded Signal rules is the problem.
    std::fs::write(
        dir.path().join("bad.list"),
        "id = bad\nrule_id = picket:signal\ncategory = local\nverdict = flag\nbad.example\n",
    )
    .expect("write");
    let o = picket(&[
        "rules",
        "check",
        "--rules-add",
        dir.path().to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "bad.list:2:1: rule_id 'picket:signal' is already used at rules/signal.toml:3"
        ),
        "{err}"
    );
}
