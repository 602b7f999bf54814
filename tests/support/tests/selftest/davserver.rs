//! The embedded dav-server, checked with curl.

use crate::peer::{curl, data, hrefs};
use ctadata_testsupport::EmbeddedDav;

#[test]
fn webdav_basics() {
    let root = tempfile::tempdir().unwrap();
    let dav = EmbeddedDav::start(root.path());
    let u = |p: &str| format!("{}/{}", dav.url(), p);
    assert_eq!(curl(&["-X", "MKCOL", &u("d/")]).status, 201);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f");
    let payload = data(100_000);
    std::fs::write(&src, &payload).unwrap();
    let put = curl(&["-T", src.to_str().unwrap(), &u("d/f")]);
    assert!(put.status == 201 || put.status == 204, "{put:?}");
    assert_eq!(std::fs::read(root.path().join("d/f")).unwrap(), payload);
    assert_eq!(curl(&["-T", src.to_str().unwrap(), &u("no/f")]).status, 409);
    // Unlike dCache, an existing file is replaced.
    let small = tmp.path().join("small");
    std::fs::write(&small, b"new").unwrap();
    let again = curl(&["-T", small.to_str().unwrap(), &u("d/f")]);
    assert_eq!(again.status, 204, "{again:?}");
    assert_eq!(std::fs::read(root.path().join("d/f")).unwrap(), b"new");
    std::fs::write(root.path().join("d/f"), &payload).unwrap();
    // Depth infinity is not implemented.
    let inf = curl(&["-X", "PROPFIND", "-H", "Depth: infinity", &u("d/")]);
    assert_eq!(inf.status, 501);
    let out = curl(&["-r", "5-9", &u("d/f")]);
    assert_eq!((out.status, out.body.as_slice()), (206, &payload[5..10]));
    let out = curl(&["-X", "PROPFIND", "-H", "Depth: 1", &u("d/")]);
    assert_eq!(out.status, 207);
    assert_eq!(hrefs(&out.text()).len(), 2, "{}", out.text());
    assert_eq!(curl(&["-X", "DELETE", &u("d/")]).status, 204);
}
