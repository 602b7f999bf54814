//! The x509 backend against a real HTTPS WebDAV server (wsgidav on cheroot, OpenSSL 3 with
//! proxy certificates allowed) that requires a client certificate of the test CA.

use std::sync::Arc;

use bytes::Bytes;
use ctadata_core::config::{load, EnvSnapshot, LoadOptions, ResolvedProfile};
use ctadata_core::{Error, GetOptions, PutOptions, RemotePath, StorageBackend, Upload};
use ctadata_testsupport::x509dav::USER_SUBJECT;
use ctadata_testsupport::{GridPki, X509Dav};
use ctadata_webdav::{Auth, WebDav};
use ctadata_x509::{open, X509Options};
use futures::TryStreamExt;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;

struct World {
    pki: GridPki,
    tmp: TempDir,
    dav: X509Dav,
}

fn world() -> World {
    let pki = GridPki::new().unwrap();
    let tmp = TempDir::new().unwrap();
    std::fs::create_dir_all(tmp.path().join("root/cta")).unwrap();
    std::fs::write(tmp.path().join("root/cta/hello.txt"), "hello\n").unwrap();
    let dav = X509Dav::start(&tmp.path().join("root"), &pki).unwrap();
    World { pki, tmp, dav }
}

impl World {
    fn profile(&self, extra: &str) -> ResolvedProfile {
        let cfg = self.tmp.path().join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "[profiles.door]\nbackend = \"x509\"\nurl = \"{}\"\n{extra}",
                self.dav.url()
            ),
        )
        .unwrap();
        load(
            &LoadOptions::default()
                .with_config_file(Some(cfg))
                .with_profile(Some("door".into()))
                .with_system_file(Some(self.tmp.path().join("no-system.toml"))),
            &EnvSnapshot::default(),
        )
        .unwrap()
    }

    fn proxy(&self) -> std::path::PathBuf {
        let p = self.pki.path("x509up");
        if !p.exists() {
            self.pki.grid_proxy_init(&p, "12:00").unwrap();
        }
        p
    }

    fn open_with(&self, extra: &str, env: &EnvSnapshot) -> ctadata_core::Result<WebDav> {
        open(&self.profile(extra), env, &X509Options::default())
    }
}

fn rp(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

async fn read_all(b: &WebDav, p: &str) -> Vec<u8> {
    let d = b.get(&rp(p), GetOptions::default()).await.unwrap();
    let chunks: Vec<Bytes> = d.stream.try_collect().await.unwrap();
    chunks.concat()
}

/// `/O=a/CN=b` as the server's access log writes it: `O=a,CN=b`.
fn comma(dn: &str) -> String {
    dn.trim_start_matches('/').replace('/', ",")
}

#[tokio::test]
async fn list_get_put_with_a_proxy_from_grid_proxy_init() {
    let w = world();
    let proxy = w.proxy();
    let b = w
        .open_with(
            &format!(
                "proxy = \"{}\"\nca_file = \"{}\"\n",
                proxy.display(),
                w.pki.ca_path().display()
            ),
            &EnvSnapshot::default(),
        )
        .unwrap();
    assert_eq!(b.capabilities().backend, "x509");
    let names: Vec<String> = b
        .list_all(&rp("cta"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.path.name().to_string())
        .collect();
    assert_eq!(names, ["hello.txt"]);
    assert_eq!(read_all(&b, "cta/hello.txt").await, b"hello\n");
    let body = vec![7u8; 300_000];
    let out = b
        .put(
            &rp("cta/new/dir/data.bin"),
            Upload::from_bytes(body.clone()),
            PutOptions::default().with_create_parents(true),
        )
        .await
        .unwrap();
    assert_eq!(out.size, 300_000);
    assert_eq!(
        std::fs::read(w.dav.root().join("cta/new/dir/data.bin")).unwrap(),
        body
    );
    assert_eq!(read_all(&b, "cta/new/dir/data.bin").await, body);
    assert_eq!(
        b.stat(&rp("cta/new/dir/data.bin")).await.unwrap().size,
        Some(300_000)
    );
    b.rename(&rp("cta/new/dir/data.bin"), &rp("cta/moved.bin"), false)
        .await
        .unwrap();
    b.delete(&rp("cta/new"), true).await.unwrap();
    assert!(!w.dav.root().join("cta/new").exists());

    // The server authenticated the proxy (its own subject, issued by the user).
    let subject = ctadata_x509::inspect::read_pem_file(&proxy)
        .unwrap()
        .leaf()
        .subject
        .clone();
    let log = w.dav.access_log_lines();
    let want = format!(
        "s_dn=\"{}\" i_dn=\"{}\"",
        comma(&subject),
        comma(USER_SUBJECT)
    );
    assert!(log.iter().any(|l| l.starts_with("PUT ")), "{log:#?}");
    // Every request; a connection dropped during its handshake (a pooled connection the
    // client gave up) leaves a `TLS "-" refused` line that is no request.
    for l in log.iter().filter(|l| !l.starts_with("TLS ")) {
        assert!(l.contains(&want), "{l}\nwanted {want}");
        assert!(l.contains("verify=SUCCESS"), "{l}");
    }
}

#[tokio::test]
async fn trust_from_a_hashed_ca_directory_and_a_user_certificate() {
    let w = world();
    let (cert, key) = w.pki.user();
    // X509_CERT_DIR, no ca_file; the end-entity certificate itself as the identity.
    let env = EnvSnapshot::from_pairs([
        ("X509_CERT_DIR", w.pki.ca_dir().display().to_string()),
        ("X509_USER_CERT", cert.display().to_string()),
        ("X509_USER_KEY", key.display().to_string()),
    ]);
    let b = w.open_with("", &env).unwrap();
    assert_eq!(b.list_all(&rp("cta")).await.unwrap().len(), 1);
    let log = w.dav.access_log_lines();
    assert!(
        log[0].contains(&format!("s_dn=\"{}\"", comma(USER_SUBJECT))),
        "{log:#?}"
    );
}

/// Sends exactly the given chain, to see what the server does with it.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn the_server_refuses_a_proxy_without_its_user_certificate() {
    let w = world();
    let proxy = w.proxy();
    let pem = std::fs::read(&proxy).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&pem).unwrap();
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    let alone = Arc::new(CertifiedKey::new(vec![certs[0].clone()], signer));
    let mut cfg = ctadata_webdav::webdav_config(
        &w.profile(&format!("ca_file = \"{}\"\n", w.pki.ca_path().display())),
        "x509",
        Auth::None,
        &EnvSnapshot::default(),
        false,
    )
    .unwrap();
    cfg.tls.client_identity = Some(Arc::new(Fixed(alone)));
    let b = WebDav::new(cfg).unwrap();
    let e = b.list_all(&rp("cta")).await.unwrap_err();
    // The server's TLS alert is reported as a refused credential, not a network fault.
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(
        e.to_string().contains("refused the client certificate"),
        "{e}"
    );
    let log = w
        .dav
        .wait_for_line(|l| l.contains("unable to get local issuer certificate"));
    assert!(
        log.iter()
            .any(|l| l.contains("refused") && l.contains("unable to get local issuer certificate")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("PROPFIND")), "{log:#?}");
}

