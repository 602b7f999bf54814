//! `PutMode::Create` (create-if-absent) on servers that do and do not refuse an existing
//! `MOVE` target themselves: it never replaces an existing object, and it is advertised as
//! atomic (`CtaObjectStore::create_is_atomic`, the refusal's message) only where the server
//! is known to honour `Overwrite: F` (dCache, the door double), never on nginx or XRootD.

use std::sync::Arc;

use ctadata_object_store::CtaObjectStore;
use ctadata_testsupport::{
    dcache_profile, DcacheConfig, DcacheDouble, Nginx, Xrootd, XrootdOptions,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

const TOKEN: &str = "create-test-token";

fn store_on(dir: &std::path::Path, url: &str) -> CtaObjectStore {
    let p = dcache_profile(dir, url, "", "CTADATA_TOKEN", TOKEN);
    let backend = Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap());
    CtaObjectStore::new(backend, "t")
}

fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    }
}

/// Creates `f.txt`, then creates it again: the second is refused, the first stays. Returns
/// the refusal's message.
async fn create_twice(store: &CtaObjectStore, dir: &str) -> String {
    let loc = Path::from(format!("{dir}/f.txt"));
    store
        .put_opts(&loc, b"first".to_vec().into(), create())
        .await
        .unwrap();
    let e = store
        .put_opts(&loc, b"second".to_vec().into(), create())
        .await
        .unwrap_err();
    assert!(
        matches!(e, object_store::Error::AlreadyExists { .. }),
        "{e}"
    );
    let got = store.get(&loc).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"first");
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcache_honours_overwrite_f_so_create_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let d = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    let store = store_on(dir.path(), &d.url());
    assert!(
        !store.create_is_atomic(),
        "nothing is known before a request"
    );
    let msg = create_twice(&store, "cta/d").await;
    assert!(store.create_is_atomic());
    assert!(!msg.contains("not atomic"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_is_not_trusted_with_overwrite_f() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx (tests/run-all.sh installs it)");
    let store = store_on(dir.path(), &nginx.url());
    let msg = create_twice(&store, "n").await;
    assert!(!store.create_is_atomic());
    assert!(msg.contains("not atomic on this server"), "{msg}");
    assert!(
        msg.contains("racing") && msg.contains("not known to honour"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xrootd_ignores_overwrite_f_so_create_checks_first_and_says_it_is_not_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let xrd = Xrootd::start(XrootdOptions {
        tls: None,
        tokens: false,
    })
    .expect("xrootd (tests/run-all.sh installs it)");
    let store = store_on(dir.path(), &xrd.url());
    let msg = create_twice(&store, "x").await;
    assert!(!store.create_is_atomic());
    assert!(msg.contains("not atomic on this server"), "{msg}");
    assert!(msg.contains("ignores 'Overwrite: F'"), "{msg}");
    assert_eq!(std::fs::read(xrd.root().join("x/f.txt")).unwrap(), b"first");
}

/// A server that ignores `Overwrite: F` (the double's XRootD switch) still never gets an
/// existing object replaced, and the body of a refused create is never sent at all: the
/// target is checked before the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_target_is_refused_before_any_upload() {
    let dir = tempfile::tempdir().unwrap();
    let d = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    d.xrootd_namespace(true);
    d.put_file("/cta/e/f.txt", b"there");
    let store = store_on(dir.path(), &d.url());
    let loc = Path::from("cta/e/f.txt");
    let before = d.stats().log.len();
    let e = store
        .put_opts(&loc, b"new".to_vec().into(), create())
        .await
        .unwrap_err();
    assert!(
        matches!(e, object_store::Error::AlreadyExists { .. }),
        "{e}"
    );
    let puts: Vec<String> = d.stats().log[before..]
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "MOVE")
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert!(puts.is_empty(), "{puts:?}");
    let got = store.get(&loc).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"there");
}
