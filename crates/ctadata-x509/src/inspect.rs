//! What a grid certificate file holds: subjects, proxy type, validity, VOMS attributes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctadata_core::{AuthProblem, Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::der;

/// RFC 3820 ProxyCertInfo.
const OID_PROXY_CERT_INFO: &str = "1.3.6.1.5.5.7.1.14";
/// The same extension in the pre-RFC drafts (Globus Toolkit 3).
const OID_PROXY_CERT_INFO_DRAFT: &str = "1.3.6.1.4.1.3536.1.222";
/// VOMS attribute certificates, in a proxy extension.
const OID_VOMS_ACS: &str = "1.3.6.1.4.1.8005.100.100.5";
/// The VOMS attribute (IetfAttrSyntax: policy authority and FQANs).
const OID_VOMS_ATTRIBUTE: &str = "1.3.6.1.4.1.8005.100.100.4";

/// Which kind of proxy a certificate is, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyKind {
    /// Not a proxy: an end-entity (user, host) or CA certificate.
    NotAProxy,
    /// An RFC 3820 proxy, with its policy.
    Rfc3820(ProxyPolicy),
    /// A proxy of the pre-RFC drafts (Globus Toolkit 3 extension OID).
    Draft(ProxyPolicy),
    /// A legacy Globus Toolkit 2 proxy (`CN=proxy` or `CN=limited proxy`, no extension).
    Legacy {
        /// `CN=limited proxy`.
        limited: bool,
    },
}

impl ProxyKind {
    /// Is this a proxy of any kind?
    pub fn is_proxy(&self) -> bool {
        !matches!(self, ProxyKind::NotAProxy)
    }

    /// A short name: `RFC 3820`, `legacy (Globus GT2)`, `draft (Globus GT3)` or `none`.
    pub fn family(&self) -> &'static str {
        match self {
            ProxyKind::NotAProxy => "none",
            ProxyKind::Rfc3820(_) => "RFC 3820",
            ProxyKind::Draft(_) => "draft (Globus GT3)",
            ProxyKind::Legacy { .. } => "legacy (Globus GT2)",
        }
    }
}

impl std::fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyKind::NotAProxy => f.write_str("not a proxy"),
            ProxyKind::Rfc3820(p) | ProxyKind::Draft(p) => {
                write!(f, "{} {p} proxy", self.family())
            }
            ProxyKind::Legacy { limited } => write!(
                f,
                "{} {} proxy",
                self.family(),
                if *limited { "limited" } else { "full" }
            ),
        }
    }
}

/// The policy of an RFC 3820 (or draft) proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyPolicy {
    /// `id-ppl-inheritAll`: all the rights of the issuer.
    Impersonation,
    /// `id-ppl-independent`: no rights of the issuer.
    Independent,
    /// The Globus limited policy: no job submission.
    Limited,
    /// Another policy language, by OID.
    Other(String),
}

impl std::fmt::Display for ProxyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyPolicy::Impersonation => f.write_str("impersonation"),
            ProxyPolicy::Independent => f.write_str("independent"),
            ProxyPolicy::Limited => f.write_str("limited"),
            ProxyPolicy::Other(o) => write!(f, "restricted (policy language {o})"),
        }
    }
}

/// The VOMS attributes of one attribute certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VomsAttributes {
    /// The VO name (from the policy authority `vo://host:port`, else the first FQAN).
    pub vo: Option<String>,
    /// The VOMS server (`host:port`), when given.
    pub server: Option<String>,
    /// The FQANs, e.g. `/cta/Role=NULL/Capability=NULL`.
    pub fqans: Vec<String>,
}

/// What one certificate says.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject in the grid's slash form (`/O=Org/CN=Name`).
    pub subject: String,
    /// Issuer in the same form.
    pub issuer: String,
    /// Serial number (hex).
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The proxy kind.
    pub proxy: ProxyKind,
    /// A CA certificate (basicConstraints CA).
    pub is_ca: bool,
    /// VOMS attributes carried by this certificate (proxies only).
    pub voms: Vec<VomsAttributes>,
    /// The public key's bits (to match a private key against).
    pub(crate) public_key: Vec<u8>,
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) issuer_raw: Vec<u8>,
}

