//! `cta-data mount` (issue 19), run as the real binary against nginx WebDAV and the dCache
//! door double. Every mount lives in a [`MountGuard`], which ends the process and removes
//! the mount even when an assertion fails.

#[allow(dead_code)]
mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::mount::{fuse_available, is_mounted, MountGuard};
use ctadata_testsupport::{
    DcacheConfig, DcacheDouble, GridPki, Locality, Nginx, NginxOptions, X509Dav,
};
use tempfile::TempDir;

const TOKEN: &str = "mount-test-t0ken-Q7x";
const AUTH: i32 = 4;
const NOT_FOUND: i32 = 6;
const USAGE: i32 = 2;

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Env {
        let e = Env {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "root", "mnt", "work"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        e
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn mnt(&self) -> PathBuf {
        self.path("mnt")
    }

    fn config(&self, url: &str) {
        std::fs::write(
            self.path("config.toml"),
            format!("[profiles.door]\nbackend = \"dcache\"\nurl = \"{url}\"\n"),
        )
        .unwrap();
    }

    /// `cta-data --config CFG --profile door` with an isolated environment.
    fn cmd(&self, token: Option<&str>) -> Command {
        let mut c = Command::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", "door"])
            .stdin(Stdio::null());
        if let Some(t) = token {
            c.env("BEARER_TOKEN", t);
        }
        c
    }

    /// Mounts `remote` with `extra` options and waits until it is ready.
    fn mount(&self, remote: &str, extra: &[&str]) -> MountGuard {
        let mut c = self.cmd(Some(TOKEN));
        c.arg("-v")
            .arg("mount")
            .arg(remote)
            .arg(self.mnt())
            .args(extra);
        MountGuard::spawn(c, &self.mnt()).expect("mount")
    }

    fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.arg("120").arg(cargo_bin("cta-data"));
        let inner = self.cmd(token);
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.args(inner.get_args()).args(args);
        c.current_dir(self.path("work")).stdin(Stdio::null());
        c.output().unwrap()
    }
}

