//! `cert upload` / `cert upload-shared`: delegating a grid proxy to the platform's
//! certificateservice.
//!
//! The file is checked locally first (PEM, certificate, key, chain, validity, at most 7
//! days, allowed key), so that a refusal says exactly what is wrong before anything is sent.

use std::path::Path;
use std::time::SystemTime;

use ctadata::config::{self, LoadOptions, ResolvedProfile};
use ctadata::porting::certificateservice::{
    allowed_keys, check_certificate_file, check_key, http_time, CertificateService, Stored,
};
use ctadata::Result;

use crate::cli::Global;

/// The profile whose certificateservice to use: the chosen one when it names one, else
/// `platform` (so `cert upload` works without `--profile platform`).
fn service_profile(g: &Global, r: &ResolvedProfile) -> Result<ResolvedProfile> {
    if r.profile.certificateservice_url.is_some() {
        return Ok(r.clone());
    }
    let opts = LoadOptions::default()
        .with_config_file(g.config.clone())
        .with_profile(Some("platform".into()))
        .with_profile_origin(Some(
            "cert upload, as the current profile has no certificateservice_url".into(),
        ))
        .with_url(None)
        .with_ca_file(g.ca_file.clone())
        .with_token_file(g.token_file.clone())
        .with_system_file(None);
    config::load(&opts, r.env())
}

fn report(g: &Global, what: &str, file: &Path, cs: &CertificateService, stored: &Stored) {
    if g.json {
        // A failed write to stdout is all that could go wrong here, and it is not worth
        // failing an upload that succeeded.
        let _ = crate::commands::emit_json(&stored.answer);
        return;
    }
    let message = if stored.message.is_empty() {
        "stored".to_string()
    } else {
        stored.message.clone()
    };
    let validity = stored
        .validity
        .as_deref()
        .map(|v| format!(", valid until {v}"))
        .unwrap_or_default();
    println!(
        "{what} {} -> {}: {message}{validity}",
        file.display(),
        cs.url()
    );
}

/// `cert upload FILE --key KEY [--user NAME]`.
pub async fn upload(
    g: &Global,
    r: &ResolvedProfile,
    file: &Path,
    key: &str,
    user: Option<&str>,
) -> Result<()> {
    check_key(key, &allowed_keys(r.env()))?;
    let checked = check_certificate_file(file, SystemTime::now())?;
    tracing::info!(
        subject = %checked.subject,
        until = %http_time(checked.not_after),
        proxy = checked.is_proxy,
        certificates = checked.certificates,
        "certificate checked"
    );
    let profile = service_profile(g, r)?;
    let cs = CertificateService::open(&profile, profile.env(), g.insecure)?;
    let stored = cs.upload_personal(&checked, key, user).await?;
    let what = match user {
        Some(u) => format!("uploaded (key {key}, for {u})"),
        None => format!("uploaded (key {key})"),
    };
    report(g, &what, file, &cs, &stored);
    Ok(())
}

/// `cert upload-shared FILE`.
pub async fn upload_shared(g: &Global, r: &ResolvedProfile, file: &Path) -> Result<()> {
    let checked = check_certificate_file(file, SystemTime::now())?;
    let profile = service_profile(g, r)?;
    let cs = CertificateService::open(&profile, profile.env(), g.insecure)?;
    let stored = cs.upload_shared(&checked).await?;
    report(g, "uploaded (shared)", file, &cs, &stored);
    Ok(())
}
