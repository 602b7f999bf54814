//! `config show`/`paths`, `cat`, `rm`: the commands that are neither listings nor transfers.

use std::path::PathBuf;
use std::sync::Arc;

use ctadata::config::{self, EnvSnapshot, ResolvedProfile};
use ctadata::transfer;
use ctadata::{Error, GetOptions, RemotePath, Result, StorageBackend};

use super::{emit_json, stdout_result, write_stdout};
use crate::cli::Global;

/// `config show`: the resolved profile, each value with where it came from.
pub(crate) fn config_show(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let values = r.values();
    if g.json {
        let doc = serde_json::json!({
            "profile": r.name,
            "chosen_by": r.name_origin,
            "files": r.files,
            "values": r
                .typed_values()
                .into_iter()
                .map(|(k, v, o)| serde_json::json!({"key": k, "value": v, "origin": o}))
                .collect::<Vec<_>>(),
        });
        return emit_json(&doc);
    }
    let mut text = format!("# profile '{}' (chosen by {})\n", r.name, r.name_origin);
    if r.files.is_empty() {
        text.push_str("# no config file read\n");
    }
    for f in &r.files {
        text.push_str(&format!("# read {}\n", f.display()));
    }
    let width = values
        .iter()
        .map(|(k, v, _)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    for (k, v, o) in values {
        let line = format!("{k} = {v}");
        text.push_str(&format!("{line:width$}  # {o}\n"));
    }
    write_stdout(text.as_bytes())
}

/// `cat`: a file's bytes on stdout; a directory is refused before anything is printed
/// (a server's HTML index must never pass for file content).
pub(crate) async fn cat(backend: Arc<dyn StorageBackend>, path: &RemotePath) -> Result<()> {
    let entry = backend.stat(path).await?;
    if entry.is_dir() {
        return Err(Error::usage(
            format!("{path} is a directory"),
            format!("use 'cta-data list {path}' to see what it holds, or give a file's path"),
        ));
    }
    let dl = backend
        .get(path, GetOptions::default().with_known(entry))
        .await?;
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
    let files = [
        ("system", PathBuf::from(config::SYSTEM_CONFIG)),
        ("user", user),
    ];
    if g.json {
        let doc: Vec<_> = files
            .iter()
            .map(|(role, p)| serde_json::json!({"path": p, "role": role, "read": p.is_file()}))
            .collect();
        return emit_json(&doc);
    }
    let mut text = String::new();
    for (_, p) in files {
        let state = if p.is_file() { "read" } else { "absent" };
        text.push_str(&format!("{}\t{state}\n", p.display()));
    }
    write_stdout(text.as_bytes())
}

/// `rm`: a file, an empty directory, or with `recursive` a whole tree.
pub(crate) async fn rm(
    backend: Arc<dyn StorageBackend>,
    p: &RemotePath,
    typed: &str,
    recursive: bool,
) -> Result<()> {
    let e = backend.stat(p).await?;
    if e.is_dir() && !recursive {
        // An empty directory may go without -r, as rmdir would.
        return match backend.delete(p, false).await {
            Err(Error::Conflict { .. }) => Err(Error::usage(
                format!("{p} is a directory that is not empty"),
                format!("use 'cta-data rm -r {typed}' to delete it with its contents"),
            )),
            other => other,
        };
    }
    backend.delete(p, recursive).await
}

/// `config profiles`: the names of the known profiles (what `--profile` completes).
pub(crate) fn config_profiles(g: &Global, r: &ResolvedProfile) -> Result<()> {
    let names = r.profile_names();
    if g.json {
        return emit_json(&names);
    }
    let mut text = String::new();
    for n in names {
        text.push_str(&n);
        text.push('\n');
    }
    write_stdout(text.as_bytes())
}