/// The mount tests need FUSE; tests/run-all.sh installs it, so its absence is a failure.
fn require_fuse() {
    assert!(
        fuse_available(),
        "no /dev/fuse or fusermount3: install Debian's fuse3 (tests/run-all.sh does)"
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Deterministic pseudo-random bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn nginx(env: &Env) -> Nginx {
    let n = Nginx::start_with(
        &env.path("root"),
        NginxOptions {
            token: Some(TOKEN.into()),
            tls: None,
        },
    )
    .expect("nginx (tests/run-all.sh installs it)");
    env.config(&n.url());
    n
}

/// The `sent=` bytes of an access-log line.
fn sent_bytes(line: &str) -> u64 {
    line.split(' ')
        .find_map(|w| w.strip_prefix("sent="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The bytes sent for the GETs among access-log lines.
fn get_bytes(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter(|l| l.starts_with("GET "))
        .map(|l| sent_bytes(l))
        .sum()
}

fn count(lines: &[String], method: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("{method} ")))
        .count()
}

#[test]
fn ls_stat_cat_and_one_listing_for_ls_l() {
    require_fuse();
    let env = Env::new();
    std::fs::create_dir_all(env.path("root/data/run1")).unwrap();
    for i in 0..20 {
        std::fs::write(
            env.path(&format!("root/data/f{i:02}.txt")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    let n = nginx(&env);
    let m = env.mount("/data", &[]);
    let before = n.access_log_lines().len();
    let ls = Command::new("ls")
        .arg("-l")
        .arg(env.mnt())
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", stderr(&ls));
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(text.contains("f07.txt") && text.contains("run1"), "{text}");
    let lines = n.access_log_lines()[before..].to_vec();
    assert_eq!(count(&lines, "PROPFIND"), 1, "ls -l: {lines:#?}");
    assert_eq!(lines.len(), 1, "ls -l costs one request: {lines:#?}");
    println!(
        "ls -l of 21 entries: {} request(s): {}",
        lines.len(),
        lines[0]
    );

    let meta = std::fs::metadata(env.mnt().join("f07.txt")).unwrap();
    assert_eq!(meta.len(), 7);
    assert!(meta.is_file());
    assert!(std::fs::metadata(env.mnt().join("run1")).unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(env.mnt().join("f07.txt")).unwrap(),
        "file 7\n"
    );
    let missing = std::fs::metadata(env.mnt().join("nope.txt")).unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc_enoent()), "{missing}");
    // Read-only by default.
    let w = std::fs::write(env.mnt().join("new.txt"), b"x").unwrap_err();
    assert_eq!(w.raw_os_error(), Some(30), "EROFS expected: {w}");
    drop(m);
    assert!(!is_mounted(&env.mnt()));
}

fn libc_enoent() -> i32 {
    2
}

#[test]
fn big_file_cp_cmp_random_preads_and_parallel_readers() {
    require_fuse();
    let env = Env::new();
    let size = 256usize << 20;
    let data = pattern(size, 42);
    std::fs::write(env.path("root/big.bin"), &data).unwrap();
    let rsize = 64usize << 20;
    let rdata = pattern(rsize, 9);
    std::fs::write(env.path("root/rand.bin"), &rdata).unwrap();
    let n = nginx(&env);
    let m = env.mount("/", &[]);
    let src = env.mnt().join("big.bin");

    // cp + cmp of 256 MiB .
    let before = n.access_log_lines().len();
    let t = Instant::now();
    let copy = env.path("work/big.copy");
    let cp = Command::new("cp").arg(&src).arg(&copy).status().unwrap();
    assert!(cp.success());
    let secs = t.elapsed().as_secs_f64();
    println!(
        "cp of 256 MiB through the mount: {secs:.1}s ({:.0} MiB/s, debug build)",
        256.0 / secs
    );
    let cmp = Command::new("cmp")
        .arg(&copy)
        .arg(env.path("root/big.bin"))
        .status()
        .unwrap();
    assert!(cmp.success(), "the copy differs");
    let lines = n.access_log_lines()[before..].to_vec();
    let gets = count(&lines, "GET");
    let sent: u64 = lines.iter().map(|l| sent_bytes(l)).sum();
    println!("cp used {gets} ranged GETs, {sent} bytes sent");
    assert!(gets >= 2, "sequential reads go in several ranges: {gets}");
    // Read-ahead fetches large ranges: far fewer GETs than 128 KiB blocks (2048).
    assert!(gets <= 300, "{gets} GETs for 256 MiB");
    assert!(
        sent <= size as u64 * 13 / 10,
        "{sent} bytes sent for a 256 MiB copy"
    );

    {
        // 1000 random preads checked against the source (another file: nothing cached).
        let (data, size) = (&rdata, rsize);
        let before = n.access_log_lines().len();
        let f = std::fs::File::open(env.mnt().join("rand.bin")).unwrap();
        let mut asked = 0u64;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = (x % size as u64) as usize;
            let len = ((x >> 40) % 70_000 + 1) as usize;
            asked += len as u64;
            let mut buf = vec![0u8; len];
            let got = f.read_at(&mut buf, off as u64).unwrap();
            let want = len.min(size - off);
            assert_eq!(got, want, "pread at {off} of {len}");
            assert!(
                buf[..got] == data[off..off + got],
                "pread at {off} of {len}: bytes differ"
            );
        }
        drop(f);
        let lines = n.access_log_lines()[before..].to_vec();
        let sent: u64 = get_bytes(&lines);
        println!(
            "1000 random preads ({asked} bytes asked): {} GETs, {sent} bytes sent by the server ({:.2}x)",
            count(&lines, "GET"),
            sent as f64 / asked as f64
        );
        // Blocks of 128 KiB around reads of up to 70 kB: bounded, never whole-file fetches.
        assert!(
            sent < asked * 6,
            "random reads fetch small blocks: {sent} for {asked}"
        );
    }

    // 8 threads reading one file at once, each its own slices (all of the file).
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..8usize {
            let src = src.clone();
            let data = &data;
            s.spawn(move || {
                let f = std::fs::File::open(&src).unwrap();
                let part = size / 8;
                let mut buf = vec![0u8; 1 << 20];
                let mut off = k * part;
                while off < (k + 1) * part {
                    let n = f.read_at(&mut buf, off as u64).unwrap();
                    assert!(n > 0);
                    let n = n.min((k + 1) * part - off);
                    assert!(
                        buf[..n] == data[off..off + n],
                        "thread {k} at {off}: bytes differ"
                    );
                    off += n;
                }
            });
        }
    });
    println!(
        "8 parallel readers of one file: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    drop(m);
    assert!(!is_mounted(&env.mnt()));
}

#[test]
fn write_a_tree_then_read_it_back_and_write_once_rules() {
    require_fuse();
    let env = Env::new();
    std::fs::write(env.path("root/existing.txt"), b"old\n").unwrap();
    let n = nginx(&env);
    let tree = env.path("work/tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::write(tree.join("top.txt"), b"top\n").unwrap();
    std::fs::write(tree.join("a/one.bin"), pattern(300_000, 7)).unwrap();
    std::fs::write(tree.join("a/b/two.txt"), b"two\n").unwrap();
    let _m = env.mount("/", &["--write"]);

    let cp = Command::new("cp")
        .arg("-r")
        .arg(&tree)
        .arg(env.mnt())
        .output()
        .unwrap();
    assert!(cp.status.success(), "cp -r: {}", stderr(&cp));
    for rel in ["top.txt", "a/one.bin", "a/b/two.txt"] {
        let want = std::fs::read(tree.join(rel)).unwrap();
        assert_eq!(
            std::fs::read(n.root().join("tree").join(rel)).unwrap(),
            want,
            "{rel} on the server"
        );
        assert_eq!(
            std::fs::read(env.mnt().join("tree").join(rel)).unwrap(),
            want,
            "{rel} through the mount"
        );
    }

    // Rewriting an existing file: EPERM, the file unchanged.
    let e = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(env.mnt().join("existing.txt"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(1), "EPERM expected: {e}");
    let e = std::fs::OpenOptions::new()
        .append(true)
        .open(env.mnt().join("existing.txt"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(1), "EPERM expected: {e}");
    assert_eq!(
        std::fs::read(n.root().join("existing.txt")).unwrap(),
        b"old\n"
    );

    // Rename over an existing file: EEXIST; to a new name: done on the server.
    let e = std::fs::rename(
        env.mnt().join("tree/top.txt"),
        env.mnt().join("existing.txt"),
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(17), "EEXIST expected: {e}");
    std::fs::rename(env.mnt().join("tree/top.txt"), env.mnt().join("moved.txt")).unwrap();
    assert_eq!(std::fs::read(n.root().join("moved.txt")).unwrap(), b"top\n");
    assert!(!n.root().join("tree/top.txt").exists());

    // mkdir, unlink, rmdir (a non-empty directory: ENOTEMPTY).
    std::fs::create_dir(env.mnt().join("newdir")).unwrap();
    assert!(n.root().join("newdir").is_dir());
    let e = std::fs::remove_dir(env.mnt().join("tree/a")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(39), "ENOTEMPTY expected: {e}");
    std::fs::remove_file(env.mnt().join("tree/a/b/two.txt")).unwrap();
    std::fs::remove_dir(env.mnt().join("tree/a/b")).unwrap();
    std::fs::remove_dir(env.mnt().join("newdir")).unwrap();
    assert!(!n.root().join("tree/a/b").exists());
    assert!(!n.root().join("newdir").exists());
}

fn door(env: &Env) -> DcacheDouble {
    let d = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    env.config(&d.url());
    d
}

#[test]
fn a_refused_upload_fails_close_and_leaves_nothing() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/keep.txt", b"keep\n");
    let m = env.mount("/cta", &["--write"]);
    d.fail_next_pool(500, 50);
    let mut f = std::fs::File::create(env.mnt().join("refused.bin")).unwrap();
    std::io::Write::write_all(&mut f, &pattern(200_000, 3)).unwrap();
    // close(2) returns the upload's error; std ignores close errors, so flush explicitly
    // through fsync (the same upload path) and check both.
    let e = f.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(5), "EIO expected: {e}");
    drop(f);
    d.fail_next_pool(500, 0);
    assert!(
        !d.root().join("cta/refused.bin").exists(),
        "nothing partial on the storage"
    );
    assert!(std::fs::metadata(env.mnt().join("refused.bin")).is_err());
    let log = m.stderr();
    assert!(log.contains("refused.bin"), "{log}");
    println!("log of the refused upload:\n{log}");

    // Full storage: ENOSPC.
    d.set_full(true);
    let out = Command::new("cp")
        .arg(env.path("config.toml"))
        .arg(env.mnt().join("full.txt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    d.set_full(false);
    assert!(!d.root().join("cta/full.txt").exists());
}

#[test]
fn a_stalled_server_gives_eio_within_the_deadline() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/slow.bin", &pattern(4 << 20, 5));
    let m = env.mount("/cta", &["--io-timeout", "3s", "--retries", "1"]);
    d.stall_gets(Some(64 * 1024));
    let t = Instant::now();
    let mut f = std::fs::File::open(env.mnt().join("slow.bin")).unwrap();
    let mut buf = Vec::new();
    let e = f.read_to_end(&mut buf).unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.raw_os_error(), Some(5), "EIO expected: {e}");
    assert!(took < Duration::from_secs(100), "took {took:?}");
    println!("stalled server: EIO after {:.1}s", took.as_secs_f64());
    let log = m.stderr();
    assert!(
        log.contains("slow.bin") && log.contains("io-timeout"),
        "{log}"
    );
    d.stall_gets(None);
}

#[test]
fn sigterm_with_a_file_open_unmounts_cleanly() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/open.txt", b"held open\n");
    let mut m = env.mount("/cta", &[]);
    let f = std::fs::File::open(env.mnt().join("open.txt")).unwrap();
    let status = m
        .terminate(Duration::from_secs(30))
        .expect("ends on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", m.stderr());
    assert!(!is_mounted(&env.mnt()), "mount gone after SIGTERM");
    drop(f);

    // Ctrl-C (SIGINT) stops a foreground mount the same way: unmounted, exit 0, and none of
    // the transfer commands' "rerun to resume .part files" advice.
    let mut m = env.mount("/cta", &[]);
    let status = m
        .interrupt(Duration::from_secs(30))
        .expect("ends on SIGINT");
    assert_eq!(status.code(), Some(0), "{}", m.stderr());
    assert!(!is_mounted(&env.mnt()), "mount gone after SIGINT");
    assert!(!m.stderr().contains(".part"), "{}", m.stderr());
}

#[test]
fn errors_before_mounting() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/x.txt", b"x");
    let mnt = env.mnt();
    let mnt = mnt.to_str().unwrap();

    // Not empty.
    std::fs::write(env.path("mnt/stray"), b"").unwrap();
    let o = env.run(Some(TOKEN), &["mount", "/cta", mnt]);
    assert_eq!(o.status.code(), Some(USAGE), "{}", stderr(&o));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    std::fs::remove_file(env.path("mnt/stray")).unwrap();

    // Missing mountpoint.
    let gone = env.path("nowhere");
    let o = env.run(Some(TOKEN), &["mount", "/cta", gone.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(USAGE), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).contains("mkdir"),
        "{}",
        stderr(&o)
    );

    // Missing remote directory: the usual not-found.
    let o = env.run(Some(TOKEN), &["mount", "/nope", mnt]);
    assert_eq!(o.status.code(), Some(NOT_FOUND), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nope"), "{}", stderr(&o));

    // No (or a wrong) token: the usual authentication error.
    let o = env.run(Some("wrong-token"), &["mount", "/cta", mnt]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", stderr(&o));

    // --json: refused, no mount.
    let o = env.run(Some(TOKEN), &["--json", "mount", "/cta", mnt]);
    assert_eq!(o.status.code(), Some(USAGE), "{}", stderr(&o));
    assert!(stderr(&o).contains("no JSON document"), "{}", stderr(&o));

    // A file, not a directory.
    let o = env.run(Some(TOKEN), &["mount", "/cta/x.txt", mnt]);
    assert_eq!(o.status.code(), Some(USAGE), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));

    // No fusermount3: names the Debian package.
    let mut c = env.cmd(Some(TOKEN));
    c.env("PATH", env.path("home")).args(["mount", "/cta", mnt]);
    let o = c.output().unwrap();
    assert!(
        stderr(&o).contains("apt-get install fuse3"),
        "{}",
        stderr(&o)
    );
    assert!(!o.status.success());
    assert!(!is_mounted(&env.mnt()));
}

#[test]
fn a_nearline_file_opens_with_an_error_naming_cta_data_stage() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/tape.bin", b"on tape");
    d.set_locality("/cta/tape.bin", Locality::Nearline);
    d.put_file("/cta/disk.bin", b"on disk");
    let m = env.mount("/cta", &[]);
    let e = std::fs::read(env.mnt().join("tape.bin")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(61), "ENODATA expected: {e}");
    assert_eq!(
        std::fs::read(env.mnt().join("disk.bin")).unwrap(),
        b"on disk"
    );
    let log = m.stderr();
    assert!(log.contains("cta-data stage /cta/tape.bin"), "{log}");
}

#[test]
fn daemon_pid_file_and_umount() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/d.txt", b"daemon\n");
    let pid_file = env.path("work/mount.pid");
    let log_file = env.path("work/mount.log");
    let o = env.run(
        Some(TOKEN),
        &[
            "mount",
            "/cta",
            env.mnt().to_str().unwrap(),
            "--daemon",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--log-file",
            log_file.to_str().unwrap(),
        ],
    );
    // Whatever happens below, never leave the mount behind.
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if is_mounted(&self.0) {
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&self.0)
                    .status();
            }
        }
    }
    let _c = Cleanup(env.mnt());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("mounted /cta at"), "{}", stderr(&o));
    assert!(is_mounted(&env.mnt()));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    assert_eq!(std::fs::read(env.mnt().join("d.txt")).unwrap(), b"daemon\n");
    let o = env.run(None, &["umount", env.mnt().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!is_mounted(&env.mnt()));
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(pid), "the background process ends");
    assert!(!pid_file.exists(), "its PID file is removed");
    // The background process's log went on in --log-file after it detached: from the
    // mount to the unmount, with times, in a file only its owner reads.
    let log = std::fs::read_to_string(&log_file).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains("Z mounted /cta at ")),
        "{log}"
    );
    assert!(
        lines.last().is_some_and(|l| l.ends_with(&format!(
            "unmounted from outside: unmounted {}",
            env.mnt().display()
        ))),
        "{log}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let o = env.run(None, &["umount", env.mnt().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not mounted"), "{}", stderr(&o));
}

