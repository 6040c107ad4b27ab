//! The compiled matcher: an immutable, shareable lookup from a host name to the app and rule
//! that claim it. A lookup allocates nothing: the name is lower-cased into a stack buffer and
//! its suffixes are looked up as borrowed slices.

use super::parse::{AppDef, Category, RuleSet};
use super::Verdict;
use std::collections::HashMap;
use std::sync::Arc;

/// One app of the compiled set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// App id.
    pub id: Arc<str>,
    /// Display name.
    pub name: Arc<str>,
    /// Category.
    pub category: Category,
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

/// Rules compiled for matching; build once, share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct CompiledRules {
    apps: Vec<App>,
    names: HashMap<Box<[u8]>, Entry, foldhash::fast::FixedState>,
    domain_count: usize,
}

/// Longest name looked up; longer names match nothing.
const MAX_NAME: usize = 255;

impl CompiledRules {
    /// Compiles a validated rule set.
    pub fn build(set: &RuleSet) -> Self {
        let mut names: HashMap<Box<[u8]>, Entry, _> = HashMap::default();
        let mut domain_count = 0;
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
                App {
                    id: Arc::from(a.id.as_str()),
                    name: Arc::from(a.name.as_str()),
                    category: a.category,
                    verdict: a.verdict,
                    alert: a.verdict == Verdict::Flag || a.alert,
                }
            })
            .collect();
        CompiledRules {
            apps,
            names,
            domain_count,
        }
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
name = "MS"
category = "social"
verdict = "observe"
domains = ["microsoft.example"]
"#;
        let b = r#"id = "teams"
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
            Some("teams@teams.toml:6")
        );
        assert_eq!(
            app_of(&r, "EU.Teams.Microsoft.Example.").as_deref(),
            Some("teams@teams.toml:6")
        );
        assert_eq!(
            app_of(&r, "www.microsoft.example").as_deref(),
            Some("ms@ms.toml:5")
        );
        assert_eq!(
            app_of(&r, "microsoft.example").as_deref(),
            Some("ms@ms.toml:5")
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
            Some("teams@teams.toml:7")
        );
        assert_eq!(app_of(&r, "a.login.example"), None);
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
