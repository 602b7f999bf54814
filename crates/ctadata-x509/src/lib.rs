//! The `x509` backend: WebDAV to the dCache door with an RFC 3820 proxy certificate (or an
//! end-entity certificate) as the TLS client identity.
//!
//! The credential is found by [`credential::locate`] (profile `proxy`, profile `cert`/`key`,
//! `X509_USER_PROXY`, `X509_USER_CERT`/`X509_USER_KEY`, `/tmp/x509up_u<uid>`,
//! `~/.globus/usercert.pem`), read and checked before any connection
//! ([`credential::Credential::load`], [`credential::Credential::check_time`]), and handed to
//! rustls whole (proxy, intermediate proxies, user certificate) as the client identity.
//! Trust: the system roots, the profile's `ca_file`, and a hashed CA directory (`ca_dir`,
//! else `X509_CERT_DIR`, else `/etc/grid-security/certificates` when it exists); CRL files
//! (`*.r0`) in that directory are not read.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::{Error, Result};
use ctadata_webdav::{Auth, WebDav, WebDavConfig};

mod der;

pub mod credential;
pub mod inspect;

pub use credential::{Credential, CredentialKind, CredentialSource};
pub use inspect::{CertInfo, KeyState, PemFile, ProxyKind, ProxyPolicy, VomsAttributes};

/// The grid's CA directory, used when neither `ca_dir` nor `X509_CERT_DIR` is set.
pub const GRID_CA_DIR: &str = "/etc/grid-security/certificates";

/// The backend's name in messages and capabilities.
pub const BACKEND_NAME: &str = "x509";

/// Options the program passes beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct X509Options {
    /// `--insecure`.
    pub insecure: bool,
}

/// The WebDAV settings of an x509 profile, without the client identity: an `https` URL, the
/// profile's trust plus the grid CA directory default (`grid_ca_dir`, when it exists and
/// neither `ca_dir` nor `X509_CERT_DIR` is set).
pub fn webdav_config(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    opts: &X509Options,
    grid_ca_dir: &Path,
) -> Result<WebDavConfig> {
    let mut cfg =
        ctadata_webdav::webdav_config(profile, BACKEND_NAME, Auth::None, env, opts.insecure)?;
    if !cfg
        .url
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("https://")
    {
        let origin = profile
            .origins
            .get("url")
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        return Err(Error::config(
            format!(
                "profile '{}' (backend x509) has url {}{origin}, but a client certificate is only sent over TLS",
                profile.name, cfg.url
            ),
            "use the https:// URL of the door",
        ));
    }
    if cfg.tls.ca_dir.is_none() && grid_ca_dir.is_dir() {
        cfg.tls.ca_dir = Some(grid_ca_dir.to_path_buf());
    }
    Ok(cfg)
}

/// Finds, reads and checks the profile's credential at `now`; a credential that expires
/// within ten minutes is returned with a warning.
pub fn checked_credential(
    profile: &ResolvedProfile,
    env: &EnvSnapshot,
    now: SystemTime,
) -> Result<(Credential, Option<String>)> {
    let source = credential::locate(profile, env)?;
    let cred = Credential::load(&source)?;
    let warning = cred.check_time(now)?;
    Ok((cred, warning))
}

/// Opens the x509 backend of a resolved profile. The credential is checked here, before any
/// connection: a missing, expired or broken one fails at once; one that expires within ten
/// minutes is used with a warning (`tracing::warn!`).
pub fn open(profile: &ResolvedProfile, env: &EnvSnapshot, opts: &X509Options) -> Result<WebDav> {
    let mut cfg = webdav_config(profile, env, opts, Path::new(GRID_CA_DIR))?;
    let (cred, warning) = checked_credential(profile, env, SystemTime::now())?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    tracing::debug!(
        source = %cred.source.origin,
        subject = %cred.file.leaf().subject,
        chain = cred.file.certs.len(),
        "x509 credential"
    );
    // Read again when its file changes and checked before every request: a mount or a
    // long transfer picks up a renewed proxy, and an expired one is an error, not a hang.
    let live = Arc::new(credential::LiveCredential::new(cred));
    cfg.tls.client_identity = Some(live.clone());
    cfg.credential_check = Some(live);
    WebDav::new(cfg)
}

/// The file `cert info` reads when none is given: the credential the profile would use.
pub fn default_info_file(profile: &ResolvedProfile, env: &EnvSnapshot) -> Result<PathBuf> {
    credential::locate(profile, env).map(|s| s.cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctadata_core::config::{LoadOptions, Profile};

    fn profile(url: &str, extra: impl FnOnce(&mut Profile)) -> ResolvedProfile {
        let env = EnvSnapshot::from_pairs([("HOME", "/nonexistent-home")]);
        let mut r = ctadata_core::config::load(
            &LoadOptions::default()
                .with_profile(Some("grid".into()))
                .with_system_file(Some("/nonexistent/system.toml".into()))
                .with_config_file(None),
            &env,
        )
        .unwrap();
        r.profile.url = Some(url.into());
        extra(&mut r.profile);
        r
    }

    #[test]
    fn plain_http_is_refused() {
        let p = profile("http://127.0.0.1:1", |_| {});
        let e = webdav_config(
            &p,
            &EnvSnapshot::default(),
            &X509Options::default(),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
        assert!(e.to_string().contains("http://127.0.0.1:1"), "{e}");
        assert!(e.hint().unwrap().contains("https://"), "{e:?}");
    }

    #[test]
    fn grid_ca_dir_is_the_default_only_when_it_exists_and_nothing_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let none = EnvSnapshot::default();
        let o = X509Options::default();
        let p = profile("https://door:2880", |_| {});
        let c = webdav_config(&p, &none, &o, dir.path()).unwrap();
        assert_eq!(c.tls.ca_dir.as_deref(), Some(dir.path()));
        assert_eq!(c.backend_name, "x509");
        let c = webdav_config(&p, &none, &o, Path::new("/nonexistent/certificates")).unwrap();
        assert_eq!(c.tls.ca_dir, None);
        let env = EnvSnapshot::from_pairs([("X509_CERT_DIR", "/from/env")]);
        let c = webdav_config(&p, &env, &o, dir.path()).unwrap();
        assert_eq!(c.tls.ca_dir, Some(PathBuf::from("/from/env")));
        let p = profile("https://door:2880", |p| {
            p.ca_dir = Some("/from/profile".into())
        });
        let c = webdav_config(&p, &none, &o, dir.path()).unwrap();
        assert_eq!(c.tls.ca_dir, Some(PathBuf::from("/from/profile")));
    }
}