/// A process that runs (not ended, not a zombie waiting for a parent to reap it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// A mount outlives its access token: the OIDC session (4 s access tokens from the test
/// provider) is refreshed in-process, and requests after the expiry succeed.
#[test]
fn an_access_token_that_expires_during_the_mount_is_refreshed() {
    require_fuse();
    let w = common::World::new(ctadata_testsupport::OidcOptions {
        access_ttl: Duration::from_secs(4),
        ..Default::default()
    });
    let mut login = w
        .cmd()
        .args(["login", "--secret-stdin", "--no-qr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut login.stdin.take().unwrap(),
        w.idp.client_secret().as_bytes(),
    )
    .unwrap();
    // Read all of stdout (the code line, then what follows) so login never writes to a
    // closed pipe.
    let stdout = login.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if let Some(c) = line.strip_prefix("and enter the code") {
                let _ = tx.send(c.trim().to_string());
            }
        }
    });
    let code = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a device code");
    w.idp.approve(&code, "alice").unwrap();
    let o = login.wait_with_output().unwrap();
    reader.join().unwrap();
    assert!(o.status.success(), "login: {}", stderr(&o));

    let mnt = w.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut c = w.cmd();
    c.arg("-v")
        .arg("mount")
        .arg("/cta")
        .arg(&mnt)
        .args(["--dir-cache-time", "1s"]);
    let m = MountGuard::spawn(c, &mnt).expect("mount");
    assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello\n");
    let before = w.idp.stats().refresh_grants;
    std::thread::sleep(Duration::from_secs(6));
    // Past the token's expiry: a new file, so a new listing and a new GET are needed.
    w.door.put_file("/cta/later.txt", b"after expiry\n");
    assert_eq!(
        std::fs::read(mnt.join("later.txt")).unwrap(),
        b"after expiry\n",
        "{}",
        m.stderr()
    );
    assert!(
        w.idp.stats().refresh_grants > before,
        "the session was refreshed in-process"
    );
}

