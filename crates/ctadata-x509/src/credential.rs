//! Finding, reading and checking the grid credential: a proxy (one PEM file: proxy, key,
//! chain) or an end-entity certificate with its key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{human_duration, CLOCK_SKEW};
use ctadata_core::entry::format_rfc3339;
use ctadata_core::{AuthProblem, Error, Result};
use rustls::client::ResolvesClientCert;
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::SignatureScheme;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::inspect::{self, CertInfo, KeyState, PemFile};

/// Warn when the credential expires within this time.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(600);

/// A proxy or a long-lived certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A proxy file (proxy certificate, its key, the chain).
    Proxy,
    /// An end-entity certificate and its key.
    Certificate,
}

/// Where the credential is, and which setting named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    /// Proxy or certificate.
    pub kind: CredentialKind,
    /// The certificate file (for a proxy: the proxy file).
    pub cert: PathBuf,
    /// The key file (for a proxy: the proxy file).
    pub key: PathBuf,
    /// Which setting named it: `profile 'grid' key 'proxy' (file ...)`, `X509_USER_PROXY`...
    pub origin: String,
    /// The file is the default proxy location (`/tmp/x509up_u<uid>`).
    pub default_proxy: bool,
}

impl CredentialSource {
    /// "the proxy /tmp/x509up_u1000" or "the certificate ~/.globus/usercert.pem".
    pub fn describe(&self) -> String {
        match self.kind {
            CredentialKind::Proxy => format!("the proxy {}", self.cert.display()),
            CredentialKind::Certificate => format!("the certificate {}", self.cert.display()),
        }
    }

    /// The command that makes a new proxy where this one is looked for:
    /// `voms-proxy-init -voms VO -rfc` when the VO is known, else `grid-proxy-init -rfc`.
    pub fn renew_command(&self, vo: Option<&str>) -> String {
        let out = self.out_arg();
        match vo {
            Some(vo) => format!("voms-proxy-init -voms {vo} -rfc{out}"),
            None => format!("grid-proxy-init -rfc{out}"),
        }
    }

    /// The renewal commands quoted for a hint: the main one and the other tool.
    pub fn renew_text(&self, vo: Option<&str>) -> String {
        let out = self.out_arg();
        match vo {
            Some(_) => format!(
                "'{}' (or 'grid-proxy-init -rfc{out}' without VOMS attributes)",
                self.renew_command(vo)
            ),
            None => format!(
                "'{}' (or 'voms-proxy-init -voms <VO> -rfc{out}' for VOMS attributes)",
                self.renew_command(vo)
            ),
        }
    }

    fn out_arg(&self) -> String {
        if self.default_proxy || self.kind == CredentialKind::Certificate {
            String::new()
        } else {
            format!(" -out {}", self.cert.display())
        }
    }

    /// What to do when the credential's time is wrong.
    fn renew_hint(&self, vo: Option<&str>) -> String {
        match self.kind {
            CredentialKind::Proxy => format!("make a new proxy: {}", self.renew_text(vo)),
            CredentialKind::Certificate => format!(
                "get a new certificate from your certificate authority and install it as {} (key {}), or use a proxy made before it expired",
                self.cert.display(),
                self.key.display()
            ),
        }
    }
}

/// The machine-dependent defaults: the user id and the home directory.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// `/tmp/x509up_u<uid>`.
    pub proxy: PathBuf,
    /// `~/.globus/usercert.pem`.
    pub user_cert: Option<PathBuf>,
    /// `~/.globus/userkey.pem`.
    pub user_key: Option<PathBuf>,
}

impl Defaults {
    /// The defaults of the running user (`HOME` from `env`).
    pub fn current(env: &EnvSnapshot) -> Self {
        let home = env.get("HOME").map(PathBuf::from);
        Self {
            proxy: default_proxy_path(),
            user_cert: home.as_ref().map(|h| h.join(".globus/usercert.pem")),
            user_key: home.as_ref().map(|h| h.join(".globus/userkey.pem")),
        }
    }
}

/// `/tmp/x509up_u<uid>`.
pub fn default_proxy_path() -> PathBuf {
    PathBuf::from(format!(
        "/tmp/x509up_u{}",
        ctadata_core::config::current_uid()
    ))
}

