//! SQL over Parquet files on CTA storage, read in place through the object_store adapter.
//!
//! ```sh
//! cargo run --release --features datafusion --example datafusion_query -- \
//!     --profile cta lst/DL2/run1/ "SELECT count(*) FROM t"
//! ```
//! Flags as for `cta-data`: `--config FILE`, `--profile NAME`, `--url URL`; then the location
//! (a Parquet file, or a directory of them: end it with '/'), either a path on the chosen
//! profile or a `cta://<profile>/<path>` URL naming any profile, and the query over table `t`.

use ctadata::config::{EnvSnapshot, LoadOptions};
use ctadata::datafusion::CtaObjectStoreRegistry;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::ParquetReadOptions;

const USAGE: &str =
    "usage: datafusion_query [--config FILE] [--profile NAME] [--url URL] LOCATION SQL";

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
                println!("{USAGE}");
                return Ok(());
            }
            _ => rest.push(a),
        }
    }
    let [location, sql] = <[String; 2]>::try_from(rest).map_err(|_| USAGE)?;
    let env = EnvSnapshot::from_process();
    // A bare path is on the chosen profile (resolved as the CLI does: --profile, CTADATA_PROFILE,
    // default_profile); a cta:// URL names its own profile.
    let table_url = if location.starts_with("cta://") {
        location
    } else {
        let profile = ctadata::config::load(&opts, &env)?;
        let base = ctadata::profile_url(&profile.name)?;
        format!("{base}{}", location.trim_start_matches('/'))
    };
    let ctx = CtaObjectStoreRegistry::new(opts, ctadata::OpenOptions::default(), env)
        .session_context()?;
    ctx.register_parquet("t", &table_url, ParquetReadOptions::default())
        .await?;
    let batches = ctx.sql(&sql).await?.collect().await?;
    println!("{}", pretty_format_batches(&batches)?);
    Ok(())
}
