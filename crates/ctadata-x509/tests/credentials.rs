//! The credential checks on real files: a proxy from `grid-proxy-init`, proxies signed by
//! `openssl ca` with chosen dates, a VOMS proxy from `voms-proxy-fake`, and broken files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ctadata_core::config::{load, EnvSnapshot, LoadOptions, ResolvedProfile};
use ctadata_core::Error;
use ctadata_testsupport::x509dav::USER_SUBJECT;
use ctadata_testsupport::GridPki;
use ctadata_x509::credential::{locate, locate_with, Defaults};
use ctadata_x509::{Credential, CredentialKind, KeyState, ProxyKind, ProxyPolicy};
use tempfile::TempDir;

const HOUR: Duration = Duration::from_secs(3600);

fn profile(dir: &Path, extra: &str) -> ResolvedProfile {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!("[profiles.door]\nbackend = \"x509\"\nurl = \"https://127.0.0.1:1\"\n{extra}"),
    )
    .unwrap();
    load(
        &LoadOptions::default()
            .with_config_file(Some(cfg))
            .with_profile(Some("door".into()))
            .with_system_file(Some(dir.join("no-system.toml"))),
        &EnvSnapshot::from_pairs([("HOME", dir.join("home").display().to_string())]),
    )
    .unwrap()
}

fn load_proxy(path: &Path) -> Result<Credential, Error> {
    let tmp = TempDir::new().unwrap();
    let p = profile(tmp.path(), &format!("proxy = \"{}\"\n", path.display()));
    let src = locate(&p, &EnvSnapshot::default())?;
    assert_eq!(src.kind, CredentialKind::Proxy);
    Credential::load(&src)
}

/// Message and hint in one string, as the CLI prints them.
fn text(e: &Error) -> String {
    format!("{e}\n  hint: {}", e.hint().unwrap_or_default())
}

#[test]
fn a_proxy_from_grid_proxy_init_is_read_whole() {
    let pki = GridPki::new().unwrap();
    let proxy = pki.path("x509up");
    pki.grid_proxy_init(&proxy, "12:00").unwrap();
    let cred = load_proxy(&proxy).unwrap();
    let f = &cred.file;
    assert_eq!(f.certs.len(), 2, "proxy and user certificate");
    assert_eq!(
        f.leaf().proxy,
        ProxyKind::Rfc3820(ProxyPolicy::Impersonation)
    );
    assert!(f.leaf().subject.starts_with(&format!("{USER_SUBJECT}/CN=")));
    assert_eq!(f.leaf().issuer, USER_SUBJECT);
    assert_eq!(f.identity().unwrap().subject, USER_SUBJECT);
    assert_eq!(f.key, KeyState::Present);
    assert!(f.voms().is_empty());
    assert_eq!(cred.check_time(SystemTime::now()).unwrap(), None);
    // Twelve hours later it has expired; the message says when, whose, and how to renew.
    let e = cred.check_time(SystemTime::now() + 13 * HOUR).unwrap_err();
    let t = text(&e);
    assert_eq!(e.exit_code(), 4, "{t}");
    assert!(t.contains("expired at"), "{t}");
    assert!(t.contains(&f.leaf().subject), "{t}");
    assert!(
        t.contains(&format!("grid-proxy-init -rfc -out {}", proxy.display())),
        "{t}"
    );
}

#[test]
fn a_proxy_about_to_expire_gives_a_warning() {
    let pki = GridPki::new().unwrap();
    let proxy = pki.path("short");
    pki.grid_proxy_init(&proxy, "0:05").unwrap();
    let cred = load_proxy(&proxy).unwrap();
    let w = cred
        .check_time(SystemTime::now())
        .unwrap()
        .expect("a warning");
    assert!(w.contains("expires in"), "{w}");
    assert!(w.contains(USER_SUBJECT), "{w}");
    assert!(w.contains("grid-proxy-init -rfc"), "{w}");
}

