//! Property tests of the reading of grid credentials: PEM files (`inspect::parse_pem`,
//! `inspect::key_state`), DER certificates (`inspect::cert_info`), the two grid extensions
//! read by the crate's own DER reader (RFC 3820 ProxyCertInfo and VOMS attribute
//! certificates), and whole credential files (`Credential::load`).
//!
//! Certificates are made here with rcgen (one key pair, many certificates); a real proxy
//! file (proxy, key, user certificate) comes from the test support's rcgen CA. Each property
//! runs 256 cases by default (`PROPTEST_CASES` changes that); failures are not persisted.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use ctadata_testsupport::downloadservice::certs::ProxyPki;
use ctadata_x509::inspect::{cert_info, key_state, parse_pem};
use ctadata_x509::{Credential, CredentialKind, CredentialSource, ProxyKind, ProxyPolicy};
use ctadata_x509::{KeyState, VomsAttributes};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};

// ----- harness -----------------------------------------------------------------------------

/// `cases` cases unless `PROPTEST_CASES` says otherwise; nothing written to the source tree.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread (2 MiB of stack, as tokio's workers have): its value, or why
/// not (a panic, or no answer in time).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(TIME_LIMIT) {
        Ok(v) => {
            let _ = handle.join();
            Ok(v)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("did not finish within {} s", TIME_LIMIT.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = handle.join().err();
            let msg = payload
                .as_ref()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

// ----- DER, written by hand ----------------------------------------------------------------

/// Tag and length octets of an element with `n` content octets.
fn header(tag: u8, n: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if n < 128 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = header(tag, content.len());
    out.extend(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// OID contents (no tag) from arcs.
fn oid_contents(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |mut v: u128| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    };
    push(arcs[0] as u128 * 40 + arcs[1] as u128);
    for &a in &arcs[2..] {
        push(a as u128);
    }
    out
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    tlv(0x06, &oid_contents(arcs))
}

fn dotted(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn arcs(s: &str) -> Vec<u64> {
    s.split('.').map(|a| a.parse().unwrap()).collect()
}

fn integer(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut c = bytes[skip..].to_vec();
    if c[0] & 0x80 != 0 {
        c.insert(0, 0);
    }
    tlv(0x02, &c)
}

const PROXY_CERT_INFO: &str = "1.3.6.1.5.5.7.1.14";
const PROXY_CERT_INFO_DRAFT: &str = "1.3.6.1.4.1.3536.1.222";
const VOMS_ACS: &str = "1.3.6.1.4.1.8005.100.100.5";
const VOMS_ATTRIBUTE: &str = "1.3.6.1.4.1.8005.100.100.4";

// ----- certificates ------------------------------------------------------------------------

fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate().unwrap())
}

/// A self-signed certificate with these extensions (OID, contents), in DER.
fn cert_with(exts: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cta-data proptest");
    dn.push(DnType::CommonName, "Alice");
    p.distinguished_name = dn;
    p.custom_extensions = exts
        .iter()
        .map(|(o, c)| CustomExtension::from_oid_content(&arcs(o), c.clone()))
        .collect();
    p.self_signed(key()).unwrap().der().to_vec()
}

/// A proxy file as `grid-proxy-init` writes it (proxy, its key, the user certificate),
/// made once; and the user certificate and its key on their own.
struct Files {
    proxy: String,
    user_cert: String,
    user_key: String,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let pki = ProxyPki::new("proptest CA");
        let user = pki.user("Alice", -86_400, 86_400 * 300);
        Files {
            proxy: user.proxy_file(-60, 3 * 86_400),
            user_cert: user.cert_pem.clone(),
            user_key: user.key_pem.clone(),
        }
    })
}

// ----- ProxyCertInfo and VOMS, generated -----------------------------------------------------

/// A policy language: one of the three known, or any OID.
fn policy_arcs() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        prop::sample::select(vec![
            "1.3.6.1.5.5.7.21.1",
            "1.3.6.1.5.5.7.21.2",
            "1.3.6.1.4.1.3536.1.1.1.9",
        ])
        .prop_map(arcs),
        (
            0u64..3,
            any::<u64>(),
            // Arcs below 2^63 (the reader decodes into a u64).
            prop::collection::vec(0u64..(1 << 63), 0..8),
        )
            .prop_map(|(first, second, rest)| {
                let second = if first < 2 { second % 40 } else { second >> 8 };
                let mut v = vec![first, second];
                v.extend(rest);
                v
            }),
    ]
}