fn origin_of(profile: &ResolvedProfile, key: &str) -> String {
    match profile.origins.get(key) {
        Some(o) => format!("profile '{}' key '{key}', {o}", profile.name),
        None => format!("profile '{}' key '{key}'", profile.name),
    }
}

/// Finds the credential of a profile, in this order: the profile's `proxy`, the profile's
/// `cert`/`key`, `X509_USER_PROXY`, `X509_USER_CERT`/`X509_USER_KEY`, `/tmp/x509up_u<uid>`,
/// `~/.globus/usercert.pem`/`userkey.pem`. What is set on purpose must exist; defaults are
/// skipped when missing.
pub fn locate(profile: &ResolvedProfile, env: &EnvSnapshot) -> Result<CredentialSource> {
    locate_with(profile, env, &Defaults::current(env))
}

/// [`locate`] with given defaults (tests).
pub fn locate_with(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    defaults: &Defaults,
) -> Result<CredentialSource> {
    let p = &profile.profile;
    let proxy = |path: PathBuf, origin: String| CredentialSource {
        kind: CredentialKind::Proxy,
        default_proxy: path == defaults.proxy,
        key: path.clone(),
        cert: path,
        origin,
    };
    if let Some(path) = &p.proxy {
        return Ok(proxy(path.clone(), origin_of(profile, "proxy")));
    }
    if let Some(cert) = &p.cert {
        return Ok(CredentialSource {
            kind: CredentialKind::Certificate,
            cert: cert.clone(),
            key: p.key.clone().unwrap_or_else(|| cert.clone()),
            origin: origin_of(profile, "cert"),
            default_proxy: false,
        });
    }
    if p.key.is_some() {
        return Err(Error::config(
            format!(
                "{} is set but the profile has no 'cert'",
                origin_of(profile, "key")
            ),
            format!(
                "set cert = \"FILE\" next to key under [profiles.{}], or remove key",
                profile.name
            ),
        ));
    }
    if let Some(path) = env.get("X509_USER_PROXY") {
        return Ok(proxy(PathBuf::from(path), "X509_USER_PROXY".into()));
    }
    if let Some(cert) = env.get("X509_USER_CERT") {
        return Ok(CredentialSource {
            kind: CredentialKind::Certificate,
            cert: PathBuf::from(cert),
            key: PathBuf::from(env.get("X509_USER_KEY").unwrap_or(cert)),
            origin: "X509_USER_CERT".into(),
            default_proxy: false,
        });
    }
    if defaults.proxy.exists() {
        return Ok(proxy(
            defaults.proxy.clone(),
            "the default proxy location".into(),
        ));
    }
    if let Some(cert) = defaults.user_cert.as_ref().filter(|c| c.exists()) {
        let key = env
            .get("X509_USER_KEY")
            .map(PathBuf::from)
            .or_else(|| defaults.user_key.clone())
            .unwrap_or_else(|| cert.clone());
        return Ok(CredentialSource {
            kind: CredentialKind::Certificate,
            cert: cert.clone(),
            key,
            origin: "the default certificate location".into(),
            default_proxy: false,
        });
    }
    Err(Error::Auth {
        problem: AuthProblem::Missing,
        message: format!(
            "no grid credential found: profile '{}' sets neither 'proxy' nor 'cert', X509_USER_PROXY and X509_USER_CERT are unset, and neither {} nor {} exists",
            profile.name,
            defaults.proxy.display(),
            defaults
                .user_cert
                .as_ref()
                .map_or("~/.globus/usercert.pem".into(), |p| p.display().to_string()),
        ),
        hint: format!(
            "make a proxy with 'grid-proxy-init -rfc' (or 'voms-proxy-init -voms <VO> -rfc'), or set proxy = \"FILE\" under [profiles.{}]",
            profile.name
        ),
    })
}

/// A credential read and checked: the chain (leaf first) and its key.
pub struct Credential {
    /// Where it was found.
    pub source: CredentialSource,
    /// The certificates, parsed.
    pub file: PemFile,
    signing_key: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("subject", &self.file.leaf().subject)
            .field("chain", &self.file.certs.len())
            .finish_non_exhaustive()
    }
}

fn refused(message: String, hint: impl Into<String>) -> Error {
    Error::Auth {
        problem: AuthProblem::Refused,
        message,
        hint: hint.into(),
    }
}

