//! The adapter's listings over the dCache door double when the door's answers also name
//! resources on other origins, the listed collection itself and paths encoded twice: only
//! the real files are listed, and nothing but the door is asked for anything.

use std::sync::Arc;

use ctadata_object_store::CtaObjectStore;
use ctadata_testsupport::{dcache_profile, DcacheConfig, DcacheDouble, RequestRecord};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

const TOKEN: &str = "object-store-token";

fn path_of(r: &RequestRecord) -> &str {
    r.path_and_query.split('?').next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_hold_the_real_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    // Another server, open to all, holding what the foreign hrefs name.
    let other = DcacheDouble::start(DcacheConfig::default());
    d.plant_foreign_tree(&other);
    let door = d.url();
    let p = dcache_profile(dir.path(), &door, "", "CTADATA_TOKEN", TOKEN);
    let backend = Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap());
    let store = CtaObjectStore::new(backend, "t");
    let prefix = Path::from("cta/tree");

    // Recursive: the files of the tree, named as they are.
    let mut listed: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            "cta/tree/%2E%2E%2Fsecret.txt",
            "cta/tree/%2E%2E/inner.txt",
            "cta/tree/ok.txt",
        ]
    );
    // One level: the same children, the directory as a common prefix.
    let one = store.list_with_delimiter(Some(&prefix)).await.unwrap();
    let objects: Vec<String> = one.objects.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(objects, ["cta/tree/%2E%2E%2Fsecret.txt", "cta/tree/ok.txt"]);
    let prefixes: Vec<String> = one.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(prefixes, ["cta/tree/%2E%2E"]);
    // What was listed reads back as the file of that literal name.
    for (loc, want) in [
        ("cta/tree/%2E%2E%2Fsecret.txt", &b"literal"[..]),
        ("cta/tree/%2E%2E/inner.txt", b"inner"),
        ("cta/tree/ok.txt", b"ok"),
    ] {
        let got = store
            .get(&Path::parse(loc).unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], want, "{loc}");
    }

    // Only the door was asked, and only for the tree's real contents; nothing reached the
    // other server...
    let log = d.stats().log;
    let allowed = [
        "/cta/tree",
        "/cta/tree/",
        "/cta/tree/%252E%252E",
        "/cta/tree/%252E%252E/",
        "/cta/tree/ok.txt",
        "/cta/tree/%252E%252E/inner.txt",
        "/cta/tree/%252E%252E%252Fsecret.txt",
    ];
    let listings = log.iter().filter(|r| r.method == "PROPFIND").count();
    assert!(
        listings >= 3,
        "two listings and a lookup at least: {log:#?}"
    );
    for r in &log {
        assert!(
            allowed.contains(&path_of(r)),
            "a request outside the tree: {r:?}"
        );
    }
    assert!(other.stats().log.is_empty(), "{:?}", other.stats().log);
    // ... which does record what reaches it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let p = dcache_profile(&elsewhere, &other.url(), "", "CTADATA_TOKEN", TOKEN);
    let o = ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap();
    let seen = Path::from("cta/tree/on-another-port.txt");
    assert!(CtaObjectStore::new(Arc::new(o), "o")
        .head(&seen)
        .await
        .is_ok());
    assert!(!other.stats().log.is_empty());
}
