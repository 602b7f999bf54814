//! End-to-end tests of `cta-data share` and of share links given back to cta-data: the real
//! binary against the dCache door double (TLS, a token-protected door), which mints
//! macaroons and enforces their caveats.
//!
//! The owner runs with a profile and a token; the receiver runs with nothing but the test
//! CA (`--ca-file`): no config file, no token variable, no profile named.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Side};
use serde_json::Value;
use tempfile::TempDir;

const USAGE: i32 = 2;
const AUTH: i32 = 4;
const PERMISSION: i32 = 5;
const PROTOCOL: i32 = 10;
const UNSUPPORTED: i32 = 11;

const TOKEN: &str = "owner-t0ken-s3cret";

/// A file whose path has a space and non-ASCII letters.
const FILE: &str = "/cta/run 1/ε data.txt";
const FILE_BODY: &str = "shared bytes\n";
/// A directory with two files.
const DIR: &str = "/cta/dir ä";

struct World {
    tmp: TempDir,
    door: DcacheDouble,
}

impl World {
    fn new() -> World {
        let door = DcacheDouble::start(DcacheConfig {
            token: Some(TOKEN.into()),
            tls: true,
            ..Default::default()
        });
        door.put_file(FILE, FILE_BODY.as_bytes());
        door.put_file(&format!("{DIR}/a.txt"), b"aaa\n");
        door.put_file(&format!("{DIR}/sub/b.txt"), b"bbb\n");
        door.put_file("/cta/other.txt", b"not shared\n");
        let w = World {
            tmp: TempDir::new().unwrap(),
            door,
        };
        for d in ["owner/home", "receiver/home", "receiver/work"] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        std::fs::write(
            w.path("owner/config.toml"),
            format!(
                "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\nca_file = \"{}\"\n",
                w.door.url(),
                w.ca().display()
            ),
        )
        .unwrap();
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn ca(&self) -> PathBuf {
        self.door.ca().unwrap().ca_cert_path()
    }

    /// The binary with nothing of the caller's environment but PATH, at home in `who`.
    fn bare(&self, who: &str) -> Command {
        let mut c = Command::cargo_bin("cta-data").unwrap();
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path(&format!("{who}/home")))
            .env("XDG_CONFIG_HOME", self.path(&format!("{who}/home/.config")))
            .env(
                "XDG_DATA_HOME",
                self.path(&format!("{who}/home/.local/share")),
            )
            .env("XDG_RUNTIME_DIR", self.path(&format!("{who}/home/run")))
            .current_dir(self.path(&format!("{who}/home")));
        c
    }

    /// The owner: profile `door` with a token.
    fn owner(&self) -> Command {
        let mut c = self.bare("owner");
        c.env("BEARER_TOKEN", TOKEN)
            .arg("--config")
            .arg(self.path("owner/config.toml"))
            .args(["--profile", "door"]);
        c
    }

    /// The receiver: the test CA, nothing else.
    fn receiver(&self) -> Command {
        let mut c = self.bare("receiver");
        c.current_dir(self.path("receiver/work"))
            .arg("--ca-file")
            .arg(self.ca());
        c
    }

    /// `share ARGS` as the owner: the link (stdout) and stderr.
    fn share(&self, args: &[&str]) -> (String, String) {
        let o = run(self.owner(), &[&["share"], args].concat());
        let link = ok(&o);
        assert_eq!(link.lines().count(), 1, "one line: {link}");
        (link.trim().to_string(), stderr(&o))
    }
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(o));
    stdout(o)
}

fn fails(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    stderr(o)
}

/// The macaroon of a link.
fn macaroon(link: &str) -> String {
    let q = link.split_once("authz=").expect("a link with authz=").1;
    q.split('&').next().unwrap().to_string()
}

/// Asserts that `text` holds neither the macaroon nor the owner's token.
fn no_secret(text: &str, mac: &str) {
    assert!(mac.len() > 40, "a real macaroon: {mac}");
    assert!(!text.contains(mac), "the macaroon leaked: {text}");
    assert!(
        !text.contains(&mac[..24]),
        "part of the macaroon leaked: {text}"
    );
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
}