fn read_file(path: &Path, what: &str, src: &CredentialSource) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            let hint = match src.kind {
                CredentialKind::Proxy => format!(
                    "make a proxy with {}, or fix {}",
                    src.renew_text(None),
                    src.origin
                ),
                CredentialKind::Certificate => format!("fix {}", src.origin),
            };
            Error::Auth {
                problem: AuthProblem::Missing,
                message: format!(
                    "the {what} {} does not exist (named by {})",
                    path.display(),
                    src.origin
                ),
                hint,
            }
        } else {
            Error::local("read", path, e)
        }
    })
}

/// Refuses a key file that group or others may access (as ssh does).
fn check_key_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::local("read", path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refused(
            format!(
                "permissions {mode:04o} for the private key {} are too open: it is required that private key files are NOT accessible by others; this key is ignored",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        ));
    }
    Ok(())
}

impl Credential {
    /// Reads the credential and checks what can be checked without the server: the key file's
    /// permissions, that the key is not encrypted and matches the certificate, and that every
    /// proxy in the chain is followed by the certificate that signed it.
    pub fn load(source: &CredentialSource) -> Result<Credential> {
        let what = match source.kind {
            CredentialKind::Proxy => "proxy",
            CredentialKind::Certificate => "certificate",
        };
        let cert_data = read_file(&source.cert, what, source)?;
        let key_data = if source.key == source.cert {
            cert_data.clone()
        } else {
            read_file(&source.key, "key file", source)?
        };
        let key_what = if source.key == source.cert {
            format!("the {what} {}", source.key.display())
        } else {
            format!("the key file {}", source.key.display())
        };
        match inspect::key_state(&key_data) {
            KeyState::Encrypted => {
                return Err(refused(
                    format!(
                        "the private key in {} is encrypted (protected by a pass phrase); cta-data does not ask for pass phrases",
                        source.key.display()
                    ),
                    format!(
                        "make a proxy from it with 'grid-proxy-init -rfc -cert {c} -key {k}' (or 'voms-proxy-init -voms <VO> -rfc -cert {c} -key {k}'), then run the command again: cta-data finds the proxy in {} (or X509_USER_PROXY)",
                        default_proxy_path().display(),
                        c = source.cert.display(),
                        k = source.key.display()
                    ),
                ))
            }
            KeyState::Absent => {
                return Err(refused(
                    format!("{key_what} holds no private key"),
                    match source.kind {
                        CredentialKind::Proxy => format!(
                            "a proxy file holds the proxy, its key and the chain: make it again with {}",
                            source.renew_text(None)
                        ),
                        CredentialKind::Certificate => format!(
                            "name the key of {} with 'key' in the profile or X509_USER_KEY",
                            source.cert.display()
                        ),
                    },
                ))
            }
            KeyState::Present => {}
        }
        check_key_permissions(&source.key)?;
        let file = inspect::parse_pem(&cert_data, &source.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&key_data).map_err(|e| {
            refused(
                format!(
                    "the private key in {} cannot be read: {e}",
                    source.key.display()
                ),
                "the file is damaged: make it again (grid-proxy-init -rfc for a proxy)",
            )
        })?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
            refused(
                format!(
                    "the private key in {} cannot be used for TLS: {e}",
                    source.key.display()
                ),
                "use an RSA or ECDSA key (grid-proxy-init makes RSA proxies)",
            )
        })?;
        let cred = Credential {
            source: source.clone(),
            file,
            signing_key,
        };
        cred.check_key_matches()?;
        cred.check_chain()?;
        Ok(cred)
    }

    fn check_key_matches(&self) -> Result<()> {
        let Some(spki) = self.signing_key.public_key() else {
            return Ok(());
        };
        let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(spki.as_ref()) else {
            return Ok(());
        };
        let leaf = self.file.leaf();
        if spki.subject_public_key.data.as_ref() != leaf.public_key.as_slice() {
            let hint = match self.source.kind {
                CredentialKind::Proxy => format!(
                    "the file is inconsistent: make a new proxy with {}",
                    self.source.renew_text(self.file.vo())
                ),
                CredentialKind::Certificate => format!(
                    "name the key that belongs to {} ('key' in the profile, or X509_USER_KEY)",
                    self.source.cert.display()
                ),
            };
            let message = if self.source.key == self.source.cert {
                format!(
                    "in {}, the private key does not match the {} (subject {})",
                    self.source.cert.display(),
                    if leaf.proxy.is_proxy() {
                        "proxy certificate"
                    } else {
                        "certificate"
                    },
                    leaf.subject
                )
            } else {
                format!(
                    "the private key in {} does not match the certificate in {} (subject {})",
                    self.source.key.display(),
                    self.source.cert.display(),
                    leaf.subject
                )
            };
            return Err(refused(message, hint));
        }
        Ok(())
    }

    fn check_chain(&self) -> Result<()> {
        let certs = &self.file.certs;
        let path = self.source.cert.display();
        let hint = || {
            format!(
                "make the proxy with {}, which write the proxy, its key and your certificate into one file; or append your certificate to it: cat ~/.globus/usercert.pem >> {path}",
                self.source.renew_text(self.file.vo())
            )
        };
        for (i, c) in certs.iter().enumerate() {
            if !c.proxy.is_proxy() {
                break;
            }
            let Some(next) = certs.get(i + 1) else {
                return Err(refused(
                    format!(
                        "{path} holds the proxy {} but not the certificate that signed it ({}): the server cannot verify a proxy without its chain",
                        c.subject, c.issuer
                    ),
                    hint(),
                ));
            };
            if c.issuer_raw != next.subject_raw {
                return Err(refused(
                    format!(
                        "the chain in {path} is broken: certificate {} ({}) was issued by {}, but the certificate after it is {}",
                        i + 1,
                        c.subject,
                        c.issuer,
                        next.subject
                    ),
                    hint(),
                ));
            }
            if !inspect::signed_by(&self.file.ders[i], &self.file.ders[i + 1]) {
                return Err(refused(
                    format!(
                        "the chain in {path} is broken: the proxy {} is not signed by the key of the certificate after it ({})",
                        c.subject, next.subject
                    ),
                    hint(),
                ));
            }
        }
        Ok(())
    }

    /// Checks the validity times at `now`: an error when expired or not yet valid, a warning
    /// (returned) when the credential expires within [`EXPIRY_WARNING`].
    pub fn check_time(&self, now: SystemTime) -> Result<Option<String>> {
        let vo = self.file.vo();
        let first = self.file.latest_start();
        if first.not_before > now + CLOCK_SKEW {
            let wait = first.not_before.duration_since(now).unwrap_or_default();
            return Err(refused(
                format!(
                    "{} is not valid yet: {} becomes valid at {} (in {}); subject {}",
                    self.source.describe(),
                    if std::ptr::eq(first, self.file.leaf()) {
                        "it"
                    } else {
                        self.role(first)
                    },
                    utc(first.not_before),
                    human_duration(wait),
                    first.subject
                ),
                format!(
                    "check this machine's clock, or {}",
                    self.source.renew_hint(vo)
                ),
            ));
        }
        let last = self.file.earliest_end();
        match last.not_after.duration_since(now) {
            Err(past) => Err(Error::Auth {
                problem: AuthProblem::Expired,
                message: if std::ptr::eq(last, self.file.leaf()) {
                    format!(
                        "{} expired at {} ({} ago); subject {}",
                        self.source.describe(),
                        utc(last.not_after),
                        human_duration(past.duration()),
                        last.subject
                    )
                } else {
                    format!(
                        "{} cannot be used: {} expired at {} ({} ago); subject {}",
                        self.source.describe(),
                        self.role(last),
                        utc(last.not_after),
                        human_duration(past.duration()),
                        last.subject
                    )
                },
                hint: self.source.renew_hint(vo),
            }),
            Ok(left) if left < EXPIRY_WARNING => {
                let limited = if std::ptr::eq(last, self.file.leaf()) {
                    String::new()
                } else {
                    format!(", when {} expires", self.role(last))
                };
                Ok(Some(format!(
                    "{} expires in {} (at {}{limited}); subject {}; {}",
                    self.source.describe(),
                    human_duration(left),
                    utc(last.not_after),
                    last.subject,
                    self.source.renew_hint(vo)
                )))
            }
            Ok(_) => Ok(None),
        }
    }

    /// "the proxy", "the user certificate in its chain", ... for a certificate of the file.
    fn role(&self, c: &CertInfo) -> &'static str {
        let leaf = std::ptr::eq(c, self.file.leaf());
        match (leaf, c.proxy.is_proxy()) {
            (true, true) => "the proxy certificate",
            (true, false) => "the certificate",
            (false, true) => "an intermediate proxy in its chain",
            (false, false) => "the user certificate in its chain",
        }
    }

    /// The TLS client identity: the whole chain (leaf first) and the key.
    pub fn client_identity(&self) -> Arc<ClientIdentity> {
        Arc::new(ClientIdentity {
            key: self.certified_key(),
        })
    }

    fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::new(CertifiedKey::new(
            self.file.ders.clone(),
            self.signing_key.clone(),
        ))
    }
}