fn expected_policy(arcs: &[u64]) -> ProxyPolicy {
    match dotted(arcs).as_str() {
        "1.3.6.1.5.5.7.21.1" => ProxyPolicy::Impersonation,
        "1.3.6.1.5.5.7.21.2" => ProxyPolicy::Independent,
        "1.3.6.1.4.1.3536.1.1.1.9" => ProxyPolicy::Limited,
        other => ProxyPolicy::Other(other.to_string()),
    }
}

/// `SEQUENCE { pathLen INTEGER OPTIONAL, SEQUENCE { policyLanguage OID, policy OCTET
/// STRING OPTIONAL } }`.
fn proxy_cert_info(path_len: Option<u64>, arcs: &[u64], policy: Option<&[u8]>) -> Vec<u8> {
    let mut inner = vec![oid(arcs)];
    if let Some(p) = policy {
        inner.push(tlv(0x04, p));
    }
    let mut outer = Vec::new();
    if let Some(n) = path_len {
        outer.push(integer(n));
    }
    outer.push(seq(&inner));
    seq(&outer)
}

/// One IetfAttrSyntax: the policy authority (`Some((uri, ...))`) and the values.
#[derive(Debug, Clone)]
struct Syntax {
    /// The URI, and other GeneralNames put before it.
    uri: Option<(String, Vec<u8>)>,
    /// (tag, text): 0x04, 0x0C, 0x16, 0x13 are read; others (0x02, 0x05) are not.
    values: Vec<(u8, String)>,
}

impl Syntax {
    fn der(&self) -> Vec<u8> {
        let mut parts = Vec::new();
        if let Some((uri, before)) = &self.uri {
            let mut names = before.clone();
            names.extend(tlv(0x86, uri.as_bytes()));
            parts.push(tlv(0xA0, &names));
        }
        let vals: Vec<Vec<u8>> = self
            .values
            .iter()
            .map(|(t, s)| tlv(*t, s.as_bytes()))
            .collect();
        parts.push(seq(&vals));
        seq(&parts)
    }

    fn expected(&self) -> VomsAttributes {
        let fqans: Vec<String> = self
            .values
            .iter()
            .filter(|(t, _)| matches!(t, 0x04 | 0x0C | 0x16 | 0x13))
            .map(|(_, s)| s.clone())
            .collect();
        let (vo, server) = match &self.uri {
            Some((uri, _)) => match uri.split_once("://") {
                Some((vo, server)) => (Some(vo.to_string()), Some(server.to_string())),
                None => (Some(uri.clone()), None),
            },
            None => (
                fqans
                    .first()
                    .and_then(|f| f.trim_start_matches('/').split('/').next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                None,
            ),
        };
        VomsAttributes { vo, server, fqans }
    }
}

fn fqan() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z][a-z0-9.-]{0,10}(/[a-z]{1,6}){0,2}/Role=(NULL|lcgadmin)/Capability=NULL",
        any::<String>(),
    ]
}

fn syntax() -> impl Strategy<Value = Syntax> {
    (
        prop::option::of((
            prop_oneof![
                "[a-z][a-z0-9.-]{0,12}://[a-z0-9.-]{1,20}:[0-9]{1,5}",
                "[a-z0-9.-]{1,12}",
            ],
            prop::sample::select(vec![
                Vec::new(),
                tlv(0x82, b"voms.example"),
                tlv(0xA4, &seq(&[])),
            ]),
        )),
        prop::collection::vec(
            (
                prop::sample::select(vec![0x04u8, 0x0C, 0x16, 0x13, 0x02, 0x05]),
                fqan(),
            ),
            0..4,
        ),
    )
        .prop_map(|(uri, values)| Syntax { uri, values })
}

/// Elements an attribute certificate has around the attributes (read past).
fn filler() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(integer),
        Just(oid(&arcs("1.2.840.113549.1.1.11"))),
        Just(seq(&[oid(&arcs(VOMS_ATTRIBUTE)), integer(1)])),
        Just(seq(&[oid(&arcs("2.5.4.3"))])),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| tlv(0x04, &b)),
        Just(tlv(0xA0, &seq(&[integer(7)]))),
    ]
}

/// An AC sequence: groups of attributes (each `SEQUENCE { OID voms-attribute, SET {
/// syntax... } }`) nested at various depths among other elements.
#[derive(Debug, Clone)]
struct Acs {
    groups: Vec<(Vec<Syntax>, u8, Vec<Vec<u8>>)>,
}

