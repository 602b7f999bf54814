//! The dcache backend against the door-and-pool double: dCache's own habits (redirects,
//! `Expect: 100-continue`, `Want-Digest`, bearer checks) and its faults.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctadata_core::transfer::{self, FileOutcome, TransferOptions};
use ctadata_core::{Error, GetOptions, Locality, PutOptions, RemotePath, StorageBackend, Upload};
use ctadata_testsupport::{dcache_profile, DcacheConfig, DcacheDouble, Side};
use futures::TryStreamExt;

const TOKEN: &str = "door-token-1234";

fn rp(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn double(tls: bool, redirect_delay: Duration) -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        tls,
        redirect_delay,
        forbidden_prefix: Some("/forbidden".into()),
        ..Default::default()
    })
}

/// The dcache backend on the double, configured as a user would (config file + variable).
fn open_with(d: &DcacheDouble, dir: &Path, token: &str, extra: &str) -> Arc<dyn StorageBackend> {
    let ca = d
        .ca()
        .map(|c| format!("ca_file = \"{}\"\n", c.ca_cert_path().display()))
        .unwrap_or_default();
    let p = dcache_profile(dir, &d.url(), &(ca + extra), "CTADATA_TOKEN", token);
    Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap())
}

fn open(d: &DcacheDouble, dir: &Path) -> Arc<dyn StorageBackend> {
    open_with(d, dir, TOKEN, "")
}