/// A grid proxy that expires during a mount (x509 profile, a real HTTPS server that checks
/// client certificates): reads then fail at once with EACCES and a log line that says so
/// and names the renewal command; a proxy renewed in place is used without a remount.
#[test]
fn an_expiring_grid_proxy_gives_eacces_and_a_renewed_one_is_used() {
    require_fuse();
    let env = Env::new();
    std::fs::create_dir_all(env.path("root/cta")).unwrap();
    for (name, body) in [
        ("a", "before\n"),
        ("b", "after expiry\n"),
        ("c", "renewed\n"),
    ] {
        std::fs::write(env.path(&format!("root/cta/{name}.txt")), body).unwrap();
    }
    let pki = GridPki::new().unwrap();
    let dav = X509Dav::start(&env.path("root"), &pki).expect("x509 WebDAV server");
    std::fs::write(
        env.path("config.toml"),
        format!(
            "[profiles.door]\nbackend = \"x509\"\nurl = \"{}\"\nca_file = \"{}\"\n",
            dav.url(),
            pki.ca_path().display()
        ),
    )
    .unwrap();
    let proxy = env.path("home/x509up");
    let start = std::time::SystemTime::now();
    let ends = start + Duration::from_secs(20);
    pki.proxy_with_dates(&proxy, start - Duration::from_secs(60), ends)
        .unwrap();
    let mut c = env.cmd(None);
    c.env("X509_USER_PROXY", &proxy)
        .arg("-v")
        .arg("mount")
        .arg("/cta")
        .arg(env.mnt())
        .args(["--dir-cache-time", "1s"]);
    let m = MountGuard::spawn(c, &env.mnt()).expect("mount");
    assert_eq!(
        std::fs::read(env.mnt().join("a.txt")).unwrap(),
        b"before\n",
        "{}",
        m.stderr()
    );

    // Past the proxy's end: a read that needs the server fails at once, not after retries.
    if let Ok(left) = ends.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(left + Duration::from_secs(2));
    }
    let t = Instant::now();
    let e = std::fs::read(env.mnt().join("b.txt")).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(13),
        "EACCES expected: {e}\n{}",
        m.stderr()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let log = m.stderr();
    assert!(
        log.contains(&format!("the proxy {} expired at", proxy.display())),
        "{log}"
    );
    assert!(log.contains("grid-proxy-init -rfc"), "{log}");

    // Renewed in place (written beside it, then renamed, as a careful tool does).
    let fresh = env.path("home/x509up.new");
    let now = std::time::SystemTime::now();
    pki.proxy_with_dates(
        &fresh,
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    )
    .unwrap();
    std::fs::rename(&fresh, &proxy).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::read(env.mnt().join("c.txt")).unwrap(),
        b"renewed\n",
        "{}",
        m.stderr()
    );
    assert!(
        m.stderr().contains(&format!(
            "the proxy {} changed: using the new one",
            proxy.display()
        )),
        "{}",
        m.stderr()
    );
}

