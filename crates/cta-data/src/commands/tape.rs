//! `stage` (with `status`, `cancel`, `delete`), `release` and `archiveinfo`: the WLCG Tape
//! REST API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctadata::tape::{StageStatus, TapeOps};
use ctadata::transfer::{self, Progress, StageOptions, Staged};
use ctadata::{
    unsupported, Entry, EntryKind, Error, RemotePath, ResolvedProfile, Result, StorageBackend,
};
use futures::StreamExt;

use super::{emit_json, remote};
use crate::cli::{Global, StageAction};

/// The tape operations of `backend`, or the error naming the profiles that have them.
fn tape_of<'a>(backend: &'a Arc<dyn StorageBackend>, verb: &str) -> Result<&'a dyn TapeOps> {
    backend
        .tape()
        .ok_or_else(|| unsupported(verb, backend.capabilities().backend))
}

/// A path argument of a tape verb: `./status` names the file `status` (not the subcommand).
fn tape_path(r: &ResolvedProfile, s: &str) -> Result<RemotePath> {
    let s = s.strip_prefix("./").unwrap_or(s);
    remote(r, s)
}

fn json_err(e: serde_json::Error) -> Error {
    Error::internal(format!("cannot write JSON: {e}"))
}

/// The options of `cta-data stage`.
pub(super) struct StageCmd<'a> {
    /// A subcommand (status, cancel, delete).
    pub action: &'a Option<StageAction>,
    /// Files (or directories with `recursive`).
    pub paths: &'a [String],
    /// Every file below directories.
    pub recursive: bool,
    /// Pin lifetime.
    pub pin: Option<Duration>,
    /// Wait for the files.
    pub wait: bool,
    /// Give up waiting after this long.
    pub timeout: Option<Duration>,
}