/// Is there a private key in the file, and can it be read without a pass phrase?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// No private key.
    Absent,
    /// An unencrypted private key.
    Present,
    /// An encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY` or `Proc-Type: 4,ENCRYPTED`).
    Encrypted,
}

/// A PEM file of certificates (and maybe a key), parsed.
#[derive(Debug, Clone)]
pub struct PemFile {
    /// Where it was read.
    pub path: PathBuf,
    /// The certificates in file order (for a proxy: the proxy first, then its chain).
    pub certs: Vec<CertInfo>,
    /// The same certificates in DER.
    pub ders: Vec<CertificateDer<'static>>,
    /// The private key's state.
    pub key: KeyState,
}

impl PemFile {
    /// The first certificate (the leaf: the proxy, or the end-entity certificate).
    pub fn leaf(&self) -> &CertInfo {
        &self.certs[0]
    }

    /// The end-entity certificate whose identity the chain carries (the first non-proxy).
    pub fn identity(&self) -> Option<&CertInfo> {
        self.certs.iter().find(|c| !c.proxy.is_proxy())
    }

    /// The certificates that limit the credential's validity (all but CA certificates).
    fn credential_certs(&self) -> impl Iterator<Item = &CertInfo> {
        self.certs.iter().filter(|c| !c.is_ca)
    }

    /// The certificate of the chain that expires first.
    pub fn earliest_end(&self) -> &CertInfo {
        self.credential_certs()
            .min_by_key(|c| c.not_after)
            .unwrap_or(self.leaf())
    }

    /// The certificate of the chain that becomes valid last.
    pub fn latest_start(&self) -> &CertInfo {
        self.credential_certs()
            .max_by_key(|c| c.not_before)
            .unwrap_or(self.leaf())
    }

    /// The VOMS attributes of the chain (the leaf's first).
    pub fn voms(&self) -> Vec<&VomsAttributes> {
        self.certs.iter().flat_map(|c| c.voms.iter()).collect()
    }

    /// The first VO name found in the VOMS attributes.
    pub fn vo(&self) -> Option<&str> {
        self.voms().into_iter().find_map(|v| v.vo.as_deref())
    }
}

/// The grid's slash form of a name: `/O=cta-data tests/CN=Alice/CN=12345`.
pub fn slash_name(name: &X509Name<'_>) -> String {
    let reg = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        for (i, attr) in rdn.iter().enumerate() {
            out.push(if i == 0 { '/' } else { '+' });
            let ty = x509_parser::objects::oid2abbrev(attr.attr_type(), reg)
                .map(|s| if s == "Email" { "emailAddress" } else { s }.to_string())
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
            out.push_str(&ty);
            out.push('=');
            match attr.as_str() {
                Ok(s) => out.push_str(s),
                Err(_) => out.push_str(&String::from_utf8_lossy(attr.attr_value().data)),
            }
        }
    }
    out
}

