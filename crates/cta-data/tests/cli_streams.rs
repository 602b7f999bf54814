//! Big files in several streams (`get --streams N`): disjoint ranges on several connections,
//! each through its own door redirect, written in place into the `.part`; resumed chunk by
//! chunk; a server that ignores ranges, and a file rewritten between two ranges.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Nginx, Side};
use tempfile::TempDir;

const TOKEN: &str = "streams-test-token";
const MIB: usize = 1 << 20;

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
        let mut c = Command::new("timeout");
        c.arg("120")
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
            .stdin(Stdio::null());
        c.output().unwrap()
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Bytes that differ everywhere (a chunk written at the wrong place shows).
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn door() -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

/// The pool `GET`s of the log: their `Range` headers.
fn pool_ranges(d: &DcacheDouble) -> Vec<Option<String>> {
    d.stats()
        .log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "GET")
        .map(|r| r.range.clone())
        .collect()
}

/// `bytes=A-B` as (A, B+1).
fn span(r: &str) -> (u64, u64) {
    let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
    (a.parse().unwrap(), b.parse::<u64>().unwrap() + 1)
}

#[test]
fn a_big_file_comes_in_disjoint_ranges_each_through_its_own_redirect() {
    let d = door();
    let body = data(40 * MIB + 12345, 1);
    d.put_file("/cta/runs/dl0.fits.fz", &body);
    let env = Env::new(&d.url());
    let out = ok(&env.run(&[
        "get",
        "--streams",
        "4",
        "--stream-cutoff",
        "16M",
        "cta/runs/dl0.fits.fz",
        "dl0.fits.fz",
    ]));
    assert!(out.contains("verified by adler32"), "{out}");
    assert!(std::fs::read(env.path("work/dl0.fits.fz")).unwrap() == body);
    let s = d.stats();
    // Every byte once: no range twice, none missing.
    assert_eq!(s.pool_sent_bytes, body.len() as u64);
    assert!(!s.pool_saw_authorization, "the token went to the pool");
    let mut spans: Vec<(u64, u64)> = pool_ranges(&d)
        .iter()
        .map(|r| span(r.as_deref().expect("every pool GET has a Range")))
        .collect();
    spans.sort();
    // 40 MiB and a bit in chunks of 8 MiB (the smallest chunk): six ranges.
    assert_eq!(spans.len(), 6, "{spans:?}");
    assert_eq!(spans.first().unwrap().0, 0);
    assert_eq!(spans.last().unwrap().1, body.len() as u64);
    assert!(spans.windows(2).all(|w| w[0].1 == w[1].0), "{spans:?}");
    // Each range went to the door first, then to the pool with its own uuid.
    let door_gets = s
        .log
        .iter()
        .filter(|r| r.side == Side::Door && r.method == "GET")
        .count();
    assert_eq!(door_gets, 6);
    assert_eq!(s.stale_uuid_hits, 0);
    assert!(!env.path("work/dl0.fits.fz.part").exists());
    assert!(!env.path("work/dl0.fits.fz.part.meta").exists());
}

#[test]
fn to_dev_null_in_several_streams_every_byte_is_fetched_once() {
    let d = door();
    let body = data(24 * MIB, 2);
    d.put_file("/cta/big.bin", &body);
    let env = Env::new(&d.url());
    ok(&env.run(&[
        "get",
        "--streams",
        "3",
        "--stream-cutoff",
        "16M",
        "cta/big.bin",
        "/dev/null",
    ]));
    assert_eq!(d.stats().pool_sent_bytes, body.len() as u64);
    assert_eq!(pool_ranges(&d).len(), 3);
    assert!(std::fs::metadata("/dev/null")
        .map(|m| !m.is_file())
        .unwrap_or(false));
}

#[test]
fn a_broken_range_keeps_the_part_and_the_rerun_fetches_only_what_is_missing() {
    let d = door();
    let body = data(64 * MIB, 3);
    d.put_file("/cta/run.h5", &body);
    let env = Env::new(&d.url());
    // The first range breaks after 3 MiB; without retries the run stops there.
    d.truncate_next_get(3 * MIB as u64);
    let first = env.run(&[
        "--retries",
        "0",
        "get",
        "--streams",
        "4",
        "--stream-cutoff",
        "16M",
        "cta/run.h5",
        "run.h5",
    ]);
    assert!(
        !first.status.success(),
        "the broken range must fail the run"
    );
    assert!(err(&first).contains("run.h5"), "{}", err(&first));
    assert!(!env.path("work/run.h5").exists());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("work/run.h5.part.meta")).unwrap()).unwrap();
    let done: u64 = meta["chunks"]["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        done < body.len() as u64,
        "the meta claims everything: {meta}"
    );
    d.reset_stats();
    let out = ok(&env.run(&[
        "get",
        "--streams",
        "4",
        "--stream-cutoff",
        "16M",
        "cta/run.h5",
        "run.h5",
    ]));
    assert!(out.contains("verified by adler32"), "{out}");
    assert!(std::fs::read(env.path("work/run.h5")).unwrap() == body);
    // Only what the meta did not record as on disk was sent again.
    assert_eq!(d.stats().pool_sent_bytes, body.len() as u64 - done);
    assert!(!env.path("work/run.h5.part").exists());
    assert!(!env.path("work/run.h5.part.meta").exists());
}

