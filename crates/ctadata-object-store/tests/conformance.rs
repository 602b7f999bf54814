//! object_store's own conformance suite against the adapter, over the dcache backend and a
//! real WebDAV daemon (nginx with dav-ext), each function on a fresh root.
//!
//! Not run, with the reason (also in README): `put_get_attributes` (WebDAV stores no
//! object attributes), `multipart` and `list_paginated` (they test the separate
//! `MultipartStore` / `PaginatedListStore` traits, which an S3-style upload id or a listing
//! token would need; the adapter offers `put_multipart` and `list`), `put_opts` with
//! `supports_update` (a compare-and-swap on the ETag: `NotImplemented`, see the crate docs).

use std::sync::Arc;

use ctadata_object_store::CtaObjectStore;
use ctadata_testsupport::{dcache_profile, Nginx};
use object_store::integration;

struct Fresh {
    store: CtaObjectStore,
    _nginx: Nginx,
    _dir: tempfile::TempDir,
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx (tests/run-all.sh installs it)");
    let p = dcache_profile(dir.path(), &nginx.url(), "", "BEARER_TOKEN", "t");
    let backend = Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap());
    Fresh {
        store: CtaObjectStore::new(backend, "t"),
        _nginx: nginx,
        _dir: dir,
    }
}

macro_rules! conformance {
    ($($name:ident => $f:path $(, $arg:expr)*;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let f = fresh();
            $f(&f.store $(, $arg)*).await;
        }
    )*};
}

conformance! {
    put_get_delete_list => integration::put_get_delete_list;
    get_opts => integration::get_opts;
    put_opts => integration::put_opts, false;
    stream_get => integration::stream_get;
    list_uses_directories_correctly => integration::list_uses_directories_correctly;
    list_with_delimiter => integration::list_with_delimiter;
    rename_and_copy => integration::rename_and_copy;
    copy_if_not_exists => integration::copy_if_not_exists;
    copy_rename_nonexistent_object => integration::copy_rename_nonexistent_object;
    multipart_out_of_order => integration::multipart_out_of_order;
    multipart_race_condition => integration::multipart_race_condition, true;
    list_with_offset_exclusivity => integration::list_with_offset_exclusivity;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_nonexistent_object() {
    let f = fresh();
    let e = integration::get_nonexistent_object(&f.store, None)
        .await
        .unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e}");
}