#[test]
fn expired_and_not_yet_valid_proxies_fail_with_their_times() {
    let pki = GridPki::new().unwrap();
    let now = SystemTime::now();
    let expired = pki.path("expired");
    pki.proxy_with_dates(&expired, now - 3 * HOUR, now - HOUR)
        .unwrap();
    let cred = load_proxy(&expired).unwrap();
    assert_eq!(
        cred.file.leaf().proxy,
        ProxyKind::Rfc3820(ProxyPolicy::Impersonation)
    );
    let e = cred.check_time(now).unwrap_err();
    let t = text(&e);
    assert!(
        matches!(
            e,
            Error::Auth {
                problem: ctadata_core::AuthProblem::Expired,
                ..
            }
        ),
        "{t}"
    );
    assert!(
        t.contains(&format!("the proxy {} expired", expired.display())),
        "{t}"
    );
    assert!(
        t.contains("(1 h 0 min ago)") || t.contains("(59 min ago)"),
        "{t}"
    );
    assert!(t.contains(USER_SUBJECT), "{t}");
    assert!(t.contains("grid-proxy-init -rfc -out"), "{t}");

    let skewed = pki.path("skewed");
    pki.proxy_with_dates(&skewed, now + Duration::from_secs(120), now + 5 * HOUR)
        .unwrap();
    load_proxy(&skewed).unwrap().check_time(now).unwrap();

    let future = pki.path("future");
    pki.proxy_with_dates(&future, now + 2 * HOUR, now + 5 * HOUR)
        .unwrap();
    let e = load_proxy(&future).unwrap().check_time(now).unwrap_err();
    let t = text(&e);
    assert_eq!(e.exit_code(), 4, "{t}");
    assert!(t.contains("is not valid yet"), "{t}");
    assert!(t.contains("becomes valid at"), "{t}");
    assert!(t.contains("clock"), "{t}");
}

#[test]
fn broken_files_are_refused_before_connecting() {
    let pki = GridPki::new().unwrap();
    let proxy = pki.path("x509up");
    pki.grid_proxy_init(&proxy, "12:00").unwrap();
    let pem = std::fs::read_to_string(&proxy).unwrap();
    // The three PEM blocks: proxy certificate, key, user certificate.
    let parts: Vec<String> = {
        let mut v = Vec::new();
        let mut cur = String::new();
        for line in pem.lines() {
            cur.push_str(line);
            cur.push('\n');
            if line.starts_with("-----END ") {
                v.push(std::mem::take(&mut cur));
            }
        }
        v
    };
    assert_eq!(parts.len(), 3);
    let write = |name: &str, content: String, mode: u32| -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = pki.path(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };

    // A proxy without the user certificate that signed it.
    let alone = write("alone", format!("{}{}", parts[0], parts[1]), 0o600);
    let t = text(&load_proxy(&alone).unwrap_err());
    assert!(t.contains("not the certificate that signed it"), "{t}");
    assert!(t.contains(USER_SUBJECT), "{t}");
    assert!(t.contains("grid-proxy-init"), "{t}");

    // A key that does not belong to the proxy.
    let other_key = std::fs::read_to_string(pki.user().1).unwrap();
    let mismatch = write(
        "mismatch",
        format!("{}{}{}", parts[0], other_key, parts[2]),
        0o600,
    );
    let t = text(&load_proxy(&mismatch).unwrap_err());
    assert!(
        t.contains("the private key does not match the proxy certificate"),
        "{t}"
    );
    assert!(t.contains(&mismatch.display().to_string()), "{t}");

    // Readable by others: refused as ssh does.
    let open = write("open", pem.clone(), 0o644);
    let e = load_proxy(&open).unwrap_err();
    let t = text(&e);
    assert!(
        t.contains(&format!(
            "permissions 0644 for the private key {} are too open",
            open.display()
        )),
        "{t}"
    );
    assert!(t.contains(&format!("chmod 600 {}", open.display())), "{t}");

    // A proxy file without its key.
    let nokey = write("nokey", format!("{}{}", parts[0], parts[2]), 0o600);
    let t = text(&load_proxy(&nokey).unwrap_err());
    assert!(t.contains("holds no private key"), "{t}");

    // Not PEM at all.
    let junk = write("junk", "hello\n".into(), 0o600);
    let t = text(&load_proxy(&junk).unwrap_err());
    assert!(
        t.contains("holds no private key") || t.contains("no certificate"),
        "{t}"
    );

    // A file that is not there, named by the profile.
    let t = text(&load_proxy(&pki.path("missing")).unwrap_err());
    assert!(t.contains("does not exist"), "{t}");
    assert!(t.contains("key 'proxy'"), "{t}");
}

#[test]
fn an_encrypted_key_is_refused_with_the_way_to_a_proxy() {
    let pki = GridPki::new().unwrap();
    let enc = pki.path("userkey.pem");
    pki.encrypted_user_key(&enc, "s3cret").unwrap();
    let tmp = TempDir::new().unwrap();
    let p = profile(
        tmp.path(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            pki.user().0.display(),
            enc.display()
        ),
    );
    let src = locate(&p, &EnvSnapshot::default()).unwrap();
    assert_eq!(src.kind, CredentialKind::Certificate);
    let e = Credential::load(&src).unwrap_err();
    let t = text(&e);
    assert!(t.contains("is encrypted"), "{t}");
    assert!(t.contains("does not ask for pass phrases"), "{t}");
    assert!(t.contains("grid-proxy-init -rfc"), "{t}");
    assert!(t.contains("voms-proxy-init"), "{t}");

    // The same certificate with its plain key works as an end-entity credential.
    let p = profile(
        tmp.path(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            pki.user().0.display(),
            pki.user().1.display()
        ),
    );
    let cred = Credential::load(&locate(&p, &EnvSnapshot::default()).unwrap()).unwrap();
    assert_eq!(cred.file.leaf().proxy, ProxyKind::NotAProxy);
    assert_eq!(cred.file.certs.len(), 1);
}

