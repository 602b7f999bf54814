//! From a resolved profile to WebDAV settings: the profile's trust ([`profile_tls`]) and
//! the URL, timeouts and jobs every door-facing backend shares ([`webdav_config`]).

use std::path::PathBuf;
use std::time::Duration;

use ctadata_core::config::{EnvSnapshot, Profile, ResolvedProfile};
use ctadata_core::{Error, Result};

use crate::config::{Auth, WebDavConfig};
use crate::tls::TlsOptions;

/// The TLS settings of a profile: its `ca_file`, its `ca_dir` (else `X509_CERT_DIR`) and the
/// system roots, without a client identity.
pub fn profile_tls(profile: &Profile, env: &EnvSnapshot, insecure: bool) -> TlsOptions {
    TlsOptions {
        ca_file: profile.ca_file.clone(),
        ca_dir: profile
            .ca_dir
            .clone()
            .or_else(|| env.get("X509_CERT_DIR").map(PathBuf::from)),
        insecure,
        system_roots: true,
        client_identity: None,
    }
}

/// The WebDAV settings every door-facing backend shares: URL, trust, timeouts, jobs.
pub fn webdav_config(
    profile: &ResolvedProfile,
    backend_name: &'static str,
    auth: Auth,
    env: &EnvSnapshot,
    insecure: bool,
) -> Result<WebDavConfig> {
    let p = &profile.profile;
    let url = p.url.clone().ok_or_else(|| {
        Error::config(format!("profile '{}' has no url", profile.name), "set url")
    })?;
    let mut cfg = WebDavConfig::new(url, backend_name, auth);
    cfg.tls = profile_tls(p, env, insecure);
    if let Some(s) = p.connect_timeout {
        cfg.connect_timeout = Duration::from_secs(s);
    }
    if let Some(s) = p.read_timeout {
        cfg.read_timeout = Duration::from_secs(s);
    }
    if let Some(s) = p.idle_timeout {
        cfg.idle_timeout = Duration::from_secs(s.max(1));
    }
    if let Some(j) = p.jobs {
        cfg.default_jobs = j.max(1) as usize;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctadata_core::config::load_from_map;

    #[test]
    fn a_profile_gives_url_trust_timeouts_and_jobs() {
        let env = EnvSnapshot::from_pairs([
            ("HOME", "/nonexistent-home"),
            ("X509_CERT_DIR", "/from/env"),
        ]);
        let r = load_from_map(
            Some("door"),
            [
                ("backend", "dcache"),
                ("url", "https://door:2880"),
                ("connect_timeout", "7"),
                ("read_timeout", "9"),
                ("idle_timeout", "11"),
                ("jobs", "0"),
            ],
            &env,
        )
        .unwrap();
        let c = webdav_config(&r, "dcache", Auth::None, r.env(), false).unwrap();
        assert_eq!(c.url, "https://door:2880");
        assert_eq!(c.backend_name, "dcache");
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        assert_eq!(c.read_timeout, Duration::from_secs(9));
        assert_eq!(c.idle_timeout, Duration::from_secs(11));
        assert_eq!(c.default_jobs, 1, "at least one job");
        assert_eq!(c.tls.ca_dir, Some(PathBuf::from("/from/env")));
        assert!(!c.tls.insecure);
    }
}