impl Acs {
    fn der(&self) -> Vec<u8> {
        let mut top = Vec::new();
        for (syntaxes, depth, fill) in &self.groups {
            let set: Vec<Vec<u8>> = syntaxes.iter().map(Syntax::der).collect();
            let mut el = seq(&[oid(&arcs(VOMS_ATTRIBUTE)), tlv(0x31, &set.concat())]);
            for d in 0..*depth {
                let mut parts = fill.clone();
                parts.insert(d as usize % (fill.len() + 1), el);
                el = if d % 2 == 0 {
                    seq(&parts)
                } else {
                    tlv(0xA0 | (d & 3), &parts.concat())
                };
            }
            top.push(el);
        }
        seq(&[seq(&top)])
    }

    fn expected(&self) -> Vec<VomsAttributes> {
        self.groups
            .iter()
            .flat_map(|(s, _, _)| s.iter().map(Syntax::expected))
            .collect()
    }
}

fn acs() -> impl Strategy<Value = Acs> {
    prop::collection::vec(
        (
            prop::collection::vec(syntax(), 0..3),
            0u8..5,
            prop::collection::vec(filler(), 0..3),
        ),
        0..3,
    )
    .prop_map(|groups| Acs { groups })
}

// ----- mutations ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Edit {
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..6)).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(data: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match e {
            Edit::Set(i, b) if !data.is_empty() => {
                let k = i.index(data.len());
                data[k] = *b;
            }
            Edit::Set(..) => {}
            Edit::Insert(i, b) => {
                let k = at(i, data.len());
                data.splice(k..k, b.iter().copied());
            }
            Edit::Delete(i, n) => {
                let k = at(i, data.len());
                let end = (k + n).min(data.len());
                data.drain(k..end);
            }
            Edit::Truncate(i) => {
                let k = at(i, data.len());
                data.truncate(k);
            }
        }
    }
}

/// Edits of a PEM text by lines: a changed character (in the base64 or the armour), a line
/// removed, swapped, repeated or cut, armour lines added.
fn pem_edits(text: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0u8..6, any::<Index>(), any::<Index>(), any::<u8>()), 1..6).prop_map(
        move |edits| {
            let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
            for (kind, a, b, byte) in edits {
                if lines.is_empty() {
                    lines.push(Vec::new());
                }
                let i = a.index(lines.len());
                match kind {
                    0 => {
                        let l = &mut lines[i];
                        if !l.is_empty() {
                            let k = b.index(l.len());
                            l[k] = byte;
                        }
                    }
                    1 => {
                        lines.remove(i);
                    }
                    2 => {
                        let j = b.index(lines.len());
                        lines.swap(i, j);
                    }
                    3 => {
                        let l = lines[i].clone();
                        lines.insert(b.index(lines.len() + 1), l);
                    }
                    4 => {
                        let l = &mut lines[i];
                        let k = b.index(l.len() + 1);
                        l.truncate(k);
                    }
                    _ => {
                        let armour: &[&[u8]] = &[
                            b"-----BEGIN CERTIFICATE-----",
                            b"-----END CERTIFICATE-----",
                            b"-----BEGIN PRIVATE KEY-----",
                            b"-----END PRIVATE KEY-----",
                            b"-----BEGIN RSA PRIVATE KEY-----",
                            b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
                            b"Proc-Type: 4,ENCRYPTED",
                            b"MIIB",
                            b"====",
                            b"",
                        ];
                        lines.insert(
                            b.index(lines.len() + 1),
                            armour[byte as usize % armour.len()].to_vec(),
                        );
                    }
                }
            }
            lines.join(&b'\n')
        },
    )
}

/// Writes `data` as a private file (0600) in a fresh directory.
fn private_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn load(kind: CredentialKind, cert: PathBuf, key: PathBuf) -> Result<usize, String> {
    let src = CredentialSource {
        kind,
        cert,
        key,
        origin: "proptest".into(),
        default_proxy: false,
    };
    Credential::load(&src)
        .map(|c| c.file.certs.len())
        .map_err(|e| e.to_string())
}

