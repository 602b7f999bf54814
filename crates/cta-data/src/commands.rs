//! What each command does: resolve the profile, open the backend, call the library, print.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctadata::config::{self, EnvSnapshot, LoadOptions, ResolvedProfile};
use ctadata::transfer::{self, FileOutcome, Filter, Summary, TransferOptions};
use ctadata::{
    Entry, Error, OpenOptions, PutOptions, RemotePath, Result, RetryPolicy, StorageBackend,
};
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::cli::{CertAction, Cli, Command, ConfigAction, Global, TokenAction, TransferArgs};
use crate::progress::Display;

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "cta-data", &mut buf);
            write_stdout(&buf)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| Error::local("write", "standard output", e))?;
            write_stdout(&buf)
        }
        Command::Config { action } => {
            let resolved = resolve(g)?;
            match action {
                ConfigAction::Show => config_show(g, &resolved),
                ConfigAction::Paths => {
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
            }
        }
        Command::Login {
            secret_stdin,
            secret,
            no_qr,
        } => crate::auth_cmd::login(g, &resolve(g)?, *secret_stdin, secret.clone(), *no_qr).await,
        Command::Logout => crate::auth_cmd::logout(g, &resolve(g)?).await,
        Command::PrintToken => crate::auth_cmd::print_token(g, &resolve(g)?).await,
        Command::Token {
            action: TokenAction::Status,
        } => crate::auth_cmd::status(g, &resolve(g)?).await,
        Command::ResetConfig => crate::auth_cmd::reset(g, &resolve(g)?),
        Command::Cert {
            action: CertAction::Info { file },
        } => crate::cert_info::info(g, &resolve(g)?, file.as_deref()),
        Command::Cert {
            action: CertAction::Upload { file, key, user },
        } => crate::cert_upload::upload(g, &resolve(g)?, file, key, user.as_deref()).await,
        Command::UploadPersonalCertificate { file, key, user } => {
            crate::cert_upload::upload(g, &resolve(g)?, file, key, user.as_deref()).await
        }
        Command::Cert {
            action: CertAction::UploadShared { file },
        }
        | Command::UploadSharedCertificate { file } => {
            crate::cert_upload::upload_shared(g, &resolve(g)?, file).await
        }
        cmd => {
            let resolved = resolve(g)?;
            let backend = ctadata::open(
                &resolved,
                &OpenOptions::default()
                    .with_insecure(g.insecure)
                    .with_retry(RetryPolicy::attempts(g.retries.saturating_add(1))),
            )?;
            tracing::debug!(profile = %resolved.name, backend = resolved.backend().as_str(), "opened");
            run_storage(cmd, g, &resolved, backend).await
        }
    }
}

/// Writes generated text to stdout; a closed pipe (e.g. `| head`) is not an error.
fn write_stdout(buf: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(buf)
        .and_then(|()| out.flush())
        .or_else(stdout_result)
}

pub(crate) fn resolve(g: &Global) -> Result<ResolvedProfile> {
    let opts = LoadOptions::default()
        .with_config_file(g.config.clone())
        .with_profile(if g.dev {
            Some("cta-dev".into())
        } else {
            g.profile.clone()
        })
        .with_profile_origin(g.dev.then(|| "flag -d/--dev".to_string()))
        .with_url(g.url.clone())
        .with_ca_file(g.ca_file.clone())
        .with_token_file(g.token_file.clone())
        .with_system_file(None);
    config::load(&opts, &EnvSnapshot::from_process())
}