#[test]
fn a_voms_proxy_names_its_vo() {
    let pki = GridPki::new().unwrap();
    let proxy = pki.path("voms");
    pki.voms_proxy_fake(&proxy, "cta", 2).unwrap();
    let cred = load_proxy(&proxy).unwrap();
    assert_eq!(cred.file.vo(), Some("cta"));
    let v = cred.file.voms();
    assert_eq!(v[0].fqans, ["/cta/Role=NULL/Capability=NULL"]);
    assert_eq!(v[0].server.as_deref(), Some("voms.example:15000"));
    // Its renewal hint names the VO.
    let e = cred.check_time(SystemTime::now() + 3 * HOUR).unwrap_err();
    assert!(
        text(&e).contains("voms-proxy-init -voms cta -rfc"),
        "{}",
        text(&e)
    );
}

#[test]
fn the_credential_is_found_in_the_documented_order() {
    let tmp = TempDir::new().unwrap();
    let d = tmp.path();
    let touch = |n: &str| {
        let p = d.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "x").unwrap();
        p
    };
    let defaults = Defaults {
        proxy: d.join("x509up_u1000"),
        user_cert: Some(d.join("home/.globus/usercert.pem")),
        user_key: Some(d.join("home/.globus/userkey.pem")),
    };
    let env_all = EnvSnapshot::from_pairs([
        ("X509_USER_PROXY", "/env/proxy"),
        ("X509_USER_CERT", "/env/cert.pem"),
        ("X509_USER_KEY", "/env/key.pem"),
    ]);
    let p = profile(
        d,
        "proxy = \"/profile/proxy\"\ncert = \"/profile/cert.pem\"\n",
    );
    let s = locate_with(&p, &env_all, &defaults).unwrap();
    assert_eq!(s.cert, Path::new("/profile/proxy"));
    assert!(
        s.origin.starts_with("profile 'door' key 'proxy'"),
        "{}",
        s.origin
    );

    let p = profile(
        d,
        "cert = \"/profile/cert.pem\"\nkey = \"/profile/key.pem\"\n",
    );
    let s = locate_with(&p, &env_all, &defaults).unwrap();
    assert_eq!(
        (s.kind, s.key.as_path()),
        (CredentialKind::Certificate, Path::new("/profile/key.pem"))
    );

    let p = profile(d, "");
    let s = locate_with(&p, &env_all, &defaults).unwrap();
    assert_eq!(
        (s.kind, s.cert.as_path()),
        (CredentialKind::Proxy, Path::new("/env/proxy"))
    );
    assert_eq!(s.origin, "X509_USER_PROXY");

    let env_cert = EnvSnapshot::from_pairs([
        ("X509_USER_CERT", "/env/cert.pem"),
        ("X509_USER_KEY", "/env/key.pem"),
    ]);
    let s = locate_with(&p, &env_cert, &defaults).unwrap();
    assert_eq!(
        (s.cert.as_path(), s.key.as_path()),
        (Path::new("/env/cert.pem"), Path::new("/env/key.pem"))
    );

    // Nothing set and no default file: the message lists where it looked.
    let none = EnvSnapshot::default();
    let e = locate_with(&p, &none, &defaults).unwrap_err();
    let t = text(&e);
    assert!(t.contains("no grid credential found"), "{t}");
    assert!(t.contains("x509up_u1000"), "{t}");
    assert!(t.contains("grid-proxy-init -rfc"), "{t}");

    touch("home/.globus/usercert.pem");
    let s = locate_with(&p, &none, &defaults).unwrap();
    assert_eq!(s.key, d.join("home/.globus/userkey.pem"));
    touch("x509up_u1000");
    let s = locate_with(&p, &none, &defaults).unwrap();
    assert_eq!(s.cert, d.join("x509up_u1000"));
    assert!(s.default_proxy);
    assert_eq!(s.renew_command(None), "grid-proxy-init -rfc");
    assert_eq!(
        s.renew_text(Some("cta")),
        "'voms-proxy-init -voms cta -rfc' (or 'grid-proxy-init -rfc' without VOMS attributes)"
    );

    // A key without a certificate is a configuration mistake.
    let p = profile(d, "key = \"/profile/key.pem\"\n");
    let e = locate_with(&p, &none, &defaults).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{}", text(&e));
}