/// The credential of a process that outlives a proxy (`cta-data mount`, a long `get -r`):
/// its file is read again when it changes, so a proxy renewed in place (`grid-proxy-init`,
/// `voms-proxy-init`) is used for the next connections without a restart; and it is checked
/// before every request, so an expired one gives its error (`Error::Auth`, with the renewal
/// command) instead of TLS handshakes the server refuses.
#[derive(Debug)]
pub struct LiveCredential {
    state: std::sync::Mutex<LiveState>,
}

#[derive(Debug)]
struct LiveState {
    cred: Credential,
    key: Arc<CertifiedKey>,
    /// The files as they were when last read (or last found unusable).
    stamp: Option<FileStamp>,
    /// When the files were last looked at: at most once a second.
    looked: std::time::Instant,
}

/// Modification time, size and inode of the certificate and key files.
type FileStamp = [(SystemTime, u64, u64); 2];

fn file_stamp(source: &CredentialSource) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino())))
    };
    Some([one(&source.cert)?, one(&source.key)?])
}

impl LiveCredential {
    /// Starts from a credential already read and checked.
    pub fn new(cred: Credential) -> Self {
        let stamp = file_stamp(&cred.source);
        let key = cred.certified_key();
        Self {
            state: std::sync::Mutex::new(LiveState {
                cred,
                key,
                stamp,
                looked: std::time::Instant::now(),
            }),
        }
    }

