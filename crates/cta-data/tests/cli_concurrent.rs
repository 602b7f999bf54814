//! Two `cta-data` runs on one target at the same time, as real processes against a real
//! nginx WebDAV server (and the `local` profile): the second waits for the first, then finds
//! the file done and skips it. The target is always whole, no `.part` stays, both exit 0.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::Nginx;
use tempfile::TempDir;

const MIB: usize = 1 << 20;

/// A sandbox with profile `dav` on a private nginx and profile `loc` on a local root.
struct Env {
    tmp: TempDir,
    nginx: Nginx,
}

impl Env {
    fn new() -> Env {
        let tmp = TempDir::new().unwrap();
        for d in ["home", "work", "dav", "loc"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let nginx = Nginx::start(&tmp.path().join("dav")).expect("nginx");
        let cfg = format!(
            "[profiles.dav]\nbackend = \"dcache\"\nurl = \"{}\"\n[profiles.loc]\nbackend = \"local\"\nroot = \"{}\"\n",
            nginx.url(),
            tmp.path().join("loc").display()
        );
        std::fs::write(tmp.path().join("config.toml"), cfg).unwrap();
        Env { tmp, nginx }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn cmd(&self, profile: &str, args: &[&str]) -> Command {
        let mut c = Command::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .env("BEARER_TOKEN", "concurrent-test-token")
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", profile])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
    fn spawn(&self, profile: &str, args: &[&str]) -> Child {
        self.cmd(profile, args).spawn().unwrap()
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn assert_ok(o: &Output, who: &str) {
    assert!(
        o.status.success(),
        "{who}: exit {:?}: {}",
        o.status.code(),
        err(o)
    );
}

/// `n` bytes that differ from MiB to MiB (quick to make, never compressible into sameness).
fn data(n: usize, seed: u64) -> Vec<u8> {
    let block: Vec<u8> = (0..MIB as u64)
        .map(|i| ((i.wrapping_add(seed).wrapping_mul(2_654_435_761)) >> 13) as u8)
        .collect();
    let mut out = Vec::with_capacity(n);
    let mut k = 0u64;
    while out.len() < n {
        let take = (n - out.len()).min(MIB);
        let start = out.len();
        out.extend_from_slice(&block[..take]);
        let tag = (k ^ seed).to_le_bytes();
        let t = tag.len().min(take);
        out[start..start + t].copy_from_slice(&tag[..t]);
        k += 1;
    }
    out
}

/// Waits until `cond` holds (the first run is under way), at most 20 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Files whose name ends in `.part` or `.part.meta` below `dir`.
fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(parts(&p));
        } else if p.to_string_lossy().ends_with(".part")
            || p.to_string_lossy().ends_with(".part.meta")
        {
            out.push(p);
        }
    }
    out
}

/// Anything in the upload lock directory (the first run holds its lock).
fn upload_lock_taken(env: &Env) -> bool {
    std::fs::read_dir(env.path("home/cta-data/locks")).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn two_gets_of_one_file_into_one_place_take_turns() {
    let env = Env::new();
    let content = data(256 * MIB, 1);
    std::fs::write(env.path("dav/big.bin"), &content).unwrap();
    let part = env.path("work/big.bin.part");
    let first = env.spawn("dav", &["get", "big.bin"]);
    // The second starts while the first is downloading.
    wait_for("the first run's .part", || part.exists());
    let second = env.spawn("dav", &["get", "big.bin"]);
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_ok(&a, "first");
    assert_ok(&b, "second");
    let target = env.path("work/big.bin");
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        content.len() as u64
    );
    assert!(
        std::fs::read(&target).unwrap() == content,
        "the target differs from the source"
    );
    assert!(
        parts(&env.path("work")).is_empty(),
        "{:?}",
        parts(&env.path("work"))
    );
    let e = err(&b);
    assert!(
        e.contains("waiting for another cta-data run that is downloading to")
            && e.contains("big.bin"),
        "{e}"
    );
    assert!(e.contains("skipped") && e.contains("identical"), "{e}");
    // The file was read from the server once (in several ranged streams: the bodies add up
    // to one file, headers aside).
    let sent: u64 = env
        .nginx
        .access_log_lines()
        .iter()
        .filter(|l| l.starts_with("GET"))
        .filter_map(|l| {
            l.split(" sent=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let size = content.len() as u64;
    assert!(
        (size..size + 64 * 1024).contains(&sent),
        "{sent} bytes sent for a file of {size}: {:?}",
        env.nginx.access_log_lines()
    );
}

#[test]
fn two_overlapping_recursive_gets_take_turns_file_by_file() {
    let env = Env::new();
    let mut files = Vec::new();
    for (i, name) in ["a.bin", "sub/b.bin", "sub/c.bin", "d.bin"]
        .iter()
        .enumerate()
    {
        let content = data(48 * MIB + i * 12345, i as u64 + 10);
        let p = env.path("dav/tree").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &content).unwrap();
        files.push((name.to_string(), content));
    }
    let out = env.path("work/out");
    let first = env.spawn("dav", &["get", "-r", "-j", "2", "tree", "out"]);
    wait_for("a .part of the first run", || !parts(&out).is_empty());
    let second = env.spawn("dav", &["get", "-r", "-j", "2", "tree", "out"]);
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_ok(&a, "first");
    assert_ok(&b, "second");
    for (name, content) in &files {
        assert!(
            std::fs::read(out.join(name)).unwrap() == *content,
            "{name} differs from the source"
        );
    }
    assert!(parts(&out).is_empty(), "{:?}", parts(&out));
    // Each file came from the server once or twice (once per run at most), never appended
    // twice into one .part: the sizes above prove that; and the second run waited at least
    // once for a file of the first.
    assert!(
        err(&b).contains("waiting for another cta-data run that is downloading to"),
        "{}",
        err(&b)
    );
}

fn two_puts(profile: &str, stored: &Path) {
    let env = Env::new();
    let content = data(128 * MIB, 7);
    std::fs::write(env.path("work/up.bin"), &content).unwrap();
    let first = env.spawn(profile, &["put", "up.bin", "runs/up.bin"]);
    wait_for("the first run's upload lock", || upload_lock_taken(&env));
    let second = env.spawn(profile, &["put", "up.bin", "runs/up.bin"]);
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert_ok(&a, "first");
    assert_ok(&b, "second");
    let remote = env.path(&stored.join("runs/up.bin").display().to_string());
    assert!(
        std::fs::read(&remote).unwrap() == content,
        "the remote file differs"
    );
    let e = err(&b);
    assert!(
        e.contains("waiting for another cta-data run that is uploading to"),
        "{e}"
    );
    assert!(e.contains("skipped") && e.contains("identical"), "{e}");
    // No temporary upload stays beside it, and the lock files are gone.
    let names: Vec<String> = std::fs::read_dir(remote.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["up.bin".to_string()]);
    assert!(!upload_lock_taken(&env));
    // Written once: the inode of the first upload is still the file.
    let ino = std::fs::metadata(&remote).unwrap().ino();
    let again = env
        .cmd(profile, &["put", "up.bin", "runs/up.bin"])
        .output()
        .unwrap();
    assert_ok(&again, "third");
    assert_eq!(std::fs::metadata(&remote).unwrap().ino(), ino);
}

#[test]
fn two_puts_of_one_file_to_one_path_on_nginx_take_turns() {
    two_puts("dav", Path::new("dav"));
}

#[test]
fn two_puts_of_one_file_to_one_path_on_the_local_backend_take_turns() {
    two_puts("loc", Path::new("loc"));
}