#[test]
fn a_one_stream_part_is_resumed_in_several_streams() {
    let d = door();
    let body = data(48 * MIB, 4);
    d.put_file("/cta/one.bin", &body);
    let env = Env::new(&d.url());
    d.truncate_next_get(20 * MIB as u64);
    let first = env.run(&["--retries", "0", "get", "--streams", "1", "cta/one.bin"]);
    assert!(!first.status.success());
    let have = std::fs::metadata(env.path("work/one.bin.part"))
        .unwrap()
        .len();
    assert!(have > 0 && have < body.len() as u64, "{have}");
    d.reset_stats();
    ok(&env.run(&[
        "get",
        "--streams",
        "4",
        "--stream-cutoff",
        "16M",
        "cta/one.bin",
    ]));
    assert!(std::fs::read(env.path("work/one.bin")).unwrap() == body);
    // The chunks the first run covered whole were not fetched again.
    let sent = d.stats().pool_sent_bytes;
    assert!(
        sent <= body.len() as u64 - (have / (8 * MIB as u64)) * 8 * MIB as u64,
        "sent {sent} of {} with {have} on disk",
        body.len()
    );
}

#[test]
fn a_server_that_ignores_ranges_gets_one_stream_and_the_right_bytes() {
    let d = door();
    d.ignore_range(true);
    let body = data(32 * MIB + 7, 5);
    d.put_file("/cta/norange.bin", &body);
    let env = Env::new(&d.url());
    ok(&env.run(&[
        "get",
        "--streams",
        "4",
        "--stream-cutoff",
        "16M",
        "cta/norange.bin",
    ]));
    assert!(std::fs::read(env.path("work/norange.bin")).unwrap() == body);
    // The last GET asked for the whole file.
    let ranges = pool_ranges(&d);
    assert_eq!(ranges.last().unwrap(), &None, "{ranges:?}");
}

#[test]
fn a_file_rewritten_between_two_ranges_is_fetched_again_never_mixed() {
    let d = door();
    let old = data(32 * MIB, 6);
    let new = data(32 * MIB, 7);
    d.put_file("/cta/moving.bin", &old);
    let env = Env::new(&d.url());
    // Two ranges of the old version, then the file is replaced (same size, new ETag).
    d.replace_after_gets(2, new.clone());
    let out = ok(&env.run(&[
        "-v",
        "get",
        "--streams",
        "2",
        "--stream-cutoff",
        "16M",
        "cta/moving.bin",
    ]));
    let got = std::fs::read(env.path("work/moving.bin")).unwrap();
    assert!(got == new, "a mix of two versions was saved");
    assert!(out.contains("changed"), "{out}");
}

#[test]
fn a_failed_check_keeps_the_old_file() {
    let d = door();
    let body = data(24 * MIB, 8);
    d.put_file("/cta/bad.bin", &body);
    d.corrupt_digest(true);
    let env = Env::new(&d.url());
    std::fs::write(env.path("work/bad.bin"), b"the good old copy").unwrap();
    let o = env.run(&[
        "get",
        "--streams",
        "4",
        "--stream-cutoff",
        "16M",
        "-f",
        "cta/bad.bin",
    ]);
    assert_eq!(o.status.code(), Some(8), "{}", err(&o));
    assert_eq!(
        std::fs::read(env.path("work/bad.bin")).unwrap(),
        b"the good old copy"
    );
    assert!(!env.path("work/bad.bin.part").exists());
    assert!(!env.path("work/bad.bin.part.meta").exists());
}

#[test]
fn nginx_serves_the_ranges_and_the_file_arrives_whole() {
    let tmp = TempDir::new().unwrap();
    std::fs::create_dir_all(tmp.path().join("dav")).unwrap();
    let nginx = Nginx::start(&tmp.path().join("dav")).expect("nginx");
    let body = data(36 * MIB + 999, 9);
    std::fs::write(nginx.root().join("f.bin"), &body).unwrap();
    let env = Env::new(&nginx.url());
    ok(&env.run(&["get", "--streams", "4", "--stream-cutoff", "16M", "f.bin"]));
    assert!(std::fs::read(env.path("work/f.bin")).unwrap() == body);
    let ranged = nginx
        .access_log_lines()
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains(" 206 "))
        .count();
    assert_eq!(ranged, 5, "{:?}", nginx.access_log_lines());
}