#[test]
fn a_file_link_works_alone_as_a_url_and_as_a_token_file() {
    let w = World::new();
    let (link, err) = w.share(&[FILE]);
    let mac = macaroon(&link);
    assert!(
        link.starts_with(&format!(
            "{}/cta/run%201/%CE%B5%20data.txt?authz=",
            w.door.url()
        )),
        "{link}"
    );
    no_secret(&err, &mac);
    assert!(
        err.contains(&format!(
            "share link for {FILE}: allows download, read_metadata until 20"
        )),
        "{err}"
    );

    // get LINK LOCAL, with nothing but the CA: the macaroon goes as a bearer token, never
    // in the URL requested.
    w.door.reset_stats();
    let o = run(w.receiver(), &["get", &link, "got.txt"]);
    ok(&o);
    no_secret(&stderr(&o), &mac);
    assert_eq!(
        std::fs::read_to_string(w.path("receiver/work/got.txt")).unwrap(),
        FILE_BODY
    );
    let st = w.door.stats();
    assert!(st.pool_requests > 0 && !st.pool_saw_authorization, "{st:?}");
    for r in &st.log {
        assert!(!r.path_and_query.contains("authz"), "{r:?}");
        if r.side == Side::Door {
            assert!(r.authorization, "{r:?}");
        }
    }
    // get LINK alone: the remote name in the current directory.
    ok(&run(w.receiver(), &["get", &link]));
    assert_eq!(
        std::fs::read_to_string(w.path("receiver/work/ε data.txt")).unwrap(),
        FILE_BODY
    );
    assert_eq!(ok(&run(w.receiver(), &["cat", &link])), FILE_BODY);
    let s = ok(&run(w.receiver(), &["--json", "stat", &link]));
    let v: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["path"], FILE, "{v}");
    assert_eq!(v["size"], FILE_BODY.len(), "{v}");

    // The bare macaroon in a file for --token-file, the door given with --url.
    std::fs::write(w.path("receiver/mac.txt"), format!("{mac}\n")).unwrap();
    let mut c = w.receiver();
    c.arg("--token-file")
        .arg(w.path("receiver/mac.txt"))
        .args(["--url", &w.door.url()]);
    let o = run(c, &["get", FILE, "via-token-file.txt"]);
    ok(&o);
    assert_eq!(
        std::fs::read_to_string(w.path("receiver/work/via-token-file.txt")).unwrap(),
        FILE_BODY
    );

    // The link does not open the rest of the storage.
    let other = w.door.url_for("/cta/other.txt");
    let mut c = w.receiver();
    c.arg("--token-file")
        .arg(w.path("receiver/mac.txt"))
        .args(["--url", &w.door.url()]);
    let o = run(c, &["cat", &other]);
    let err = fails(&o, PERMISSION);
    assert!(err.contains("/cta/other.txt"), "{err}");
    no_secret(&err, &mac);
}

#[test]
fn a_directory_link_lists_and_downloads_the_tree_and_json_has_its_shape() {
    let w = World::new();
    let o = run(w.owner(), &["--json", "share", DIR, "--for", "1d12h"]);
    let v: Value = serde_json::from_str(&ok(&o)).expect("one JSON document");
    check_schema(&v);
    assert_eq!(v["command"], "share");
    assert_eq!(v["profile"], "door");
    assert_eq!(v["path"], DIR);
    assert_eq!(
        v["caveats"],
        serde_json::json!(["activity:DOWNLOAD,LIST,READ_METADATA"])
    );
    let link = v["link"].as_str().unwrap().to_string();
    let mac = macaroon(&link);
    no_secret(&stderr(&o), &mac);
    // The expiry is the macaroon's before: caveat: a day and a half from now.
    let expires = v["expires"].as_str().unwrap();
    let left = seconds_until(expires);
    assert!((129_000..=129_600).contains(&left), "{expires}: {left}");

    let listing = ok(&run(w.receiver(), &["list", &link]));
    assert!(
        listing.contains("a.txt") && listing.contains("sub"),
        "{listing}"
    );
    ok(&run(w.receiver(), &["get", "-r", &link, "tree"]));
    assert_eq!(
        std::fs::read_to_string(w.path("receiver/work/tree/a.txt")).unwrap(),
        "aaa\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.path("receiver/work/tree/sub/b.txt")).unwrap(),
        "bbb\n"
    );
}

/// Seconds from now until an RFC 3339 UTC instant (`2026-12-04T05:30:00Z`).
fn seconds_until(t: &str) -> i64 {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", t, "+%s"])
        .output()
        .unwrap();
    let then: i64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    then - now
}

fn check_schema(v: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/json/share.schema.json")
        .canonicalize()
        .unwrap();
    let mut schemas = boon::Schemas::new();
    let idx = boon::Compiler::new()
        .compile(path.to_str().unwrap(), &mut schemas)
        .unwrap();
    if let Err(e) = schemas.validate(v, idx) {
        panic!("share.schema.json: {e:#}\n{v:#}");
    }
}

