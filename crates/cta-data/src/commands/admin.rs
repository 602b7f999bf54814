//! `config show`, `cat`: the commands that are neither listings nor transfers.

use std::path::PathBuf;
use std::sync::Arc;

use ctadata::config::{self, EnvSnapshot, ResolvedProfile};
use ctadata::transfer;
use ctadata::{Error, RemotePath, Result, StorageBackend};

use super::stdout_result;
use crate::cli::Global;

pub(crate) fn config_show(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let values = r.values();
    if g.json {
        let v = serde_json::json!({
            "profile": r.name,
            "chosen_by": r.name_origin,
            "files": r.files,
            "values": values.iter().map(|(k, v, o)| serde_json::json!({"key": k, "value": v, "origin": o})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("# profile '{}' (chosen by {})", r.name, r.name_origin);
    if r.files.is_empty() {
        println!("# no config file read");
    }
    for f in &r.files {
        println!("# read {}", f.display());
    }
    let width = values
        .iter()
        .map(|(k, v, _)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    for (k, v, o) in values {
        let line = format!("{k} = {v}");
        println!("{line:width$}  # {o}");
    }
    Ok(())
}

pub(crate) async fn cat(backend: Arc<dyn StorageBackend>, path: &RemotePath) -> Result<()> {
    let dl = backend.get(path, Default::default()).await?;
    // Chunks go to a writer thread as they are (no copies, no blocking-pool hand-offs).
    let mut out = transfer::ThreadWriter::new(std::io::stdout())
        .map_err(|e| Error::local("write", "standard output", e))?;
    let mut stream = dl.stream;
    let failure = transfer::pump(&mut stream, &mut out, |_| {}).await;
    let written = out.finish().await;
    if let Some(e) = failure {
        return Err(e);
    }
    written.map(drop).or_else(stdout_result)
}

/// `config paths`: the config files read, in order (later wins), and whether each exists.
pub(crate) fn config_paths(g: &Global) -> Result<()> {
    let env = EnvSnapshot::from_process();
    let user = g
        .config
        .clone()
        .unwrap_or_else(|| env.config_dir().join("config.toml"));
    for p in [PathBuf::from(config::SYSTEM_CONFIG), user] {
        let state = if p.is_file() { "read" } else { "absent" };
        println!("{}\t{state}", p.display());
    }
    Ok(())
}

/// `rm`: a file, an empty directory, or with `recursive` a whole tree.
pub(crate) async fn rm(
    backend: Arc<dyn StorageBackend>,
    path: &str,
    recursive: bool,
) -> Result<()> {
    let p = RemotePath::parse(path)?;
    let e = backend.stat(&p).await?;
    if e.is_dir() && !recursive {
        // An empty directory may go without -r, as rmdir would.
        return match backend.delete(&p, false).await {
            Err(Error::Conflict { .. }) => Err(Error::usage(
                format!("{p} is a directory that is not empty"),
                format!("use 'cta-data rm -r {path}' to delete it with its contents"),
            )),
            other => other,
        };
    }
    backend.delete(&p, recursive).await
}
