//! The certificateservice double (SPEC section 5).
//!
//! * `POST certificate` JSON `{certificate, certificate_key, user?}`: the key must be one of
//!   [`super::PlatformConfig::cert_keys`] (else a `500` HTML page); `user` only for admins
//!   (else `403`). The PEM's first certificate is the one checked: expired gives `400`
//!   `certificate expired`; a chain that does not reach a trusted CA through the file's
//!   other certificates (signatures checked) gives `400` `invalid certificate verification
//!   chain : ...`; no certificate `400` `no valid certificate provided`. Valid until a day
//!   more than 7 days after today: `200` with `"validity": [reason, 400]` and nothing stored.
//!   Else stored, `200` `{"message": "Certificate stored", "validity": "<RFC 1123>"}`.
//! * `POST main-certificate` JSON `{certificate}`: admins only (else `401` `access denied`);
//!   the same checks, too long being a proper `400`;
//!   `200` `{"certificateUploaded": true, "message": "Shared certificate stored"}`.
//! * A body that is not JSON: `415`; JSON that does not parse: `400`.

use super::{html, internal_error, json_response, lock, HubUser, Shared, StoredCertificate};
use crate::serve::Body;
use http::{header, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x509_parser::certificate::X509Certificate;

/// The real service's words for a certificate valid too long.
pub const TOO_LONG: &str = "certificate validity too long, please generate a short-lived (max 7 day) proxy certificate for uploading. Please see https://ctaodc.ch/ for more details.";

pub(super) async fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    match rest {
        "" | "/" | "/health" => return html(200, "OK"),
        "/certificate" | "/main-certificate" => {}
        _ => return html(404, "Not Found"),
    }
    let user = match shared.authenticate(&req, "certificateservice") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if req.method() != Method::POST {
        return html(405, "Method Not Allowed");
    }
    let main = rest == "/main-certificate";
    if main && !user.admin {
        return html(401, "access denied");
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return html(400, "Bad Request"),
    };
    if !json {
        return html(
            415,
            "<!doctype html>\n<html lang=en>\n<title>415 Unsupported Media Type</title>\n<h1>Unsupported Media Type</h1>\n<p>Did not attempt to load JSON data because the request Content-Type was not &#39;application/json&#39;.</p>\n",
        );
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return html(
            400,
            "<!doctype html>\n<html lang=en>\n<title>400 Bad Request</title>\n<h1>Bad Request</h1>\n<p>Failed to decode JSON object</p>\n",
        );
    };
    if main {
        shared_certificate(shared, &v)
    } else {
        personal(shared, &user, &v)
    }
}

fn personal(shared: &Shared, user: &HubUser, v: &serde_json::Value) -> Response<Body> {
    let Some(key) = v
        .get("certificate_key")
        .and_then(|k| k.as_str())
        .filter(|k| shared.cert_keys.iter().any(|a| a == k))
    else {
        return internal_error();
    };
    let owner = match v.get("user").and_then(|u| u.as_str()) {
        Some(u) if !user.admin => {
            return html(
                403,
                &format!("only administrators may store a certificate for another user ({u})"),
            )
        }
        Some(u) => u.to_string(),
        None => user.name.clone(),
    };
    let Some(pem) = v
        .get("certificate")
        .and_then(|c| c.as_str())
        .filter(|c| !c.trim().is_empty())
    else {
        return html(400, "no valid certificate provided");
    };
    let not_after = match verify(pem, &shared.trusted_ca_pem) {
        Ok(t) => t,
        Err(m) => return html(400, &m),
    };
    if too_long(not_after) {
        return json_response(
            200,
            &serde_json::json!({"message": "Certificate stored", "validity": [TOO_LONG, 400]}),
        );
    }
    let mut stored = lock(&shared.stored);
    stored.retain(|s| !(s.user == owner && s.key == key));
    stored.push(StoredCertificate {
        user: owner,
        key: key.to_string(),
        pem: pem.to_string(),
    });
    json_response(
        200,
        &serde_json::json!({
            "message": "Certificate stored",
            "validity": httpdate::fmt_http_date(not_after),
        }),
    )
}

fn shared_certificate(shared: &Shared, v: &serde_json::Value) -> Response<Body> {
    let Some(pem) = v
        .get("certificate")
        .and_then(|c| c.as_str())
        .filter(|c| !c.trim().is_empty())
    else {
        return html(400, "requests missing certificate or cabundle");
    };
    let not_after = match verify(pem, &shared.trusted_ca_pem) {
        Ok(t) => t,
        Err(m) => return html(400, &m),
    };
    if too_long(not_after) {
        return html(400, TOO_LONG);
    }
    *lock(&shared.shared_cert) = Some(pem.to_string());
    json_response(
        200,
        &serde_json::json!({
            "message": "Shared certificate stored",
            "cabundleUploaded": false,
            "certificateUploaded": true,
        }),
    )
}

/// `validity.date() > date.today() + timedelta(days=7)`, in UTC.
fn too_long(not_after: SystemTime) -> bool {
    let day = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 86_400
    };
    day(not_after) > day(SystemTime::now()) + 7
}

