//! Interoperability with the peer clients users know: what cta-data writes, davix and curl
//! read back byte for byte; what they write, cta-data reads. The server is nginx (dav-ext).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ctadata_core::transfer::{self, TransferOptions};
use ctadata_core::{PutOptions, RemotePath, StorageBackend, Upload};
use ctadata_testsupport::{dcache_profile, Nginx};

fn open(url: &str, dir: &Path) -> Arc<dyn StorageBackend> {
    let p = dcache_profile(dir, url, "", "BEARER_TOKEN", "interop-token");
    Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap())
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run-all.sh installs curl and davix)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn davix_and_curl_read_what_cta_data_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let b = open(&nginx.url(), dir.path());

    let src = dir.path().join("src.bin");
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let remote = RemotePath::parse("interop/run 1/data+ε.bin").unwrap();
    b.put(
        &remote,
        Upload::from_file(&src).await.unwrap(),
        PutOptions::default().with_create_parents(true),
    )
    .await
    .unwrap();

    let url = format!("{}/interop/run%201/data+%CE%B5.bin", nginx.url());
    let by_curl = dir.path().join("curl.bin");
    run(Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(&by_curl)
        .arg(&url));
    let by_davix = dir.path().join("davix.bin");
    run(Command::new("davix-get").arg(&url).arg(&by_davix));
    let want = sha256(&src);
    assert_eq!(sha256(&by_curl), want);
    assert_eq!(sha256(&by_davix), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cta_data_reads_a_tree_written_by_curl_and_davix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let base = nginx.url();
    let files = [
        ("tree/a.txt", "alpha\n"),
        ("tree/sub dir/b.txt", "beta\n"),
        ("tree/sub dir/deeper/c.bin", "gamma\n"),
    ];
    for d in [
        "tree/",
        "tree/sub%20dir/",
        "tree/sub%20dir/deeper/",
        "tree/empty/",
    ] {
        run(Command::new("curl")
            .args(["-sSf", "-X", "MKCOL"])
            .arg(format!("{base}/{d}")));
    }
    for (i, (p, content)) in files.iter().enumerate() {
        let local = dir.path().join(format!("f{i}"));
        std::fs::write(&local, content).unwrap();
        let url = format!("{base}/{}", p.replace(' ', "%20"));
        if i % 2 == 0 {
            run(Command::new("curl")
                .args(["-sSf", "-T"])
                .arg(&local)
                .arg(&url));
        } else {
            run(Command::new("davix-put").arg(&local).arg(&url));
        }
    }
    let b = open(&base, dir.path());
    let out = dir.path().join("out");
    let summary = transfer::download_tree(
        b,
        &RemotePath::parse("tree").unwrap(),
        &out,
        &TransferOptions::default(),
    )
    .await
    .unwrap();
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(summary.transferred, 3);
    assert!(
        out.join("empty").is_dir(),
        "empty directories are recreated"
    );
    for (p, content) in files {
        assert_eq!(
            std::fs::read_to_string(out.join(p.strip_prefix("tree/").unwrap())).unwrap(),
            content,
            "{p}"
        );
    }
}