fn config_show(g: &Global, r: &ResolvedProfile) -> Result<()> {
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

fn rp(s: &str) -> Result<RemotePath> {
    RemotePath::parse(s)
}

async fn run_storage(
    cmd: &Command,
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
) -> Result<()> {
    match cmd {
        Command::List {
            path,
            long,
            recursive,
        } => list(g, backend, &rp(path)?, *long, *recursive).await,
        Command::Stat { path } => {
            let e = backend.stat(&rp(path)?).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
            } else {
                print_stat(&e);
            }
            Ok(())
        }
        Command::Get {
            remote,
            local,
            recursive,
            transfer,
        } => {
            get(
                g,
                r,
                backend,
                &rp(remote)?,
                local.as_deref(),
                *recursive,
                transfer,
            )
            .await
        }
        Command::Put {
            local,
            remote,
            recursive,
            force,
            transfer,
        } => put(g, r, backend, local, remote, *recursive, *force, transfer).await,
        Command::Mkdir { path, parents } => backend.mkdir(&rp(path)?, *parents).await,
        Command::Rm { path, recursive } => {
            let p = rp(path)?;
            let e = backend.stat(&p).await?;
            if e.is_dir() && !*recursive {
                // An empty directory may go without -r, as rmdir would.
                return match backend.delete(&p, false).await {
                    Err(Error::Conflict { .. }) => Err(Error::usage(
                        format!("{p} is a directory that is not empty"),
                        format!("use 'cta-data rm -r {path}' to delete it with its contents"),
                    )),
                    other => other,
                };
            }
            backend.delete(&p, *recursive).await
        }
        Command::Mv { from, to, force } => backend.rename(&rp(from)?, &rp(to)?, *force).await,
        Command::Cat { path } => cat(backend, &rp(path)?).await,
        Command::Config { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Login { .. }
        | Command::Logout
        | Command::PrintToken
        | Command::Token { .. }
        | Command::ResetConfig
        | Command::Cert { .. }
        | Command::UploadPersonalCertificate { .. }
        | Command::UploadSharedCertificate { .. } => {
            unreachable!("handled before")
        }
    }
}

async fn list(
    g: &Global,
    backend: Arc<dyn StorageBackend>,
    path: &RemotePath,
    long: bool,
    recursive: bool,
) -> Result<()> {
    let (entries, is_file): (ctadata::EntryStream, bool) = match backend.list(path).await {
        Ok(s) => (s, false),
        // Like ls: listing a file shows the file (with -r too: there is nothing to descend).
        Err(Error::Conflict { .. }) => {
            let e = backend.stat(path).await?;
            (futures::stream::iter([Ok(e)]).boxed(), true)
        }
        Err(e) => return Err(e),
    };
    let recursive = recursive && !is_file;
    let mut entries = if recursive {
        // A tree is shown sorted, so it is gathered first.
        drop(entries);
        let mut all: Vec<Entry> = transfer::walk(backend.clone(), path.clone(), 8)
            .try_collect()
            .await?;
        all.sort_by(|a, b| a.path.cmp(&b.path));
        futures::stream::iter(all.into_iter().map(Ok)).boxed()
    } else {
        // A directory is printed as the server's answer is read: the first line comes at
        // once and a million entries never sit in memory.
        entries
    };
    // Block-buffered: one write per 64 KiB instead of one per line.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut n = 0usize;
    loop {
        // While the server is slow, what is buffered is shown first (after a short grace,
        // so that a fast listing is written in large blocks, not once per network chunk).
        let next = match entries.next().now_or_never() {
            Some(next) => next,
            None => match tokio::time::timeout(FLUSH_GRACE, entries.next()).await {
                Ok(next) => next,
                Err(_) => {
                    if let Err(err) = out.flush() {
                        return stdout_result(err);
                    }
                    entries.next().await
                }
            },
        };
        let Some(e) = next else { break };
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                // What was printed stays printed; the JSON array is closed so it parses.
                if g.json && n > 0 {
                    let _ = writeln!(out, "\n]");
                }
                let _ = out.flush();
                return Err(err);
            }
        };
        let written = if g.json {
            json_element(&mut out, &e, n == 0)
        } else {
            write_list_line(&mut out, &e, path, long, recursive)
        };
        if let Err(err) = written {
            return stdout_result(err);
        }
        n += 1;
    }
    let closing = if g.json {
        if n == 0 {
            writeln!(out, "[]")
        } else {
            writeln!(out, "\n]")
        }
    } else {
        Ok(())
    };
    closing.and_then(|()| out.flush()).or_else(stdout_result)
}

/// How long `list` waits for the next entry before it shows what it has.
const FLUSH_GRACE: Duration = Duration::from_millis(50);

/// One element of a JSON array written as it goes, laid out as `serde_json`'s pretty
/// printer lays out a whole array.
fn json_element(out: &mut impl Write, e: &Entry, first: bool) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(e).map_err(std::io::Error::other)?;
    out.write_all(if first { b"[\n" } else { b",\n" })?;
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(b"  ")?;
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// One line of `list`: the name (the path below the listed directory with `-r`), with a
/// trailing `/` for directories; `-l` adds kind, size, time and tape locality. Written
/// straight into the buffer (a million lines make no million strings).
fn write_list_line(
    out: &mut impl Write,
    e: &Entry,
    dir: &RemotePath,
    long: bool,
    recursive: bool,
) -> std::io::Result<()> {
    let shown = if recursive {
        e.path.strip_prefix(dir).unwrap_or(e.path.as_str())
    } else {
        e.name.as_str()
    };
    let slash = if e.is_dir() { "/" } else { "" };
    if !long {
        return writeln!(out, "{shown}{slash}");
    }
    let kind = if e.is_dir() { "d" } else { "-" };
    let loc = e.locality.map(|l| l.as_str()).unwrap_or("");
    match e.size {
        Some(s) => write!(out, "{kind} {s:>14} ")?,
        None => write!(out, "{kind} {:>14} ", "-")?,
    }
    match e.mtime {
        Some(t) => write!(out, "{:>20} ", ctadata::transfer_time(t))?,
        None => write!(out, "{:>20} ", "-")?,
    }
    writeln!(out, "{loc:<9} {shown}{slash}")
}

