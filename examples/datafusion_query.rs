//! SQL over Parquet files on CTA storage, read in place through the object_store adapter.
//!
//! ```sh
//! cargo run --release --features datafusion --example datafusion_query -- \
//!     --profile cta lst/DL2/run1/ "SELECT count(*) FROM t"
//! ```
//! Flags as for `cta-data`: `--config FILE`, `--profile NAME`, `--url URL`; then the location
//! (a Parquet file, or a directory of them: end it with '/') and the query over table `t`.

use std::sync::Arc;

use ctadata::config::{self, EnvSnapshot, LoadOptions};
use ctadata_object_store::{profile_url, CtaObjectStore};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = LoadOptions::default();
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => opts.config_file = args.next().map(Into::into),
            "--profile" => opts.profile = args.next(),
            "--url" => opts.url = args.next(),
            "-h" | "--help" => {
                println!("usage: datafusion_query [--config FILE] [--profile NAME] [--url URL] LOCATION SQL");
                return Ok(());
            }
            _ => rest.push(a),
        }
    }
    let [location, sql] = <[String; 2]>::try_from(rest).map_err(|_| {
        "usage: datafusion_query [--config FILE] [--profile NAME] [--url URL] LOCATION SQL"
    })?;
    let profile = config::load(&opts, &EnvSnapshot::from_process())?;
    let backend = ctadata::open(&profile, &ctadata::OpenOptions::default())?;
    let store = Arc::new(CtaObjectStore::new(backend, profile.name.clone()));

    let ctx = SessionContext::new();
    let base = profile_url(&profile.name);
    ctx.register_object_store(&base, store);
    let table_url = format!("{base}{}", location.trim_start_matches('/'));
    ctx.register_parquet("t", &table_url, ParquetReadOptions::default())
        .await?;
    let batches = ctx.sql(&sql).await?.collect().await?;
    println!("{}", pretty_format_batches(&batches)?);
    Ok(())
}
