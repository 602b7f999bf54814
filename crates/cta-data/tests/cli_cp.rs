//! End-to-end tests of `cta-data cp`: a WebDAV `COPY` on one door, HTTP third-party copy
//! between two dCache door doubles (pull, push when pull is refused, streaming through the
//! client when both are refused, a failure halfway), and a pull between two real XRootD
//! servers trusting the same token issuer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::dcache::tpc::TpcWay;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, TestCa, Xrootd};
use serde_json::Value;
use tempfile::TempDir;

const USAGE: i32 = 2;
const AUTH: i32 = 4;
const PERMISSION: i32 = 5;
const CONFLICT: i32 = 7;
const INTEGRITY: i32 = 8;
const TRANSPORT: i32 = 9;
const UNSUPPORTED: i32 = 11;

const TOKEN_A: &str = "token-of-door-a-s3cr3t";
const TOKEN_B: &str = "token-of-door-b-s3cr3t";

/// Two doors (`a` needs [`TOKEN_A`], `b` needs [`TOKEN_B`]) and profiles `a`, `b` and a
/// `local` one.
struct World {
    tmp: TempDir,
    a: DcacheDouble,
    b: DcacheDouble,
}

impl World {
    fn new() -> World {
        let a = DcacheDouble::start(DcacheConfig {
            token: Some(TOKEN_A.into()),
            ..Default::default()
        });
        let b = DcacheDouble::start(DcacheConfig {
            token: Some(TOKEN_B.into()),
            ..Default::default()
        });
        let tmp = TempDir::new().unwrap();
        for d in ["home", "work", "localroot"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("tok-a"), TOKEN_A).unwrap();
        std::fs::write(tmp.path().join("tok-b"), TOKEN_B).unwrap();
        let p = |n: &str| tmp.path().join(n).display().to_string();
        std::fs::write(
            tmp.path().join("config.toml"),
            format!(
                "[profiles.a]\nbackend = \"dcache\"\nurl = \"{}\"\ntoken_file = \"{}\"\n\
                 [profiles.b]\nbackend = \"dcache\"\nurl = \"{}\"\ntoken_file = \"{}\"\n\
                 [profiles.loc]\nbackend = \"local\"\nroot = \"{}\"\n",
                a.url(),
                p("tok-a"),
                b.url(),
                p("tok-b"),
                p("localroot")
            ),
        )
        .unwrap();
        World { tmp, a, b }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `cta-data --config CFG --profile a ARGS` in a clean environment.
    fn run(&self, args: &[&str]) -> Output {
        self.run_as("a", args)
    }

    fn run_as(&self, profile: &str, args: &[&str]) -> Output {
        cmd(self.tmp.path(), profile).args(args).output().unwrap()
    }
}

fn cmd(dir: &Path, profile: &str) -> Command {
    let mut c = Command::new(cargo_bin("cta-data"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home/.config"))
        .env("XDG_RUNTIME_DIR", dir.join("home/run"))
        .current_dir(dir.join("work"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(["--profile", profile]);
    c
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
}

/// Checks that stdout is one document valid against `docs/json/cp.schema.json`.
fn cp_json(o: &Output) -> Value {
    let docs: Vec<Value> = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out(o)));
    assert_eq!(docs.len(), 1, "one document: {}", out(o));
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/json/cp.schema.json")
        .canonicalize()
        .unwrap();
    let mut schemas = boon::Schemas::new();
    let idx = boon::Compiler::new()
        .compile(schema.to_str().unwrap(), &mut schemas)
        .unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = schemas.validate(&docs[0], idx) {
        panic!("cp.schema.json: {e:#}\n{:#}", docs[0]);
    }
    docs.into_iter().next().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Bytes that are not all alike, so a copy of the wrong range shows.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_copy_on_one_door_is_a_webdav_copy_of_a_file_or_a_tree() {
    let w = World::new();
    w.a.put_file("/cta/run/x.dat", &data(5000));
    w.a.put_file("/cta/run/sub/y.dat", b"yy");
    let o = w.run(&["cp", "/cta/run/x.dat", "/cta/run/x-copy.dat"]);
    ok(&o);
    assert!(err(&o).contains("mode: WebDAV COPY"), "{}", err(&o));
    assert_eq!(
        std::fs::read(w.a.root().join("cta/run/x-copy.dat")).unwrap(),
        data(5000)
    );
    let copies: Vec<_> =
        w.a.stats()
            .log
            .into_iter()
            .filter(|r| r.method == "COPY")
            .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(w.a.tpc_log().is_empty());

    // Exists without -f: a conflict, the file untouched; with -f replaced.
    w.a.put_file("/cta/run/other.dat", b"other");
    let o = w.run(&["cp", "/cta/run/other.dat", "/cta/run/x-copy.dat"]);
    assert_eq!(code(&o), CONFLICT, "{}", err(&o));
    assert!(err(&o).contains("-f"), "{}", err(&o));
    assert_eq!(
        std::fs::read(w.a.root().join("cta/run/x-copy.dat")).unwrap(),
        data(5000)
    );
    ok(&w.run(&["cp", "-f", "/cta/run/other.dat", "/cta/run/x-copy.dat"]));
    assert_eq!(
        std::fs::read(w.a.root().join("cta/run/x-copy.dat")).unwrap(),
        b"other"
    );

    // A directory needs -r; with it, one COPY of the tree.
    let o = w.run(&["cp", "/cta/run", "/cta/run2"]);
    assert_eq!(code(&o), USAGE, "{}", err(&o));
    assert!(err(&o).contains("cp -r"), "{}", err(&o));
    ok(&w.run(&["cp", "-r", "/cta/run", "/cta/run2"]));
    assert_eq!(
        std::fs::read(w.a.root().join("cta/run2/sub/y.dat")).unwrap(),
        b"yy"
    );
}

#[test]
fn the_same_file_as_source_and_destination_is_a_usage_error_before_any_request() {
    let w = World::new();
    w.a.put_file("/cta/x.dat", b"x");
    w.a.reset_stats();
    for (src, dst) in [
        ("/cta/x.dat", "/cta/x.dat"),
        ("/cta/x.dat", "a:/cta/x.dat"),
        ("a:/cta/x.dat", "cta/x.dat"),
    ] {
        let url = format!("{}/cta/x.dat", w.a.url());
        let o = w.run(&["cp", src, dst]);
        assert_eq!(code(&o), USAGE, "{src} {dst}: {}", err(&o));
        assert!(err(&o).contains("the same file"), "{}", err(&o));
        let o = w.run(&["cp", src, &url]);
        assert_eq!(code(&o), USAGE, "{src} {url}: {}", err(&o));
    }
    assert_eq!(w.a.stats().door_requests, 0);
}

#[test]
fn two_doors_copy_by_pull_with_the_source_token_in_a_transfer_header_only() {
    let w = World::new();
    w.a.put_file("/cta/in/run 1 ünï データ.dat", &data(300_000));
    let o = w.run(&[
        "-vvv",
        "cp",
        "/cta/in/run 1 ünï データ.dat",
        "b:/cta/out/run 1 ünï データ.dat",
    ]);
    ok(&o);
    let e = err(&o);
    assert!(e.contains("pull mode"), "{e}");
    assert!(e.contains("verified by adler32:"), "{e}");
    assert!(
        !e.contains(TOKEN_A) && !e.contains(TOKEN_B),
        "a token leaked: {e}"
    );
    assert_eq!(
        std::fs::read(w.b.root().join("cta/out/run 1 ünï データ.dat")).unwrap(),
        data(300_000)
    );
    let log = w.b.tpc_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].way, TpcWay::Pull);
    assert!(log[0].transfer_authorization);
    assert!(!log[0].remote_url.contains('?'), "{}", log[0].remote_url);
    assert!(!log[0].remote_url.contains(TOKEN_A));
    assert!(log[0].remote_url.starts_with(&w.a.url()));
    // The source door served the bytes to the destination door (GET via its pool).
    assert!(w.a.stats().pool_sent_bytes >= 300_000);
}

#[test]
fn a_url_or_a_profile_prefix_names_either_end_and_json_says_the_mode() {
    let w = World::new();
    w.a.put_file("/cta/x.dat", &data(1000));
    let dst = format!("{}/cta/y.dat", w.b.url());
    let o = w.run(&["--json", "cp", "a:/cta/x.dat", &dst]);
    ok(&o);
    let v = cp_json(&o);
    assert_eq!(v["command"], "cp");
    assert_eq!(v["mode"], "pull");
    assert_eq!(v["bytes"], 1000);
    assert_eq!(v["files"][0]["to"], "/cta/y.dat");
    assert!(
        v["files"][0]["checksum"]
            .as_str()
            .unwrap()
            .starts_with("adler32:"),
        "{v}"
    );
    assert_eq!(
        std::fs::read(w.b.root().join("cta/y.dat")).unwrap(),
        data(1000)
    );
    // Run from profile b: the source named by its URL.
    let src = format!("{}/cta/x.dat", w.a.url());
    ok(&w.run_as("b", &["cp", &src, "/cta/z.dat"]));
    assert_eq!(
        std::fs::read(w.b.root().join("cta/z.dat")).unwrap(),
        data(1000)
    );
    // A path holding ':' whose prefix is no profile stays a path.
    w.a.put_file("/cta/run:7.dat", b"colon");
    ok(&w.run(&["cp", "cta/run:7.dat", "/cta/run-7.dat"]));
    assert_eq!(
        std::fs::read(w.a.root().join("cta/run-7.dat")).unwrap(),
        b"colon"
    );
}

#[test]
fn a_refused_pull_falls_back_to_push_and_then_to_streaming() {
    let w = World::new();
    w.a.put_file("/cta/x.dat", &data(70_000));
    w.b.tpc_refuse_pull(true);
    let o = w.run(&["cp", "/cta/x.dat", "b:/cta/pushed.dat"]);
    ok(&o);
    let e = err(&o);
    eprintln!("{e}");
    assert!(e.contains("refused to pull"), "{e}");
    assert!(e.contains("push mode"), "{e}");
    assert_eq!(
        std::fs::read(w.b.root().join("cta/pushed.dat")).unwrap(),
        data(70_000)
    );
    let log = w.a.tpc_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].way, TpcWay::Push);
    assert!(log[0].transfer_authorization);

