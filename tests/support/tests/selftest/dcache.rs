//! The dCache double, checked with curl.

use crate::peer::{count, curl, curl_stdin, data, hrefs, python_checksums};
use ctadata_testsupport::dcache::REAL_DOOR_REDIRECT_DELAY;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Locality, Side};
use std::time::{Duration, Instant};

const TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.secret-signature";

fn auth() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

fn double_with_token() -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

fn local_file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, contents).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn upload_waiting_for_100_lands_through_the_pool_and_never_at_the_door() {
    let dc = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        redirect_delay: REAL_DOOR_REDIRECT_DELAY,
        ..Default::default()
    });
    std::fs::create_dir(dc.root().join("cta")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(3 * 1024 * 1024 + 17);
    let src = local_file(&tmp, "up.bin", &payload);
    let started = Instant::now();
    let out = curl(&[
        "-T",
        &src,
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "5",
        "-H",
        &auth(),
        "-L",
        &format!("{}/cta/up.bin", dc.url()),
    ]);
    assert_eq!(out.status, 201, "{out:?}");
    assert!(started.elapsed() >= REAL_DOOR_REDIRECT_DELAY);
    // 100 Continue comes from the pool, which reads the body.
    assert_eq!(out.statuses(), vec![307, 100, 201]);
    let location = out.header_all("location").remove(0);
    assert!(
        location.starts_with(&format!("{}/cta/up.bin?dcache-http-uuid=", dc.pool_url())),
        "{location}"
    );
    assert!(out
        .header_all("connection")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("close")));
    assert_eq!(
        std::fs::read(dc.root().join("cta/up.bin")).unwrap(),
        payload
    );
    let stats = dc.stats();
    assert_eq!(stats.door_body_bytes, 0, "{stats:?}");
    assert_eq!(stats.pool_body_bytes, payload.len() as u64);
    assert!(!stats.pool_saw_authorization);
    let sides: Vec<_> = stats
        .log
        .iter()
        .map(|r| (r.side, r.method.as_str(), r.status))
        .collect();
    assert_eq!(
        sides,
        vec![(Side::Door, "PUT", 307), (Side::Pool, "PUT", 201)]
    );
    assert_eq!(stats.log[0].expect.as_deref(), Some("100-continue"));
    assert!(stats.log[0].authorization);
    assert!(!stats.log[1].authorization);
    assert_eq!(
        stats.log[0].content_length.as_deref(),
        Some(payload.len().to_string().as_str())
    );
    // A second PUT over the same name: write-once.
    let again = curl(&[
        "-T",
        &src,
        "-H",
        &auth(),
        "-L",
        &format!("{}/cta/up.bin", dc.url()),
    ]);
    assert_eq!(again.status, 409, "{again:?}");
}

