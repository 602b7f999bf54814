//! The DataFusion example, run as a user would, against nginx: its printed table is checked.
//! Needs `cargo build --features datafusion --example datafusion_query` first (tests/run-all.sh
//! does it).
// parquet 59 deprecates its object_store reader/writer in favour of hand-written ones; they
// are still the shortest way to drive a real reader through an ObjectStore in a test.
#![allow(deprecated)]

use std::process::Command;
use std::sync::Arc;

use ctadata::CtaObjectStore;
use ctadata_testsupport::Nginx;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::async_writer::ParquetObjectWriter;
use datafusion::parquet::arrow::AsyncArrowWriter;
use object_store::path::Path;

fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("examples/datafusion_query");
    assert!(bin.is_file(), "{} is missing: run 'cargo build --features datafusion --example datafusion_query' (tests/run-all.sh does)", bin.display());
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_queries_parquet_on_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.t]\nbackend = \"dcache\"\nurl = \"{}\"\n",
            nginx.url()
        ),
    )
    .unwrap();
    std::env::set_var("BEARER_TOKEN", "t");

    // Two Parquet files in a directory, written through the adapter.
    let opts = ctadata::LoadOptions::default()
        .with_config_file(Some(cfg.clone()))
        .with_profile(Some("t".into()));
    let profile =
        ctadata::config::load(&opts, &ctadata::config::EnvSnapshot::from_process()).unwrap();
    let store = Arc::new(CtaObjectStore::new(
        ctadata::open(&profile, &Default::default()).unwrap(),
        "t",
    ));
    let schema = Arc::new(Schema::new(vec![
        Field::new("telescope", DataType::Utf8, false),
        Field::new("event_id", DataType::Int64, false),
        Field::new("energy", DataType::Float64, false),
    ]));
    for (file, n) in [("a.parquet", 30i64), ("b.parquet", 12)] {
        let tel: Vec<&str> = (0..n)
            .map(|i| if i % 3 == 0 { "LST-1" } else { "LST-2" })
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(tel)),
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(
                (0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>(),
            )),
        ];
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let writer =
            ParquetObjectWriter::new(store.clone(), Path::from(format!("lst/DL2/run1/{file}")));
        let mut w = AsyncArrowWriter::try_new(writer, schema.clone(), None).unwrap();
        w.write(&batch).await.unwrap();
        w.close().await.unwrap();
    }

    let run = |args: &[&str]| {
        let out = Command::new(example_binary())
            .env("BEARER_TOKEN", "t")
            .env("HOME", dir.path())
            .env_remove("CTADATA_PROFILE")
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let table = |stdout: &str| -> Vec<Vec<String>> {
        stdout
            .lines()
            .filter(|l| l.starts_with("| LST"))
            .map(|l| {
                l.split('|')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect()
    };

    // A directory on the chosen profile.
    let (ok, stdout, stderr) = run(&[
        "--profile",
        "t",
        "lst/DL2/run1/",
        "SELECT telescope, count(*) AS n FROM t GROUP BY telescope ORDER BY telescope",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    println!("{stdout}");
    // 30 rows: 10 LST-1, 20 LST-2; 12 rows: 4 LST-1, 8 LST-2.
    assert_eq!(
        table(&stdout),
        vec![
            vec!["LST-1".to_string(), "14".into()],
            vec!["LST-2".to_string(), "28".into()]
        ]
    );

    // One file named by a cta:// URL: the registry opens profile 't' from the URL alone.
    let (ok, stdout, stderr) = run(&[
        "cta://t/lst/DL2/run1/b.parquet",
        "SELECT telescope, sum(energy) AS e FROM t GROUP BY telescope ORDER BY telescope",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    // b.parquet: i in 0..12, energy i/2; LST-1 at i = 0,3,6,9 -> 9; the others -> 24.
    assert_eq!(
        table(&stdout),
        vec![
            vec!["LST-1".to_string(), "9.0".into()],
            vec!["LST-2".to_string(), "24.0".into()]
        ]
    );

    // A profile that does not exist: a clear error naming it, no panic.
    let (ok, stdout, stderr) = run(&["cta://nosuch/x.parquet", "SELECT 1 FROM t"]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("nosuch"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