    // Both refuse: through the client, said so.
    w.a.tpc_refuse(true);
    w.b.tpc_refuse(true);
    let o = w.run(&["--json", "cp", "/cta/x.dat", "b:/cta/streamed.dat"]);
    ok(&o);
    let v = cp_json(&o);
    assert_eq!(v["mode"], "stream");
    assert_eq!(
        std::fs::read(w.b.root().join("cta/streamed.dat")).unwrap(),
        data(70_000)
    );
    let o = w.run(&["cp", "/cta/x.dat", "b:/cta/streamed2.dat"]);
    ok(&o);
    eprintln!("{}", err(&o));
    assert!(
        err(&o).contains("streamed through this client"),
        "{}",
        err(&o)
    );

    // A mode asked for and refused: no other mode, a clear error.
    let o = w.run(&["cp", "--mode", "pull", "/cta/x.dat", "b:/cta/never.dat"]);
    assert_eq!(code(&o), PERMISSION, "{}", err(&o));
    assert!(err(&o).contains("refused to pull"), "{}", err(&o));
    assert!(!w.b.root().join("cta/never.dat").exists());
}

#[test]
fn a_failure_halfway_names_both_ends_and_leaves_no_destination() {
    let w = World::new();
    w.a.put_file("/cta/big.dat", &data(200_000));
    for keep in [false, true] {
        // keep: the server leaves the partial file, the client removes it.
        w.b.tpc_fail_after(Some(50_000));
        w.b.tpc_keep_partial(keep);
        let o = w.run(&["cp", "/cta/big.dat", "b:/cta/half.dat"]);
        assert_eq!(code(&o), TRANSPORT, "{}", err(&o));
        let e = err(&o);
        eprintln!("{e}");
        assert!(e.contains(&format!("{}/cta/big.dat", w.a.url())), "{e}");
        assert!(e.contains(&format!("{}/cta/half.dat", w.b.url())), "{e}");
        assert!(e.contains("forcefully killed"), "{e}");
        let fate = if keep {
            "the partial destination was removed"
        } else {
            "no destination file was left"
        };
        assert!(e.contains(fate), "{e}");
        assert!(!w.b.root().join("cta/half.dat").exists(), "keep={keep}");
    }
}