#[test]
fn a_body_sent_without_waiting_reaches_the_door_and_is_counted() {
    let dc = DcacheDouble::start(DcacheConfig {
        redirect_delay: REAL_DOOR_REDIRECT_DELAY,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let payload = data(2 * 1024 * 1024);
    let src = local_file(&tmp, "up.bin", &payload);
    // curl gives up waiting for 100 after 0.2 s and streams the body to the door.
    let out = curl(&[
        "-T",
        &src,
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "0.2",
        &format!("{}/early.bin", dc.url()),
    ]);
    let stats = dc.stats();
    assert!(stats.door_body_bytes > 0, "{out:?} {stats:?}");
    // Without any Expect at all, the same.
    dc.reset_stats();
    let _ = curl(&[
        "-T",
        &src,
        "-H",
        "Expect:",
        &format!("{}/early2.bin", dc.url()),
    ]);
    assert!(dc.stats().door_body_bytes > 0);
}

#[test]
fn put_refusals_411_409_507_and_content_md5() {
    let dc = double_with_token();
    let tmp = tempfile::tempdir().unwrap();
    let src = local_file(&tmp, "f", b"hello dcache");
    // Chunked upload (no Content-Length) is refused at the door.
    let out = curl_stdin(
        &[
            "-T",
            "-",
            "-H",
            &auth(),
            "-L",
            &format!("{}/chunked.bin", dc.url()),
        ],
        Some(b"streamed data"),
    );
    assert_eq!(out.status, 411, "{out:?}");
    assert!(!dc.root().join("chunked.bin").exists());
    // Missing parent.
    let out = curl(&[
        "-T",
        &src,
        "-H",
        &auth(),
        "-L",
        &format!("{}/no/such/f", dc.url()),
    ]);
    assert_eq!(out.status, 409);
    // Full storage.
    dc.set_full(true);
    let out = curl(&["-T", &src, "-H", &auth(), "-L", &format!("{}/f", dc.url())]);
    assert_eq!(out.status, 507);
    dc.set_full(false);
    // Content-MD5 mismatch: 400, but the file stays behind (dCache quirk).
    let out = curl(&[
        "-T",
        &src,
        "-H",
        &auth(),
        "-H",
        "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==",
        "-L",
        &format!("{}/bad-md5", dc.url()),
    ]);
    assert_eq!(out.status, 400);
    assert!(dc.root().join("bad-md5").exists());
    // A matching Content-MD5 and Want-Digest on PUT.
    let (adler, md5) = python_checksums(std::path::Path::new(&src));
    let out = curl(&[
        "-T",
        &src,
        "-H",
        &auth(),
        "-H",
        &format!("Content-MD5: {md5}"),
        "-H",
        "Want-Digest: adler32",
        "-L",
        &format!("{}/good-md5", dc.url()),
    ]);
    assert_eq!(out.status, 201, "{out:?}");
    assert_eq!(out.header("digest"), Some(format!("adler32={adler}")));
}

#[test]
fn get_redirects_to_the_pool_with_ranges_digests_and_no_token() {
    let dc = double_with_token();
    let payload = data(100_000);
    let file = dc.put_file("lst/DL1/run 1+2.h5", &payload);
    let url = dc.url_for("lst/DL1/run 1+2.h5");
    assert!(url.ends_with("/lst/DL1/run%201+2.h5"), "{url}");
    let out = curl(&["-H", &auth(), "-L", &url]);
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.statuses(), vec![307, 200]);
    assert_eq!(out.body, payload);
    assert_eq!(out.header("content-length"), Some("100000".into()));
    assert!(out.header("etag").is_some() && out.header("last-modified").is_some());
    // Range.
    let out = curl(&["-H", &auth(), "-L", "-r", "0-9", &url]);
    assert_eq!(out.status, 206);
    assert_eq!(out.body, payload[..10]);
    assert_eq!(out.header("content-range"), Some("bytes 0-9/100000".into()));
    let out = curl(&["-H", &auth(), "-L", "-r", "99990-", &url]);
    assert_eq!(out.body, payload[99_990..]);
    let out = curl(&["-H", &auth(), "-L", "-r", "200000-", &url]);
    assert_eq!(out.status, 416);
    // Digests, checked against python's zlib/hashlib.
    let (adler, md5) = python_checksums(&file);
    let out = curl(&["-H", &auth(), "-H", "Want-Digest: adler32", "-I", &url]);
    assert_eq!(
        out.statuses(),
        vec![200],
        "HEAD is answered by the door itself"
    );
    assert_eq!(out.header("digest"), Some(format!("adler32={adler}")));
    assert_eq!(out.header("content-length"), Some("100000".into()));
    let out = curl(&["-H", &auth(), "-H", "Want-Digest: md5", "-L", &url]);
    assert_eq!(out.header("digest"), Some(format!("md5={md5}")));
    dc.corrupt_digest(true);
    let out = curl(&["-H", &auth(), "-H", "Want-Digest: adler32", "-I", &url]);
    let lie = out.header("digest").unwrap();
    assert!(lie.starts_with("adler32=") && lie != format!("adler32={adler}"));
    dc.corrupt_digest(false);
    // The pool never saw the token: curl does not forward it to another host.
    let stats = dc.stats();
    assert!(!stats.pool_saw_authorization);
    assert!(stats
        .log
        .iter()
        .any(|r| r.side == Side::Pool && r.range.as_deref() == Some("bytes=0-9")));
    assert!(stats
        .log
        .iter()
        .any(|r| r.want_digest.as_deref() == Some("md5")));
    // --location-trusted does forward it, and the double notices.
    let _ = curl(&["-H", &auth(), "--location-trusted", &url]);
    assert!(dc.stats().pool_saw_authorization);
    // The token is never kept in the log.
    assert!(!format!("{:?}", dc.stats()).contains("secret-signature"));
}

#[test]
fn a_redirect_uuid_works_once() {
    let dc = DcacheDouble::start(DcacheConfig::default());
    dc.put_file("a.txt", b"once");
    let out = curl(&[&format!("{}/a.txt", dc.url())]);
    assert_eq!(out.status, 307);
    let location = out.header("location").unwrap();
    let first = curl(&[&location]);
    assert_eq!((first.status, first.body.as_slice()), (200, &b"once"[..]));
    let second = curl(&[&location]);
    assert_eq!(second.status, 400);
    assert!(String::from_utf8_lossy(&second.body).contains("resubmit to door"));
    assert_eq!(dc.stats().stale_uuid_hits, 1);
    // A uuid for another path is refused too.
    let out = curl(&[&format!("{}/a.txt", dc.url())]);
    let forged = out
        .header("location")
        .unwrap()
        .replace("/a.txt?", "/b.txt?");
    assert_eq!(curl(&[&forged]).status, 400);
}

#[test]
fn auth_and_permissions() {
    let dc = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        forbidden_prefix: Some("/cta/private".into()),
        ..Default::default()
    });
    dc.put_file("cta/private/x", b"x");
    dc.put_file("cta/public/x", b"x");
    let url = format!("{}/cta/public/x", dc.url());
    let out = curl(&["-I", &url]);
    assert_eq!(out.status, 401);
    assert!(out
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let out = curl(&["-I", "-H", "Authorization: Bearer not-the-token", &url]);
    assert_eq!(out.status, 401);
    let out = curl(&["-I", "-H", &auth(), &url]);
    assert_eq!(out.status, 200);
    let out = curl(&["-I", "-H", &auth(), &format!("{}/cta/private/x", dc.url())]);
    assert_eq!(out.status, 403);
    let out = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "-H",
        &auth(),
        &format!("{}/cta/private/", dc.url()),
    ]);
    assert_eq!(out.status, 403);
    // A new token (rotation) is honoured at once.
    dc.set_token(Some("rotated".into()));
    assert_eq!(curl(&["-I", "-H", &auth(), &url]).status, 401);
    assert_eq!(
        curl(&["-I", "-H", "Authorization: Bearer rotated", &url]).status,
        200
    );
    assert!(!format!("{:?}", dc.stats()).contains("secret-signature"));
}

