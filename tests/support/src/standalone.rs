//! What the standalone server binaries (`ctadata-door`, `ctadata-platform`, `ctadata-nginx`)
//! share: termination signals taken with `sigwait` (so temporary directories are removed),
//! private token files, and the command protocol on stdin.
//!
//! Protocol: once a binary has printed `READY=1`, each line it reads on stdin is one command
//! (words separated by spaces); it answers each with exactly one line on stdout, `OK`,
//! `OK <payload>` (often JSON) or `ERR <reason>`. Every binary knows `ping`. The end of stdin
//! ends the commands, not the server: it serves until SIGINT, SIGTERM or SIGHUP; with
//! `--stop-at-eof` (every binary takes it) the end of stdin stops it too, so a server whose
//! parent died (its stdin pipe closed) does not outlive it.

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// A set of blocked termination signals, taken by [`serve_commands`].
pub struct Signals(libc::sigset_t);

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals(SIGINT, SIGTERM, SIGHUP)")
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread started after it; call
/// it first in `main`, before any server starts its threads.
pub fn block_signals() -> Signals {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        Signals(set)
    }
}

enum Event {
    Command(String),
    Stop,
}

/// Answers commands read on stdin with `handle` (its `Ok` text after `OK `, its `Err` after
/// `ERR `; `ping` is answered here) until a termination signal arrives, or, with
/// `stop_at_eof`, stdin ends; then returns.
pub fn serve_commands(
    signals: Signals,
    stop_at_eof: bool,
    mut handle: impl FnMut(&[&str]) -> Result<String, String>,
) {
    let (tx, rx) = mpsc::channel();
    let stop = tx.clone();
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `signals.0` is an initialised signal set, `sig` a valid out pointer.
        while unsafe { libc::sigwait(&signals.0, &mut sig) } != 0 {}
        let _ = stop.send(Event::Stop);
    });
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Event::Command(line)).is_err() {
                return;
            }
        }
        if stop_at_eof {
            let _ = tx.send(Event::Stop);
        }
    });
    while let Ok(Event::Command(line)) = rx.recv() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.first() {
            None => continue,
            Some(&"ping") => Ok(String::new()),
            Some(_) => handle(&words),
        };
        let mut out = std::io::stdout().lock();
        let _ = match answer {
            Ok(t) if t.is_empty() => writeln!(out, "OK"),
            Ok(t) => writeln!(out, "OK {}", t.replace('\n', " ")),
            Err(e) => writeln!(out, "ERR {}", e.replace('\n', " ")),
        };
        let _ = out.flush();
    }
}

/// Prints the `KEY=VALUE` lines, then `READY=1`, and flushes.
pub fn announce(pairs: &[(&str, String)]) {
    let mut out = std::io::stdout().lock();
    for (k, v) in pairs {
        let _ = writeln!(out, "{k}={v}");
    }
    let _ = writeln!(out, "READY=1");
    let _ = out.flush();
}

/// Writes `text` to `dir/name`, readable by its owner only.
pub fn write_private(dir: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    Ok(path)
}

/// A fresh random token (32 hex digits).
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `N`-th word of a command parsed as a number, or an `ERR` reason.
pub fn number<T: std::str::FromStr>(words: &[&str], n: usize) -> Result<T, String> {
    let w = words
        .get(n)
        .ok_or(format!("'{}' needs argument {n}", words[0]))?;
    w.parse()
        .map_err(|_| format!("'{}': '{w}' is not a number", words[0]))
}

/// The `N`-th word of a command as `on` (true) or `off` (false).
pub fn on_off(words: &[&str], n: usize) -> Result<bool, String> {
    match words.get(n) {
        Some(&"on") => Ok(true),
        Some(&"off") => Ok(false),
        _ => Err(format!("'{}' takes on or off", words[0])),
    }
}