/// A failed write to stdout: a closed pipe (e.g. `| head`) ends the output quietly.
fn stdout_result(e: std::io::Error) -> Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Error::local("write", "standard output", e))
    }
}

fn print_stat(e: &Entry) {
    println!("path:     {}", e.path);
    println!(
        "type:     {}",
        if e.is_dir() { "directory" } else { "file" }
    );
    if let Some(s) = e.size {
        println!("size:     {s} ({})", transfer::human_bytes(s));
    }
    if let Some(t) = e.mtime {
        println!("modified: {}", ctadata::transfer_time(t));
    }
    if let Some(t) = &e.etag {
        println!("etag:     {t}");
    }
    for c in &e.checksums {
        println!("checksum: {c}");
    }
    if let Some(l) = e.locality {
        println!("locality: {}", l.as_str());
    }
}

/// The target of a copy: an existing directory or a path ending in '/' receives `name` inside.
/// Where a download lands. A LOCAL ending in '/' receives the remote name inside it; so
/// does an existing directory when a *file* is fetched. A directory is mirrored onto LOCAL
/// itself, so that running the same `get -r` again resumes or skips instead of nesting.
fn local_target(local: Option<&Path>, name: &str, remote_is_dir: bool) -> PathBuf {
    match local {
        None => PathBuf::from(name),
        Some(l) => {
            let ends_with_slash = l.as_os_str().to_string_lossy().ends_with('/');
            if ends_with_slash || (!remote_is_dir && l.is_dir()) {
                l.join(name)
            } else {
                l.to_path_buf()
            }
        }
    }
}

fn transfer_options(
    g: &Global,
    r: &ResolvedProfile,
    backend: &dyn StorageBackend,
    t: &TransferArgs,
    overwrite: bool,
) -> Result<(TransferOptions, Arc<Display>)> {
    let jobs = t
        .jobs
        .map(usize::from)
        .or(r.profile.jobs.map(|j| j as usize))
        .unwrap_or(backend.capabilities().default_jobs)
        .max(1);
    let display = Display::new(g.quiet || g.json, g.verbose > 0);
    let mut opts = TransferOptions::default();
    opts.jobs = jobs;
    opts.fail_fast = t.fail_fast;
    opts.overwrite = overwrite;
    opts.skip_existing = t.skip_existing;
    opts.update = t.update;
    opts.dry_run = t.dry_run;
    opts.filter = Filter::new(&t.include, &t.exclude)?;
    opts.progress = display.clone();
    Ok((opts, display))
}

fn finish(g: &Global, what: &str, display: &Display, summary: Summary) -> Result<()> {
    display.finish();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else if !g.quiet {
        if !summary.failures.is_empty() {
            eprintln!("{} failed:", summary.failures.len());
        }
        for f in &summary.failures {
            eprintln!("  {}: {}", f.path, f.reason);
        }
        let resumed = if summary.resumed_bytes > 0 {
            format!(
                " (+{} resumed)",
                transfer::human_bytes(summary.resumed_bytes)
            )
        } else {
            String::new()
        };
        let planned = if summary.planned > 0 {
            format!("{} files would be transferred, ", summary.planned)
        } else {
            String::new()
        };
        eprintln!(
            "{what}: {planned}{} files ({}{resumed}), {} directories, {} skipped, {} failed in {:.1} s ({})",
            summary.transferred,
            transfer::human_bytes(summary.bytes),
            summary.directories,
            summary.skipped,
            summary.failures.len(),
            summary.seconds,
            transfer::human_rate(summary.bytes, Duration::from_secs_f64(summary.seconds)),
        );
    }
    summary.into_result().map(|_| ())
}

/// One file's outcome as a summary, so single files and trees report alike.
fn single(outcome: FileOutcome, started: Instant) -> Summary {
    let mut s = Summary::default();
    match &outcome {
        FileOutcome::Done(d) => {
            s.transferred = 1;
            s.bytes = d.bytes;
            s.resumed_bytes = d.resumed_from;
        }
        FileOutcome::Skipped { .. } => s.skipped = 1,
        FileOutcome::Planned { .. } => s.planned = 1,
        FileOutcome::Failed { .. } => {}
    }
    s.seconds = started.elapsed().as_secs_f64();
    s
}

