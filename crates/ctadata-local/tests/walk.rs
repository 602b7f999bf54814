//! The transfer engine's tree walk over a real directory: every entry, at every concurrency.

use std::sync::Arc;

use ctadata_core::{RemotePath, StorageBackend};
use futures::TryStreamExt;

#[tokio::test]
async fn a_walk_finds_every_entry_whatever_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        "a/a.file",
        "a/b.file",
        "a/a/b.file",
        "a a/b.file",
        "aa/a.file",
        "ab/a.file",
        "x.file",
    ];
    for f in files {
        let p = dir.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }
    let b: Arc<dyn StorageBackend> =
        Arc::new(ctadata_local::LocalBackend::new(dir.path()).unwrap());
    let mut want: Vec<String> = files.iter().map(|f| format!("/{f}")).collect();
    want.extend(["/a", "/a a", "/a/a", "/aa", "/ab"].map(String::from));
    want.sort();
    // Concurrency 1 is the case where the one listing in flight ends while others wait.
    for c in [1usize, 2, 8] {
        let mut got: Vec<String> = ctadata_core::transfer::walk(b.clone(), RemotePath::root(), c)
            .map_ok(|e| e.path.to_string())
            .try_collect()
            .await
            .unwrap();
        got.sort();
        assert_eq!(got, want, "concurrency {c}");
    }
}