    /// Reads the files again when they changed since they were last read; a new credential
    /// replaces the old one only when it is valid now.
    fn state(&self) -> std::sync::MutexGuard<'_, LiveState> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.looked.elapsed() < std::time::Duration::from_secs(1) {
            return s;
        }
        s.looked = std::time::Instant::now();
        let stamp = file_stamp(&s.cred.source);
        if stamp.is_none() || stamp == s.stamp {
            return s;
        }
        // Not read again until it changes again (a proxy half written is read once more
        // when its writer has finished).
        s.stamp = stamp;
        match Credential::load(&s.cred.source)
            .and_then(|c| c.check_time(SystemTime::now()).map(|_| c))
        {
            Ok(c) => {
                tracing::info!(
                    "{} changed: using the new one (valid until {})",
                    c.source.describe(),
                    utc(c.file.earliest_end().not_after)
                );
                s.key = c.certified_key();
                s.cred = c;
            }
            Err(e) => tracing::warn!(
                "{} changed but cannot be used ({e}); keeping the one read before",
                s.cred.source.describe()
            ),
        }
        s
    }

    /// `Ok` while the credential is valid (read again first if its file changed).
    pub fn check_now(&self) -> Result<()> {
        self.state().cred.check_time(SystemTime::now()).map(|_| ())
    }
}

impl ctadata_webdav::CredentialCheck for LiveCredential {
    fn check(&self) -> Result<()> {
        self.check_now()
    }
}

impl ResolvesClientCert for LiveCredential {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.state().key.clone();
        ClientIdentity { key }.resolve(root_hint_subjects, sigschemes)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A time in UTC for messages: `2026-11-25 21:26:22 UTC`.
pub fn utc(t: SystemTime) -> String {
    format!(
        "{} UTC",
        format_rfc3339(t).replace('T', " ").trim_end_matches('Z')
    )
}

/// Hands the whole chain to rustls whenever the server asks for a client certificate.
///
/// Built by hand because `reqwest::Identity::from_pem` checks the key against the leaf with
/// webpki, which rejects the proxy's critical ProxyCertInfo extension.
#[derive(Debug)]
pub struct ClientIdentity {
    key: Arc<CertifiedKey>,
}

impl ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if self.key.key.choose_scheme(sigschemes).is_none() {
            tracing::warn!(
                "the server accepts none of the signature schemes of the credential's key ({sigschemes:?}); no client certificate sent"
            );
            return None;
        }
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
