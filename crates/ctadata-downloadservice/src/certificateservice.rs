//! The certificateservice: delegating a grid proxy to the platform, so that the
//! downloadservice can reach the storage as the user.
//!
//! A certificate file is checked here before it is sent, with one precise message per
//! problem: not PEM, no certificate, no private key, a proxy without the certificate that
//! signed it, expired, not yet valid, valid for more than 7 days (the service refuses those),
//! a certificate key outside `CTACS_ALLOWED_CERT_KEYS` (default `cta,lst,arc`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::credentials::{human_duration, CLOCK_SKEW};
use ctadata_core::{AuthProblem, Error, Result};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Url;
use rustls_pki_types::pem::{PemObject, SectionKind};

use crate::client::{content_type, location, read_limited, short_text, Session};

/// The keys a personal certificate may be stored for when `CTACS_ALLOWED_CERT_KEYS` is unset.
pub const DEFAULT_ALLOWED_KEYS: &str = "cta,lst,arc";

/// The longest validity the service accepts, in days from today.
pub const MAX_VALIDITY_DAYS: u64 = 7;

/// The RFC 3820 `proxyCertInfo` extension.
const PROXY_CERT_INFO: &str = "1.3.6.1.5.5.7.1.14";

/// The certificate keys allowed by `CTACS_ALLOWED_CERT_KEYS` (default `cta,lst,arc`).
pub fn allowed_keys(env: &EnvSnapshot) -> Vec<String> {
    env.get("CTACS_ALLOWED_CERT_KEYS")
        .unwrap_or(DEFAULT_ALLOWED_KEYS)
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

/// Refuses a certificate key that is not allowed.
pub fn check_key(key: &str, allowed: &[String]) -> Result<()> {
    if allowed.iter().any(|k| k == key) {
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "the certificate key '{key}' is not one of the allowed keys: {} (CTACS_ALLOWED_CERT_KEYS)",
            allowed.join(", ")
        ),
        format!(
            "give one of them with --key, e.g. --key {}",
            allowed.first().map(String::as_str).unwrap_or("cta")
        ),
    ))
}

/// What a checked certificate file holds.
#[derive(Debug, Clone)]
pub struct CheckedCertificate {
    /// The file.
    pub path: PathBuf,
    /// Its whole text, sent as it is.
    pub pem: String,
    /// Subject of the first certificate.
    pub subject: String,
    /// Issuer of the first certificate.
    pub issuer: String,
    /// Start of validity of the first certificate.
    pub not_before: SystemTime,
    /// End of validity of the first certificate.
    pub not_after: SystemTime,
    /// The first certificate is a proxy (RFC 3820 or legacy Globus).
    pub is_proxy: bool,
    /// Certificates in the file.
    pub certificates: usize,
}

fn unix(ts: i64) -> SystemTime {
    if ts >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(ts as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(ts.unsigned_abs())
    }
}

/// A time as the services write it (`Tue, 02 Dec 2025 10:00:00 GMT`).
pub fn http_time(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

fn days(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
    }
}

const PROXY_HINT: &str = "give the proxy file itself (proxy certificate, its key and the user certificate in one file, as 'grid-proxy-init' or 'voms-proxy-init' write it to /tmp/x509up_u<uid>)";
const FRESH_HINT: &str = "make a fresh short-lived proxy ('grid-proxy-init -valid 168:00' or 'voms-proxy-init --valid 168:00') and upload that file";

fn is_proxy(c: &x509_parser::certificate::X509Certificate<'_>) -> bool {
    if c.extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == PROXY_CERT_INFO)
    {
        return true;
    }
    // Legacy Globus proxies: the subject ends in CN=proxy or CN=limited proxy.
    c.subject()
        .iter_common_name()
        .last()
        .and_then(|cn| cn.as_str().ok())
        .is_some_and(|cn| cn == "proxy" || cn == "limited proxy")
}

