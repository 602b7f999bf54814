//! The dcache backend against the door-and-pool double: dCache's own habits (redirects,
//! `Expect: 100-continue`, `Want-Digest`, bearer checks) and its faults.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctadata_core::retry::{RetryPolicy, Retrying};
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
    // As `ctadata::open` does: the backend behind the one retry layer.
    Retrying::wrap(
        Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap()),
        RetryPolicy::default(),
    )
}

fn open(d: &DcacheDouble, dir: &Path) -> Arc<dyn StorageBackend> {
    open_with(d, dir, TOKEN, "")
}

/// The backend tried once: what a failure does when no retry hides it.
fn open_once(d: &DcacheDouble, dir: &Path) -> Arc<dyn StorageBackend> {
    let p = dcache_profile(dir, &d.url(), "", "CTADATA_TOKEN", TOKEN);
    Retrying::wrap(
        Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap()),
        RetryPolicy::attempts(1),
    )
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
    let b = open_once(&d, dir.path());
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
async fn attempts_do_not_multiply() {
    // One policy, applied once: a pool that keeps failing costs exactly its attempts, not
    // attempts per request times attempts per file.
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.put_file("/cta/f.bin", &data(2_000_000));
    let p = dcache_profile(dir.path(), &d.url(), "", "CTADATA_TOKEN", TOKEN);
    let b = Retrying::wrap(
        Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap()),
        RetryPolicy::attempts(3).with_delays(Duration::from_millis(10), Duration::from_millis(20)),
    );
    d.fail_next_pool(503, 1000);
    let target = dir.path().join("f.bin");
    let e = transfer::download_file(
        b.as_ref(),
        &rp("cta/f.bin"),
        None,
        &target,
        &TransferOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    assert!(e.to_string().ends_with("(attempt 3 of 3)"), "{e}");
    let log = d.stats().log;
    let pool_gets = log
        .iter()
        .filter(|r| r.method == "GET" && r.side == Side::Pool)
        .count();
    assert_eq!(pool_gets, 3, "{log:#?}");
    assert!(!target.exists());
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
    assert_eq!(files_under(dir.path()), ["config.toml", "inner/out/ok.txt"]);
}

