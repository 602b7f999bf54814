//! `list` and `stat`: entries as lines, as a table, or as JSON. `stat -v` adds what the
//! client learned of the server (its name, ETags, checksums, whether create-if-absent is
//! atomic), so that nobody relies on what the server lacks.
//!
//! A listing is sorted by name (a tree by path), as `ls` sorts; `-U` prints entries in the
//! server's order as they arrive, so that a directory of millions starts printing at once
//! and never sits in memory. Times are local with their offset (`--utc`: UTC); JSON always
//! gives RFC 3339 UTC.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ctadata::transfer;
use ctadata::{Entry, Error, RemotePath, Result, StorageBackend};
use futures::{FutureExt, StreamExt};

use super::output::{emit_json, mark_json_emitted};
use super::stdout_result;
use crate::cli::Global;

/// How `list` shows entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListStyle {
    /// Type, size, time and locality.
    pub long: bool,
    /// The whole tree below the directory.
    pub recursive: bool,
    /// The server's order, printed as it arrives.
    pub unsorted: bool,
    /// Times in UTC instead of the local zone.
    pub utc: bool,
}

/// `list`: a directory's entries, or a file as itself.
pub(crate) async fn list(
    g: &Global,
    backend: Arc<dyn StorageBackend>,
    path: &RemotePath,
    style: ListStyle,
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
    let style = ListStyle {
        recursive: style.recursive && !is_file,
        ..style
    };
    let entries = if style.recursive {
        drop(entries);
        transfer::walk(backend.clone(), path.clone(), 8)
    } else {
        entries
    };
    if style.unsorted {
        stream_out(g, entries, path, style).await
    } else {
        sorted_out(g, entries, path, style).await
    }
}

/// The sort key of an entry: its path below the listed directory (its name without `-r`).
fn sort_key<'a>(e: &'a Entry, dir: &RemotePath, recursive: bool) -> &'a str {
    if recursive {
        e.path.strip_prefix(dir).unwrap_or(e.path.as_str())
    } else {
        e.name.as_str()
    }
}

/// Gathers the rendered entries, sorts them by name (byte order, as `LC_ALL=C ls`), prints.
/// Only the rendered text and its key are kept, not whole entries.
async fn sorted_out(
    g: &Global,
    mut entries: ctadata::EntryStream,
    dir: &RemotePath,
    style: ListStyle,
) -> Result<()> {
    let mut rows: Vec<(Box<str>, Box<[u8]>)> = Vec::new();
    let mut buf = Vec::with_capacity(256);
    while let Some(e) = entries.next().await {
        let e = e?;
        buf.clear();
        let rendered = if g.json {
            json_text(&mut buf, &e)
        } else {
            write_list_line(&mut buf, &e, dir, style)
        };
        rendered.map_err(|err| Error::internal(format!("cannot render {}: {err}", e.path)))?;
        rows.push((
            sort_key(&e, dir, style.recursive).into(),
            buf.as_slice().into(),
        ));
    }
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if g.json {
        mark_json_emitted();
    }
    let mut written = Ok(());
    for (i, (_, text)) in rows.iter().enumerate() {
        written = if g.json {
            json_element(&mut out, text, i == 0)
        } else {
            out.write_all(text)
        };
        if written.is_err() {
            break;
        }
    }
    written
        .and_then(|()| {
            if g.json {
                close_json(&mut out, rows.len())
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush())
        .or_else(stdout_result)
}

/// Prints entries as they arrive, in the server's order.
async fn stream_out(
    g: &Global,
    mut entries: ctadata::EntryStream,
    dir: &RemotePath,
    style: ListStyle,
) -> Result<()> {
    // Block-buffered: one write per 64 KiB instead of one per line.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut n = 0usize;
    let mut text = Vec::with_capacity(256);
    if g.json {
        mark_json_emitted();
    }
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
                if g.json {
                    let _ = close_json(&mut out, n);
                }
                let _ = out.flush();
                return Err(err);
            }
        };
        let written = if g.json {
            text.clear();
            json_text(&mut text, &e).and_then(|()| json_element(&mut out, &text, n == 0))
        } else {
            write_list_line(&mut out, &e, dir, style)
        };
        if let Err(err) = written {
            return stdout_result(err);
        }
        n += 1;
    }
    let closing = if g.json {
        close_json(&mut out, n)
    } else {
        Ok(())
    };
    closing.and_then(|()| out.flush()).or_else(stdout_result)
}

/// How long `list` waits for the next entry before it shows what it has.
const FLUSH_GRACE: Duration = Duration::from_millis(50);

