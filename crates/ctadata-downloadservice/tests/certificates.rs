//! Certificate files checked before sending, and the certificateservice double's answers.
//! The certificates come from a test CA made in the test (rcgen, through the test support):
//! user certificates and RFC 3820 proxies signed by them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ctadata_core::config::{EnvSnapshot, LoadOptions};
use ctadata_core::{AuthProblem, Error};
use ctadata_downloadservice::certificateservice::{
    allowed_keys, check_certificate_file, check_certificate_pem, check_key, http_time,
    CertificateService, CheckedCertificate,
};
use ctadata_testsupport::downloadservice::certs::ProxyPki as Pki;
use ctadata_testsupport::{HubUser, PlatformConfig, PlatformDouble, Scopes};

const H: i64 = 3600;

fn hours(h: i64) -> i64 {
    h * H
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn usage_message(r: Result<CheckedCertificate, Error>) -> String {
    match r {
        Err(e @ Error::Usage { .. }) => e.to_string(),
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn files_are_checked_before_sending() {
    let pki = Pki::new("test CA");
    let alice = pki.user("Alice", hours(-24), hours(24 * 300));
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();

    let good = write(dir.path(), "x509up", &alice.proxy_file(hours(0), hours(12)));
    let c = check_certificate_file(&good, now).unwrap();
    assert!(c.is_proxy);
    assert_eq!(c.certificates, 2);
    assert!(c.subject.contains("CN=1234567890"), "{}", c.subject);
    let limit = write(
        dir.path(),
        "limit",
        &alice.proxy_file(hours(0), hours(24 * 7 - 1)),
    );
    check_certificate_file(&limit, now).unwrap();

    let m = usage_message(check_certificate_pem(Path::new("f"), b"hello\n", now));
    assert_eq!(
        m,
        "f is not a PEM file: it has no '-----BEGIN ...-----' block"
    );
    let m = usage_message(check_certificate_pem(
        Path::new("f"),
        &[0x30, 0x82, 0xff, 0x00],
        now,
    ));
    assert!(m.contains("binary"), "{m}");
    let m = usage_message(check_certificate_pem(
        Path::new("f"),
        b"-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n",
        now,
    ));
    assert!(m.starts_with("f is not valid PEM"), "{m}");
    let m = usage_message(check_certificate_pem(
        Path::new("f"),
        alice.key_pem.as_bytes(),
        now,
    ));
    assert_eq!(m, "f holds no certificate (its PEM blocks: PRIVATE KEY)");
    let (proxy, _) = alice.proxy(hours(0), hours(12));
    let m = usage_message(check_certificate_pem(
        Path::new("f"),
        format!("{proxy}{}", alice.cert_pem).as_bytes(),
        now,
    ));
    assert!(
        m.starts_with("f holds no private key (its PEM blocks: CERTIFICATE, CERTIFICATE)"),
        "{m}"
    );
    let m = usage_message(check_certificate_pem(
        Path::new("f"),
        format!("{proxy}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n").as_bytes(),
        now,
    ));
    assert!(m.contains("only an encrypted one"), "{m}");
    let (proxy, key) = alice.proxy(hours(0), hours(12));
    let m = usage_message(check_certificate_pem(
        Path::new("f"),
        format!("{proxy}{key}").as_bytes(),
        now,
    ));
    assert!(
        m.contains("a proxy certificate without the certificate that signed it"),
        "{m}"
    );
    assert!(m.contains("CN=Alice"), "{m}");

    let expired = alice.proxy_file(hours(-48), hours(-1));
    match check_certificate_pem(Path::new("f"), expired.as_bytes(), now) {
        Err(Error::Auth {
            problem: AuthProblem::Expired,
            message,
            hint,
        }) => {
            assert!(
                message.contains("expired on") && message.contains("ago"),
                "{message}"
            );
            assert!(hint.contains("grid-proxy-init"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    // A start a few minutes ahead is a clock difference, not a problem: the service judges.
    let skewed = alice.proxy_file(120, hours(12));
    check_certificate_pem(Path::new("f"), skewed.as_bytes(), now).unwrap();
    let later = alice.proxy_file(hours(2), hours(12));
    let m = usage_message(check_certificate_pem(Path::new("f"), later.as_bytes(), now));
    assert!(m.contains("is not valid yet"), "{m}");
    let long = alice.proxy_file(hours(0), hours(24 * 9));
    let m = usage_message(check_certificate_pem(Path::new("f"), long.as_bytes(), now));
    assert!(m.contains("more than 7 days from today"), "{m}");

    let e = check_certificate_file(&dir.path().join("missing"), now).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn certificate_keys() {
    let defaults = allowed_keys(&EnvSnapshot::from_pairs(Vec::<(String, String)>::new()));
    assert_eq!(defaults, ["cta", "lst", "arc"]);
    for k in ["cta", "lst", "arc"] {
        check_key(k, &defaults).unwrap();
    }
    let e = check_key("foo", &defaults).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the certificate key 'foo' is not one of the allowed keys: cta, lst, arc (CTACS_ALLOWED_CERT_KEYS)"
    );
    let only = allowed_keys(&EnvSnapshot::from_pairs([(
        "CTACS_ALLOWED_CERT_KEYS",
        " cta ,",
    )]));
    assert_eq!(only, ["cta"]);
    assert!(check_key("lst", &only).is_err());
}

const TOKEN: &str = "alice-token";
const ADMIN: &str = "admin-token";

fn service(d: &PlatformDouble, token: &str) -> CertificateService {
    let env = EnvSnapshot::from_pairs([
        ("CTACS_URL", d.certificateservice_url()),
        ("JUPYTERHUB_API_TOKEN", token.to_string()),
        ("HOME", "/nonexistent-home".to_string()),
    ]);
    let opts = LoadOptions::default()
        .with_profile(Some("platform".into()))
        .with_system_file(Some("/nonexistent/config.toml".into()));
    let profile = ctadata_core::config::load(&opts, &env).unwrap();
    CertificateService::open(&profile, &env, false).unwrap()
}

fn start(pki: &Pki) -> PlatformDouble {
    PlatformDouble::start(PlatformConfig {
        users: vec![
            HubUser::new("Alice", TOKEN),
            HubUser {
                admin: true,
                ..HubUser::new("root", ADMIN)
            },
            HubUser {
                scopes: Scopes {
                    downloadservice: true,
                    certificateservice: false,
                },
                ..HubUser::new("dan", "ds-only")
            },
        ],
        trusted_ca_pem: vec![pki.ca_pem().to_string()],
        ..Default::default()
    })
    .unwrap()
}

/// A checked file without the local checks (to see what the service itself answers).
fn unchecked(path: &str, pem: String) -> CheckedCertificate {
    CheckedCertificate {
        path: path.into(),
        pem,
        subject: String::new(),
        issuer: String::new(),
        not_before: SystemTime::now(),
        not_after: SystemTime::now(),
        is_proxy: true,
        certificates: 2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_stores_short_lived_proxies() {
    let pki = Pki::new("test CA");
    let d = start(&pki);
    let alice = pki.user("Alice", hours(-24), hours(24 * 300));
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x509up", &alice.proxy_file(hours(0), hours(12)));
    let checked = check_certificate_file(&file, SystemTime::now()).unwrap();

    let cs = service(&d, TOKEN);
    let stored = cs.upload_personal(&checked, "cta", None).await.unwrap();
    assert_eq!(stored.message, "Certificate stored");
    assert_eq!(stored.validity, Some(http_time(checked.not_after)));
    let s = d.stored_certificates();
    assert_eq!((s[0].user.as_str(), s[0].key.as_str()), ("Alice", "cta"));
    assert_eq!(s[0].pem, checked.pem);

    // A user certificate with its key is accepted as well.
    let short = pki.user("Alice", hours(-1), hours(48));
    let f = write(
        dir.path(),
        "usercert",
        &format!("{}{}", short.cert_pem, short.key_pem),
    );
    let c = check_certificate_file(&f, SystemTime::now()).unwrap();
    assert!(!c.is_proxy);
    cs.upload_personal(&c, "lst", None).await.unwrap();

    // Admins may store for another user; others may not.
    cs.upload_personal(&checked, "cta", Some("bob"))
        .await
        .map(|_| ())
        .expect_err("not an admin");
    service(&d, ADMIN)
        .upload_personal(&checked, "cta", Some("bob"))
        .await
        .unwrap();
    assert!(d.stored_certificates().iter().any(|s| s.user == "bob"));

    // The shared certificate: admins only.
    let e = cs.upload_shared(&checked).await.unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("only hub administrators"), "{e}");
    let stored = service(&d, ADMIN).upload_shared(&checked).await.unwrap();
    assert_eq!(stored.message, "Shared certificate stored");
    assert_eq!(d.shared_certificate(), Some(checked.pem.clone()));

    // The token went as a header, with the JSON content type (three uploads at least).
    let reqs = d.requests();
    assert!(reqs.len() >= 3, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.authorization
        && !r.token_in_query
        && r.content_type.as_deref() == Some("application/json")));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_refuses() {
    let pki = Pki::new("test CA");
    let d = start(&pki);
    let alice = pki.user("Alice", hours(-24), hours(24 * 300));
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x509up", &alice.proxy_file(hours(0), hours(12)));
    let checked = check_certificate_file(&file, SystemTime::now()).unwrap();
    let cs = service(&d, TOKEN);

    // arc passes the local check (CTACS_ALLOWED_CERT_KEYS) but not this service: a 500 page.
    let e = cs.upload_personal(&checked, "arc", None).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Protocol {
                status: Some(500),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("for the key 'arc'"), "{e}");

    // Too long: 200 with a list as validity, which is a refusal.
    let long = unchecked("long.pem", alice.proxy_file(hours(0), hours(24 * 30)));
    let e = cs.upload_personal(&long, "cta", None).await.unwrap_err();
    match &e {
        Error::Auth {
            problem: AuthProblem::Refused,
            message,
            hint,
        } => {
            assert!(message.starts_with("the certificateservice did not store the certificate from long.pem (400): certificate validity too long"), "{message}");
            assert!(hint.contains("grid-proxy-init"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    assert!(d.stored_certificates().is_empty());

    // 400 with the service's text: expired, incomplete chain, another CA.
    let expired = unchecked("old.pem", alice.proxy_file(hours(-30), hours(-2)));
    let e = cs.upload_personal(&expired, "cta", None).await.unwrap_err();
    assert!(e.to_string().ends_with("(400): certificate expired"), "{e}");
    let (proxy, key) = alice.proxy(hours(0), hours(12));
    let orphan = unchecked("orphan.pem", format!("{proxy}{key}"));
    let e = cs.upload_personal(&orphan, "cta", None).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("invalid certificate verification chain"),
        "{e}"
    );
    let other = Pki::new("another CA").user("Mallory", hours(-1), hours(24 * 300));
    let foreign = unchecked("foreign.pem", other.proxy_file(hours(0), hours(12)));
    let e = cs.upload_personal(&foreign, "cta", None).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("invalid certificate verification chain"),
        "{e}"
    );
    let empty = unchecked("empty.pem", "no certificate here".into());
    let e = cs.upload_personal(&empty, "cta", None).await.unwrap_err();
    assert!(
        e.to_string().contains("no valid certificate provided"),
        "{e}"
    );

    // The shared certificate too long: a proper 400.
    let e = service(&d, ADMIN).upload_shared(&long).await.unwrap_err();
    assert!(
        e.to_string().contains("certificate validity too long"),
        "{e}"
    );
    assert!(d.stored_certificates().is_empty() && d.shared_certificate().is_none());

    // Tokens: unknown, or without the certificateservice scope.
    let e = service(&d, "nope")
        .upload_personal(&checked, "cta", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Auth {
                problem: AuthProblem::Refused,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("Invalid or missing Bearer token"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("/hub/token"), "{e:?}");
    let e = service(&d, "ds-only")
        .upload_personal(&checked, "cta", None)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("access:services!service=certificateservice"),
        "{e}"
    );
}