const PROPS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:dc="http://www.dcache.org/2013/webdav" xmlns:srm="http://srm.lbl.gov/StorageResourceManager">
<D:prop><D:getcontentlength/><D:getlastmodified/><D:resourcetype/><D:getetag/><dc:Checksums/><srm:FileLocality/><D:nosuchprop/></D:prop>
</D:propfind>"#;

#[test]
fn propfind_depth_one_lists_like_dcache() {
    let dc = double_with_token();
    let file = dc.put_file("cta/dir/data 1.fits", &data(1234));
    dc.put_file("cta/dir/tape.fits", b"on tape");
    std::fs::create_dir(dc.root().join("cta/dir/sub")).unwrap();
    dc.set_locality("cta/dir/tape.fits", Locality::Nearline);
    let (adler, _) = python_checksums(&file);
    let url = format!("{}/cta/dir/", dc.url());
    let out = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        "-H",
        &auth(),
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        PROPS,
        &url,
    ]);
    assert_eq!(out.status, 207, "{out:?}");
    let xml = out.text();
    assert!(xml.contains("xmlns:d=\"DAV:\""), "{xml}");
    assert_eq!(
        hrefs(&xml),
        vec![
            "/cta/dir/",
            "/cta/dir/data%201.fits",
            "/cta/dir/sub/",
            "/cta/dir/tape.fits"
        ]
    );
    assert_eq!(count(&xml, "<d:response>"), 4);
    assert_eq!(count(&xml, "<d:collection/>"), 2);
    assert!(xml.contains("<d:getcontentlength>1234</d:getcontentlength>"));
    assert!(xml.contains(&format!("adler32={adler}")));
    assert!(xml.contains(">NEARLINE</ns2:FileLocality>"));
    assert_eq!(count(&xml, ">ONLINE</ns2:FileLocality>"), 1);
    assert_eq!(count(&xml, "HTTP/1.1 404 Not Found"), 4);
    assert!(xml.contains("<d:nosuchprop/>"));
    assert!(xml.contains("GMT</d:getlastmodified>"));
    // Python's XML parser agrees it is well-formed and in the DAV: namespace.
    let check = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys,xml.etree.ElementTree as E; r=E.fromstring(sys.stdin.read()); print(r.tag, len(r))")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        check
            .stdin
            .as_ref()
            .unwrap()
            .write_all(xml.as_bytes())
            .unwrap();
    }
    let parsed = check.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "{DAV:}multistatus 4"
    );

    // Depth 0 on a file: just the file. A file's Depth 1: just the file too.
    for depth in ["0", "1"] {
        let out = curl(&[
            "-X",
            "PROPFIND",
            "-H",
            &format!("Depth: {depth}"),
            "-H",
            &auth(),
            &format!("{}/cta/dir/tape.fits", dc.url()),
        ]);
        assert_eq!(out.status, 207);
        assert_eq!(hrefs(&out.text()), vec!["/cta/dir/tape.fits"]);
    }
    // Depth infinity and no Depth: refused. Missing path: 404.
    let inf = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: infinity",
        "-H",
        &auth(),
        &url,
    ]);
    assert_eq!(inf.status, 403);
    let none = curl(&["-X", "PROPFIND", "-H", &auth(), &url]);
    assert_eq!(none.status, 403);
    let missing = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        "-H",
        &auth(),
        &format!("{}/cta/nope/", dc.url()),
    ]);
    assert_eq!(missing.status, 404);
    // allprop (empty body): a file gets a 200 and a 404 propstat.
    let out = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "-H",
        &auth(),
        &format!("{}/cta/dir/tape.fits", dc.url()),
    ]);
    assert_eq!(count(&out.text(), "<d:propstat>"), 2);
}