#[tokio::test]
async fn the_server_refuses_a_certificate_of_another_ca() {
    let w = world();
    let (cert, key) = w.pki.other_ca_user().unwrap();
    let b = w
        .open_with(
            &format!(
                "cert = \"{}\"\nkey = \"{}\"\nca_file = \"{}\"\n",
                cert.display(),
                key.display(),
                w.pki.ca_path().display()
            ),
            &EnvSnapshot::default(),
        )
        .unwrap();
    let e = b.list_all(&rp("cta")).await.unwrap_err();
    // The server's TLS alert is reported as a refused credential, not a network fault.
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(
        e.to_string().contains("refused the client certificate"),
        "{e}"
    );
    let log = w.dav.wait_for_line(|l| l.starts_with("TLS \"-\" refused"));
    assert!(
        log.iter().any(|l| l.starts_with("TLS \"-\" refused")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("PROPFIND")), "{log:#?}");
}

#[tokio::test]
async fn an_untrusted_server_names_the_host_and_the_trust_sources() {
    let w = world();
    let proxy = w.proxy();
    let other_ca = w.pki.other_ca_path().unwrap();
    let b = w
        .open_with(
            &format!(
                "proxy = \"{}\"\nca_file = \"{}\"\n",
                proxy.display(),
                other_ca.display()
            ),
            &EnvSnapshot::default(),
        )
        .unwrap();
    let e = b.list_all(&rp("cta")).await.unwrap_err();
    let t = e.to_string();
    assert!(matches!(e, Error::Transport { .. }), "{t}");
    assert!(
        t.contains("TLS: the certificate of 127.0.0.1 was not accepted"),
        "{t}"
    );
    assert!(
        t.contains(&format!("ca_file {}", other_ca.display())),
        "{t}"
    );
    assert!(t.contains("the system CA store"), "{t}");
}

#[test]
fn a_missing_ca_directory_is_a_configuration_error() {
    let w = world();
    let proxy = w.proxy();
    let e = w
        .open_with(
            &format!(
                "proxy = \"{}\"\nca_dir = \"/nonexistent/grid-security/certificates\"\n",
                proxy.display()
            ),
            &EnvSnapshot::default(),
        )
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(
        e.to_string()
            .contains("/nonexistent/grid-security/certificates"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("ca_dir"), "{e:?}");
}