/// `cta-data stage ...`.
pub(super) async fn stage(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    cmd: StageCmd<'_>,
) -> Result<()> {
    match cmd.action {
        Some(StageAction::Status { id }) => return status(g, r, &backend, id).await,
        Some(StageAction::Cancel { id, paths }) => {
            let tape = tape_of(&backend, "stage cancel")?;
            let paths = paths
                .iter()
                .map(|p| tape_path(r, p))
                .collect::<Result<Vec<_>>>()?;
            tape.cancel(id, &paths).await?;
            return acted(g, r, "stage cancel", id, &paths, "cancelled");
        }
        Some(StageAction::Delete { id }) => {
            tape_of(&backend, "stage delete")?.delete(id).await?;
            return acted(g, r, "stage delete", id, &[], "deleted");
        }
        None => {}
    }
    let tape = tape_of(&backend, "stage")?;
    if cmd.paths.is_empty() {
        return Err(Error::usage(
            "nothing to stage",
            "name the files: 'cta-data stage PATH...' (or 'cta-data stage status ID' to follow a request)",
        ));
    }
    let files = files_of(&backend, r, cmd.paths, cmd.recursive).await?;
    if files.is_empty() {
        return Err(Error::usage(
            "no files below the directories given",
            "name files, or directories that hold some",
        ));
    }
    if cmd.wait {
        return stage_and_wait(g, r, backend.clone(), files, cmd.pin, cmd.timeout).await;
    }
    let paths: Vec<RemotePath> = files.iter().map(|e| e.path.clone()).collect();
    let id = tape.stage(&paths, cmd.pin).await?;
    if g.json {
        return emit_json(&serde_json::json!({
            "command": "stage",
            "profile": r.name,
            "request_id": id,
            "files": paths,
        }));
    }
    super::write_stdout(format!("{id}\n").as_bytes())?;
    if !g.quiet {
        eprintln!(
            "stage request {id} for {}: follow it with 'cta-data stage status {id}'",
            count(paths.len())
        );
    }
    Ok(())
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

/// The files named: as given, or with `recursive` every file below a directory (listed
/// with the streamed walk).
async fn files_of(
    backend: &Arc<dyn StorageBackend>,
    r: &ResolvedProfile,
    args: &[String],
    recursive: bool,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for a in args {
        let p = tape_path(r, a)?;
        if !recursive {
            out.push(Entry::new(p, EntryKind::File));
            continue;
        }
        let e = backend.stat(&p).await?;
        if !e.is_dir() {
            out.push(e);
            continue;
        }
        let mut walk = transfer::walk(backend.clone(), p, 4);
        while let Some(e) = walk.next().await {
            let e = e?;
            if e.is_file() {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// The progress of `stage --wait`: the request id once, then a line when the count moves.
struct WaitLine {
    quiet: bool,
    last: Mutex<Option<(usize, usize)>>,
    id: Mutex<Option<String>>,
}

impl Progress for WaitLine {
    fn staging(&self, request: &str, on_disk: usize, failed: usize, total: usize) {
        let mut id = self.id.lock().unwrap_or_else(|e| e.into_inner());
        if id.is_none() {
            *id = Some(request.to_string());
            if !self.quiet {
                crate::progress::eprint_line(&format!("stage request {request}"));
            }
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != Some((on_disk, failed)) {
            *last = Some((on_disk, failed));
            if !self.quiet {
                crate::progress::eprint_line(&staging_line(on_disk, failed, total));
            }
        }
    }
}

/// `staging: 3 of 5 on disk` (`, 1 failed`).
pub(crate) fn staging_line(on_disk: usize, failed: usize, total: usize) -> String {
    let failed = if failed > 0 {
        format!(", {failed} failed")
    } else {
        String::new()
    };
    format!("staging: {on_disk} of {total} on disk{failed}")
}

async fn stage_and_wait(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    files: Vec<Entry>,
    pin: Option<Duration>,
    timeout: Option<Duration>,
) -> Result<()> {
    let line = Arc::new(WaitLine {
        quiet: g.quiet || g.json,
        last: Mutex::new(None),
        id: Mutex::new(None),
    });
    let total = files.len();
    let opts = StageOptions::default().with_pin(pin).with_timeout(timeout);
    let mut s = transfer::stage_stream(backend, files, opts, line.clone());
    let mut online = Vec::new();
    let mut failed: Vec<(RemotePath, Error)> = Vec::new();
    while let Some(x) = s.next().await {
        match x {
            Staged::Online(e) => online.push(e.path),
            Staged::Failed(e, err) => failed.push((e.path, err)),
        }
    }
    let id = line
        .id
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    if g.json {
        emit_json(&serde_json::json!({
            "command": "stage",
            "profile": r.name,
            "request_id": id,
            "on_disk": online,
            "failed": failed.iter().map(|(p, e)| serde_json::json!({"path": p, "error": e.to_string()})).collect::<Vec<_>>(),
        }))?;
    } else {
        if !id.is_empty() {
            super::write_stdout(format!("{id}\n").as_bytes())?;
        }
        for (_, e) in &failed {
            eprintln!("  {e}");
        }
        if !g.quiet {
            eprintln!("staged: {} of {total} on disk", online.len());
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 if total == 1 => Err(failed.remove(0).1),
        n => Err(Error::Partial {
            failed: n,
            total,
            retry: false,
        }),
    }
}

/// A server timestamp for people: seconds or milliseconds since 1970, in UTC.
fn when(t: Option<i64>) -> String {
    match t {
        Some(t) if t > 0 => {
            let secs = if t > 100_000_000_000 { t / 1000 } else { t };
            ctadata::entry::format_rfc3339(
                std::time::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()),
            )
        }
        _ => "-".into(),
    }
}

/// `cta-data stage status ID`.
async fn status(
    g: &Global,
    r: &ResolvedProfile,
    backend: &Arc<dyn StorageBackend>,
    id: &str,
) -> Result<()> {
    let st: StageStatus = tape_of(backend, "stage status")?.status(id).await?;
    if g.json {
        let mut v = serde_json::to_value(&st).map_err(json_err)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("command".into(), "stage status".into());
            o.insert("profile".into(), r.name.clone().into());
            o.insert(
                "on_disk".into(),
                serde_json::Value::from(st.online() as u64),
            );
        }
        return emit_json(&v);
    }
    let mut text = format!(
        "request {} (created {}, {})\n",
        st.id,
        when(st.created_at),
        if st.is_done() {
            format!("completed {}", when(st.completed_at))
        } else {
            "in progress".into()
        }
    );
    text.push_str(&format!("{:<10} {:<7} PATH\n", "STATE", "ON DISK"));
    for f in &st.files {
        let disk = match (f.is_online(), f.on_disk) {
            (true, _) | (_, Some(true)) => "yes",
            (_, Some(false)) => "no",
            _ => "?",
        };
        text.push_str(&format!("{:<10} {:<7} {}", f.state.as_str(), disk, f.path));
        if let Some(e) = &f.error {
            text.push_str(&format!("  ({e})"));
        }
        text.push('\n');
    }
    let failed = st
        .files
        .iter()
        .filter(|f| !f.is_online() && f.state.is_final())
        .count();
    text.push_str(&format!(
        "{} of {} on disk{}\n",
        st.online(),
        st.files.len(),
        if failed > 0 {
            format!(", {failed} failed or cancelled")
        } else {
            String::new()
        }
    ));
    super::write_stdout(text.as_bytes())
}

/// The output of a verb that only acts on a request (cancel, delete, release).
fn acted(
    g: &Global,
    r: &ResolvedProfile,
    command: &str,
    id: &str,
    paths: &[RemotePath],
    done: &str,
) -> Result<()> {
    if g.json {
        return emit_json(&serde_json::json!({
            "command": command,
            "profile": r.name,
            "request_id": id,
            "paths": paths,
        }));
    }
    if !g.quiet {
        let what = if paths.is_empty() {
            "every file".to_string()
        } else {
            count(paths.len())
        };
        eprintln!("{done} {what} of stage request {id}");
    }
    Ok(())
}

/// `cta-data release ID [PATH...]`.
pub(super) async fn release(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    id: &str,
    paths: &[String],
) -> Result<()> {
    let tape = tape_of(&backend, "release")?;
    let paths = paths
        .iter()
        .map(|p| tape_path(r, p))
        .collect::<Result<Vec<_>>>()?;
    tape.release(id, &paths).await?;
    acted(g, r, "release", id, &paths, "released")
}

/// `cta-data archiveinfo PATH...`.
pub(super) async fn archiveinfo(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    paths: &[String],
) -> Result<()> {
    let tape = tape_of(&backend, "archiveinfo")?;
    let paths = paths
        .iter()
        .map(|p| tape_path(r, p))
        .collect::<Result<Vec<_>>>()?;
    let infos = tape.archive_info(&paths).await?;
    let errors: Vec<_> = infos.iter().filter(|i| i.error.is_some()).collect();
    if g.json {
        emit_json(&serde_json::json!({
            "command": "archiveinfo",
            "profile": r.name,
            "files": infos,
        }))?;
    } else {
        let mut text = String::new();
        for i in &infos {
            if let Some(l) = &i.locality {
                text.push_str(&format!("{:<14} {}\n", l.as_str(), i.path));
            }
        }
        super::write_stdout(text.as_bytes())?;
        for i in &errors {
            eprintln!("  {}: {}", i.path, i.error.as_deref().unwrap_or_default());
        }
    }
    match errors.as_slice() {
        [] => Ok(()),
        [one] if infos.len() == 1 => Err(Error::NotFound {
            path: one.path.to_string(),
            detail: one.error.clone(),
        }),
        _ => Err(Error::Partial {
            failed: errors.len(),
            total: infos.len(),
            retry: false,
        }),
    }
}
