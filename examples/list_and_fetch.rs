//! List a directory and download its files with the `ctadata` library.
//!
//! ```sh
//! cargo run --example list_and_fetch -- local demo ./fetched
//! ```
//! Arguments: PROFILE REMOTE_DIR LOCAL_DIR. Works the same on every backend.

use ctadata::{transfer, RemotePath};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let profile = args.next().unwrap_or_else(|| "local".into());
    let dir = RemotePath::parse(&args.next().unwrap_or_default())?;
    let local = std::path::PathBuf::from(args.next().unwrap_or_else(|| "fetched".into()));

    let storage = ctadata::open_profile(Some(&profile))?;
    std::fs::create_dir_all(&local)?;
    let opts = transfer::TransferOptions::default();
    for entry in storage.list_all(&dir).await? {
        if entry.is_file() {
            let target = local.join(&entry.name);
            match transfer::download_file(
                storage.as_ref(),
                &entry.path,
                Some(&entry),
                &target,
                &opts,
            )
            .await?
            {
                transfer::FileOutcome::Done(d) => {
                    println!(
                        "{} -> {} ({} bytes, {})",
                        entry.path,
                        target.display(),
                        d.size,
                        d.verified.unwrap_or_else(|| "size checked".into())
                    )
                }
                other => println!("{}: {other:?}", entry.path),
            }
        } else {
            println!("{}/ (directory, skipped)", entry.path);
        }
    }
    Ok(())
}
