//! End-to-end tests of the `cta-data` binary with the `dcache` backend against a real
//! nginx WebDAV server (plain and TLS, with a bearer-token check).

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use ctadata_testsupport::{Nginx, NginxOptions, TestCa};
use tempfile::TempDir;

const CONFIG: i32 = 3;
const AUTH: i32 = 4;
const NOT_FOUND: i32 = 6;
const TRANSPORT: i32 = 9;

const TOKEN: &str = "s3cr3t-t0ken-value";

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Self {
        let e = Env {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "root", "work"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        e
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn write_config(&self, url: &str, extra: &str) -> PathBuf {
        let p = self.path("config.toml");
        std::fs::write(
            &p,
            format!("[profiles.door]\nbackend = \"dcache\"\nurl = \"{url}\"\n{extra}"),
        )
        .unwrap();
        p
    }
    /// The binary with an isolated environment and the given token variable.
    fn cmd(&self, token: Option<&str>) -> Command {
        let mut c = Command::cargo_bin("cta-data").unwrap();
        c.current_dir(self.path("work"))
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_RUNTIME_DIR", self.path("home/run"))
            .env_remove("CTADATA_TOKEN")
            .env_remove("BEARER_TOKEN_FILE")
            .env_remove("CTADATA_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove("X509_CERT_DIR")
            .args(["--config"])
            .arg(self.path("config.toml"))
            .args(["--profile", "door"]);
        match token {
            Some(t) => c.env("BEARER_TOKEN", t),
            None => c.env_remove("BEARER_TOKEN"),
        };
        c
    }
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn uid_discovery_absent() -> bool {
    // A real /tmp/bt_u<uid> would be picked up as a token source; the tests need it absent.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    !Path::new(&format!("/tmp/bt_u{uid}")).exists()
}

#[test]
fn verbs_over_tls_with_a_checked_token() {
    let env = Env::new();
    let ca = TestCa::new();
    let nginx = Nginx::start_with(
        &env.path("root"),
        NginxOptions {
            token: Some(TOKEN.into()),
            tls: Some(&ca),
        },
    )
    .expect("nginx");
    env.write_config(
        &nginx.url(),
        &format!("ca_file = \"{}\"\n", ca.ca_cert_path().display()),
    );
    std::fs::write(env.path("work/hello.txt"), "hello dcache\n").unwrap();

    let o = run(env.cmd(Some(TOKEN)), &["put", "hello.txt", "data/run1/"]);
    ok(&o);
    assert!(
        stderr(&o).contains("/data/run1/hello.txt"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(nginx.root().join("data/run1/hello.txt")).unwrap(),
        "hello dcache\n"
    );

    let listing = ok(&run(env.cmd(Some(TOKEN)), &["list", "-l", "data/run1"]));
    assert!(
        listing.contains("hello.txt") && listing.contains("13"),
        "{listing}"
    );
    assert_eq!(
        ok(&run(env.cmd(Some(TOKEN)), &["cat", "data/run1/hello.txt"])),
        "hello dcache\n"
    );
    ok(&run(
        env.cmd(Some(TOKEN)),
        &["get", "data/run1/hello.txt", "back.txt"],
    ));
    assert_eq!(
        std::fs::read_to_string(env.path("work/back.txt")).unwrap(),
        "hello dcache\n"
    );
    ok(&run(env.cmd(Some(TOKEN)), &["get", "-r", "data", "tree"]));
    assert!(env.path("work/tree/run1/hello.txt").is_file());
    ok(&run(
        env.cmd(Some(TOKEN)),
        &["mv", "data/run1/hello.txt", "data/h.txt"],
    ));
    ok(&run(env.cmd(Some(TOKEN)), &["rm", "-r", "data"]));
    assert!(!nginx.root().join("data").exists());

    // A refused token: exit 4, names the source, never shows the token.
    let o = run(env.cmd(Some("wrong-token-value")), &["list", "/"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("variable BEARER_TOKEN") && err.contains("hint:"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token-value"),
        "the token leaked: {err}"
    );
}

#[test]
fn a_missing_token_lists_the_sources_tried() {
    assert!(
        uid_discovery_absent(),
        "a /tmp/bt_u<uid> token file exists on this machine; remove it to run this test"
    );
    let env = Env::new();
    let nginx = Nginx::start(&env.path("root")).expect("nginx");
    env.write_config(&nginx.url(), "");
    let o = run(env.cmd(None), &["list", "/"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", stderr(&o));
    let err = stderr(&o);
    for s in [
        "CTADATA_TOKEN",
        "BEARER_TOKEN",
        "BEARER_TOKEN_FILE",
        "bt_u",
        "hint:",
    ] {
        assert!(err.contains(s), "{s} missing from: {err}");
    }
}

#[test]
fn an_expired_jwt_is_refused_before_any_request() {
    let env = Env::new();
    let nginx = Nginx::start(&env.path("root")).expect("nginx");
    env.write_config(&nginx.url(), "");
    // {"sub":"u","exp":1000}
    let jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxMDAwfQ.c2ln";
    let tf = env.path("token");
    std::fs::write(&tf, format!("{jwt}\n")).unwrap();
    let o = run(
        env.cmd(None),
        &["--token-file", tf.to_str().unwrap(), "list", "/"],
    );
    assert_eq!(o.status.code(), Some(AUTH), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("expired") && err.contains(tf.to_str().unwrap()),
        "{err}"
    );
    assert!(!err.contains(jwt));
    assert!(
        nginx.access_log_lines().is_empty(),
        "no request may be sent with an expired token"
    );
    // The same command with a token valid until 2100 is sent, and logged: the empty log
    // above is the refusal, not a log that records nothing.
    let valid = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln";
    std::fs::write(&tf, format!("{valid}\n")).unwrap();
    ok(&run(
        env.cmd(None),
        &["--token-file", tf.to_str().unwrap(), "list", "/"],
    ));
    let log = nginx.access_log_lines();
    assert!(log.iter().any(|l| l.starts_with("PROPFIND")), "{log:?}");
}

#[test]
fn an_untrusted_server_certificate_names_the_host_and_the_trust_used() {
    let env = Env::new();
    let ca = TestCa::new();
    let nginx = Nginx::start_with(
        &env.path("root"),
        NginxOptions {
            token: None,
            tls: Some(&ca),
        },
    )
    .expect("nginx");
    env.write_config(&nginx.url(), "");
    let o = run(env.cmd(Some(TOKEN)), &["list", "/"]);
    assert_eq!(o.status.code(), Some(TRANSPORT), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("127.0.0.1") && err.contains("certificate") && err.contains("system CA store"),
        "{err}"
    );

    // --insecure works, and warns every time.
    let o = run(env.cmd(Some(TOKEN)), &["--insecure", "list", "/"]);
    ok(&o);
    assert!(stderr(&o).contains("warning: --insecure"), "{}", stderr(&o));

    // A CA directory that does not exist is a configuration error naming it.
    env.write_config(&nginx.url(), "ca_dir = \"/nonexistent/grid-security\"\n");
    let o = run(env.cmd(Some(TOKEN)), &["list", "/"]);
    assert_eq!(o.status.code(), Some(CONFIG), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/grid-security"));
}

#[test]
fn plain_http_to_a_remote_host_is_refused_for_tokens() {
    let env = Env::new();
    env.write_config("http://dcache.example.org:2880", "");
    let o = run(env.cmd(Some(TOKEN)), &["list", "/"]);
    assert_eq!(o.status.code(), Some(CONFIG), "{}", stderr(&o));
    assert!(stderr(&o).contains("plain http"), "{}", stderr(&o));
}

#[test]
fn a_missing_remote_file_is_not_found() {
    let env = Env::new();
    let nginx = Nginx::start(&env.path("root")).expect("nginx");
    env.write_config(&nginx.url(), "");
    let o = run(env.cmd(Some(TOKEN)), &["get", "lst/none.h5"]);
    assert_eq!(o.status.code(), Some(NOT_FOUND), "{}", stderr(&o));
    assert!(stderr(&o).contains("/lst/none.h5"));
    assert!(!env.path("work/none.h5").exists() && !env.path("work/none.h5.part").exists());
}

/// The value of a `stat` line (`key:` then the value), or `None`.
fn stat_line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
}

#[test]
fn stat_v_says_what_nginx_lacks_and_claims_none_of_it() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("root/n")).unwrap();
    std::fs::write(env.path("root/n/f.txt"), b"notes").unwrap();
    let nginx = Nginx::start(&env.path("root")).expect("nginx");
    env.write_config(&nginx.url(), "");
    let text = ok(&run(env.cmd(Some(TOKEN)), &["-v", "stat", "n/f.txt"]));
    eprintln!("{text}");
    // dav-ext lists no getetag; its HEAD has one (shown, and said where it came from).
    assert!(stat_line(&text, "etag:").is_some(), "{text}");
    let etags = stat_line(&text, "etags:").unwrap_or_else(|| panic!("{text}"));
    assert!(
        etags.starts_with("not in listings; a file's HEAD gives one"),
        "{text}"
    );
    // No checksum at all: none claimed.
    assert!(stat_line(&text, "checksum:").is_none(), "{text}");
    let digests = stat_line(&text, "digests:").unwrap_or_else(|| panic!("{text}"));
    assert!(digests.starts_with("none"), "{text}");
    let create = stat_line(&text, "create:").unwrap_or_else(|| panic!("{text}"));
    assert!(
        create.starts_with("not atomic: the server is not known"),
        "{text}"
    );
    let server = stat_line(&text, "server:").unwrap_or_else(|| panic!("{text}"));
    assert!(server.starts_with("nginx"), "{text}");
}