/// dCache keeps a read mover alive while a connection that used it is open (the door double
/// models that): a second random read of an open file goes straight to the pool, one round
/// trip; once the pool has closed that connection, the next read asks the door again.
#[test]
fn a_second_random_read_goes_straight_to_the_pool() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    let data = pattern(8 << 20, 11);
    d.put_file("/cta/h5.bin", &data);
    let mut c = env.cmd(Some(TOKEN));
    c.arg("-vv").arg("mount").arg("/cta").arg(env.mnt());
    let m = MountGuard::spawn(c, &env.mnt()).expect("mount");
    let f = std::fs::File::open(env.mnt().join("h5.bin")).unwrap();
    let read = |off: usize| {
        let mut buf = vec![0u8; 4096];
        let n = f.read_at(&mut buf, off as u64).unwrap();
        assert_eq!(n, 4096);
        assert!(buf == data[off..off + 4096], "bytes at {off} differ");
    };
    read(5 << 20);
    std::thread::sleep(Duration::from_millis(500));
    let s1 = d.stats();
    read((1 << 20) + 300_000);
    std::thread::sleep(Duration::from_millis(500));
    let s2 = d.stats();
    println!(
        "second random read: {} door request(s), {} pool request(s)",
        s2.door_requests - s1.door_requests,
        s2.pool_requests - s1.pool_requests
    );
    assert_eq!(s2.door_requests, s1.door_requests, "no door round trip");
    assert!(s2.pool_requests > s1.pool_requests);
    assert_eq!(s2.stale_uuid_hits, 0);

    // The pool closes the kept-alive connection as the next request arrives on it: the
    // mover ends with it, the remembered URL fails, the door is asked again, and the read
    // still succeeds.
    d.drop_reused_pool_requests(1);
    let s3 = d.stats();
    read(7 << 20);
    std::thread::sleep(Duration::from_millis(500));
    let s4 = d.stats();
    println!(
        "after the pool closed the connection: {} door request(s), {} pool request(s)",
        s4.door_requests - s3.door_requests,
        s4.pool_requests - s3.pool_requests,
    );
    assert!(
        s4.door_requests > s3.door_requests,
        "the door is asked again"
    );
    drop(f);
    // The pool's URL carries the transfer's secret id: never in the log (even at -vv).
    assert!(!m.stderr().contains("dcache-http-uuid"), "{}", m.stderr());
    drop(m);
}

