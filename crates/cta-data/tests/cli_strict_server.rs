//! The CLI against the dCache door double with the fault switches that mimic what strict or
//! unusual WebDAV servers (XRootD 5.5.3's XrdHttp) do: case-sensitive header names, a PUT of
//! nothing left hanging after `100 Continue`, raw hrefs, unasked digests, open ranges.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Side};
use tempfile::TempDir;

const TOKEN: &str = "strict-test-token";

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
        let mut c = Command::new("timeout");
        c.arg("60")
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
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn door() -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

#[test]
fn a_server_reading_header_names_case_sensitively_lists_and_takes_the_token() {
    let d = door();
    d.strict_header_case(true);
    d.put_file("/cta/dir/one.txt", b"one");
    d.put_file("/cta/dir/sub/two.txt", b"two");
    let env = Env::new(&d.url());
    let out = ok(&env.run(&["list", "cta/dir"]));
    assert!(out.contains("one.txt") && out.contains("sub"), "{out}");
    let out = ok(&env.run(&["list", "-r", "cta/dir"]));
    assert!(out.contains("two.txt"), "{out}");
    ok(&env.run(&["get", "cta/dir/one.txt"]));
    assert_eq!(std::fs::read(env.path("work/one.txt")).unwrap(), b"one");
    let log = d.stats().log;
    assert!(
        log.iter()
            .filter(|r| r.side == Side::Door && r.method == "PROPFIND")
            .all(|r| r.depth.is_some() && r.authorization),
        "{log:#?}"
    );
}

#[test]
fn an_empty_file_is_uploaded_promptly_where_a_server_never_answers_after_100_continue() {
    let d = door();
    d.hang_empty_put(true);
    std::fs::create_dir_all(d.root().join("cta")).unwrap();
    let env = Env::new(&d.url());
    std::fs::write(env.path("work/empty.txt"), b"").unwrap();
    std::fs::create_dir_all(env.path("work/tree/sub")).unwrap();
    std::fs::write(env.path("work/tree/sub/nothing"), b"").unwrap();
    std::fs::write(env.path("work/tree/full.txt"), b"full").unwrap();
    let o = env.run(&["put", "empty.txt", "cta/"]);
    ok(&o);
    assert_eq!(std::fs::read(d.root().join("cta/empty.txt")).unwrap(), b"");
    let o = env.run(&["put", "-r", "tree", "cta/"]);
    ok(&o);
    assert_eq!(
        std::fs::read(d.root().join("cta/tree/sub/nothing")).unwrap(),
        b""
    );
    assert_eq!(
        std::fs::read(d.root().join("cta/tree/full.txt")).unwrap(),
        b"full"
    );
    let log = d.stats().log;
    assert!(
        log.iter()
            .filter(|r| r.method == "PUT" && r.content_length.as_deref() == Some("0"))
            .all(|r| r.expect.is_none()),
        "{log:#?}"
    );
}