#[test]
fn propfind_faults_and_huge_synthetic_listing() {
    let dc = DcacheDouble::start(DcacheConfig::default());
    std::fs::create_dir_all(dc.root().join("cta/d")).unwrap();
    dc.extra_hrefs(vec![
        "../../x".into(),
        "/etc/x".into(),
        "/other/dir/".into(),
        "a&b".into(),
    ]);
    let out = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{}/cta/d/", dc.url()),
    ]);
    assert_eq!(
        hrefs(&out.text()),
        vec!["/cta/d/", "../../x", "/etc/x", "/other/dir/", "a&amp;b"]
    );
    dc.extra_hrefs(vec![]);
    dc.malformed_propfind(true);
    let out = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{}/cta/d/", dc.url()),
    ]);
    assert_eq!(out.status, 207);
    assert!(!out.text().contains("</d:multistatus>"));
    dc.malformed_propfind(false);

    dc.synthetic_dir("cta/big", 100_000);
    let started = Instant::now();
    let out = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{}/cta/big/", dc.url()),
    ]);
    assert_eq!(out.status, 207);
    let xml = out.text();
    assert_eq!(count(&xml, "<d:response>"), 100_001);
    assert!(xml.contains("<d:href>/cta/big/entry-0099999.dat</d:href>"));
    assert!(xml.trim_end().ends_with("</d:multistatus>"));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn namespace_operations() {
    let dc = double_with_token();
    let u = |p: &str| format!("{}/{}", dc.url(), p);
    let a = auth();
    let req = |method: &str, path: &str, extra: &[&str]| {
        let url = u(path);
        let mut args = vec!["-X", method, "-H", a.as_str()];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args).status
    };
    assert_eq!(req("MKCOL", "cta", &[]), 201);
    assert_eq!(req("MKCOL", "cta/with-slash/", &[]), 201);
    assert!(dc.root().join("cta/with-slash").is_dir());
    assert_eq!(req("MKCOL", "cta", &[]), 405);
    assert_eq!(req("MKCOL", "cta/no/parent", &[]), 409);
    dc.put_file("cta/with-slash/f1", b"1");
    dc.put_file("cta/with-slash/deep/f2", b"2");
    let dest = format!("Destination: {}", u("cta/moved"));
    assert_eq!(req("MOVE", "cta/with-slash/f1", &["-H", &dest]), 201);
    assert_eq!(std::fs::read(dc.root().join("cta/moved")).unwrap(), b"1");
    dc.put_file("cta/other", b"o");
    let dest = "Destination: /cta/moved".to_string();
    assert_eq!(
        req("MOVE", "cta/other", &["-H", &dest, "-H", "Overwrite: F"]),
        412
    );
    assert_eq!(req("MOVE", "cta/other", &["-H", &dest]), 204);
    assert_eq!(std::fs::read(dc.root().join("cta/moved")).unwrap(), b"o");
    let dest = format!("Destination: {}", u("cta/copy"));
    assert_eq!(req("COPY", "cta/with-slash", &["-H", &dest]), 201);
    assert!(dc.root().join("cta/copy/deep/f2").is_file());
    assert_eq!(req("DELETE", "cta/with-slash", &[]), 204);
    assert!(!dc.root().join("cta/with-slash").exists());
    assert_eq!(req("DELETE", "cta/with-slash", &[]), 404);
    // GET of a directory: an HTML page.
    let out = curl(&["-H", &a, &u("cta/")]);
    assert_eq!(out.status, 200);
    assert!(out.header("content-type").unwrap().starts_with("text/html"));
    assert!(out.text().contains("copy"));
}