// ----- the properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes as a PEM file, and as one DER certificate: no panic, an answer in
    /// bounded time; a PEM file read has as many parsed certificates as DER ones.
    #[test]
    fn pem_and_der_arbitrary_bytes(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            prop::collection::vec(
                prop::sample::select(vec![
                    "-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                    "-----BEGIN PRIVATE KEY-----\n", "-----END PRIVATE KEY-----\n",
                    "MIIBszCCAVmgAwIBAgIU", "AAAA", "====", "\n", "\r\n", " ", "-----",
                    "Proc-Type: 4,ENCRYPTED\n", "\u{0}", "é",
                ]),
                0..40,
            ).prop_map(|v| v.concat().into_bytes()),
        ],
    ) {
        let res = bounded(move || {
            let pem = parse_pem(&data, Path::new("/x/file.pem"))
                .map(|f| (f.certs.len(), f.ders.len()))
                .map_err(|e| e.to_string());
            let der = cert_info(&data).map(|c| c.subject);
            let _ = key_state(&data);
            (pem, der.is_ok())
        })
        .map_err(TestCaseError::fail)?;
        if let (Ok((certs, ders)), _) = res {
            prop_assert!(certs >= 1);
            prop_assert_eq!(certs, ders);
        }
    }

    /// A real proxy file, damaged: no panic, an answer in bounded time, and a file read has
    /// as many parsed certificates as DER ones.
    #[test]
    fn pem_mutated_proxy_file(data in pem_edits(&files().proxy)) {
        let res = bounded(move || {
            parse_pem(&data, Path::new("/x/x509up_u1000"))
                .map(|f| (f.certs.len(), f.ders.len(), f.leaf().subject.clone()))
                .map_err(|e| e.to_string())
        })
        .map_err(TestCaseError::fail)?;
        if let Ok((certs, ders, _)) = res {
            prop_assert!(certs >= 1);
            prop_assert_eq!(certs, ders);
        }
    }

    /// The DER of a real certificate with grid extensions, with bytes changed, added, cut:
    /// no panic, an answer in bounded time.
    #[test]
    fn der_mutated_certificate(
        edits in prop::collection::vec(edit(), 1..6),
        a in acs(),
    ) {
        let mut der = cert_with(&[
            (PROXY_CERT_INFO, proxy_cert_info(Some(1), &arcs("1.3.6.1.5.5.7.21.1"), None)),
            (VOMS_ACS, a.der()),
        ]);
        apply(&mut der, &edits);
        let _ = bounded(move || cert_info(&der).map(|c| c.voms.len()))
            .map_err(TestCaseError::fail)?;
    }

    /// Round trip of RFC 3820 ProxyCertInfo (and its GT3 draft OID): any path length, any
    /// policy language OID, with or without a policy, comes back as the same proxy kind
    /// and policy.
    #[test]
    fn proxy_cert_info_round_trip(
        path_len in prop::option::of(any::<u64>()),
        language in policy_arcs(),
        policy in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        draft in prop::bool::weighted(0.25),
    ) {
        let content = proxy_cert_info(path_len, &language, policy.as_deref());
        let ext = if draft { PROXY_CERT_INFO_DRAFT } else { PROXY_CERT_INFO };
        let info = cert_info(&cert_with(&[(ext, content)])).map_err(TestCaseError::fail)?;
        let want = expected_policy(&language);
        let want = if draft { ProxyKind::Draft(want) } else { ProxyKind::Rfc3820(want) };
        prop_assert_eq!(info.proxy, want);
    }

    /// Round trip of VOMS attributes: attribute certificates holding any number of
    /// attributes (policy authority `vo://host:port` or a bare name, after other
    /// GeneralNames, or none; FQANs of every string type, values of other types ignored),
    /// found at any depth among other elements, come back in order.
    #[test]
    fn voms_round_trip(a in acs(), proxy in any::<bool>()) {
        let mut exts = vec![(VOMS_ACS, a.der())];
        if proxy {
            exts.insert(0, (PROXY_CERT_INFO, proxy_cert_info(None, &arcs("1.3.6.1.5.5.7.21.1"), None)));
        }
        let info = cert_info(&cert_with(&exts)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(info.voms, a.expected());
    }

    /// Arbitrary bytes, and damaged valid contents, as the contents of the two grid
    /// extensions of an otherwise valid certificate: the certificate is read (its subject
    /// and validity are still there), in bounded time.
    #[test]
    fn grid_extensions_arbitrary_contents(
        content in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            (acs(), prop::collection::vec(edit(), 1..4)).prop_map(|(a, e)| {
                let mut d = a.der();
                apply(&mut d, &e);
                d
            }),
            (policy_arcs(), prop::collection::vec(edit(), 1..4)).prop_map(|(l, e)| {
                let mut d = proxy_cert_info(Some(0), &l, None);
                apply(&mut d, &e);
                d
            }),
        ],
        which in 0u8..3,
    ) {
        let ext = [PROXY_CERT_INFO, PROXY_CERT_INFO_DRAFT, VOMS_ACS][which as usize];
        let der = cert_with(&[(ext, content)]);
        let info = bounded(move || cert_info(&der).map(|c| (c.subject, c.proxy)))
            .map_err(TestCaseError::fail)?
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(info.0.as_str(), "/O=cta-data proptest/CN=Alice");
        if which < 2 {
            prop_assert!(info.1.is_proxy(), "{:?}", info.1);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Credential files holding garbage (arbitrary bytes, or a damaged real proxy file;
    /// as a proxy, or as a certificate with its key file): loading gives an error, never a
    /// panic, in bounded time; arbitrary bytes are never a credential.
    #[test]
    fn credential_load_garbage(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048).prop_map(|d| (d, true)),
            pem_edits(&files().proxy).prop_map(|d| (d, false)),
        ],
        as_cert in any::<bool>(),
        key in pem_edits(&files().user_key),
    ) {
        let (data, garbage) = data;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let res = bounded(move || {
            if as_cert {
                let cert = private_file(&root, "usercert.pem", &data);
                let key = private_file(&root, "userkey.pem", &key);
                load(CredentialKind::Certificate, cert, key)
            } else {
                let p = private_file(&root, "x509up_u1000", &data);
                load(CredentialKind::Proxy, p.clone(), p)
            }
        })
        .map_err(TestCaseError::fail)?;
        if garbage {
            prop_assert!(res.is_err(), "{:?}", res);
        }
        if let Ok(n) = res {
            prop_assert!(n >= 1);
        }
    }
}

