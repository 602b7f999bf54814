//! Reads one column of a Parquet file, either in place on CTA storage through the
//! object_store adapter (only that column's bytes travel) or from a local file; and writes
//! test files. `bench/parquet.sh` times it against downloading the file first.
//!
//! ```sh
//! parquet_column gen FILE SIZE                 # a Parquet file of about SIZE bytes (e.g. 1G)
//! parquet_column read [--config FILE] [--profile NAME] [--url URL] LOCATION COLUMN
//! parquet_column read-local FILE COLUMN
//! ```
//! `gen` writes an Int64 column `id` and eight Float64 columns `c0`..`c7` of pseudo-random
//! values, uncompressed, in row groups of 1,048,576 rows. `read` takes a path on the chosen
//! profile or a `cta://<profile>/<path>` URL. Both readers print one line:
//! `rows=N sum=S seconds=T` (S: the sum of the column, to compare the two ways).
// parquet 59 deprecates its object_store reader in favour of hand-written ones; it is still
// the reader most programs use today.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use ctadata::config::{EnvSnapshot, LoadOptions};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage:\n  parquet_column gen FILE SIZE\n  parquet_column read [--config FILE] [--profile NAME] [--url URL] LOCATION COLUMN\n  parquet_column read-local FILE COLUMN";
const GROUP_ROWS: usize = 1 << 20;
const FLOAT_COLUMNS: usize = 8;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") => match &args[1..] {
            [file, size] => generate(file.as_ref(), parse_size(size)?),
            _ => Err(USAGE.into()),
        },
        Some("read") => read_remote(&args[1..]).await,
        Some("read-local") => match &args[1..] {
            [file, column] => read_local(file.as_ref(), column).await,
            _ => Err(USAGE.into()),
        },
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn parse_size(s: &str) -> Res<u64> {
    let (num, mult) = match s.trim().chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size '{s}': expected a number with an optional K, M or G"))?;
    Ok(n * mult)
}

/// Writes about `size` bytes of Parquet: nine 8-byte columns per row, no compression.
fn generate(path: &std::path::Path, size: u64) -> Res<()> {
    let rows = (size / (8 * (FLOAT_COLUMNS as u64 + 1))).max(1) as usize;
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    fields
        .extend((0..FLOAT_COLUMNS).map(|i| Field::new(format!("c{i}"), DataType::Float64, false)));
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(GROUP_ROWS))
        .build();
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut done = 0usize;
    while done < rows {
        let n = (rows - done).min(64 * 1024);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
            (done..done + n).map(|i| i as i64),
        ))];
        for _ in 0..FLOAT_COLUMNS {
            cols.push(Arc::new(Float64Array::from_iter_values((0..n).map(|_| {
                // xorshift64*: values in [0, 1) that do not compress.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
            }))));
        }
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        done += n;
    }
    w.close()?;
    std::fs::rename(&tmp, path)?;
    let len = std::fs::metadata(path)?.len();
    println!("wrote {} ({len} bytes, {rows} rows)", path.display());
    Ok(())
}

async fn read_remote(args: &[String]) -> Res<()> {
    let mut opts = LoadOptions::default();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => opts.config_file = it.next().map(Into::into),
            "--profile" => opts.profile = it.next().cloned(),
            "--url" => opts.url = it.next().cloned(),
            _ => rest.push(a.clone()),
        }
    }
    let [location, column] = <[String; 2]>::try_from(rest).map_err(|_| USAGE)?;
    let (profile, path) = match url::Url::parse(&location)
        .ok()
        .and_then(|u| ctadata::split_url(&u))
    {
        Some((p, path)) => (Some(p), path),
        None => (
            None,
            object_store::path::Path::parse(location.trim_start_matches('/'))?,
        ),
    };
    if profile.is_some() {
        opts.profile = profile;
    }
    let resolved = ctadata::config::load(&opts, &EnvSnapshot::from_process())?;
    let (_, store) = ctadata::object_store(&resolved, &ctadata::OpenOptions::default())?;
    let started = Instant::now();
    let meta = store.head(&path).await?;
    let store: Arc<dyn ObjectStore> = store;
    let reader = ParquetObjectReader::new(store, path).with_file_size(meta.size);
    sum_column(reader, &column, started).await
}

async fn read_local(path: &std::path::Path, column: &str) -> Res<()> {
    let started = Instant::now();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    sum_column(file, column, started).await
}

/// Reads only `column` through `reader` and prints its row count, sum and the time taken.
async fn sum_column<R: AsyncFileReader + Unpin + Send + 'static>(
    reader: R,
    column: &str,
    started: Instant,
) -> Res<()> {
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let mask = projection(builder.parquet_schema(), column)?;
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let (rows, sum) = fold(stream.map_err(Into::into)).await?;
    report(rows, sum, started);
    Ok(())
}

fn projection(
    schema: &parquet::schema::types::SchemaDescriptor,
    column: &str,
) -> Res<ProjectionMask> {
    let idx = (0..schema.num_columns())
        .find(|&i| schema.column(i).name() == column)
        .ok_or_else(|| format!("no column '{column}' in the file"))?;
    Ok(ProjectionMask::leaves(schema, [idx]))
}

async fn fold(
    mut stream: impl futures::Stream<Item = Res<RecordBatch>> + Unpin,
) -> Res<(usize, f64)> {
    let (mut rows, mut sum) = (0usize, 0f64);
    while let Some(batch) = stream.try_next().await? {
        let col = batch.column(0);
        rows += col.len();
        sum += match col.data_type() {
            DataType::Float64 => col
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .sum::<f64>(),
            DataType::Int64 => col
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|v| *v as f64)
                .sum(),
            other => {
                return Err(format!("column type {other} is not summed by this example").into())
            }
        };
    }
    Ok((rows, sum))
}

fn report(rows: usize, sum: f64, started: Instant) {
    println!(
        "rows={rows} sum={sum:.6} seconds={:.3}",
        started.elapsed().as_secs_f64()
    );
}