#[test]
fn injected_failures() {
    let dc = DcacheDouble::start(DcacheConfig::default());
    dc.put_file("f", &data(50_000));
    let url = format!("{}/f", dc.url());
    dc.fail_next_with_retry_after(503, 2, 7);
    let first = curl(&["-I", &url]);
    assert_eq!(first.status, 503);
    assert_eq!(first.header("retry-after"), Some("7".into()));
    assert_eq!(curl(&["-I", &url]).status, 503);
    assert_eq!(curl(&["-I", &url]).status, 200);
    // Truncated transfer: Content-Length says 50000, 1000 bytes come, then EOF.
    dc.truncate_next_get(1000);
    let out = curl(&["-L", &url]);
    assert_eq!(out.exit, 18, "curl: partial file; {}", out.stderr);
    assert_eq!(out.body.len(), 1000);
    assert_eq!(out.header("content-length"), Some("50000".into()));
    // Only once.
    let out = curl(&["-L", &url]);
    assert_eq!((out.exit, out.body.len()), (0, 50_000));
    // Pool failure.
    dc.fail_next_pool(500, 1);
    assert_eq!(curl(&["-L", &url]).status, 500);
    assert_eq!(curl(&["-L", &url]).status, 200);
}

#[test]
fn tls_door_and_pool() {
    let dc = DcacheDouble::start(DcacheConfig {
        tls: true,
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    assert!(dc.url().starts_with("https://127.0.0.1:"));
    assert!(dc.pool_url().starts_with("https://127.0.0.2:"));
    let ca = dc.ca().unwrap().ca_cert_path();
    let ca = ca.to_str().unwrap();
    dc.put_file("x/file", b"over tls");
    let out = curl(&["--cacert", ca, "-H", &auth(), "-L", &dc.url_for("x/file")]);
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "over tls"),
        "{out:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let src = local_file(&tmp, "u", &data(70_000));
    let out = curl(&[
        "--cacert",
        ca,
        "-T",
        &src,
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "5",
        "-H",
        &auth(),
        "-L",
        &dc.url_for("x/up"),
    ]);
    assert_eq!(out.status, 201, "{out:?}");
    assert_eq!(dc.stats().door_body_bytes, 0);
    // Without the CA, curl refuses the server.
    let out = curl(&["-H", &auth(), &dc.url_for("x/file")]);
    assert_eq!(out.exit, 60, "{out:?}");
}