/// Every file below `dir`, as sorted paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// Hrefs that name a child's path on another origin (host, port, scheme), the collection
/// itself, or a path encoded twice: the listing holds the true children only, `..` encoded
/// twice stays a literal name, and a recursive download asks only the door for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_and_hrefs_encoded_twice_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    // Another server, open to all, holding what the foreign hrefs name.
    let other = DcacheDouble::start(DcacheConfig::default());
    d.plant_foreign_tree(&other);
    let b = open(&d, dir.path());

    let listed: Vec<(String, bool)> = b
        .list_all(&rp("cta/tree"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.path.to_string(), e.is_dir()))
        .collect();
    let want = [
        ("/cta/tree/%2E%2E", true),
        ("/cta/tree/%2E%2E%2Fsecret.txt", false),
        ("/cta/tree/ok.txt", false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(p, d)| (p.to_string(), *d)).collect();
    assert_eq!(listed, want);
    let inner: Vec<String> = b
        .list_all(&rp("cta/tree/%2E%2E"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(inner, ["inner.txt"]);

    d.reset_stats();
    let target = dir.path().join("inner/out");
    let s = transfer::download_tree(
        b.clone(),
        &rp("cta/tree"),
        &target,
        &TransferOptions::default(),
    )
    .await
    .unwrap();
    assert!(s.failures.is_empty(), "{:?}", s.failures);
    assert_eq!(s.transferred, 3);
    assert_eq!(
        files_under(dir.path()),
        [
            "config.toml",
            "inner/out/%2E%2E%2Fsecret.txt",
            "inner/out/%2E%2E/inner.txt",
            "inner/out/ok.txt",
        ]
    );
    let read = |rel: &str| std::fs::read(target.join(rel)).unwrap();
    assert_eq!(read("%2E%2E%2Fsecret.txt"), b"literal");
    assert_eq!(read("%2E%2E/inner.txt"), b"inner");

    // The door and the pool were asked for the true children only, under their own names.
    let log = d.stats().log;
    let path = |r: &ctadata_testsupport::RequestRecord| {
        r.path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let mut fetched: Vec<String> = log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "GET")
        .map(path)
        .collect();
    fetched.sort();
    assert_eq!(
        fetched,
        [
            "/cta/tree/%252E%252E%252Fsecret.txt",
            "/cta/tree/%252E%252E/inner.txt",
            "/cta/tree/ok.txt",
        ],
        "{log:#?}"
    );
    let allowed = [
        "/cta/tree",
        "/cta/tree/",
        "/cta/tree/%252E%252E",
        "/cta/tree/%252E%252E/",
        "/cta/tree/ok.txt",
        "/cta/tree/%252E%252E/inner.txt",
        "/cta/tree/%252E%252E%252Fsecret.txt",
    ];
    assert!(log.len() > fetched.len(), "{log:#?}");
    for r in &log {
        assert!(
            allowed.contains(&path(r).as_str()),
            "a request outside the tree: {r:?}"
        );
    }
    // Nothing reached the other server, with or without the token...
    assert!(other.stats().log.is_empty(), "{:?}", other.stats().log);
    // ... which does record what reaches it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let o = open(&other, &elsewhere);
    assert!(o.stat(&rp("cta/tree/on-another-port.txt")).await.is_ok());
    assert!(!other.stats().log.is_empty());
}

/// A listing of 100,000 entries is read as a stream: measured in a child process that does
/// nothing else, its peak memory stays far below the size of the XML (~40 MB).
#[test]
fn a_listing_of_100000_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = double(false, Duration::from_millis(10));
    d.synthetic_dir("/cta/huge", 100_000);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "listing_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CTADATA_TEST_DOOR", d.url())
        .env("CTADATA_TEST_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("listing:").map(|(_, f)| f))
        .unwrap_or_else(|| panic!("no figures from the child: {stdout}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.parse().ok())
            .unwrap_or_else(|| panic!("{k} missing in {line}"))
    };
    assert_eq!(field("entries="), 100_000, "{line}");
    let grown = field("grown_kib=");
    // Streamed: buffers only, not the entries and never the XML.
    assert!(
        grown < 16 * 1024,
        "the listing alone grew the peak by {grown} KiB ({line})"
    );
    let listings = d
        .stats()
        .log
        .iter()
        .filter(|r| r.method == "PROPFIND" && r.path_and_query.contains("huge"))
        .count();
    assert_eq!(listings, 1, "the child listed the door once");
}

/// The child of [`a_listing_of_100000_entries`]: lists the door given in its environment and
/// prints what it counted and how much its peak memory grew. Run only by that test.
#[test]
#[ignore = "run by a_listing_of_100000_entries in a child process"]
fn listing_child() {
    use futures::StreamExt;
    let (Some(url), Some(dir)) = (
        std::env::var_os("CTADATA_TEST_DOOR"),
        std::env::var_os("CTADATA_TEST_DIR"),
    ) else {
        panic!("run by a_listing_of_100000_entries, which sets CTADATA_TEST_DOOR");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = dcache_profile(
            Path::new(&dir),
            url.to_str().unwrap(),
            "",
            "CTADATA_TOKEN",
            TOKEN,
        );
        let b = ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap();
        // Warm up the client (connection, TLS-free here) before the baseline.
        b.stat(&rp("cta")).await.unwrap();
        let before = vm_hwm_kib();
        let mut s = b.list(&rp("cta/huge")).await.unwrap();
        let mut n = 0u64;
        while let Some(e) = s.next().await {
            let e = e.unwrap();
            assert!(e.is_file() && e.path.parent() == Some(rp("cta/huge")));
            n += 1;
        }
        let grown = vm_hwm_kib().saturating_sub(before);
        println!("listing: entries={n} grown_kib={grown}");
    });
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
