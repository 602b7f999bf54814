//! `config show`, `cat`: the commands that are neither listings nor transfers.

use std::sync::Arc;

use ctadata::config::ResolvedProfile;
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