#[test]
fn a_download_link_cannot_upload_or_delete() {
    let w = World::new();
    let (link, _) = w.share(&[DIR]);
    let mac = macaroon(&link);
    std::fs::write(w.path("receiver/work/new.txt"), "new\n").unwrap();
    let o = run(w.receiver(), &["put", "new.txt", &link]);
    let err = fails(&o, PERMISSION);
    assert!(
        err.contains(&format!("{DIR}/new.txt"))
            && err.contains("403")
            && err.contains("the share link does not allow this"),
        "{err}"
    );
    no_secret(&err, &mac);
    assert!(!w.door.root().join("cta/dir ä/new.txt").exists());

    let o = run(w.receiver(), &["rm", "-r", &link]);
    let err = fails(&o, PERMISSION);
    assert!(err.contains(DIR), "{err}");
    assert!(w.door.root().join("cta/dir ä/a.txt").exists());

    // With upload allowed, the same put works.
    let (link, _) = w.share(&[DIR, "--allow", "upload,list"]);
    ok(&run(w.receiver(), &["put", "new.txt", &link]));
    assert_eq!(
        std::fs::read_to_string(w.door.root().join("cta/dir ä/new.txt")).unwrap(),
        "new\n"
    );
}

#[test]
fn an_ip_caveat_refuses_other_addresses() {
    let w = World::new();
    let (far, _) = w.share(&[FILE, "--ip", "10.0.0.0/8", "--ip", "2001:db8::/32"]);
    let o = run(w.receiver(), &["get", &far, "x.txt"]);
    let err = fails(&o, AUTH);
    assert!(err.contains("share link") && err.contains(FILE), "{err}");
    no_secret(&err, &macaroon(&far));
    assert!(!w.path("receiver/work/x.txt").exists());

    let (near, err) = w.share(&[FILE, "--ip", "127.0.0.0/8"]);
    assert!(err.contains("only from 127.0.0.0/8"), "{err}");
    assert_eq!(ok(&run(w.receiver(), &["cat", &near])), FILE_BODY);
}

#[test]
fn an_expired_link_is_refused_saying_so() {
    let w = World::new();
    let (link, _) = w.share(&[FILE, "--for", "2s"]);
    let mac = macaroon(&link);
    std::fs::write(w.path("receiver/mac.txt"), &mac).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    w.door.reset_stats();
    let o = run(w.receiver(), &["get", &link, "late.txt"]);
    let err = fails(&o, AUTH);
    assert!(
        err.contains("the share link expired") && err.contains("ask whoever shared it"),
        "{err}"
    );
    no_secret(&err, &mac);
    assert!(!w.path("receiver/work/late.txt").exists());

    // The door refuses it too, when it is sent anyway (as curl would).
    let mut c = w.receiver();
    c.arg("--token-file")
        .arg(w.path("receiver/mac.txt"))
        .args(["--url", &w.door.url()]);
    let o = run(c, &["cat", FILE]);
    let err = fails(&o, AUTH);
    assert!(err.contains("expired"), "{err}");
    no_secret(&err, &mac);
    // A forged macaroon (signed by another door's key, with this door's path) is refused
    // by the door itself.
    let other = DcacheDouble::start(DcacheConfig {
        tls: true,
        ca: w.door.ca().cloned(),
        ..Default::default()
    });
    other.put_file(FILE, b"elsewhere");
    let mut c = w.bare("owner");
    c.env("BEARER_TOKEN", "any-token")
        .args(["--url", &other.url(), "--ca-file"])
        .arg(w.ca());
    let forged = macaroon(ok(&run(c, &["share", FILE])).trim());
    w.door.reset_stats();
    let o = run(
        w.receiver(),
        &["cat", &format!("{}?authz={forged}", w.door.url_for(FILE))],
    );
    let err = fails(&o, AUTH);
    assert!(err.contains("share link") && err.contains("401"), "{err}");
    no_secret(&err, &forged);
    assert!(
        w.door.stats().log.iter().any(|r| r.status == 401),
        "the door itself refused"
    );
}