async fn get(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    remote: &RemotePath,
    local: Option<&Path>,
    recursive: bool,
    t: &TransferArgs,
) -> Result<()> {
    let started = Instant::now();
    let entry = backend.stat(remote).await?;
    let name = if remote.is_root() {
        "storage-root"
    } else {
        remote.name()
    };
    let target = local_target(local, name, entry.is_dir());
    let (opts, display) = transfer_options(g, r, backend.as_ref(), t, true)?;
    if entry.is_dir() {
        if !recursive {
            return Err(Error::usage(
                format!("{remote} is a directory"),
                format!(
                    "use 'cta-data get -r {}' to download it with its contents",
                    remote.as_str()
                ),
            ));
        }
        let summary = transfer::download_tree(backend, remote, &target, &opts).await?;
        return finish(g, "downloaded", &display, summary);
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::NotFound {
                path: parent.display().to_string(),
                detail: Some("local path; the target's directory does not exist".into()),
            });
        }
    }
    opts.progress.discovered(1, entry.size.unwrap_or(0));
    let outcome =
        transfer::download_file(backend.as_ref(), remote, Some(&entry), &target, &opts).await;
    display.finish();
    let outcome = outcome?;
    report_single(g, "downloaded", &outcome, started)
}

#[allow(clippy::too_many_arguments)]
async fn put(
    g: &Global,
    r: &ResolvedProfile,
    backend: Arc<dyn StorageBackend>,
    local: &Path,
    remote_raw: &str,
    recursive: bool,
    force: bool,
    t: &TransferArgs,
) -> Result<()> {
    let started = Instant::now();
    let md = std::fs::metadata(local).map_err(|e| Error::local("read", local, e))?;
    let mut remote = rp(remote_raw)?;
    let existing = backend.stat(&remote).await.ok();
    // A REMOTE ending in '/' takes the local name (the old client's rule); so does an
    // existing remote directory when a *file* is sent. A directory is mirrored onto REMOTE
    // itself, so that the same `put -r` run again skips or replaces instead of nesting.
    let into_dir = remote_raw.ends_with('/')
        || remote.is_root()
        || (!md.is_dir() && existing.as_ref().is_some_and(|e| e.is_dir()));
    let mut existing = if into_dir { None } else { existing };
    if into_dir {
        // Only needed here: `put -r . dest` names the remote in full.
        let local_name = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            Error::usage(
                format!("cannot take a remote name from {}", local.display()),
                "give the remote path in full",
            )
        })?;
        remote = remote.join(local_name)?;
        if !md.is_dir() {
            existing = backend.stat(&remote).await.ok();
        }
    }
    let (opts, display) = transfer_options(g, r, backend.as_ref(), t, force)?;
    if md.is_dir() {
        if !recursive {
            return Err(Error::usage(
                format!("{} is a directory", local.display()),
                format!(
                    "use 'cta-data put -r {} {remote_raw}' to upload it with its contents",
                    local.display()
                ),
            ));
        }
        let summary = transfer::upload_tree(backend, local, &remote, &opts).await?;
        return finish(g, "uploaded", &display, summary);
    }
    // The same rules as a tree upload, for one file.
    let skip = match &existing {
        Some(e) if e.is_file() && t.skip_existing && e.size == Some(md.len()) => {
            Some("same size".to_string())
        }
        Some(e)
            if e.is_file()
                && t.update
                && e.mtime.zip(md.modified().ok()).is_some_and(|(r, l)| r >= l) =>
        {
            Some("the remote copy is as new or newer".to_string())
        }
        _ => None,
    };
    let outcome = match skip {
        Some(reason) => FileOutcome::Skipped { reason },
        None => {
            let put = PutOptions::default()
                .with_overwrite(force || t.update)
                .with_create_parents(true);
            opts.progress.discovered(1, md.len());
            let r = transfer::upload_file(backend.as_ref(), local, &remote, put, &opts).await;
            display.finish();
            r?
        }
    };
    report_single(g, "uploaded", &outcome, started)
}

fn report_single(g: &Global, what: &str, outcome: &FileOutcome, started: Instant) -> Result<()> {
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(outcome).unwrap_or_default()
        );
        return single(outcome.clone(), started).into_result().map(|_| ());
    }
    if !g.quiet {
        match outcome {
            FileOutcome::Done(d) => {
                let check = d
                    .verified
                    .as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default();
                let resumed = if d.resumed_from > 0 {
                    format!(", resumed at {}", transfer::human_bytes(d.resumed_from))
                } else {
                    String::new()
                };
                let (from, to) = if what == "uploaded" {
                    (d.local.display().to_string(), d.remote.clone())
                } else {
                    (d.remote.clone(), d.local.display().to_string())
                };
                eprintln!(
                    "{what} {from} -> {to} ({}{resumed}{check})",
                    transfer::human_bytes(d.size)
                );
            }
            FileOutcome::Skipped { reason } => eprintln!("skipped: {reason}"),
            FileOutcome::Planned { .. } | FileOutcome::Failed { .. } => {}
        }
    }
    Ok(())
}

async fn cat(backend: Arc<dyn StorageBackend>, path: &RemotePath) -> Result<()> {
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
