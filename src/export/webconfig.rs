//! `--web-config FILE`: TLS and basic authentication for the metrics endpoint, in the YAML format
//! of the Prometheus exporter toolkit, which Prometheus operators already write for their
//! exporters:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/picket/tls.crt       # PEM, the chain, leaf first
//!   key_file: /etc/picket/tls.key        # PEM, PKCS#8, PKCS#1 or SEC1
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert, VerifyClientCertIfGiven
//!   client_ca_file: /etc/picket/clients-ca.crt
//!   min_version: TLS12                   # or TLS13
//!   max_version: TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...               # bcrypt hashes (htpasswd -nBC 10)
//! ```
//!
//! Unknown or unsupported keys are errors, never silently ignored: a setting an operator wrote
//! for security must either work or stop the sensor from starting. Paths are relative to the
//! file's folder. The file is read again when its modification time changes (certificate
//! rotation); a broken new version is logged and the old one kept.
//!
//! Basic authentication: a wrong user and a wrong password cost the same (a bcrypt verification
//! against a dummy hash when the user is unknown), and both get 401. Credentials that passed are
//! remembered by their SHA-256, so a scrape every few seconds does not pay bcrypt each time.

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a web config was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WebConfigError {
    /// The file (the config, or a file it names).
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

/// A loaded web config.
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    /// User → bcrypt hash.
    users: BTreeMap<String, String>,
    /// SHA-256 of `user \0 password` that passed.
    passed: Mutex<Vec<[u8; 32]>>,
    /// A bcrypt hash of a password nobody knows, at the first user's cost, checked when the user
    /// is unknown so that an unknown user takes as long as a wrong password. None without users.
    dummy: Option<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Most passed credentials remembered.
const MAX_PASSED: usize = 64;

fn err(path: &Path, message: impl Into<String>) -> WebConfigError {
    WebConfigError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn version(path: &Path, v: Option<&str>, default: u16) -> Result<u16, WebConfigError> {
    match v {
        None => Ok(default),
        Some("TLS12") => Ok(0x0303),
        Some("TLS13") => Ok(0x0304),
        Some(other) => Err(err(
            path,
            format!("TLS version '{other}' is not supported (TLS12 or TLS13)"),
        )),
    }
}

/// Reads a file named by the config (certificates, keys): the disk, or memory in the fuzz target.
pub(crate) type ReadFile<'r> = &'r dyn Fn(&Path) -> std::io::Result<Vec<u8>>;

/// A web config file parsed, its fields and hash syntax checked, before the steps that cost:
/// bcrypt, and reading the files it names.
pub(crate) struct Draft<'a> {
    path: &'a Path,
    text: &'a str,
    file: File,
    /// Each user's bcrypt cost, in the order of `file.basic_auth_users`.
    costs: Vec<u32>,
}

impl<'a> Draft<'a> {
    /// Parses the text of the web config file at `path` (named in errors).
    pub(crate) fn parse(text: &'a str, path: &'a Path) -> Result<Self, WebConfigError> {
        let file: File = serde_norway::from_str(text).map_err(|e| err(path, e.to_string()))?;
        let mut costs = Vec::with_capacity(file.basic_auth_users.len());
        for (user, hash) in &file.basic_auth_users {
            let cost = hash
                .parse::<bcrypt::HashParts>()
                .map(|h| h.get_cost())
                .map_err(|_| {
                    err(
                        path,
                        format!("basic_auth_users: the hash of '{user}' is not a bcrypt hash"),
                    )
                })?;
            costs.push(cost);
        }
        Ok(Draft {
            path,
            text,
            file,
            costs,
        })
    }

    #[cfg(any(test, feature = "_fuzz"))]
    /// The number of users.
    pub(crate) fn users(&self) -> usize {
        self.costs.len()
    }

    #[cfg(any(test, feature = "_fuzz"))]
    /// The highest bcrypt cost of the users' hashes (0 without users): what one check costs.
    pub(crate) fn max_cost(&self) -> u32 {
        self.costs.iter().copied().max().unwrap_or(0)
    }

    /// Checks every hash with bcrypt, reads the certificate and key files through `read`, and
    /// builds the config.
    pub(crate) fn finish(self, read: ReadFile<'_>) -> Result<WebConfig, WebConfigError> {
        let path = self.path;
        let file = self.file;
        for (user, hash) in &file.basic_auth_users {
            if bcrypt::verify("", hash).is_err() {
                return Err(err(
                    path,
                    format!("basic_auth_users: the hash of '{user}' is not a bcrypt hash"),
                ));
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match &file.tls_server_config {
            None => None,
            Some(t) => Some(Arc::new(tls_config(path, dir, t, read)?)),
        };
        // Unknown users are checked against a hash at the first user's cost. Without users
        // nothing is checked, and no dummy is made (a cost-12 hash at every load otherwise).
        let dummy = match self.costs.first() {
            None => None,
            Some(&cost) => {
                let mut salt = [0u8; 16];
                let mut phrase = [0u8; 16];
                let digest = Sha256::digest(self.text.as_bytes());
                salt.copy_from_slice(&digest[..16]);
                phrase.copy_from_slice(&digest[16..]);
                let h = bcrypt::hash_with_salt(phrase, cost, salt)
                    .map_err(|e| err(path, e.to_string()))?;
                Some(h.to_string())
            }
        };
        Ok(WebConfig {
            tls,
            users: file.basic_auth_users,
            passed: Mutex::new(Vec::new()),
            dummy,
        })
    }
}

impl WebConfig {
    /// Reads and checks a web config file, and the certificate and key files it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path, e.to_string()))?;
        Self::parse(&text, path)
    }

    /// Checks the text of the web config file at `path` (named in errors; relative paths in the
    /// file are taken from its folder) and reads the certificate and key files it names.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        Draft::parse(text, path)?.finish(&|p| std::fs::read(p))
    }

    #[cfg(any(test, feature = "_fuzz"))]
    /// The bcrypt hash of `user`, for the fuzz target's checks.
    pub(crate) fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    #[cfg(any(test, feature = "_fuzz"))]
    /// The bcrypt cost of the hash unknown users are checked against (None without users), for
    /// the fuzz target's checks.
    pub(crate) fn dummy_cost(&self) -> Option<u32> {
        self.dummy
            .as_deref()
            .and_then(|d| d.parse::<bcrypt::HashParts>().ok())
            .map(|h| h.get_cost())
    }

    /// The TLS configuration, when the endpoint serves HTTPS.
    pub fn tls(&self) -> Option<&Arc<rustls::ServerConfig>> {
        self.tls.as_ref()
    }

    /// Whether requests need credentials.
    pub fn needs_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks the value of an `Authorization` header (None: the request had none).
    pub fn authorized(&self, header: Option<&[u8]>) -> bool {
        if !self.needs_auth() {
            return true;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            // Still pay for one verification: no answer comes back faster.
            let _ = self.dummy.as_deref().map(|d| bcrypt::verify("", d));
            return false;
        };
        let digest: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(user.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
            h.finalize().into()
        };
        if let Ok(p) = self.passed.lock() {
            if p.contains(&digest) {
                return true;
            }
        }
        let (hash, known) = match (self.users.get(&user), &self.dummy) {
            (Some(h), _) => (h.as_str(), true),
            (None, Some(d)) => (d.as_str(), false),
            (None, None) => return false, // not reached: users exist, so does the dummy
        };
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
        if ok {
            if let Ok(mut p) = self.passed.lock() {
                if p.len() >= MAX_PASSED {
                    p.remove(0);
                }
                p.push(digest);
            }
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
pub(crate) fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn tls_config(
    path: &Path,
    dir: &Path,
    t: &TlsFile,
    read: ReadFile<'_>,
) -> Result<rustls::ServerConfig, WebConfigError> {
    let at = |p: &Path| dir.join(p);
    let load = |p: &Path| read(p).map_err(|e| err(p, e.to_string()));
    let cert_path = at(&t.cert_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&load(&cert_path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| err(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(&cert_path, "no certificate in the file"));
    }
    let key_path = at(&t.key_file);
    let key = PrivateKeyDer::from_pem_slice(&load(&key_path)?)
        .map_err(|e| err(&key_path, e.to_string()))?;
    let min = version(path, t.min_version.as_deref(), 0x0303)?;
    let max = version(path, t.max_version.as_deref(), 0x0304)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (0x0303, &rustls::version::TLS12),
        (0x0304, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    if versions.is_empty() {
        return Err(err(path, "min_version is above max_version"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| err(path, e.to_string()))?;
    let mode = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match mode {
        "NoClientCert" => {
            if t.client_ca_file.is_some() {
                return Err(err(
                    path,
                    "client_ca_file is set but client_auth_type is NoClientCert",
                ));
            }
            builder.with_no_client_auth()
        }
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let Some(ca) = &t.client_ca_file else {
                return Err(err(
                    path,
                    format!("client_auth_type {mode} needs client_ca_file"),
                ));
            };
            let ca_path = at(ca);
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&load(&ca_path)?) {
                let c = c.map_err(|e| err(&ca_path, e.to_string()))?;
                roots.add(c).map_err(|e| err(&ca_path, e.to_string()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if mode == "VerifyClientCertIfGiven" {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| err(path, e.to_string()))?)
        }
        other => {
            return Err(err(
                path,
                format!(
                    "client_auth_type '{other}' is not supported (NoClientCert, \
                     VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ),
            ))
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| err(&key_path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        assert_eq!(
            basic_credentials(b"Basic dXNlcjpwYXNz"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(basic_credentials(b"Basic dXNlcg=="), None, "no colon");
    }

    #[test]
    fn users_wrong_password_unknown_user_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, format!("basic_auth_users:\n  prom: '{hash}'\n")).unwrap();
        let w = WebConfig::load(&p).unwrap();
        assert!(w.tls().is_none());
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(w.authorized(Some(b64("prom:s3cret").as_bytes())));
        assert!(w.authorized(Some(b64("prom:s3cret").as_bytes())), "cached");
        assert!(!w.authorized(Some(b64("prom:wrong").as_bytes())));
        assert!(!w.authorized(Some(b64("other:s3cret").as_bytes())));
        assert!(!w.authorized(None));
        // The dummy hash is a real bcrypt hash at the users' cost (unknown users cost the same).
        let dummy = w.dummy.as_deref().unwrap();
        assert!(bcrypt::verify("x", dummy).is_ok());
        assert_eq!(&dummy[..7], &hash[..7]);
    }

    #[test]
    fn dummy_cost_is_the_first_users_cost_however_written() {
        // bcrypt reads "$2b$4$" and "2b$04$" (no leading '$') as cost 4; the dummy used to be
        // made at the default cost 12 then, so an unknown user took ~250 ms and a known one 1 ms.
        let h = bcrypt::hash_with_salt("pw", 4, [7; 16])
            .unwrap()
            .to_string();
        for written in [h.replacen("$04$", "$4$", 1), h[1..].to_string()] {
            let text = format!("basic_auth_users:\n  a: '{written}'\n  b: '{h}'\n");
            let w = WebConfig::parse(&text, Path::new("/etc/picket/web.yml")).unwrap();
            assert_eq!(w.dummy_cost(), Some(4), "{written}");
            assert!(w.authorized(Some(b"Basic YTpwdw==")), "a:pw");
        }
    }

    #[test]
    fn parse_without_users_makes_no_dummy_and_names_the_file() {
        let p = Path::new("/etc/picket/web.yml");
        let w = WebConfig::parse("basic_auth_users: {}\n", p).unwrap();
        assert_eq!(w.dummy_cost(), None);
        assert!(w.authorized(None));
        let e = WebConfig::parse("tls_server_config:\n  cert_file: x.crt\n  key_file: k\n", p)
            .unwrap_err();
        assert_eq!(e.path, Path::new("/etc/picket/x.crt"), "{e}");
        let e = WebConfig::parse("basic_auth_users: [\n", p).unwrap_err();
        assert_eq!(e.path, p);
    }

    #[test]
    fn bad_files_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        let cases = [
            (
                "basic_auth_users:\n  prom: plaintext\n",
                "not a bcrypt hash",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
                "unknown field",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: b\n",
                "missing.crt",
            ),
            ("basic_auth: {}\n", "unknown field"),
        ];
        for (text, want) in cases {
            std::fs::write(&p, text).unwrap();
            let e = WebConfig::load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
