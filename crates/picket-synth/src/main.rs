//! `picket-synth`: writes the project's generated captures (the demo, bulk load, many flows,
//! tunnels and fragments, hostile traffic). The same options write the same bytes.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use picket_synth::{self as synth, LinkType, Packet, PcapFormat};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Examples shown after the options.
const EXAMPLES: &str = "\
Examples:
  picket-synth demo pcaps/demo.pcap
  picket-synth bulk bulk.pcap --flows 200 --packets-per-flow 3000
  picket-synth many-flows flows.pcapng --flows 100000 --pcapng --link sll2";

/// Which capture to write.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// The shipped demo: TLS to WhatsApp, Zoom, Signal, other apps and unrelated sites, with the
    /// hard cases (split and reordered hellos, VLAN/QinQ, IPv6, mid-flow, one-way, reuse, ECH).
    Demo,
    /// Long TCP and UDP flows of thousands of packets each, for the already-classified fast path.
    Bulk,
    /// Many distinct short TCP flows, for memory bounds.
    ManyFlows,
    /// Floods and evasions among ordinary app flows (`--flows` is the SYN flood's size).
    Hostile,
    /// TLS sessions in every tunnel kind: GRE, NVGRE, ERSPAN I-III, VXLAN, IP-in-IP, MPLS,
    /// GTP-U, nested, and with fragmented outer packets.
    Tunnels,
    /// ClientHellos in IPv4 and IPv6 fragments: in order, reversed, duplicated, overlapping.
    Fragments,
    /// DPI evasion: one conversation per technique of zapret, GoodbyeDPI, ByeDPI, SpoofDPI and
    /// Geneva (splits, disorder, decoys the server drops, urgent bytes, SYN data, QUIC junk).
    Evasion,
    /// --flows connections that each send a SYN and one byte at stream offset 16,383 (a
    /// reassembly buffer that never fills), for the reassembly memcap.
    HoleHold,
    /// First fragments that never complete, past every reassembly cap (--flows of them), with
    /// two TLS sessions that must still be classified.
    FragmentFlood,
}

/// Link type of the written frames.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Link {
    /// Ethernet II.
    Ethernet,
    /// Linux cooked capture v1.
    Sll,
    /// Linux cooked capture v2.
    Sll2,
    /// Raw IPv4/IPv6, no link header.
    Raw,
    /// BSD loopback.
    Null,
}

/// Write the project's generated captures (demo, bulk load, many flows, hostile traffic).
#[derive(Parser, Debug)]
#[command(name = "picket-synth", version, about, after_help = EXAMPLES)]
struct Args {
    /// Which capture.
    #[arg(value_enum, value_name = "KIND")]
    kind: Kind,
    /// Output file (created or truncated).
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// Flows (bulk, many-flows; hostile: the SYN flood's size), or incomplete datagrams
    /// (fragment-flood).
    #[arg(long, value_name = "N", default_value_t = 200)]
    flows: usize,
    /// Packets per flow (bulk).
    #[arg(long, value_name = "N", default_value_t = 3000)]
    packets_per_flow: usize,
    /// Seed: the same seed writes the same bytes (bulk, many-flows, hostile).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Link type of the frames.
    #[arg(long, value_enum, value_name = "LINK", default_value = "ethernet")]
    link: Link,
    /// Write pcapng instead of classic pcap.
    #[arg(long)]
    pcapng: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("picket-synth: {e:#}");
            // A usage or output error, as clap's own exit code for bad flags.
            ExitCode::from(2)
        }
    }
}

/// Writes the capture the options name.
fn run(a: Args) -> Result<()> {
    let packets: Box<dyn Iterator<Item = Packet>> = match a.kind {
        Kind::Demo => Box::new(synth::demo().into_iter()),
        Kind::Bulk => Box::new(synth::bulk(a.flows, a.packets_per_flow, a.seed)),
        Kind::ManyFlows => Box::new(synth::many_flows(a.flows, a.seed)),
        Kind::Hostile => Box::new(synth::hostile(a.flows, a.seed)),
        Kind::Tunnels => Box::new(synth::tunnels().0.into_iter()),
        Kind::Fragments => Box::new(synth::fragments().0.into_iter()),
        Kind::FragmentFlood => Box::new(synth::fragment_flood(a.flows, 2048).0.into_iter()),
        Kind::Evasion => Box::new(synth::evasion::evasion().into_iter()),
        Kind::HoleHold => Box::new(synth::evasion::hole_hold(a.flows, a.seed)),
    };
    let link = match a.link {
        Link::Ethernet => LinkType::Ethernet,
        Link::Sll => LinkType::LinuxSll,
        Link::Sll2 => LinkType::LinuxSll2,
        Link::Raw => LinkType::Raw,
        Link::Null => LinkType::Null,
    };
    let file =
        File::create(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut n = 0u64;
    let counted = packets.inspect(|_| n += 1);
    if a.pcapng {
        let mut w = synth::PcapngWriter::new(out);
        w.section(false, vec![synth::Interface::new("synth0", link, 9)])?;
        for p in counted {
            w.write(0, &p)?;
        }
        w.into_inner().flush()?;
    } else {
        let fmt = PcapFormat {
            big_endian: false,
            nanos: false,
            link,
            snaplen: 262_144,
        };
        synth::write_pcap(out, fmt, counted)?.flush()?;
    }
    eprintln!("wrote {n} packets to {}", a.out.display());
    Ok(())
}
