//! The transfer engine through the CLI: recursive, resumable, verified, filtered transfers
//! against the dCache door double and nginx.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Nginx, Side};
use tempfile::TempDir;

const PARTIAL: i32 = 13;
const TOKEN: &str = "transfer-test-token";

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
    fn cmd(&self) -> Command {
        let mut c = Command::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .env("BEARER_TOKEN", TOKEN)
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", "door"])
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn data(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect()
}

fn door() -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

#[test]
fn an_interrupted_download_resumes_with_a_range_and_verifies_the_whole_file() {
    let d = door();
    let content = data(6_000_000, 1);
    d.put_file("/cta/big.bin", &content);
    let env = Env::new(&d.url());
    d.truncate_next_get(2_500_000);
    // First run: the connection drops and no retry is allowed: the .part stays.
    let o = env.run(&["get", "--retries", "0", "cta/big.bin"]);
    assert_eq!(o.status.code(), Some(9), "{}", err(&o));
    let part = env.path("work/big.bin.part");
    let have = std::fs::metadata(&part).unwrap().len();
    assert!(have > 0 && have < 6_000_000, "partial size {have}");
    assert!(!env.path("work/big.bin").exists());
    d.reset_stats();
    // Second run: resumed from the partial offset.
    let o = env.run(&["-v", "get", "cta/big.bin"]);
    ok(&o);
    assert!(err(&o).contains("resumed at"), "{}", err(&o));
    let ranges: Vec<String> = d
        .stats()
        .log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "GET")
        .filter_map(|r| r.range.clone())
        .collect();
    assert_eq!(ranges, vec![format!("bytes={have}-5999999")]);
    assert_eq!(std::fs::read(env.path("work/big.bin")).unwrap(), content);
    assert!(!part.exists() && !env.path("work/big.bin.part.meta").exists());
}

#[test]
fn an_interruption_is_retried_within_the_same_run() {
    let d = door();
    let content = data(3_000_000, 2);
    d.put_file("/cta/f.bin", &content);
    let env = Env::new(&d.url());
    d.truncate_next_get(1_000_000);
    // -v shows each retry as it starts.
    let o = env.run(&["-v", "get", "cta/f.bin", "out.bin"]);
    ok(&o);
    assert!(
        err(&o).contains("resuming at byte 1000000") && err(&o).contains("(attempt 2 of 4)"),
        "{}",
        err(&o)
    );
    // Only the missing bytes were asked for again.
    let ranges: Vec<String> = d
        .stats()
        .log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "GET")
        .filter_map(|r| r.range.clone())
        .collect();
    assert_eq!(ranges, vec!["bytes=1000000-2999999".to_string()]);
    assert_eq!(std::fs::read(env.path("work/out.bin")).unwrap(), content);
}

#[test]
fn a_changed_remote_file_restarts_the_download() {
    let d = door();
    d.put_file("/cta/f.bin", &data(2_000_000, 3));
    let env = Env::new(&d.url());
    d.truncate_next_get(700_000);
    let o = env.run(&["get", "--retries", "0", "cta/f.bin"]);
    assert!(!o.status.success());
    // The file changes on the server (new content, new size): the .part must not be reused.
    std::fs::remove_file(d.root().join("cta/f.bin")).unwrap();
    let new = data(2_100_000, 4);
    d.put_file("/cta/f.bin", &new);
    d.reset_stats();
    ok(&env.run(&["get", "cta/f.bin"]));
    assert_eq!(std::fs::read(env.path("work/f.bin")).unwrap(), new);
    let log = d.stats().log;
    let pool_gets = log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "GET")
        .count();
    assert_eq!(pool_gets, 1, "the new file read once, whole: {log:#?}");
    assert!(
        log.iter().all(|r| r.range.is_none()),
        "no resume of another file"
    );
}