fn data(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_wait_for_the_redirect_and_send_the_body_only_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(true, Duration::from_millis(1200));
    let b = open(&d, dir.path());
    let bytes = data(3_000_000);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &bytes).unwrap();
    let out = b
        .put(
            &rp("cta/run/a.bin"),
            Upload::from_file(&src).await.unwrap(),
            PutOptions::default().with_create_parents(true),
        )
        .await
        .unwrap();
    assert_eq!(out.size, bytes.len() as u64);
    assert_eq!(
        out.checksums.len(),
        1,
        "the server's adler32 was compared with what was sent"
    );
    assert_eq!(
        std::fs::read(d.root().join("cta/run/a.bin")).unwrap(),
        bytes
    );
    let s = d.stats();
    assert_eq!(s.door_body_bytes, 0, "no body byte may go to the door");
    assert_eq!(s.pool_body_bytes, bytes.len() as u64);
    assert!(
        !s.pool_saw_authorization,
        "the token must never reach the pool"
    );
    let put_at_door: Vec<_> = s
        .log
        .iter()
        .filter(|r| r.side == Side::Door && r.method == "PUT")
        .collect();
    assert_eq!(put_at_door.len(), 1);
    assert_eq!(put_at_door[0].expect.as_deref(), Some("100-continue"));
    assert_eq!(put_at_door[0].content_length.as_deref(), Some("3000000"));
    assert!(put_at_door[0].authorization);

    // Downloads follow the redirect, without the token, and are verified with the digest.
    d.reset_stats();
    let target = dir.path().join("back.bin");
    let FileOutcome::Done(done) = transfer::download_file(
        b.as_ref(),
        &rp("cta/run/a.bin"),
        None,
        &target,
        &TransferOptions::default(),
    )
    .await
    .unwrap() else {
        panic!("not downloaded")
    };
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert!(
        done.verified
            .as_deref()
            .is_some_and(|v| v.starts_with("adler32:")),
        "{done:?}"
    );
    let s = d.stats();
    assert!(!s.pool_saw_authorization);
    assert!(s.redirects >= 1);
    assert!(s
        .log
        .iter()
        .any(|r| r.side == Side::Pool && r.method == "GET" && r.want_digest.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_on_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(50));
    let b = open(&d, dir.path());
    b.mkdir(&rp("lst/DL1/x"), true).await.unwrap();
    assert!(d.root().join("lst/DL1/x").is_dir());
    b.put(
        &rp("lst/DL1/x/f.h5"),
        Upload::from_bytes(data(1000)),
        PutOptions::default(),
    )
    .await
    .unwrap();
    // dCache files are write-once: replacing one goes through a temporary name and MOVE.
    b.put(
        &rp("lst/DL1/x/f.h5"),
        Upload::from_bytes(data(10)),
        PutOptions::default().with_overwrite(true),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(d.root().join("lst/DL1/x/f.h5")).unwrap(),
        data(10)
    );
    let names: Vec<String> = b
        .list_all(&rp("lst/DL1/x"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["f.h5".to_string()], "no temporary file is left");
    d.set_locality("/lst/DL1/x/f.h5", ctadata_testsupport::Locality::Nearline);
    let e = b.stat(&rp("lst/DL1/x/f.h5")).await.unwrap();
    assert_eq!(e.locality, Some(Locality::Nearline));
    assert_eq!(
        e.checksums.first().map(|c| c.algorithm.to_string()),
        Some("adler32".into())
    );
    let dl = b
        .get(
            &rp("lst/DL1/x/f.h5"),
            GetOptions::default().with_range(ctadata_core::ByteRange::bounded(2, 6).unwrap()),
        )
        .await
        .unwrap();
    let got: Vec<bytes::Bytes> = dl.stream.try_collect().await.unwrap();
    assert_eq!(got.concat(), &data(10)[2..6]);
    b.rename(&rp("lst/DL1/x/f.h5"), &rp("lst/DL1/g.h5"), false)
        .await
        .unwrap();
    b.delete(&rp("lst/DL1"), true).await.unwrap();
    assert!(!d.root().join("lst/DL1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_never_replaces_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    let b = open(&d, dir.path());
    d.corrupt_digest(true);
    // A small file (received in memory) and a large one (streamed through a .part).
    for size in [50_000, 3 << 20] {
        d.put_file("/cta/f.bin", &data(size));
        let target = dir.path().join("f.bin");
        std::fs::write(&target, b"the good old file").unwrap();
        let e = transfer::download_file(
            b.as_ref(),
            &rp("cta/f.bin"),
            None,
            &target,
            &TransferOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Integrity { .. }), "{size}: {e}");
        assert!(e.to_string().contains("/cta/f.bin"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"the good old file");
        assert!(
            !dir.path().join("f.bin.part").exists(),
            "corrupt data is discarded ({size} bytes)"
        );
    }

    // An upload whose stored digest differs is deleted on the server and fails.
    let e = b
        .put(
            &rp("cta/up.bin"),
            Upload::from_bytes(data(1000)),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Integrity { .. }), "{e}");
    assert!(
        !d.root().join("cta/up.bin").exists(),
        "the bad remote copy was removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_grew_since_its_listing_is_downloaded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.put_file("/cta/f.bin", &data(1000));
    let b = open(&d, dir.path());
    let listed = b.stat(&rp("cta/f.bin")).await.unwrap();
    assert_eq!(listed.size, Some(1000));
    // Rewritten larger than the in-memory limit between the listing and the download.
    let grown = data(3 << 20);
    d.put_file("/cta/f.bin", &grown);
    let target = dir.path().join("f.bin");
    transfer::download_file(
        b.as_ref(),
        &rp("cta/f.bin"),
        Some(&listed),
        &target,
        &TransferOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        std::fs::read(&target).unwrap() == grown,
        "the whole new file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_is_an_error_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.put_file("/cta/f.bin", &data(100_000));
    let b = open(&d, dir.path());
    let target = dir.path().join("f.bin");
    std::fs::write(&target, b"old").unwrap();
    d.truncate_next_get(40_000);
    let e = transfer::download_file(
        b.as_ref(),
        &rp("cta/f.bin"),
        None,
        &target,
        &TransferOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, Error::Transport { .. } | Error::Integrity { .. }),
        "{e}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_forbidden_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.put_file("/cta/a.txt", b"a");
    d.put_file("/forbidden/b.txt", b"b");
    let b = open(&d, dir.path());
    d.fail_next_with_retry_after(503, 2, 1);
    let started = std::time::Instant::now();
    let l = b.list_all(&rp("cta")).await.unwrap();
    assert_eq!(l.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
    let propfinds = d
        .stats()
        .log
        .iter()
        .filter(|r| r.method == "PROPFIND")
        .count();
    assert_eq!(propfinds, 3);

    d.reset_stats();
    let e = b.list_all(&rp("forbidden")).await.unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("/forbidden"), "{e}");
    assert_eq!(
        d.stats()
            .log
            .iter()
            .filter(|r| r.method == "PROPFIND")
            .count(),
        1,
        "a 403 is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_says_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    let b = open_with(&d, dir.path(), "not-the-right-one", "");
    let e = b.list_all(&RemotePath::root()).await.unwrap_err();
    let msg = format!("{e} {}", e.hint().unwrap_or_default());
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(
        msg.contains("variable CTADATA_TOKEN") && msg.contains("fresh token"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-right-one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.put_file("/cta/a.txt", b"a");
    let b = open(&d, dir.path());
    d.malformed_propfind(true);
    let e = b.list_all(&rp("cta")).await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("/cta"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hrefs_outside_the_directory_are_ignored_and_nothing_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.put_file("/cta/tree/ok.txt", b"ok");
    d.extra_hrefs(vec![
        "../../x".into(),
        "/etc/x".into(),
        "/cta/tree/a/../../x".into(),
        "/other/dir/x".into(),
        "/cta/tree/../../escape/".into(),
    ]);
    let b = open(&d, dir.path());
    let names: Vec<String> = b
        .list_all(&rp("cta/tree"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["ok.txt".to_string()]);
    let target = dir.path().join("inner/out");
    let s = transfer::download_tree(
        b.clone(),
        &rp("cta/tree"),
        &target,
        &TransferOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(s.transferred, 1);
    let mut found = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                found.push(
                    e.path()
                        .strip_prefix(dir.path())
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        vec!["config.toml".to_string(), "inner/out/ok.txt".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_100000_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.synthetic_dir("/cta/huge", 100_000);
    let b = open(&d, dir.path());
    let before = vm_hwm_kib();
    let l = b.list_all(&rp("cta/huge")).await.unwrap();
    assert_eq!(l.len(), 100_000);
    assert!(l
        .iter()
        .all(|e| e.is_file() && e.path.parent() == Some(rp("cta/huge"))));
    let grown = vm_hwm_kib().saturating_sub(before);
    // The entries themselves (~100 bytes each) plus buffers; the XML (~40 MB) is streamed.
    assert!(grown < 96 * 1024, "peak memory grew by {grown} KiB");
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
