//! `hidden.toml`: the rule data of traffic that hides what it carries (public encrypted-DNS
//! resolvers by name and address, commercial VPN services by name). Not apps: it gives no flow
//! an app, only the reason an unattributed flow stayed so. Parsed with file:line errors like
//! every rule file.

use super::{parse_prefix, DomainEntry, FileCtx, RuleError};
use super::{RuleSet, Source};
use serde::Deserialize;
use toml::Spanned;

/// The file of hidden traffic's names and addresses.
pub const HIDDEN_FILE: &str = "hidden.toml";

/// A prefix of the hidden-traffic lists, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenPrefix {
    /// The network address.
    pub addr: std::net::IpAddr,
    /// Its length.
    pub len: u8,
    /// Line in the file.
    pub line: usize,
}

/// What `hidden.toml` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HiddenLists {
    /// Server names of public DNS-over-HTTPS/TLS/QUIC resolvers.
    pub resolver_names: Vec<DomainEntry>,
    /// Addresses of public encrypted-DNS resolvers.
    pub resolver_prefixes: Vec<HiddenPrefix>,
    /// Server names of commercial VPN services.
    pub vpn_names: Vec<DomainEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HiddenFile {
    #[serde(default)]
    encrypted_dns: Option<Section>,
    #[serde(default)]
    vpn: Option<Section>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    names: Vec<Spanned<String>>,
    #[serde(default)]
    prefixes: Vec<Spanned<String>>,
}

/// Reads `hidden.toml` into `set.hidden`, every bad entry an error with its line.
pub(super) fn parse_hidden(src: &Source, set: &mut RuleSet, errors: &mut Vec<RuleError>) {
    let Some((file, mut cx)) = FileCtx::read::<HiddenFile>(src, errors) else {
        return;
    };
    if let Some(s) = &file.encrypted_dns {
        cx.domains(&s.names, &mut set.hidden.resolver_names);
        for p in &s.prefixes {
            match parse_prefix(p.get_ref()) {
                Ok((addr, len)) => {
                    let (line, _) = cx.lines.at(p.span().start);
                    set.hidden
                        .resolver_prefixes
                        .push(HiddenPrefix { addr, len, line });
                }
                Err(msg) => cx.err(p.span(), msg),
            }
        }
    }
    if let Some(s) = &file.vpn {
        cx.domains(&s.names, &mut set.hidden.vpn_names);
        if let Some(p) = s.prefixes.first() {
            cx.err(
                p.span(),
                "[vpn] lists names only: VPN tunnels are told by their packets' shape",
            );
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn src(text: &str) -> Source {
        Source {
            path: HIDDEN_FILE.into(),
            name: HIDDEN_FILE.into(),
            text: text.into(),
        }
    }

    #[test]
    fn parse_hidden_lists_and_errors_with_lines() {
        let set = RuleSet::parse(
            &[src(
                "[encrypted_dns]\nnames = [\"=dns.google\"]\nprefixes = [\"8.8.8.8/32\"]\n[vpn]\nnames = [\"vpn.example\"]\n",
            )],
            None,
        )
        .unwrap();
        assert_eq!(set.hidden.resolver_names[0].name, "dns.google");
        assert!(set.hidden.resolver_names[0].exact);
        assert_eq!(set.hidden.resolver_prefixes[0].len, 32);
        assert_eq!(set.hidden.resolver_prefixes[0].line, 3);
        assert_eq!(set.hidden.vpn_names[0].name, "vpn.example");
        let e = RuleSet::parse(
            &[src(
                "[encrypted_dns]\nnames = [\"\"]\nprefixes = [\"8.8.8.8\"]\n[vpn]\nprefixes = [\"10.0.0.0/8\"]\n",
            )],
            None,
        )
        .unwrap_err();
        let text = e.to_string();
        for line in ["hidden.toml:2", "hidden.toml:3", "hidden.toml:5"] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
