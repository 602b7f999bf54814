//! Progress bars (indicatif) on a terminal, one line per file with `-v`, nothing with `-q`.
//! Log lines go through the bars so they never tear them.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ctadata::transfer::{human_bytes, FileDone, FileOutcome, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Files at least this large get a bar of their own.
const OWN_BAR: u64 = 64 << 20;

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// A `tracing` writer that prints above the bars when they are shown.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(mp) => mp
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Removes the bars, if any (on Ctrl-C, before the message).
pub fn clear_bars() {
    if let Some(mp) = BARS.get() {
        let _ = mp.clear();
    }
}

/// Prints one line on stderr without tearing the bars.
pub fn eprint_line(line: &str) {
    match BARS.get() {
        Some(mp) => {
            let _ = mp.println(line);
        }
        None => eprintln!("{line}"),
    }
}

/// Prints one line on stdout without tearing the bars (the plan of a dry run).
pub fn print_line(line: &str) {
    match BARS.get() {
        Some(mp) => mp.suspend(|| println!("{line}")),
        None => println!("{line}"),
    }
}

/// How a moved file was checked, for its line: `verified by adler32 (adler32:0a1b2c3d)` or
/// `verified by size only`.
pub fn verified_text(d: &FileDone) -> String {
    match &d.verified {
        Some(c) => format!("{} ({c})", d.how_verified()),
        None => d.how_verified().to_string(),
    }
}

/// One line per moved file, source first: `<source> -> <destination> (size, verified by ...)`.
pub fn done_line(d: &FileDone) -> String {
    let resumed = if d.resumed_from > 0 {
        format!(", resumed at {}", human_bytes(d.resumed_from))
    } else {
        String::new()
    };
    let (from, to) = d.endpoints();
    format!(
        "{from} -> {to} ({}{resumed}, {})",
        human_bytes(d.size),
        verified_text(d)
    )
}

/// The CLI's progress display.
pub struct Display {
    bars: Option<(MultiProgress, ProgressBar)>,
    per_file: Mutex<HashMap<String, ProgressBar>>,
    counts: Mutex<(u64, u64)>,
    verbose: bool,
    plan: bool,
}

impl Display {
    /// Bars when stderr is a terminal and not `quiet`; per-file lines when `verbose`; the
    /// plan of a dry run on stdout when `plan`.
    pub fn new(quiet: bool, verbose: bool, plan: bool) -> Arc<Self> {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let mp = BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8))).clone();
            let total = mp.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            total.enable_steady_tick(Duration::from_millis(200));
            (mp, total)
        });
        Arc::new(Self {
            bars,
            per_file: Mutex::new(HashMap::new()),
            counts: Mutex::new((0, 0)),
            verbose: verbose && !quiet,
            plan,
        })
    }

    fn files_msg(&self) {
        if let Some((_, total)) = &self.bars {
            let (done, all) = *self.counts.lock().unwrap_or_else(|e| e.into_inner());
            total.set_message(format!("files {done}/{all}"));
        }
    }

    /// Removes the bars (before the summary is printed).
    pub fn finish(&self) {
        if let Some((mp, total)) = &self.bars {
            total.finish_and_clear();
            let _ = mp.clear();
        }
    }
}

impl Progress for Display {
    fn discovered(&self, files: u64, bytes: u64) {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).1 += files;
        if let Some((_, total)) = &self.bars {
            total.inc_length(bytes);
        }
        self.files_msg();
    }

    fn started(&self, name: &str, size: Option<u64>, offset: u64) {
        let Some((mp, total)) = &self.bars else {
            return;
        };
        if offset > 0 {
            total.inc(offset);
        }
        if let Some(s) = size.filter(|&s| s >= OWN_BAR) {
            let bar = mp.insert_after(total, ProgressBar::new(s));
            bar.set_style(
                ProgressStyle::with_template("  {wide_msg} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(name.to_string());
            bar.set_position(offset);
            self.per_file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string(), bar);
        }
    }

    fn advanced(&self, name: &str, bytes: u64) {
        if let Some((_, total)) = &self.bars {
            total.inc(bytes);
            if let Some(b) = self
                .per_file
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
            {
                b.inc(bytes);
            }
        }
    }

    fn finished(&self, name: &str, outcome: &FileOutcome) {
        if let Some(b) = self
            .per_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        {
            b.finish_and_clear();
        }
        if matches!(
            outcome,
            FileOutcome::Done(_) | FileOutcome::Skipped { .. } | FileOutcome::Planned { .. }
        ) {
            self.counts.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
            self.files_msg();
        }
        if let FileOutcome::Planned { bytes } = outcome {
            if !self.plan {
                return;
            }
            let size = bytes
                .map(|b| format!(" ({})", human_bytes(b)))
                .unwrap_or_default();
            print_line(&format!("would transfer {name}{size}"));
            return;
        }
        let line = match outcome {
            FileOutcome::Planned { .. } => None,
            _ if !self.verbose => None,
            FileOutcome::Done(d) => Some(done_line(d)),
            FileOutcome::Skipped { reason } => Some(format!("skipped {name}: {reason}")),
            FileOutcome::Failed { reason } => Some(format!("failed {name}: {reason}")),
        };
        if let Some(l) = line {
            eprint_line(&l);
        }
    }
}
