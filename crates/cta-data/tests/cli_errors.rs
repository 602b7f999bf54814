//! How failures reach the user through the `cta-data` binary: the cause chain under `-v`,
//! and which failures are tried again (temporary ones) and which are not, against real
//! servers (nginx, plain and TLS) and a closed port.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use ctadata_testsupport::{Nginx, NginxOptions, TestCa};
use tempfile::TempDir;

const TRANSPORT: i32 = 9;
const TOKEN: &str = "err0r-t0ken-value";

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new(url: &str, extra: &str) -> Self {
        let e = Env {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "work"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        std::fs::write(
            e.path("config.toml"),
            format!("[profiles.door]\nbackend = \"dcache\"\nurl = \"{url}\"\n{extra}"),
        )
        .unwrap();
        e
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("cta-data")
            .unwrap()
            .current_dir(self.path("work"))
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_RUNTIME_DIR", self.path("home/run"))
            .env("BEARER_TOKEN", TOKEN)
            .env_remove("CTADATA_TOKEN")
            .env_remove("CTADATA_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove("X509_CERT_DIR")
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", "door"])
            .args(args)
            .output()
            .unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_refused_connection_is_retried_and_shows_its_cause_under_v() {
    let env = Env::new(&format!("http://127.0.0.1:{}", closed_port()), "");
    // Without -v: one clear line and a hint, no chain.
    let o = env.run(&["--retries", "0", "list", "cta"]);
    assert_eq!(o.status.code(), Some(TRANSPORT), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.starts_with("error: transport error talking to"), "{e}");
    assert!(e.contains("hint:"), "{e}");
    assert!(!e.contains("caused by"), "{e}");
    // With -v: the causes underneath, and each retry as it starts.
    let o = env.run(&["-v", "--retries", "1", "list", "cta"]);
    assert_eq!(o.status.code(), Some(TRANSPORT), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("caused by:"), "{e}");
    assert!(e.to_lowercase().contains("connection refused"), "{e}");
    assert!(
        e.contains("retrying in") && e.contains("(attempt 2 of 2)"),
        "{e}"
    );
    assert!(!e.contains(TOKEN), "{e}");
    // Into a pipe: plain text, no terminal colour codes.
    assert!(!e.contains('\u{1b}'), "{e:?}");
}

#[test]
fn an_untrusted_certificate_is_not_retried() {
    let root = TempDir::new().unwrap();
    std::fs::create_dir_all(root.path().join("cta")).unwrap();
    let ca = TestCa::new();
    let nginx = match Nginx::start_with(
        root.path(),
        NginxOptions {
            token: Some(TOKEN.into()),
            tls: Some(&ca),
        },
    ) {
        Ok(n) => n,
        Err(e) => panic!("nginx is needed for this test (tests/run-all.sh installs it): {e}"),
    };
    // The profile does not trust the test CA: the handshake fails the same way each time.
    let env = Env::new(&nginx.url(), "");
    let o = env.run(&["-v", "--retries", "3", "list", "cta"]);
    assert_eq!(o.status.code(), Some(TRANSPORT), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("TLS: the certificate of"), "{e}");
    assert!(e.contains("does not heal by retrying"), "{e}");
    assert!(
        !e.contains("retrying in"),
        "an untrusted certificate was retried: {e}"
    );
    // The same server, trusted: the listing works (so the failure above was the trust).
    let trusted = Env::new(
        &nginx.url(),
        &format!("ca_file = \"{}\"\n", ca.ca_cert_path().display()),
    );
    let o = trusted.run(&["list", "cta"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!nginx.access_log_lines().is_empty());
}

#[test]
fn a_missing_path_is_asked_once() {
    // 404 is final: no retry, whatever --retries says.
    let root = TempDir::new().unwrap();
    std::fs::create_dir_all(root.path().join("cta")).unwrap();
    let nginx = Nginx::start_with(
        root.path(),
        NginxOptions {
            token: Some(TOKEN.into()),
            tls: None,
        },
    )
    .unwrap();
    let env = Env::new(&nginx.url(), "");
    let o = env.run(&["-v", "--retries", "3", "list", "cta/missing"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(!stderr(&o).contains("retrying in"), "{}", stderr(&o));
    // nginx logs a request just after its answer: give the line a moment to arrive.
    let count = || {
        nginx
            .access_log_lines()
            .iter()
            .filter(|l| l.contains("PROPFIND") && l.contains("/cta/missing"))
            .count()
    };
    let asked = std::time::Instant::now();
    while count() == 0 && asked.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let propfinds = count();
    assert_eq!(
        propfinds,
        1,
        "a 404 is asked once: {:?}",
        nginx.access_log_lines()
    );
}
