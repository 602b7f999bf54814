//! The private nginx, checked with curl.

use crate::peer::{curl, data, hrefs};
use ctadata_testsupport::{Nginx, NginxOptions, TestCa};

#[test]
fn webdav_basics() {
    let root = tempfile::tempdir().unwrap();
    let ngx = Nginx::start(root.path()).expect("nginx starts");
    let u = |p: &str| format!("{}/{}", ngx.url(), p);
    // MKCOL without the trailing slash works (rewritten), like dCache.
    assert_eq!(curl(&["-X", "MKCOL", &u("dir")]).status, 201);
    assert_eq!(curl(&["-X", "MKCOL", &u("dir/sub/")]).status, 201);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f");
    let payload = data(300_000);
    std::fs::write(&src, &payload).unwrap();
    let src = src.to_str().unwrap();
    assert_eq!(curl(&["-T", src, &u("dir/f.bin")]).status, 201);
    assert_eq!(
        std::fs::read(ngx.root().join("dir/f.bin")).unwrap(),
        payload
    );
    // Missing parent: 409 (create_full_put_path off).
    let out = curl(&["-T", src, &u("nope/f.bin")]);
    assert_eq!(out.status, 409, "{}", ngx.error_log());
    let out = curl(&["-r", "0-9", &u("dir/f.bin")]);
    assert_eq!((out.status, out.body.as_slice()), (206, &payload[..10]));
    let out = curl(&["-X", "PROPFIND", "-H", "Depth: 1", &u("dir/")]);
    assert_eq!(out.status, 207);
    let mut h = hrefs(&out.text());
    h.sort();
    assert_eq!(h, vec!["/dir/", "/dir/f.bin", "/dir/sub/"]);
    let out = curl(&[
        "-X",
        "MOVE",
        "-H",
        &format!("Destination: {}", u("dir/g.bin")),
        &u("dir/f.bin"),
    ]);
    // nginx answers 204 even when the destination is new (RFC 4918 says 201).
    assert_eq!(out.status, 204);
    assert!(ngx.root().join("dir/g.bin").is_file());
    assert_eq!(curl(&["-X", "DELETE", &u("dir/")]).status, 204);
    assert!(!ngx.root().join("dir").exists());
    let log = ngx.access_log_lines();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET \"/dir/f.bin\" 206 range=\"bytes=0-9\" auth=-")),
        "{log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.starts_with("PROPFIND \"/dir/\" 207") && l.contains("depth=\"1\"")));
}

#[test]
fn bearer_token_and_log_without_it() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), b"secret data").unwrap();
    let token = "abc.def.ghi-token";
    let ngx = Nginx::start_with(
        root.path(),
        NginxOptions {
            token: Some(token.into()),
            tls: None,
        },
    )
    .unwrap();
    let url = format!("{}/f", ngx.url());
    let out = curl(&[&url]);
    assert_eq!(out.status, 401);
    assert!(out
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        curl(&["-H", "Authorization: Bearer wrong", &url]).status,
        401
    );
    let out = curl(&["-H", &format!("Authorization: Bearer {token}"), &url]);
    assert_eq!((out.status, out.text().as_str()), (200, "secret data"));
    let log = ngx.access_log_lines().join("\n");
    assert!(log.contains("auth=auth") && log.contains("auth=-"), "{log}");
    assert!(!log.contains(token));
    assert!(!ngx.error_log().contains(token));
}

#[test]
fn tls_with_the_test_ca() {
    let ca = TestCa::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), b"tls").unwrap();
    let ngx = Nginx::start_with(
        root.path(),
        NginxOptions {
            token: None,
            tls: Some(&ca),
        },
    )
    .unwrap();
    assert!(ngx.url().starts_with("https://"));
    let cacert = ca.ca_cert_path();
    let out = curl(&[
        "--cacert",
        cacert.to_str().unwrap(),
        &format!("{}/f", ngx.url()),
    ]);
    assert_eq!((out.status, out.text().as_str()), (200, "tls"), "{out:?}");
    let localhost = ngx.url().replace("127.0.0.1", "localhost");
    let out = curl(&[
        "--cacert",
        cacert.to_str().unwrap(),
        &format!("{localhost}/f"),
    ]);
    assert_eq!(out.status, 200, "{out:?}");
}