#[test]
fn a_refused_or_html_answer_is_a_clear_error_without_the_body() {
    let w = World::new();
    w.door.refuse_macaroons(true);
    let o = run(w.owner(), &["share", FILE]);
    let err = fails(&o, PERMISSION);
    assert!(
        err.contains(FILE) && err.contains("refused to make a share link") && err.contains("403"),
        "{err}"
    );
    assert!(
        !err.contains("not available on this door"),
        "a body excerpt: {err}"
    );
    assert!(stdout(&o).is_empty());

    w.door.macaroon_html(true);
    let o = run(w.owner(), &["share", FILE]);
    let err = fails(&o, PROTOCOL);
    assert!(
        err.contains(FILE) && err.contains("web page") && err.contains("macaroons enabled"),
        "{err}"
    );
    assert!(!err.contains("Please log in"), "a body excerpt: {err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn bad_options_are_refused_before_any_request() {
    let w = World::new();
    w.door.reset_stats();
    for (args, words) in [
        (vec!["--for", "12x"], vec!["'12x'", "30m, 12h, 7d"]),
        (vec!["--for", "0s"], vec!["never work"]),
        (
            vec!["--allow", "download,write"],
            vec![
                "'write'",
                "download, list, read_metadata, upload, delete, manage",
            ],
        ),
        (vec!["--ip", "1.2.3.4/40"], vec!["'1.2.3.4/40'", "CIDR"]),
        (vec!["--ip", "door.example"], vec!["not an IP address"]),
    ] {
        let o = run(w.owner(), &[&["share", FILE], &args[..]].concat());
        let err = fails(&o, USAGE);
        for word in words {
            assert!(err.contains(word), "{args:?}: {err}");
        }
    }
    assert_eq!(w.door.stats().door_requests, 0, "no request was made");
}

#[test]
fn the_macaroon_never_reaches_stderr_even_at_trace_level() {
    let w = World::new();
    let o = run(w.owner(), &["-vvv", "share", DIR]);
    let link = ok(&o).trim().to_string();
    let mac = macaroon(&link);
    let err = stderr(&o);
    assert!(err.contains("POST"), "trace output is there: {err}");
    no_secret(&err, &mac);

    for args in [
        vec!["-vvv", "get", "-r", &link, "t"],
        vec!["-vvv", "list", "-l", &link],
        vec!["-vvv", "share", &link, "--allow", "download"],
    ] {
        let o = run(w.receiver(), &args);
        let out = ok(&o);
        no_secret(&stderr(&o), &mac);
        if args[1] != "share" {
            no_secret(&out, &mac);
        }
    }
    // Failing commands at trace level: the error and the log hold no secret either.
    std::fs::write(w.path("receiver/work/u.txt"), "u\n").unwrap();
    let o = run(w.receiver(), &["-vvv", "put", "u.txt", &link]);
    no_secret(&stderr(&o), &mac);
    fails(&o, PERMISSION);
}

#[test]
fn a_link_made_from_a_link_is_narrower() {
    let w = World::new();
    let (link, _) = w.share(&[DIR]);
    // The receiver makes a link to one file of the directory, download only.
    let inner = format!(
        "{}?authz={}",
        w.door.url_for(&format!("{DIR}/a.txt")),
        macaroon(&link)
    );
    let o = run(w.receiver(), &["share", &inner, "--allow", "download"]);
    let narrow = ok(&o).trim().to_string();
    assert_ne!(macaroon(&narrow), macaroon(&link));
    assert_eq!(ok(&run(w.receiver(), &["cat", &narrow])), "aaa\n");
    // It cannot list the directory it came from.
    let dir_with_narrow = format!("{}?authz={}", w.door.url_for(DIR), macaroon(&narrow));
    let o = run(w.receiver(), &["list", &dir_with_narrow]);
    fails(&o, PERMISSION);
}

#[test]
fn the_door_may_shorten_the_lifetime_and_says_so() {
    let w = World::new();
    w.door.set_macaroon_max_validity(Duration::from_secs(3600));
    let o = run(w.owner(), &["--json", "share", FILE, "--for", "7d"]);
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    let left = seconds_until(v["expires"].as_str().unwrap());
    assert!((3500..=3600).contains(&left), "{v}");
    let o = run(w.owner(), &["share", FILE, "--for", "7d"]);
    ok(&o);
    assert!(stderr(&o).contains("shortened"), "{}", stderr(&o));
}

#[test]
fn the_local_backend_says_unsupported() {
    let w = World::new();
    std::fs::create_dir_all(w.path("localroot/d")).unwrap();
    std::fs::write(w.path("localroot/d/f.txt"), "x").unwrap();
    std::fs::write(
        w.path("local.toml"),
        format!(
            "[profiles.here]\nbackend = \"local\"\nroot = \"{}\"\n",
            w.path("localroot").display()
        ),
    )
    .unwrap();
    let mut c = w.bare("owner");
    c.arg("--config")
        .arg(w.path("local.toml"))
        .args(["--profile", "here"]);
    let o = run(c, &["share", "d/f.txt"]);
    let err = fails(&o, UNSUPPORTED);
    assert!(
        err.contains("'share' is not supported by the local backend") && err.contains("hint:"),
        "{err}"
    );
}
