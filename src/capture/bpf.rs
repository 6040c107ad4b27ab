//! `--bpf` for capture files: the expression compiled by libpcap for each link type the input
//! has (as `tcpdump -r FILE EXPR` does), so replay keeps exactly the packets a live capture with
//! the same filter would have seen. Needs the `live` feature (libpcap).

use crate::capture::LinkType;

/// A BPF expression and its programs, one per link type, compiled when the type first appears.
pub struct Bpf {
    expr: String,
    progs: Vec<(LinkType, Option<pcap::BpfProgram>)>,
    /// Link types the expression cannot be compiled for (their packets are all left out),
    /// each with libpcap's reason.
    pub errors: Vec<String>,
}

impl std::fmt::Debug for Bpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpf").field("expr", &self.expr).finish()
    }
}

fn compile(expr: &str, link: u32) -> Result<pcap::BpfProgram, String> {
    let link = i32::try_from(link).map_err(|_| format!("link type {link}"))?;
    pcap::Capture::dead(pcap::Linktype(link))
        .and_then(|c| c.compile(expr, true))
        .map_err(|e| e.to_string())
}

impl Bpf {
    /// Checks `expr` (compiled for Ethernet, the usual link type) so a bad expression fails
    /// before the replay starts.
    pub fn new(expr: &str) -> Result<Self, String> {
        let eth = compile(expr, 1).map_err(|e| format!("invalid BPF filter {expr:?}: {e}"))?;
        Ok(Bpf {
            expr: expr.to_string(),
            progs: vec![(LinkType::Ethernet, Some(eth))],
            errors: Vec::new(),
        })
    }

    /// Whether the expression accepts a frame of `link`.
    pub fn matches_frame(&mut self, link: LinkType, frame: &[u8]) -> bool {
        let i = match self.progs.iter().position(|(l, _)| *l == link) {
            Some(i) => i,
            None => {
                // libpcap compiles for a DLT_ value: raw IP is DLT_RAW (12 here), the LINKTYPE_
                // numbers of the others are their DLT_ values.
                let dlt = match link {
                    LinkType::Raw => 12,
                    other => other.as_u32(),
                };
                let prog = match compile(&self.expr, dlt) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.errors.push(format!(
                            "--bpf {:?} cannot apply to link type {}: {e}; its packets are left out",
                            self.expr,
                            link.as_u32()
                        ));
                        None
                    }
                };
                self.progs.push((link, prog));
                self.progs.len() - 1
            }
        };
        self.progs[i].1.as_ref().is_some_and(|p| p.filter(frame))
    }
}

impl crate::capture::file::FrameFilter for Bpf {
    fn keep(&mut self, link: LinkType, frame: &[u8]) -> bool {
        self.matches_frame(link, frame)
    }

    fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_as_libpcap_compiles_it_per_link_type() {
        assert!(Bpf::new("port 53 and and").is_err());
        let mut f = Bpf::new("udp port 53").unwrap();
        // Ethernet, IPv4, UDP 1000 -> 53.
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        let ip = [
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x03, 0xe8, 0, 53,
            0, 8, 0, 0,
        ];
        eth.extend(ip);
        assert!(f.matches_frame(LinkType::Ethernet, &eth));
        assert!(f.matches_frame(LinkType::Raw, &ip));
        let mut other = ip;
        other[23] = 54;
        assert!(!f.matches_frame(LinkType::Raw, &other));
        // An expression that needs Ethernet headers on raw IP: left out, and said once.
        let mut g = Bpf::new("ether host 00:11:22:33:44:55").unwrap();
        assert!(!g.matches_frame(LinkType::Raw, &ip));
        assert!(!g.matches_frame(LinkType::Raw, &ip));
        assert_eq!(g.errors.len(), 1, "{:?}", g.errors);
    }
}