/// Checks the text of a certificate file (`path` names it in messages) at time `now`.
pub fn check_certificate_pem(
    path: &Path,
    data: &[u8],
    now: SystemTime,
) -> Result<CheckedCertificate> {
    let file = path.display();
    let Ok(text) = std::str::from_utf8(data) else {
        return Err(Error::usage(
            format!("{file} is not a PEM file: it is binary (a DER or PKCS#12 file?)"),
            PROXY_HINT,
        ));
    };
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .filter_map(|l| l.strip_suffix("-----"))
        .collect();
    if labels.is_empty() {
        return Err(Error::usage(
            format!("{file} is not a PEM file: it has no '-----BEGIN ...-----' block"),
            PROXY_HINT,
        ));
    }
    let mut certs = Vec::new();
    let mut keys = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
        let (kind, der) = section
            .map_err(|e| Error::usage(format!("{file} is not valid PEM: {e}"), PROXY_HINT))?;
        match kind {
            SectionKind::Certificate => certs.push(der),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                keys += 1
            }
            _ => {}
        }
    }
    let found = labels.join(", ");
    if certs.is_empty() {
        return Err(Error::usage(
            format!("{file} holds no certificate (its PEM blocks: {found})"),
            PROXY_HINT,
        ));
    }
    if keys == 0 {
        let encrypted = labels.iter().any(|l| l.contains("ENCRYPTED"));
        return Err(Error::usage(
            if encrypted {
                format!("{file} holds no unencrypted private key (only an encrypted one): the certificateservice uses the proxy as its client certificate, so its key must be in the file, readable")
            } else {
                format!("{file} holds no private key (its PEM blocks: {found}): the certificateservice uses the proxy as its client certificate, so its key must be in the file")
            },
            format!("{PROXY_HINT}, not usercert.pem"),
        ));
    }
    let parsed: Vec<_> = certs
        .iter()
        .enumerate()
        .map(|(i, der)| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, c)| c)
                .map_err(|e| {
                    Error::usage(
                        format!(
                            "certificate {} of {file} cannot be read as X.509: {e}",
                            i + 1
                        ),
                        PROXY_HINT,
                    )
                })
        })
        .collect::<Result<_>>()?;
    let leaf = &parsed[0];
    let subject = leaf.subject().to_string();
    let issuer = leaf.issuer().to_string();
    // A proxy is signed by the user's certificate, which must come along.
    let mut cur = leaf;
    for _ in 0..parsed.len() {
        if !is_proxy(cur) {
            break;
        }
        match parsed
            .iter()
            .find(|c| c.subject().as_raw() == cur.issuer().as_raw())
        {
            Some(up) if !std::ptr::eq(up, cur) => cur = up,
            _ => {
                return Err(Error::usage(
                    format!(
                        "{file} holds a proxy certificate without the certificate that signed it ({}): the certificateservice refuses a proxy whose chain is incomplete",
                        cur.issuer()
                    ),
                    PROXY_HINT,
                ))
            }
        }
    }
    let not_before = unix(leaf.validity().not_before.timestamp());
    let not_after = unix(leaf.validity().not_after.timestamp());
    if not_after <= now {
        let ago = now.duration_since(not_after).unwrap_or_default();
        return Err(Error::Auth {
            problem: AuthProblem::Expired,
            message: format!(
                "the certificate in {file} ({subject}) expired on {} ({} ago)",
                http_time(not_after),
                human_duration(ago)
            ),
            hint: FRESH_HINT.into(),
        });
    }
    if not_before > now + CLOCK_SKEW {
        let wait = not_before.duration_since(now).unwrap_or_default();
        return Err(Error::usage(
            format!(
                "the certificate in {file} ({subject}) is not valid yet: its validity starts on {} (in {})",
                http_time(not_before),
                human_duration(wait)
            ),
            "check this computer's clock, or wait until then",
        ));
    }
    if days(not_after) > days(now) + MAX_VALIDITY_DAYS as i64 {
        return Err(Error::usage(
            format!(
                "the certificate in {file} ({subject}) is valid until {}, more than {MAX_VALIDITY_DAYS} days from today: the certificateservice stores only short-lived proxies",
                http_time(not_after)
            ),
            FRESH_HINT,
        ));
    }
    Ok(CheckedCertificate {
        path: path.to_path_buf(),
        pem: text.to_string(),
        subject,
        issuer,
        not_before,
        not_after,
        is_proxy: is_proxy(leaf),
        certificates: parsed.len(),
    })
}

/// Reads and checks a certificate file at time `now`.
pub fn check_certificate_file(path: &Path, now: SystemTime) -> Result<CheckedCertificate> {
    let data = std::fs::read(path).map_err(|e| Error::local("read", path, e))?;
    check_certificate_pem(path, &data, now)
}

/// What the service said when it stored a certificate.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its message (`Certificate stored`).
    pub message: String,
    /// Until when the stored certificate is valid, as the service wrote it.
    pub validity: Option<String>,
    /// The whole answer.
    pub answer: serde_json::Value,
}

/// A client of the certificateservice with the hub token.
#[derive(Debug)]
pub struct CertificateService {
    s: Session,
}

impl CertificateService {
    /// The service of a resolved profile (its `certificateservice_url`).
    pub fn open(profile: &ResolvedProfile, env: &EnvSnapshot, insecure: bool) -> Result<Self> {
        let url = profile
            .profile
            .certificateservice_url
            .clone()
            .ok_or_else(|| {
                Error::config(
                    format!("profile '{}' has no certificateservice_url", profile.name),
                    "use --profile platform, set certificateservice_url in the profile, or export CTACS_URL",
                )
            })?;
        Ok(Self {
            s: Session::new(
                profile,
                env,
                insecure,
                &url,
                "certificateservice_url",
                "certificateservice",
            )?,
        })
    }

    /// The service URL.
    pub fn url(&self) -> &Url {
        &self.s.base
    }