fn time_of(t: &x509_parser::time::ASN1Time) -> SystemTime {
    let s = t.timestamp();
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

/// Reads ProxyCertInfo contents: `SEQUENCE { pathLen INTEGER OPTIONAL, SEQUENCE { OID, ... } }`.
fn proxy_policy(ext_value: &[u8]) -> ProxyPolicy {
    let lang = der::read(ext_value).and_then(|(seq, _)| {
        seq.children()
            .into_iter()
            .find(|c| c.tag == 0x30)
            .and_then(|p| p.children().into_iter().find(|c| c.tag == 0x06))
            .map(|oid| der::oid_text(oid.value))
    });
    match lang.as_deref() {
        Some("1.3.6.1.5.5.7.21.1") => ProxyPolicy::Impersonation,
        Some("1.3.6.1.5.5.7.21.2") => ProxyPolicy::Independent,
        Some("1.3.6.1.4.1.3536.1.1.1.9") => ProxyPolicy::Limited,
        Some(o) => ProxyPolicy::Other(o.to_string()),
        None => ProxyPolicy::Other("unreadable".into()),
    }
}

/// Finds every VOMS attribute (`SEQUENCE { OID voms-attribute, SET { IetfAttrSyntax } }`).
fn voms_attributes(ext_value: &[u8]) -> Vec<VomsAttributes> {
    let Some((root, _)) = der::read(ext_value) else {
        return Vec::new();
    };
    let attr_oid = der::oid_contents(OID_VOMS_ATTRIBUTE);
    let mut all = Vec::new();
    der::walk(root, &mut all);
    let mut out = Vec::new();
    for t in all {
        if t.tag != 0x30 {
            continue;
        }
        let kids = t.children();
        let (Some(first), Some(values)) = (kids.first(), kids.get(1)) else {
            continue;
        };
        if first.tag != 0x06 || first.value != attr_oid.as_slice() || values.tag != 0x31 {
            continue;
        }
        for syntax in values.children().into_iter().filter(|c| c.tag == 0x30) {
            let mut v = VomsAttributes {
                vo: None,
                server: None,
                fqans: Vec::new(),
            };
            for part in syntax.children() {
                match part.tag {
                    // policyAuthority [0] GeneralNames: the URI `vo://host:port`
                    0xA0 => {
                        let mut names = Vec::new();
                        der::walk(part, &mut names);
                        if let Some(uri) = names.iter().find(|n| n.tag == 0x86) {
                            let uri = String::from_utf8_lossy(uri.value).to_string();
                            match uri.split_once("://") {
                                Some((vo, server)) => {
                                    v.vo = Some(vo.to_string());
                                    v.server = Some(server.to_string());
                                }
                                None => v.vo = Some(uri),
                            }
                        }
                    }
                    0x30 => {
                        for value in part.children() {
                            if matches!(value.tag, 0x04 | 0x0C | 0x16 | 0x13) {
                                v.fqans
                                    .push(String::from_utf8_lossy(value.value).to_string());
                            }
                        }
                    }
                    _ => {}
                }
            }
            if v.vo.is_none() {
                v.vo = v
                    .fqans
                    .first()
                    .and_then(|f| f.trim_start_matches('/').split('/').next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
            }
            out.push(v);
        }
    }
    out
}

/// Reads one DER certificate.
pub fn cert_info(der_bytes: &[u8]) -> std::result::Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der_bytes).map_err(|e| e.to_string())?;
    Ok(info_of(&cert))
}

fn info_of(cert: &X509Certificate<'_>) -> CertInfo {
    let subject = slash_name(cert.subject());
    let issuer = slash_name(cert.issuer());
    let mut proxy = ProxyKind::NotAProxy;
    let mut voms = Vec::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        match oid.as_str() {
            OID_PROXY_CERT_INFO => proxy = ProxyKind::Rfc3820(proxy_policy(ext.value)),
            OID_PROXY_CERT_INFO_DRAFT => proxy = ProxyKind::Draft(proxy_policy(ext.value)),
            OID_VOMS_ACS => voms = voms_attributes(ext.value),
            _ => {}
        }
    }
    if proxy == ProxyKind::NotAProxy {
        for (cn, limited) in [("/CN=proxy", false), ("/CN=limited proxy", true)] {
            if subject.ends_with(cn) && subject[..subject.len() - cn.len()] == issuer {
                proxy = ProxyKind::Legacy { limited };
            }
        }
    }
    CertInfo {
        subject,
        issuer,
        serial: cert.raw_serial_as_string(),
        not_before: time_of(&cert.validity().not_before),
        not_after: time_of(&cert.validity().not_after),
        proxy,
        is_ca: cert.is_ca(),
        voms,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
        subject_raw: cert.subject().as_raw().to_vec(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
    }
}

/// Does `issuer` (DER) hold the key that signed `cert` (DER)?
pub(crate) fn signed_by(cert: &[u8], issuer: &[u8]) -> bool {
    let (Ok((_, c)), Ok((_, i))) = (
        X509Certificate::from_der(cert),
        X509Certificate::from_der(issuer),
    ) else {
        return false;
    };
    c.verify_signature(Some(i.public_key())).is_ok()
}

/// The state of the private key in PEM text.
pub fn key_state(pem: &[u8]) -> KeyState {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || (text.contains("PRIVATE KEY-----") && text.contains("Proc-Type: 4,ENCRYPTED"))
    {
        KeyState::Encrypted
    } else if text.contains("PRIVATE KEY-----") {
        KeyState::Present
    } else {
        KeyState::Absent
    }
}

