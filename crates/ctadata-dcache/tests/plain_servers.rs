//! The dcache backend against real WebDAV servers: nginx with dav-ext, and dav-server.

use std::path::Path;
use std::sync::Arc;

use ctadata_core::{ByteRange, Error, GetOptions, PutOptions, RemotePath, StorageBackend, Upload};
use ctadata_testsupport::{dcache_profile, EmbeddedDav, Nginx};
use futures::TryStreamExt;

fn rp(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

/// Opens the dcache backend the way the CLI does: a config file, a token in the environment.
fn open(url: &str, dir: &Path) -> Arc<dyn StorageBackend> {
    let p = dcache_profile(dir, url, "", "BEARER_TOKEN", "test-token");
    Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap())
}

async fn read(b: &dyn StorageBackend, p: &str, range: Option<ByteRange>) -> Vec<u8> {
    let d = b
        .get(
            &rp(p),
            match range {
                Some(r) => GetOptions::default().with_range(r),
                None => GetOptions::default(),
            }
            .with_checksums(true),
        )
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = d.stream.try_collect().await.unwrap();
    chunks.concat()
}

/// Every verb, checked against the files the server wrote on disk.
async fn exercise(b: &dyn StorageBackend, disk: &Path) {
    b.mkdir(&rp("a/b c/ε"), true).await.unwrap();
    assert!(disk.join("a/b c/ε").is_dir());
    b.mkdir(&rp("a/b c/ε"), true).await.unwrap();
    assert!(matches!(
        b.mkdir(&rp("a"), false).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        b.mkdir(&rp("x/y"), false).await,
        Err(Error::NotFound { .. })
    ));

    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let out = b
        .put(
            &rp("a/b c/ε/f 1.bin"),
            Upload::from_bytes(data.clone()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.size, data.len() as u64);
    assert_eq!(std::fs::read(disk.join("a/b c/ε/f 1.bin")).unwrap(), data);
    let e = b
        .put(
            &rp("a/b c/ε/f 1.bin"),
            Upload::from_bytes(&b"x"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    b.put(
        &rp("a/b c/ε/f 1.bin"),
        Upload::from_bytes(&b"new"[..]),
        PutOptions::default().with_overwrite(true),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(disk.join("a/b c/ε/f 1.bin")).unwrap(), b"new");
    b.put(
        &rp("a/b c/ε/f 1.bin"),
        Upload::from_bytes(data.clone()),
        PutOptions::default().with_overwrite(true),
    )
    .await
    .unwrap();
    // Missing parents are created on request.
    b.put(
        &rp("deep/er/x.txt"),
        Upload::from_bytes(&b"hi"[..]),
        PutOptions::default().with_create_parents(true),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(disk.join("deep/er/x.txt")).unwrap(), b"hi");
    let e = b
        .put(
            &rp("nope/x.txt"),
            Upload::from_bytes(&b"hi"[..]),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");

    let st = b.stat(&rp("a/b c/ε/f 1.bin")).await.unwrap();
    assert!(st.is_file());
    assert_eq!(st.size, Some(data.len() as u64));
    assert!(st.mtime.is_some());
    assert!(b.stat(&rp("a/b c")).await.unwrap().is_dir());
    assert!(matches!(
        b.stat(&rp("missing")).await,
        Err(Error::NotFound { .. })
    ));

    let l = b.list_all(&rp("a/b c/ε")).await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].name, "f 1.bin");
    assert_eq!(l[0].path, rp("a/b c/ε/f 1.bin"));
    let root: Vec<String> = b
        .list_all(&RemotePath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(
        root.contains(&"a".to_string()) && root.contains(&"deep".to_string()),
        "{root:?}"
    );
    assert!(matches!(
        b.list_all(&rp("a/b c/ε/f 1.bin")).await,
        Err(Error::Conflict { .. })
    ));

    assert_eq!(read(b, "a/b c/ε/f 1.bin", None).await, data);
    assert_eq!(
        read(
            b,
            "a/b c/ε/f 1.bin",
            Some(ByteRange::bounded(10, 20).unwrap())
        )
        .await,
        &data[10..20]
    );
    assert_eq!(
        read(b, "a/b c/ε/f 1.bin", Some(ByteRange::From(299_990))).await,
        &data[299_990..]
    );
    assert_eq!(
        read(b, "a/b c/ε/f 1.bin", Some(ByteRange::Suffix(5))).await,
        &data[data.len() - 5..]
    );

    b.rename(&rp("a/b c/ε/f 1.bin"), &rp("a/moved.bin"), false)
        .await
        .unwrap();
    assert!(disk.join("a/moved.bin").is_file());
    assert!(matches!(
        b.rename(&rp("deep/er/x.txt"), &rp("a/moved.bin"), false)
            .await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        b.delete(&rp("a"), false).await,
        Err(Error::Conflict { .. })
    ));
    b.delete(&rp("a/moved.bin"), false).await.unwrap();
    assert!(!disk.join("a/moved.bin").exists());
    b.delete(&rp("a"), true).await.unwrap();
    assert!(!disk.join("a").exists());
    assert!(matches!(
        b.delete(&rp("a"), true).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_against_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let b = open(&nginx.url(), dir.path());
    exercise(b.as_ref(), nginx.root()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_against_dav_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let dav = EmbeddedDav::start(&root);
    let b = open(&dav.url(), dir.path());
    exercise(b.as_ref(), &root).await;
}