#[test]
fn checksums_that_differ_remove_the_copy() {
    let w = World::new();
    w.a.put_file("/cta/x.dat", &data(20_000));
    w.b.corrupt_digest(true);
    let o = w.run(&["cp", "/cta/x.dat", "b:/cta/x.dat"]);
    assert_eq!(code(&o), INTEGRITY, "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("differs from the source's adler32:"), "{e}");
    assert!(e.contains("the copy was removed"), "{e}");
    assert!(!w.b.root().join("cta/x.dat").exists());
}

#[test]
fn trees_are_copied_between_doors_file_by_file() {
    let w = World::new();
    w.a.put_file("/cta/tree/a b.txt", b"one");
    w.a.put_file("/cta/tree/sub/ü.txt", b"two");
    w.a.put_file("/cta/tree/sub/deeper/z.txt", &data(10_000));
    let o = w.run(&["--json", "cp", "-r", "-j", "2", "/cta/tree", "b:/cta/copy"]);
    ok(&o);
    let v = cp_json(&o);
    assert_eq!(v["mode"], "pull");
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    assert_eq!(
        std::fs::read(w.b.root().join("cta/copy/a b.txt")).unwrap(),
        b"one"
    );
    assert_eq!(
        std::fs::read(w.b.root().join("cta/copy/sub/ü.txt")).unwrap(),
        b"two"
    );
    assert_eq!(
        std::fs::read(w.b.root().join("cta/copy/sub/deeper/z.txt")).unwrap(),
        data(10_000)
    );
    // Again without -f: every file is a conflict.
    let o = w.run(&["cp", "-r", "/cta/tree", "b:/cta/copy"]);
    assert_eq!(code(&o), 13, "{}", err(&o));
}

#[test]
fn a_local_profile_cannot_copy_on_the_server() {
    let w = World::new();
    std::fs::write(w.path("localroot/x"), b"x").unwrap();
    let o = w.run_as("loc", &["cp", "/x", "/y"]);
    assert_eq!(code(&o), UNSUPPORTED, "{}", err(&o));
    assert!(err(&o).contains("'cp'"), "{}", err(&o));
}

// ----- two real XRootD servers -----

/// Profiles `xa` and `xb` on two XRootD servers over TLS, with tokens of one issuer.
fn xrootd_world(token_b: impl Fn(&Xrootd) -> String) -> (TempDir, TestCa, Xrootd, Xrootd) {
    let ca = TestCa::new();
    let (xa, xb) = Xrootd::start_pair(&ca).expect("xrootd (tests/run-all.sh installs it)");
    let tmp = TempDir::new().unwrap();
    for d in ["home", "work"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    std::fs::write(tmp.path().join("tok-a"), xa.read_write_token()).unwrap();
    std::fs::write(tmp.path().join("tok-b"), token_b(&xb)).unwrap();
    let p = |n: &str| tmp.path().join(n).display().to_string();
    std::fs::write(
        tmp.path().join("config.toml"),
        format!(
            "[profiles.xa]\nbackend = \"dcache\"\nurl = \"{}\"\ntoken_file = \"{}\"\nca_file = \"{}\"\n\
             [profiles.xb]\nbackend = \"dcache\"\nurl = \"{}\"\ntoken_file = \"{}\"\nca_file = \"{}\"\n",
            xa.url(),
            p("tok-a"),
            ca.ca_cert_path().display(),
            xb.url(),
            p("tok-b"),
            ca.ca_cert_path().display(),
        ),
    )
    .unwrap();
    (tmp, ca, xa, xb)
}

#[test]
fn xrootd_pulls_from_another_xrootd_with_a_token_and_checksums_match() {
    let (tmp, _ca, xa, xb) = xrootd_world(|x| x.read_write_token());
    xa.put_file("/data/run 1/ünï.dat", &data(3_000_000));
    let o = cmd(tmp.path(), "xa")
        .args([
            "-vvv",
            "--json",
            "cp",
            "/data/run 1/ünï.dat",
            "xb:/copy/ünï.dat",
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n--- A ---\n{}\n--- B ---\n{}",
        err(&o),
        xa.logs(),
        xb.logs()
    );
    let v = cp_json(&o);
    assert_eq!(v["mode"], "pull", "{v}");
    assert_eq!(
        std::fs::read(xb.root().join("copy/ünï.dat")).unwrap(),
        data(3_000_000)
    );
    let sum = v["files"][0]["checksum"].as_str().unwrap_or("").to_string();
    assert!(sum.starts_with("adler32:"), "{v}");
    // What B itself computes for the copy is what the client reported.
    let server = xb
        .server_digest("copy/%C3%BCn%C3%AF.dat", Some(&xb.read_write_token()))
        .expect("curl HEAD on B")
        .expect("B gives an adler32 Digest");
    assert_eq!(server.replace('=', ":"), sum, "{server}");
    // -vvv logs every request, the TPC COPY with both tokens among its headers: redacted.
    let token = std::fs::read_to_string(tmp.path().join("tok-a")).unwrap();
    assert!(err(&o).contains("method=\"COPY\""), "{}", err(&o));
    assert!(!err(&o).contains(token.trim()), "a token on stderr");

    // On one XRootD: its HTTP-TPC plugin takes the COPY as a push to itself.
    let o = cmd(tmp.path(), "xb")
        .args(["cp", "/copy/ünï.dat", "/copy/again.dat"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", err(&o), xb.logs());
    assert!(err(&o).contains("WebDAV COPY"), "{}", err(&o));
    assert_eq!(
        std::fs::read(xb.root().join("copy/again.dat")).unwrap(),
        data(3_000_000)
    );
}

#[test]
fn xrootd_pushes_to_another_xrootd_when_asked() {
    let (tmp, _ca, xa, xb) = xrootd_world(|x| x.read_write_token());
    xa.put_file("/data/p q.dat", &data(1_000_000));
    let o = cmd(tmp.path(), "xa")
        .args([
            "--json",
            "cp",
            "--mode",
            "push",
            "/data/p q.dat",
            "xb:/in/p q.dat",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", err(&o), xa.logs());
    let v = cp_json(&o);
    assert_eq!(v["mode"], "push", "{v}");
    assert_eq!(
        std::fs::read(xb.root().join("in/p q.dat")).unwrap(),
        data(1_000_000)
    );
}

#[test]
fn xrootd_refuses_a_destination_token_too_narrow_for_the_copy() {
    let (tmp, _ca, xa, xb) = xrootd_world(|x| x.read_only_token());
    xa.put_file("/data/x.dat", &data(100_000));
    xb.mkdir("copy");
    let o = cmd(tmp.path(), "xa")
        .args(["cp", "--mode", "pull", "/data/x.dat", "xb:/copy/x.dat"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", err(&o));
    let e = err(&o);
    // XRootD answers 401 to a COPY its token's scopes do not allow.
    assert_eq!(code(&o), AUTH, "{e}\n{}", xb.logs());
    assert!(e.contains("refused the third-party copy"), "{e}");
    assert!(e.contains("storage.create"), "{e}");
    assert!(e.contains(&xb.url()), "{e}");
    assert!(!xb.root().join("copy/x.dat").exists());
}
