//! `list` and `stat`: entries as lines, as a table, or as JSON.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use ctadata::transfer;
use ctadata::{Entry, Error, RemotePath, Result, StorageBackend};
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::stdout_result;
use crate::cli::Global;

pub(crate) async fn list(
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
pub(crate) fn json_element(out: &mut impl Write, e: &Entry, first: bool) -> std::io::Result<()> {
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
pub(crate) fn write_list_line(
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

pub(crate) fn print_stat(e: &Entry) {
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
