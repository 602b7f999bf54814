//! Uploads reuse kept-alive connections: counted on the server side (the dCache double's
//! pool, nginx's `$connection`), with servers that close idle connections behind the
//! client's back, and byte-for-byte checks of what landed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Nginx, Side};
use tempfile::TempDir;

const TOKEN: &str = "reuse-test-token";

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
    fn run(&self, args: &[&str]) -> Output {
        // `timeout` bounds a hang: a test that hangs fails instead of blocking the suite.
        Command::new("timeout")
            .arg("120")
            .arg(cargo_bin("cta-data"))
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
            .output()
            .unwrap()
    }
    /// `n` files of different sizes (some empty, some several blocks) under `work/<dir>`.
    fn tree(&self, dir: &str, n: usize, size: impl Fn(usize) -> usize) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let rel = format!("d{}/f{i:03}.bin", i % 5);
                let body = data(size(i), i as u32);
                let p = self.path(&format!("work/{dir}/{rel}"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, &body).unwrap();
                (rel, body)
            })
            .collect()
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
}

fn data(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect()
}

fn same_files(files: &[(String, Vec<u8>)], root: &Path) {
    for (rel, body) in files {
        let got = std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == *body, "{rel}: the stored bytes differ");
    }
}

fn door() -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

/// Pool PUTs in the double's log, by status.
fn pool_puts(d: &DcacheDouble) -> Vec<(String, u16)> {
    d.stats()
        .log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "PUT")
        .map(|r| (r.path_and_query.clone(), r.status))
        .collect()
}

#[test]
fn a_hundred_files_through_the_door_reuse_a_few_pool_connections() {
    let d = door();
    let env = Env::new(&d.url());
    let files = env.tree("src", 100, |i| match i % 10 {
        0 => 0,
        1 => 3_000_000,
        _ => 1000 + 37 * i,
    });
    let o = env.run(&["put", "-r", "-j", "4", "src", "cta/up/"]);
    ok(&o);
    same_files(&files, &d.root().join("cta/up/src"));
    let s = d.stats();
    let puts = pool_puts(&d);
    assert_eq!(puts.len(), 100, "{puts:?}");
    assert!(puts.iter().all(|(_, st)| *st == 201), "{puts:?}");
    // The door closes after each redirected PUT; the pool keeps its connections.
    assert!(
        s.door_connections >= 100,
        "door connections: {}",
        s.door_connections
    );
    assert!(
        s.pool_connections <= 4,
        "100 uploads at -j 4 opened {} pool connections",
        s.pool_connections
    );
    assert_eq!(s.door_body_bytes, 0);
    assert!(!s.pool_saw_authorization);
    assert_eq!(s.stale_uuid_hits, 0);
}

#[test]
fn a_hundred_files_without_redirects_use_at_most_one_connection_per_job() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let env = Env::new(&nginx.url());
    let files = env.tree("src", 100, |i| {
        if i % 10 == 1 {
            2_500_000
        } else {
            500 + 91 * i
        }
    });
    let o = env.run(&["put", "-r", "-j", "4", "src", "up/"]);
    ok(&o);
    same_files(&files, &root.join("up/src"));
    let log = nginx.access_log_lines();
    let puts: Vec<&String> = log.iter().filter(|l| l.starts_with("PUT ")).collect();
    assert_eq!(puts.len(), 100, "{log:#?}");
    assert!(puts.iter().all(|l| l.contains("\" 201 ")), "{puts:#?}");
    let conns: HashSet<&str> = puts
        .iter()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("conn=")))
        .collect();
    assert!(
        !conns.is_empty() && conns.len() <= 4,
        "100 PUTs at -j 4 came over {} connections",
        conns.len()
    );
    // nginx answers `100 Continue`: once it has, small bodies go without waiting for it.
    let waited = puts
        .iter()
        .filter(|l| l.contains("expect=\"100-continue\""))
        .count();
    assert!((1..=20).contains(&waited), "{waited} PUTs waited for 100");
}

#[test]
fn a_pool_that_closes_idle_connections_costs_no_upload() {
    let d = door();
    // The pool drops connections idle for 50 ms; the door takes 300 ms to redirect, so each
    // kept connection is closed by the server before the next upload wants it.
    d.set_pool_idle_close(Some(Duration::from_millis(50)));
    d.set_redirect_delay(Duration::from_millis(300));
    let env = Env::new(&d.url());
    let files = env.tree("src", 4, |i| 100_000 * (i + 1));
    let o = env.run(&["put", "-r", "-j", "1", "--retries", "0", "src", "cta/up/"]);
    ok(&o);
    same_files(&files, &d.root().join("cta/up/src"));
    let puts = pool_puts(&d);
    // One PUT per file, each answered 201: no duplicate, no failed attempt.
    assert_eq!(puts.len(), 4, "{puts:?}");
    assert!(puts.iter().all(|(_, st)| *st == 201), "{puts:?}");
    assert_eq!(d.stats().pool_connections, 4);
    assert_eq!(d.stats().stale_uuid_hits, 0);
}

#[test]
fn a_reused_connection_closed_as_the_request_arrives_is_retried_once_on_a_new_one() {
    let d = door();
    d.drop_reused_pool_requests(1);
    let env = Env::new(&d.url());
    let files = env.tree("src", 3, |i| 200_000 + i);
    // No retry by the retry layer: the new connection is the raw PUT's own doing.
    let o = env.run(&["put", "-r", "-j", "1", "--retries", "0", "src", "cta/up/"]);
    ok(&o);
    same_files(&files, &d.root().join("cta/up/src"));
    let puts = pool_puts(&d);
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts.iter().all(|(_, st)| *st == 201), "{puts:?}");
    let s = d.stats();
    // The first connection served one file and was dropped at the second; a new one
    // served the rest. Each door redirect was used once.
    assert_eq!(s.pool_connections, 2);
    assert_eq!(s.redirects, 3);
    assert_eq!(s.stale_uuid_hits, 0);
}
