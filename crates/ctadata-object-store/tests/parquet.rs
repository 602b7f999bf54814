//! A Parquet file written through the adapter with the `parquet` crate's async writer, then
//! read back with a column projection and a row filter: only a small part of the file may
//! travel (counted from nginx's access log).
// parquet 59 deprecates its object_store reader/writer in favour of hand-written ones; they
// are still the shortest way to drive a real reader through an ObjectStore in a test.
#![allow(deprecated)]

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use ctadata_object_store::CtaObjectStore;
use ctadata_testsupport::{dcache_profile, Nginx};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::async_writer::ParquetObjectWriter;
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::properties::WriterProperties;

const ROWS: i64 = 400_000;
const GROUP: usize = 40_000;

fn store(url: &str, dir: &std::path::Path) -> Arc<CtaObjectStore> {
    let p = dcache_profile(dir, url, "", "BEARER_TOKEN", "t");
    Arc::new(CtaObjectStore::new(
        Arc::new(ctadata_dcache::open(&p.profile, &p.env, &Default::default()).unwrap()),
        "t",
    ))
}

fn batch(start: i64, n: i64) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n).collect();
    let energy: Vec<f64> = ids
        .iter()
        .map(|i| (*i as f64 * 0.37).sin().abs() * 100.0)
        .collect();
    let alt: Vec<f64> = ids.iter().map(|i| (*i % 90) as f64).collect();
    let tel: Vec<String> = ids
        .iter()
        .map(|i| format!("LST-{}-event-{i:09}", i % 4))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("energy", DataType::Float64, false),
        Field::new("alt", DataType::Float64, false),
        Field::new("telescope", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Float64Array::from(energy)),
        Arc::new(Float64Array::from(alt)),
        Arc::new(StringArray::from(tel)),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

fn bytes_sent_for_gets(nginx: &Nginx, from_line: usize) -> u64 {
    nginx.access_log_lines()[from_line..]
        .iter()
        .filter(|l| l.starts_with("GET"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("sent="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_and_row_filter_fetch_a_fraction_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let store = store(&nginx.url(), dir.path());
    let path = Path::from("lst/DL2/run 1/events.parquet");

    // Write through the adapter (multipart upload, spooled, one verified PUT).
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(GROUP))
        .build();
    let writer = ParquetObjectWriter::new(store.clone(), path.clone());
    let mut w = AsyncArrowWriter::try_new(writer, batch(0, 1).schema(), Some(props)).unwrap();
    for start in (0..ROWS).step_by(50_000) {
        w.write(&batch(start, 50_000)).await.unwrap();
    }
    w.close().await.unwrap();
    let size = store.head(&path).await.unwrap().size;
    assert!(
        std::fs::metadata(root.join("lst/DL2/run 1/events.parquet"))
            .unwrap()
            .len()
            == size
    );

    // Read one column of the rows with event_id < 40_000 (the first row group).
    let log_start = nginx.access_log_lines().len();
    let reader = ParquetObjectReader::new(store.clone(), path.clone()).with_file_size(size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.unwrap();
    let meta = builder.metadata().clone();
    let schema_descr = builder.parquet_schema().clone();
    // Row-group pruning from the statistics, then an exact row filter.
    let groups: Vec<usize> = (0..meta.num_row_groups())
        .filter(|&g| match meta.row_group(g).column(0).statistics() {
            Some(parquet::file::statistics::Statistics::Int64(s)) => {
                s.min_opt().is_some_and(|m| *m < 40_000)
            }
            _ => true,
        })
        .collect();
    assert_eq!(groups, vec![0]);
    let filter = ArrowPredicateFn::new(
        ProjectionMask::leaves(&schema_descr, [0]),
        |b: RecordBatch| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            Ok(arrow_array::BooleanArray::from_iter(
                ids.iter().map(|v| v.map(|v| v < 40_000 && v % 2 == 0)),
            ))
        },
    );
    let stream = builder
        .with_row_groups(groups)
        .with_projection(ProjectionMask::leaves(&schema_descr, [1]))
        .with_row_filter(RowFilter::new(vec![Box::new(filter)]))
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 20_000);
    assert_eq!(batches[0].num_columns(), 1);
    let e = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert!((e.value(1) - (2.0f64 * 0.37).sin().abs() * 100.0).abs() < 1e-9);

    let fetched = bytes_sent_for_gets(&nginx, log_start);
    println!("parquet file {size} bytes; fetched {fetched} bytes for one column of one row group");
    assert!(fetched > 0);
    assert!(fetched * 10 < size, "fetched {fetched} of {size} bytes");
    let _ = e.len();
}
