//! `cta-data list -U` prints a listing as the server's answer arrives: against the dCache door
//! double with a synthetic listing that stops in the middle (`synthetic_pause`), the first
//! line (or JSON element) comes out while the server is still silent, and everything
//! arrives in order once it goes on. A closed pipe ends `list` quietly.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{DcacheConfig, DcacheDouble};
use serde_json::Value;
use tempfile::TempDir;

const TOKEN: &str = "list-test-token";
/// Entries in the listing.
const N: usize = 3000;
/// Entries sent before the server stops.
const AFTER: usize = 1000;
/// How long it stops.
const PAUSE: Duration = Duration::from_secs(3);

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new(url: &str) -> Env {
        let e = Env {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "work"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        std::fs::write(
            e.path("config.toml"),
            format!("[profiles.door]\nbackend = \"dcache\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
        e
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    /// `cta-data ... ARGS` started with stdout and stderr piped.
    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(cargo_bin("cta-data"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .env("BEARER_TOKEN", TOKEN)
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", "door"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// A door whose `/cta/many` lists `entries` files and stops for `pause` after `after`.
fn paused_door(entries: usize, after: usize, pause: Duration) -> DcacheDouble {
    let d = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    d.synthetic_dir("/cta/many", entries);
    d.synthetic_pause(after, pause);
    d
}

fn name(k: usize) -> String {
    format!("entry-{k:07}.dat")
}

/// Reads stderr on a thread, so that a chatty child never blocks on it.
fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    })
}

/// What a run that reads the first chunk, then the rest, saw.
struct Timed {
    /// From the start to the end of the first chunk.
    first_after: Duration,
    /// Whether the child was still running when the first chunk had arrived.
    running_at_first: bool,
    /// From the first chunk to the child's exit.
    rest_took: Duration,
    stdout: String,
    stderr: String,
    success: bool,
}

/// Runs `args`, timing `first_chunk` (which reads from stdout until its first unit is in).
fn timed(
    env: &Env,
    args: &[&str],
    first_chunk: impl FnOnce(&mut BufReader<ChildStdout>) -> String,
) -> Timed {
    let start = Instant::now();
    let mut child = env.spawn(args);
    let stderr = drain_stderr(&mut child);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = first_chunk(&mut out);
    let at_first = Instant::now();
    let running_at_first = child.try_wait().unwrap().is_none();
    out.read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    Timed {
        first_after: at_first - start,
        running_at_first,
        rest_took: at_first.elapsed(),
        stdout,
        stderr: stderr.join().unwrap(),
        success: status.success(),
    }
}

/// The first line came before the server went on, and the server's pause came after it:
/// the output was not gathered before being printed.
fn assert_streamed(t: &Timed, what: &str) {
    assert!(t.success, "exit: {}", t.stderr);
    assert!(
        t.running_at_first,
        "the {what} came only when the listing ended"
    );
    // The server stops after sending AFTER entries, i.e. after the start: its pause ends
    // later than `start + PAUSE`.
    assert!(
        t.first_after < PAUSE,
        "the {what} came {:?} after the start, the server paused for {PAUSE:?}",
        t.first_after
    );
    // The pause was really there, and came after the first line: the line came well before
    // the pause ended (and the check above is not void).
    assert!(
        t.rest_took >= PAUSE - Duration::from_millis(500),
        "the rest came {:?} after the {what}: the server did not pause after it",
        t.rest_took
    );
}

#[test]
fn list_prints_the_first_line_before_the_answer_ends() {
    let d = paused_door(N, AFTER, PAUSE);
    let env = Env::new(&d.url());
    let t = timed(&env, &["list", "-U", "cta/many"], |out| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    });
    assert_streamed(&t, "first line");
    assert_eq!(t.stdout.lines().next(), Some(name(0).as_str()));
    let names: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(names.len(), N, "all {N} names");
    for (k, n) in names.iter().enumerate() {
        assert_eq!(*n, name(k), "line {k}: in order");
    }
    assert_eq!(t.stderr, "");
}

#[test]
fn list_json_writes_the_first_element_before_the_answer_ends() {
    let d = paused_door(N, AFTER, PAUSE);
    let env = Env::new(&d.url());
    let t = timed(&env, &["--json", "list", "-U", "cta/many"], |out| {
        // Up to the end of the first element, as serde_json's pretty printer closes it.
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 || line == "  },\n" || line == "  }\n" {
                text.push_str(&line);
                return text;
            }
            text.push_str(&line);
        }
    });
    assert_streamed(&t, "first element");
    let v: Value = serde_json::from_str(&t.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", &t.stdout[..t.stdout.len().min(500)]));
    let arr = v.as_array().expect("a JSON array");
    assert_eq!(arr.len(), N);
    for (k, e) in arr.iter().enumerate() {
        assert_eq!(e["path"], format!("/cta/many/{}", name(k)), "{e}");
        assert_eq!(e["name"], name(k), "{e}");
        assert_eq!(e["type"], "file", "{e}");
        assert_eq!(e["size"], 0, "{e}");
        assert_eq!(e["mtime"], "2023-11-14T22:13:20Z", "{e}");
        assert_eq!(e["etag"], format!("\"synthetic-{k}\""), "{e}");
    }
    // Laid out as serde_json's pretty printer lays out the whole array.
    assert!(t.stdout.starts_with("[\n  {\n    \"path\": "));
    assert!(t.stdout.ends_with("\n  }\n]\n"));
    assert_eq!(t.stdout.matches("\n  },\n  {\n").count(), N - 1);
    assert_eq!(t.stderr, "");
}

#[test]
fn list_into_a_closed_pipe_stops_quietly() {
    // Far more than a pipe holds, and a long pause deep in the listing: a `list` that went
    // on reading after its reader left would sit in the pause.
    let d = paused_door(200_000, 150_000, Duration::from_secs(30));
    let env = Env::new(&d.url());
    let mut child = env.spawn(&["list", "-U", "cta/many"]);
    let stderr = drain_stderr(&mut child);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, format!("{}\n", name(0)));
    // As `| head -1` does: the reader goes away.
    drop(out);
    let closed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if closed.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("list still running 10 s after its stdout was closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "exit {:?}: {stderr}", status.code());
    assert_eq!(stderr, "", "a closed pipe is not an error");
}