    /// Stores the user's own proxy for `key` (`user`: for another user, admins only).
    pub async fn upload_personal(
        &self,
        cert: &CheckedCertificate,
        key: &str,
        user: Option<&str>,
    ) -> Result<Stored> {
        let mut body = serde_json::json!({
            "certificate": cert.pem,
            "certificate_key": key,
        });
        if let Some(u) = user {
            body["user"] = serde_json::Value::from(u);
        }
        let answer = self.post("certificate", &body, cert, Some(key)).await?;
        let message = answer
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        match answer.get("validity") {
            // The service answers 200 with a list [reason, 400] when it did not store it.
            Some(serde_json::Value::Array(parts)) => {
                let reason = parts
                    .iter()
                    .find_map(|p| p.as_str())
                    .unwrap_or("no reason given")
                    .to_string();
                let code = parts.iter().find_map(|p| p.as_u64());
                Err(refusal(cert, &reason, code))
            }
            Some(serde_json::Value::String(v)) => Ok(Stored {
                message,
                validity: Some(v.clone()),
                answer: answer.clone(),
            }),
            _ => Ok(Stored {
                message,
                validity: None,
                answer: answer.clone(),
            }),
        }
    }

    /// Stores the shared robot certificate (admins).
    pub async fn upload_shared(&self, cert: &CheckedCertificate) -> Result<Stored> {
        let body = serde_json::json!({ "certificate": cert.pem });
        let answer = self.post("main-certificate", &body, cert, None).await?;
        if answer.get("certificateUploaded").and_then(|v| v.as_bool()) == Some(false) {
            return Err(refusal(
                cert,
                "the service did not store the certificate",
                None,
            ));
        }
        Ok(Stored {
            message: answer
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
            validity: Some(http_time(cert.not_after)),
            answer,
        })
    }

    async fn post(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
        cert: &CheckedCertificate,
        key: Option<&str>,
    ) -> Result<serde_json::Value> {
        let url = self.s.url(endpoint, "");
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let (resp, token) = self
            .s
            .send(&url, |c| {
                c.post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(ACCEPT, "application/json")
                    .body(payload.clone())
            })
            .await?;
        let status = resp.status().as_u16();
        let ctype = content_type(&resp);
        let loc = location(&resp);
        let raw = read_limited(resp, 1 << 16).await;
        let text = String::from_utf8_lossy(&raw).to_string();
        let file = cert.path.display();
        if status == 401
            && endpoint == "main-certificate"
            && serde_json::from_str::<serde_json::Value>(&text).is_err()
        {
            return Err(Error::PermissionDenied {
                path: redact_url(&url),
                message: format!(
                    "only hub administrators may upload the shared certificate (HTTP 401: {})",
                    short_text(&text)
                ),
            });
        }
        if let Some(e) = self.s.auth_failure(status, loc.as_deref(), &text, &token) {
            return Err(e);
        }
        let said = short_text(&text);
        match status {
            200 => {
                self.s.refuse_html(
                    ctype.as_deref(),
                    &raw,
                    &format!("the upload of {file}"),
                    &token,
                )?;
                serde_json::from_slice(&raw).map_err(|e| Error::protocol(redact_url(&url), Some(200), format!("the answer is not JSON ({e}): '{said}'")))
            }
            400 => Err(refusal(cert, &said, Some(400))),
            403 => Err(Error::PermissionDenied {
                path: redact_url(&url),
                message: format!("the certificateservice refused (403): {said}"),
            }),
            415 => Err(Error::protocol(redact_url(&url), Some(415), format!("the certificateservice did not take the request as JSON: {said}"))),
            500 if key.is_some() => Err(Error::protocol(redact_url(&url), Some(500), format!(
                    "the certificateservice failed storing the certificate from {file} for the key '{}'; it fails this way for a key it does not accept (by default it accepts cta and lst) ({})",
                    key.unwrap_or_default(),
                    said.chars().take(60).collect::<String>()
                ))),
            _ => Err(Error::protocol(redact_url(&url), Some(status), format!("the upload of {file} failed: {said}"))),
        }
    }
}

fn redact_url(u: &Url) -> String {
    ctadata_webdav::urls::redact(u)
}

/// The certificateservice did not store the certificate.
fn refusal(cert: &CheckedCertificate, reason: &str, code: Option<u64>) -> Error {
    let lower = reason.to_ascii_lowercase();
    let hint = if lower.contains("too long") || lower.contains("expired") {
        FRESH_HINT.to_string()
    } else if lower.contains("chain") {
        format!(
            "{PROXY_HINT}; the service must also trust the CA that issued your user certificate"
        )
    } else {
        "check the file with 'cta-data cert info FILE'".to_string()
    };
    Error::Auth {
        problem: AuthProblem::Refused,
        message: format!(
            "the certificateservice did not store the certificate from {}{}: {reason}",
            cert.path.display(),
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ),
        hint,
    }
}