fn parse_all(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(|c| c.ok())
        .map(|c| c.to_vec())
        .collect()
}

fn signed_by(c: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    c.issuer().as_raw() == issuer.subject().as_raw()
        && c.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks a PEM as the service does; the first certificate's end of validity on success.
pub fn verify(pem: &str, trusted_pem: &[String]) -> Result<SystemTime, String> {
    let ders = parse_all(pem);
    if ders.is_empty() {
        return Err("no valid certificate provided".into());
    }
    let certs: Vec<X509Certificate<'_>> = ders
        .iter()
        .filter_map(|d| x509_parser::parse_x509_certificate(d).ok().map(|(_, c)| c))
        .collect();
    if certs.len() != ders.len() {
        return Err("invalid certificate : unreadable certificate".into());
    }
    let trusted_ders: Vec<Vec<u8>> = trusted_pem.iter().flat_map(|p| parse_all(p)).collect();
    let trusted: Vec<X509Certificate<'_>> = trusted_ders
        .iter()
        .filter_map(|d| x509_parser::parse_x509_certificate(d).ok().map(|(_, c)| c))
        .collect();
    let leaf = &certs[0];
    let now = SystemTime::now();
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(leaf.validity().not_after.timestamp().max(0) as u64);
    if not_after <= now {
        return Err("certificate expired".into());
    }
    let mut cur = leaf;
    for _ in 0..=certs.len() {
        if trusted.iter().any(|t| signed_by(cur, t)) {
            return Ok(not_after);
        }
        match certs
            .iter()
            .find(|c| !std::ptr::eq(*c, cur) && signed_by(cur, c))
        {
            Some(up) => {
                if !up.validity().is_valid() {
                    return Err(
                        "invalid certificate verification chain : certificate has expired".into(),
                    );
                }
                cur = up;
            }
            None => break,
        }
    }
    Err("invalid certificate verification chain : unable to get local issuer certificate".into())
}

// ----- certificates for the tests --------------------------------------------------------

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

/// The RFC 3820 `proxyCertInfo` extension.
const PROXY_CERT_INFO: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 14];
/// Its value for the inherit-all policy (`id-ppl-inheritAll`).
const INHERIT_ALL: [u8; 14] = [
    0x30, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x15, 0x01,
];

/// `now + secs` (negative for the past).
fn at(secs: i64) -> SystemTime {
    let now = SystemTime::now();
    if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    }
}

/// A throw-away grid CA (rcgen) that issues user certificates, which sign RFC 3820 proxies.
pub struct ProxyPki {
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ProxyPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyPki").finish_non_exhaustive()
    }
}

/// A user certificate and its key, able to sign proxies.
pub struct GridUser {
    /// The certificate in PEM.
    pub cert_pem: String,
    /// Its key (PKCS#8 PEM).
    pub key_pem: String,
    params: CertificateParams,
    key: KeyPair,
}

impl std::fmt::Debug for GridUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridUser").finish_non_exhaustive()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cta-data tests");
    dn.push(DnType::CommonName, cn);
    dn
}

impl ProxyPki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> ProxyPki {
        let key = KeyPair::generate().expect("generate a key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = dn(name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = at(-86_400).into();
        p.not_after = at(86_400 * 3650).into();
        let cert = p.self_signed(&key).expect("self-sign the CA");
        ProxyPki {
            ca_pem: cert.pem(),
            ca: Issuer::new(p, key),
        }
    }

    /// The CA certificate in PEM (what the certificateservice trusts).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A user certificate valid from `now + from` to `now + to` (seconds, may be negative).
    pub fn user(&self, cn: &str, from: i64, to: i64) -> GridUser {
        let key = KeyPair::generate().expect("generate a key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = dn(cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = at(from).into();
        p.not_after = at(to).into();
        let cert = p
            .signed_by(&key, &self.ca)
            .expect("sign the user certificate");
        GridUser {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            params: p,
            key,
        }
    }
}

impl GridUser {
    /// An RFC 3820 proxy signed by this user, valid from `now + from` to `now + to`
    /// (seconds): (certificate PEM, key PEM).
    pub fn proxy(&self, from: i64, to: i64) -> (String, String) {
        let key = KeyPair::generate().expect("generate a key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut name = self.params.distinguished_name.clone();
        name.push(DnType::CommonName, "1234567890");
        p.distinguished_name = name;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut ext = CustomExtension::from_oid_content(&PROXY_CERT_INFO, INHERIT_ALL.to_vec());
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
        p.not_before = at(from).into();
        p.not_after = at(to).into();
        let issuer = Issuer::new(self.params.clone(), &self.key);
        let cert = p.signed_by(&key, &issuer).expect("sign the proxy");
        (cert.pem(), key.serialize_pem())
    }

    /// The file `grid-proxy-init` writes: the proxy, its key, then the user certificate.
    pub fn proxy_file(&self, from: i64, to: i64) -> String {
        let (cert, key) = self.proxy(from, to);
        format!("{cert}{key}{}", self.cert_pem)
    }
}