/// Parses PEM text (certificates and maybe a key) read from `path`.
pub fn parse_pem(data: &[u8], path: &Path) -> Result<PemFile> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(data)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Auth {
            problem: AuthProblem::Refused,
            message: format!("{} is not a valid PEM file: {e}", path.display()),
            hint: "give the PEM file of a proxy or certificate (as grid-proxy-init writes it)"
                .into(),
        })?;
    if ders.is_empty() {
        return Err(Error::Auth {
            problem: AuthProblem::Refused,
            message: format!("{} holds no certificate", path.display()),
            hint: "give the PEM file of a proxy or certificate (as grid-proxy-init writes it)"
                .into(),
        });
    }
    let mut certs = Vec::with_capacity(ders.len());
    for (i, d) in ders.iter().enumerate() {
        certs.push(cert_info(d).map_err(|e| Error::Auth {
            problem: AuthProblem::Refused,
            message: format!(
                "certificate {} of {} in {} cannot be read: {e}",
                i + 1,
                ders.len(),
                path.display()
            ),
            hint: "the file is damaged: make it again (grid-proxy-init for a proxy)".into(),
        })?);
    }
    Ok(PemFile {
        path: path.to_path_buf(),
        certs,
        ders,
        key: key_state(data),
    })
}

/// Reads and parses a PEM file.
pub fn read_pem_file(path: &Path) -> Result<PemFile> {
    let data = std::fs::read(path).map_err(|e| Error::local("read", path, e))?;
    parse_pem(&data, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VOMS extension as voms-proxy-fake writes it, cut down to the attribute.
    #[test]
    fn voms_attribute_is_found_anywhere_in_the_extension() {
        // SEQUENCE { SEQUENCE { OID voms-attr, SET { SEQUENCE { [0] { [6] "cta://voms.example:15000" },
        //   SEQUENCE { OCTET STRING "/cta/Role=NULL/Capability=NULL" } } } } }
        let uri = b"cta://voms.example:15000";
        let fqan = b"/cta/Role=NULL/Capability=NULL";
        let mut gn = vec![0x86, uri.len() as u8];
        gn.extend(uri);
        let mut pa = vec![0xA0, gn.len() as u8];
        pa.extend(&gn);
        let mut vals = vec![0x04, fqan.len() as u8];
        vals.extend(fqan);
        let mut vals_seq = vec![0x30, vals.len() as u8];
        vals_seq.extend(&vals);
        let mut syntax_body = pa.clone();
        syntax_body.extend(&vals_seq);
        let mut syntax = vec![0x30, syntax_body.len() as u8];
        syntax.extend(&syntax_body);
        let mut set = vec![0x31, syntax.len() as u8];
        set.extend(&syntax);
        let oid = der::oid_contents(OID_VOMS_ATTRIBUTE);
        let mut attr_body = vec![0x06, oid.len() as u8];
        attr_body.extend(&oid);
        attr_body.extend(&set);
        let mut attr = vec![0x30, attr_body.len() as u8];
        attr.extend(&attr_body);
        let mut outer = vec![0x30, attr.len() as u8];
        outer.extend(&attr);
        let v = voms_attributes(&outer);
        assert_eq!(
            v,
            vec![VomsAttributes {
                vo: Some("cta".into()),
                server: Some("voms.example:15000".into()),
                fqans: vec!["/cta/Role=NULL/Capability=NULL".into()],
            }]
        );
        assert!(voms_attributes(b"\x30\x03\x02\x01").is_empty());
    }

    #[test]
    fn proxy_policies() {
        // SEQUENCE { INTEGER 1, SEQUENCE { OID 1.3.6.1.5.5.7.21.1 } } as grid-proxy-init writes
        let v = [
            0x30, 0x0F, 0x02, 0x01, 0x01, 0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05,
            0x07, 0x15, 0x01,
        ];
        assert_eq!(proxy_policy(&v), ProxyPolicy::Impersonation);
        assert!(matches!(proxy_policy(&[0x30, 0x00]), ProxyPolicy::Other(_)));
    }

    #[test]
    fn key_states() {
        assert_eq!(
            key_state(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            KeyState::Encrypted
        );
        assert_eq!(
            key_state(b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"),
            KeyState::Encrypted
        );
        assert_eq!(
            key_state(b"-----BEGIN PRIVATE KEY-----\n"),
            KeyState::Present
        );
        assert_eq!(
            key_state(b"-----BEGIN CERTIFICATE-----\n"),
            KeyState::Absent
        );
    }
}
