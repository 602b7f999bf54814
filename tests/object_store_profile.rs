//! `ctadata::object_store_for_profile`: a store built from a profile name alone (resolved
//! from the environment, as programs do), round-tripping through nginx.

use ctadata_testsupport::Nginx;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

// One test in this binary: it sets process environment variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_profile_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    std::env::set_var("HOME", dir.path());
    std::env::set_var("XDG_CONFIG_HOME", dir.path().join("config"));
    std::env::set_var("CTADATA_PROFILES__LAB_1__BACKEND", "dcache");
    std::env::set_var("CTADATA_PROFILES__LAB_1__URL", nginx.url());
    std::env::set_var("BEARER_TOKEN", "t");
    std::env::remove_var("CTADATA_PROFILE");

    let (url, store) = ctadata::object_store_for_profile(Some("lab_1")).unwrap();
    assert_eq!(url.as_str(), "cta://lab_1/");
    let path = Path::from("runs/r1/events.bin");
    store
        .put(&path, PutPayload::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(root.join("runs/r1/events.bin")).unwrap(),
        b"0123456789"
    );
    let got = store
        .get_range(&path, 2..5)
        .await
        .expect("a ranged read through the profile's store");
    assert_eq!(&got[..], b"234");
    // The URL and the store agree: a cta:// URL splits back to the profile and the path.
    let (profile, p) = ctadata::split_url(&url.join("runs/r1/events.bin").unwrap()).unwrap();
    assert_eq!(profile, "lab_1");
    assert_eq!(store.head(&p).await.unwrap().size, 10);

    // An unknown profile is a configuration error naming it, not a store of another profile.
    let e = ctadata::object_store_for_profile(Some("nosuch")).unwrap_err();
    assert!(e.to_string().contains("unknown profile 'nosuch'"), "{e}");
}