/// Read-ahead grows with the sequence read, so a reader that stops early (an HDF5 dataset in
/// a bigger file) has not made the server send much more than it read.
#[test]
fn read_ahead_stays_close_to_what_a_reader_uses() {
    require_fuse();
    let env = Env::new();
    let data = pattern(64 << 20, 13);
    std::fs::write(env.path("root/data.h5"), &data).unwrap();
    let n = nginx(&env);
    let _m = env.mount("/", &[]);
    let before = n.access_log_lines().len();
    let f = std::fs::File::open(env.mnt().join("data.h5")).unwrap();
    let (start, len) = (8usize << 20, 16usize << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = start;
    while off < start + len {
        let got = f.read_at(&mut buf, off as u64).unwrap();
        assert!(got > 0);
        assert!(buf[..got] == data[off..off + got], "bytes at {off} differ");
        off += got;
    }
    std::thread::sleep(Duration::from_secs(1));
    let lines = n.access_log_lines()[before..].to_vec();
    let sent: u64 = get_bytes(&lines);
    println!(
        "a 16 MiB sequential read in a 64 MiB file: {} GETs, {sent} bytes sent ({:.2}x)",
        count(&lines, "GET"),
        sent as f64 / len as f64
    );
    assert!(
        sent <= len as u64 * 13 / 10,
        "{sent} bytes sent for {len} read"
    );
}

/// With --cache-dir, blocks pushed out of memory are kept on disk, within --cache-max-size:
/// a second read of a file costs the server nothing.
#[test]
fn the_disk_cache_serves_a_second_read_within_its_bound() {
    require_fuse();
    let env = Env::new();
    let data = pattern(6 << 20, 17);
    std::fs::write(env.path("root/twice.bin"), &data).unwrap();
    let n = nginx(&env);
    let cache = env.path("work/cache");
    let _m = env.mount(
        "/",
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--cache-max-size",
            "8M",
        ],
    );
    assert_eq!(std::fs::read(env.mnt().join("twice.bin")).unwrap(), data);
    std::thread::sleep(Duration::from_millis(500));
    let first = get_bytes(&n.access_log_lines());
    let on_disk: u64 = std::fs::read_dir(cache.join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        on_disk > 0 && on_disk <= 8 << 20,
        "{on_disk} bytes of blocks on disk"
    );
    assert!(
        data == std::fs::read(env.mnt().join("twice.bin")).unwrap(),
        "second read differs"
    );
    std::thread::sleep(Duration::from_millis(500));
    let second = get_bytes(&n.access_log_lines()) - first;
    println!("disk cache: first read {first} bytes sent, second read {second} bytes sent, {on_disk} bytes of blocks on disk");
    assert_eq!(second, 0, "the second read came from the caches");
}

/// With --stage-on-open, opening a file that is only on tape stages it (WLCG Tape REST) and
/// waits; the read then succeeds.
#[test]
fn stage_on_open_stages_and_waits() {
    require_fuse();
    let env = Env::new();
    let d = door(&env);
    d.put_file("/cta/cold.bin", b"was on tape\n");
    d.set_locality("/cta/cold.bin", Locality::Nearline);
    let m = env.mount("/cta", &["--stage-on-open"]);
    assert_eq!(
        std::fs::read(env.mnt().join("cold.bin")).unwrap(),
        b"was on tape\n",
        "{}",
        m.stderr()
    );
    let posts = d
        .stats()
        .log
        .iter()
        .filter(|r| r.method == "POST" && r.path_and_query == "/api/v1/tape/stage")
        .count();
    assert_eq!(posts, 1, "one stage request");
    assert!(m.stderr().contains("staging it"), "{}", m.stderr());
}