#[test]
fn a_tree_with_empty_dirs_unicode_and_spaces_round_trips() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let env = Env::new(&nginx.url());
    let src = env.path("work/src");
    for (p, n) in [
        ("a.txt", 10),
        ("sub dir/b é.bin", 200_000),
        ("sub dir/deep/ß+c (1).dat", 1),
        ("zero.bin", 0),
    ] {
        let f = src.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, data(n, n as u32)).unwrap();
    }
    std::fs::create_dir_all(src.join("empty/inner")).unwrap();
    let o = env.run(&["put", "-r", "-j", "3", "src", "runs/"]);
    ok(&o);
    assert!(err(&o).contains("uploaded: 4 files"), "{}", err(&o));
    assert!(root.join("runs/src/empty/inner").is_dir());
    let o = env.run(&["--json", "get", "-r", "runs/src", "back"]);
    let summary: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(summary["transferred"], 4);
    assert!(env.path("work/back/empty/inner").is_dir());
    for p in [
        "a.txt",
        "sub dir/b é.bin",
        "sub dir/deep/ß+c (1).dat",
        "zero.bin",
    ] {
        assert_eq!(
            sha256(&src.join(p)),
            sha256(&env.path("work/back").join(p)),
            "{p}"
        );
    }

    // Second time with --skip-existing: nothing moves either way.
    let log_before = nginx.access_log_lines().len();
    let o = env.run(&["--json", "get", "-r", "--skip-existing", "runs/src", "back"]);
    let s: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(
        (s["transferred"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(4)),
        "{s}"
    );
    let o = env.run(&["--json", "put", "-r", "--skip-existing", "src", "runs/"]);
    let s: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(
        (s["transferred"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(4)),
        "{s}"
    );
    let new_lines = &nginx.access_log_lines()[log_before..];
    // Both runs looked at the tree (so the log is not empty for want of requests)...
    assert!(
        new_lines
            .iter()
            .filter(|l| l.starts_with("PROPFIND"))
            .count()
            >= 2,
        "{new_lines:?}"
    );
    // ... and moved no file.
    assert!(
        new_lines
            .iter()
            .all(|l| !l.starts_with("GET") && !l.starts_with("PUT")),
        "{new_lines:?}"
    );

    // Without options, identical files are skipped; one that differs is refused (the
    // others go on), and the message says what to do.
    std::fs::write(src.join("a.txt"), b"0123456789 changed").unwrap();
    let o = env.run(&["put", "-r", "src", "runs/"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    assert!(
        err(&o).contains("a.txt") && err(&o).contains("--force") && err(&o).contains("3 skipped"),
        "{}",
        err(&o)
    );
}

#[test]
fn dry_run_and_filters_transfer_nothing_or_only_what_matches() {
    let d = door();
    for p in [
        "/cta/r/a.h5",
        "/cta/r/b.fits",
        "/cta/r/x/c.h5",
        "/cta/r/tmp/d.h5",
    ] {
        d.put_file(p, b"data");
    }
    let env = Env::new(&d.url());
    d.reset_stats();
    let o = env.run(&["get", "-r", "--dry-run", "cta/r", "out"]);
    let plan = ok(&o);
    assert_eq!(
        plan.lines()
            .filter(|l| l.starts_with("would transfer"))
            .count(),
        4,
        "{plan}"
    );
    assert!(!env.path("work/out").exists());
    let log = d.stats().log;
    // The plan came from listing the three directories...
    assert!(
        log.iter().filter(|r| r.method == "PROPFIND").count() >= 3,
        "{log:#?}"
    );
    // ... and no file was read.
    assert!(
        log.iter().all(|r| r.method != "GET"),
        "a dry run reads no file"
    );

    ok(&env.run(&[
        "get",
        "-r",
        "--include",
        "*.h5",
        "--exclude",
        "tmp",
        "cta/r",
        "out",
    ]));
    let mut got = Vec::new();
    for e in walk(&env.path("work/out")) {
        got.push(
            e.strip_prefix(env.path("work/out"))
                .unwrap()
                .display()
                .to_string(),
        );
    }
    got.sort();
    assert_eq!(got, vec!["a.h5", "x/c.h5"]);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn one_unreadable_file_fails_alone() {
    let d = door();
    let env = Env::new(&d.url());
    let src = env.path("work/src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        std::fs::write(src.join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    let bad = src.join("f2.txt");
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // Root reads anything: run as nobody then, in directories nobody may use.
    let mut cmd = env.cmd();
    if is_root() {
        for p in [
            env.tmp.path().to_path_buf(),
            env.path("home"),
            env.path("work"),
            src.clone(),
        ] {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
        }
        for i in [0, 1, 3, 4] {
            std::fs::set_permissions(
                src.join(format!("f{i}.txt")),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
        }
        std::fs::set_permissions(
            env.path("config.toml"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let prog = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(prog)
            .args(args);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", env.path("home"))
            .env("XDG_RUNTIME_DIR", env.path("home"))
            .env("BEARER_TOKEN", TOKEN)
            .current_dir(env.path("work"))
            .stdin(Stdio::null());
        cmd = c;
    }
    let o = cmd.args(["put", "-r", "src", "up/"]).output().unwrap();
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("f2.txt") && e.contains("1 failed"), "{e}");
    for i in [0, 1, 3, 4] {
        assert!(
            d.root().join(format!("up/src/f{i}.txt")).is_file(),
            "f{i} uploaded"
        );
    }
    assert!(!d.root().join("up/src/f2.txt").exists());
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn a_download_to_a_device_writes_into_it_and_never_replaces_it() {
    use std::os::unix::fs::FileTypeExt;
    let d = door();
    d.put_file("/cta/f.bin", &data(3_000_000, 5));
    let env = Env::new(&d.url());
    // A private null device (root), else a FIFO with a reader: never the machine's /dev/null.
    let dev = env.path("work/sink");
    let reader = if is_root() {
        assert!(Command::new("mknod")
            .arg(&dev)
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
        None
    } else {
        assert!(Command::new("mkfifo").arg(&dev).status().unwrap().success());
        let p = dev.clone();
        Some(std::thread::spawn(move || std::fs::read(p).unwrap().len()))
    };
    let o = env.run(&["get", "cta/f.bin", dev.to_str().unwrap()]);
    ok(&o);
    let ft = std::fs::symlink_metadata(&dev).unwrap().file_type();
    assert!(
        ft.is_char_device() || ft.is_fifo(),
        "the device was replaced by a {ft:?}"
    );
    if let Some(r) = reader {
        assert_eq!(r.join().unwrap(), 3_000_000);
    }
    assert!(!env.path("work/sink.part").exists());
}