#[test]
fn the_real_files_load() {
    // The mutations above start from files that load.
    let dir = tempfile::tempdir().unwrap();
    let p = private_file(dir.path(), "x509up_u1000", files().proxy.as_bytes());
    assert_eq!(load(CredentialKind::Proxy, p.clone(), p), Ok(2));
    let c = private_file(dir.path(), "usercert.pem", files().user_cert.as_bytes());
    let k = private_file(dir.path(), "userkey.pem", files().user_key.as_bytes());
    assert_eq!(load(CredentialKind::Certificate, c, k), Ok(1));
    let f = parse_pem(files().proxy.as_bytes(), Path::new("/x")).unwrap();
    assert_eq!(f.key, KeyState::Present);
}

// ----- deep nesting (in a child process: a stack overflow aborts the process) --------------

/// `depth` SEQUENCEs, one inside the other (4 bytes a level once lengths need two bytes).
fn nested(depth: usize) -> Vec<u8> {
    // Content lengths from the innermost level out, then the headers from the outside in.
    let mut lens = vec![0usize];
    for _ in 0..depth {
        let l = *lens.last().unwrap();
        lens.push(l + header(0x30, l).len());
    }
    let mut out = Vec::with_capacity(lens[depth]);
    for k in (0..depth).rev() {
        out.extend(header(0x30, lens[k]));
    }
    out
}

const CHILD: &str = "CTADATA_PROPTEST_PEM_CHILD";

/// Runs in the child process only: reads a certificate whose extension `CHILD` names holds
/// `depth` nested SEQUENCEs, on a thread with 2 MiB of stack.
#[test]
fn deep_nesting_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (ext, depth) = spec.split_once(':').unwrap();
    let der = cert_with(&[(ext, nested(depth.parse().unwrap()))]);
    let r = bounded(move || cert_info(&der).map(|c| c.subject)).unwrap();
    println!("read: {r:?}");
}

/// The child's exit: `Ok` when it read the certificate, else how it died.
fn in_child(ext: &str, depth: usize) -> Result<(), String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "deep_nesting_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{ext}:{depth}"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains("overflow") || l.contains("panicked"))
                .collect::<Vec<_>>()
                .join(" | ")
        ))
    }
}

/// A ProxyCertInfo nested 20,000 deep (80 KB) is read: its reader looks at two levels only.
#[test]
fn deep_proxy_cert_info_is_read() {
    in_child(PROXY_CERT_INFO, 20_000).unwrap();
}

/// A VOMS extension of 20,000 nested SEQUENCEs (an 80 KB certificate) must be refused or
/// read, not crash the program: the DER walk (`der::walk`) recurses once per level.
#[test]
fn deep_voms_extension_does_not_overflow_the_stack() {
    in_child(VOMS_ACS, 20_000).unwrap();
}