/// An entry as pretty JSON, indented to sit in an array.
fn json_text(out: &mut Vec<u8>, e: &Entry) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(e).map_err(std::io::Error::other)?;
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(b"  ");
        out.extend_from_slice(line.as_bytes());
    }
    Ok(())
}

/// One element of a JSON array written as it goes, laid out as `serde_json`'s pretty
/// printer lays out a whole array.
fn json_element(out: &mut impl Write, text: &[u8], first: bool) -> std::io::Result<()> {
    out.write_all(if first { b"[\n" } else { b",\n" })?;
    out.write_all(text)
}

/// Closes the array of `n` elements (`[]` when empty).
fn close_json(out: &mut impl Write, n: usize) -> std::io::Result<()> {
    if n == 0 {
        writeln!(out, "[]")
    } else {
        writeln!(out, "\n]")
    }
}

/// A time as `ls --full-time` shows it: local with its offset, or UTC.
pub(crate) fn show_time(t: SystemTime, utc: bool) -> String {
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S %z";
    if utc {
        chrono::DateTime::<chrono::Utc>::from(t)
            .format(FORMAT)
            .to_string()
    } else {
        chrono::DateTime::<chrono::Local>::from(t)
            .format(FORMAT)
            .to_string()
    }
}

/// One line of `list`: the name (the path below the listed directory with `-r`), with a
/// trailing `/` for directories; `-l` adds kind, size, time and tape locality. Written
/// straight into the buffer (a million lines make no million strings).
fn write_list_line(
    out: &mut impl Write,
    e: &Entry,
    dir: &RemotePath,
    style: ListStyle,
) -> std::io::Result<()> {
    let shown = sort_key(e, dir, style.recursive);
    let slash = if e.is_dir() { "/" } else { "" };
    if !style.long {
        return writeln!(out, "{shown}{slash}");
    }
    let kind = if e.is_dir() { "d" } else { "-" };
    let loc = e.locality.map(|l| l.as_str()).unwrap_or("");
    match e.size {
        Some(s) => write!(out, "{kind} {s:>14} ")?,
        None => write!(out, "{kind} {:>14} ", "-")?,
    }
    match e.mtime {
        Some(t) => write!(out, "{:>25} ", show_time(t, style.utc))?,
        None => write!(out, "{:>25} ", "-")?,
    }
    writeln!(out, "{loc:<9} {shown}{slash}")
}

/// `stat`: one entry, as lines or as JSON. With `-v`, a file the listing gave no checksum
/// is asked alone (HEAD with Want-Digest), and what the client learned of the server follows
/// (JSON: the `server` object).
pub(crate) async fn stat(
    g: &Global,
    backend: Arc<dyn StorageBackend>,
    path: &RemotePath,
    utc: bool,
) -> Result<()> {
    let mut e = backend.stat(path).await?;
    // Asked only at -v: the notes then say whether the server has checksums at all.
    let mut asked = false;
    if g.verbose > 0 && e.is_file() && e.checksums.is_empty() {
        match backend.checksums(path).await {
            Ok(sums) => {
                asked = !sums.is_empty();
                e.checksums = sums;
            }
            Err(err) => {
                tracing::info!(path = %path, "could not ask the server for checksums: {err}")
            }
        }
    }
    if g.json {
        if g.verbose == 0 {
            return emit_json(&e);
        }
        let mut v = serde_json::to_value(&e)
            .map_err(|err| Error::internal(format!("cannot write JSON: {err}")))?;
        let notes = serde_json::to_value(backend.server_notes())
            .map_err(|err| Error::internal(format!("cannot write JSON: {err}")))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("server".into(), notes);
        }
        return emit_json(&v);
    }
    let mut text = String::new();
    let mut line = |k: &str, v: &str| text.push_str(&format!("{k:<10}{v}\n"));
    line("path:", &e.path.to_string());
    line("type:", if e.is_dir() { "directory" } else { "file" });
    if let Some(s) = e.size {
        line("size:", &format!("{s} ({})", transfer::human_bytes(s)));
    }
    if let Some(t) = e.mtime {
        line("modified:", &show_time(t, utc));
    }
    if let Some(t) = &e.etag {
        line("etag:", t);
    }
    for c in &e.checksums {
        if asked {
            line("checksum:", &format!("{c} (asked for this file alone)"));
        } else {
            line("checksum:", &c.to_string());
        }
    }
    if let Some(l) = e.locality {
        line("locality:", l.as_str());
    }
    if g.verbose > 0 {
        for (k, v) in backend.server_notes().describe() {
            line(k, &v);
        }
    }
    super::write_stdout(text.as_bytes())
}
