//! End-to-end tests of the `cta-data` binary with the `dcache` backend against a real XRootD
//! server (Debian's 5.5.x, XrdHttp) over TLS, with WLCG tokens checked by the server
//! (`libXrdAccSciTokens`, keys of a test issuer seeded offline): every verb, awkward names,
//! an empty file, conflicts, resume, adler32 both ways, and refused tokens. Each test checks
//! the server's disk (the exported directory) as well as the CLI's output and exit code.
//!
//! One server per test: it starts in 0.1 to 0.7 s here (`xrootd started in` in each test's
//! output), so there is nothing to gain from sharing one. A test that
//! hangs (a client waiting for ever on the server) is killed after [`DEADLINE`] and fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::TestCa;
use ctadata_testsupport::{Xrootd, XrootdOptions};
use serde_json::Value;
use tempfile::TempDir;

const USAGE: i32 = 2;
const AUTH: i32 = 4;
const PERMISSION: i32 = 5;
const NOT_FOUND: i32 = 6;
const CONFLICT: i32 = 7;
const INTEGRITY: i32 = 8;
const UNSUPPORTED: i32 = 11;
const PARTIAL: i32 = 13;

/// The longest any one command may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(180);

/// Names that need care in a URL or in XML: space, non-ASCII, `#`, `%`, `+`, `&`. (A `?`
/// cannot be reached through XrdHttp 5.5.3 at all, and the client refuses it there: see
/// [`a_name_with_a_question_mark_is_never_downloaded_as_another_file`].)
const AWKWARD: [&str; 6] = [
    "with space.txt",
    "ünïcødé-データ.txt",
    "a#b.txt",
    "pct%41.txt",
    "plus+1.txt",
    "amp&lt.txt",
];

struct World {
    tmp: TempDir,
    _ca: TestCa,
    xrd: Xrootd,
    token: String,
}

impl World {
    /// A private XRootD over TLS with tokens, a profile `xrd` on it trusting the test CA,
    /// and a read-write token.
    fn new() -> World {
        let ca = TestCa::new();
        let xrd = Xrootd::start(XrootdOptions {
            tls: Some(&ca),
            tokens: true,
        })
        .expect("xrootd (tests/run-all.sh installs it)");
        eprintln!("xrootd started in {:?}", xrd.started_in());
        let tmp = TempDir::new().unwrap();
        for d in ["home", "work"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(
            tmp.path().join("config.toml"),
            format!(
                "[profiles.xrd]\nbackend = \"dcache\"\nurl = \"{}\"\nca_file = \"{}\"\n",
                xrd.url(),
                ca.ca_cert_path().display()
            ),
        )
        .unwrap();
        let token = xrd.read_write_token();
        World {
            tmp,
            _ca: ca,
            xrd,
            token,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A path on the server's disk.
    fn disk(&self, rel: &str) -> PathBuf {
        self.xrd.root().join(rel)
    }

    /// Writes a local file under `work/`.
    fn local(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.path("work").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    /// `cta-data --config CFG --profile xrd` in `work/`, with only PATH and a private home,
    /// the token in `BEARER_TOKEN` when given.
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
            .args(["--profile", "xrd"])
            .stdin(Stdio::null());
        if let Some(t) = token {
            c.env("BEARER_TOKEN", t);
        }
        c
    }

    /// Runs with the read-write token.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(Some(&self.token.clone()), args)
    }

    fn run_with(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut c = self.cmd(token);
        c.args(args);
        finish(c, args, &self.xrd)
    }
}

/// Runs a command to its end, killing it (and failing) after [`DEADLINE`].
fn finish(mut c: Command, args: &[&str], xrd: &Xrootd) -> Output {
    let out_path = tempfile::NamedTempFile::new().unwrap();
    let err_path = tempfile::NamedTempFile::new().unwrap();
    c.stdout(out_path.reopen().unwrap())
        .stderr(err_path.reopen().unwrap());
    let mut child = c.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cta-data {args:?} hung for more than {DEADLINE:?}; stderr: {}\nserver log:\n{}",
                std::fs::read_to_string(err_path.path()).unwrap_or_default(),
                tail(&xrd.logs(), 40)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(out_path.path()).unwrap(),
        stderr: std::fs::read(err_path.path()).unwrap(),
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
    out(o)
}

#[track_caller]
fn fails(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}; stdout: {}; stderr: {}",
        out(o),
        err(o)
    );
    err(o)
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out(o)))
}

/// The paths of a `list --json` array, sorted.
fn paths(v: &Value) -> Vec<String> {
    let mut p: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

/// Every file below `dir` as (relative path, content), sorted; directories as (path/, []).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(base, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn data(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect()
}

fn adler32(data: &[u8]) -> String {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    format!("{:08x}", (b << 16) | a)
}

/// The server itself, asked with curl: a valid token is needed and enough, and checked for
/// its signature, audience, expiry and scopes. Every test below relies on this.
#[test]
fn the_server_checks_tokens() {
    let w = World::new();
    w.xrd.put_file("p/f.txt", b"x");
    let x = &w.xrd;
    let depth = ["Depth: 1"];
    assert_eq!(
        x.status_of("PROPFIND", "p/", Some(&w.token), &depth)
            .unwrap(),
        207
    );
    assert_eq!(
        x.status_of("GET", "p/f.txt", Some(&w.token), &[]).unwrap(),
        200
    );
    assert_eq!(
        x.status_of("GET", "p/f.txt", Some(&x.read_only_token()), &[])
            .unwrap(),
        200
    );
    for (what, token) in [
        ("no token", None),
        ("expired", Some(x.expired_token())),
        ("wrong audience", Some(x.wrong_audience_token())),
        ("unknown key", Some(x.forged_token())),
    ] {
        let status = x
            .status_of("GET", "p/f.txt", token.as_deref(), &[])
            .unwrap();
        assert_eq!(status, 403, "{what}");
    }
    assert_eq!(
        x.status_of("MKCOL", "p/ro", Some(&x.read_only_token()), &[])
            .unwrap(),
        403
    );
    assert!(!w.disk("p/ro").exists());
    assert_eq!(
        x.status_of("MKCOL", "p/rw", Some(&w.token), &[]).unwrap(),
        201
    );
    assert!(w.disk("p/rw").is_dir());
}

/// Without TLS and tokens (the defaults), the server answers plain HTTP to anyone.
#[test]
fn a_plain_server_without_tokens_serves_anyone() {
    let xrd = Xrootd::start(XrootdOptions::default()).expect("xrootd");
    assert!(xrd.url().starts_with("http://127.0.0.1:"), "{}", xrd.url());
    xrd.put_file("f.txt", b"x");
    assert_eq!(xrd.status_of("GET", "f.txt", None, &[]).unwrap(), 200);
    assert_eq!(xrd.status_of("MKCOL", "d", None, &[]).unwrap(), 201);
    assert!(xrd.root().join("d").is_dir());
    assert_eq!(xrd.status_of("GET", "none", None, &[]).unwrap(), 404);
}

#[test]
fn a_file_goes_up_is_listed_stated_read_and_comes_back() {
    let w = World::new();
    w.local("hello.txt", b"hello xrootd\n");

    // put creates the missing folders (MKCOL run1 and data) and the file.
    let o = w.run(&["put", "hello.txt", "data/run1/"]);
    ok(&o);
    assert!(err(&o).contains("/data/run1/hello.txt"), "{}", err(&o));
    assert_eq!(
        std::fs::read(w.disk("data/run1/hello.txt")).unwrap(),
        b"hello xrootd\n"
    );

    // list: the entry, never an empty listing with exit 0.
    let listing = ok(&w.run(&["list", "data/run1"]));
    assert_eq!(listing.trim(), "hello.txt", "{listing}");
    let long = ok(&w.run(&["list", "-l", "data/run1"]));
    assert!(long.contains("hello.txt") && long.contains("13"), "{long}");
    let v = json(&w.run(&["--json", "list", "data"]));
    assert_eq!(paths(&v), vec!["/data/run1"]);
    assert_eq!(v[0]["type"], "directory", "{v}");

    // stat of a file and of a directory.
    let v = json(&w.run(&["--json", "stat", "data/run1/hello.txt"]));
    assert_eq!(v["type"], "file", "{v}");
    assert_eq!(v["size"], 13, "{v}");
    assert_eq!(v["name"], "hello.txt", "{v}");
    let v = json(&w.run(&["--json", "stat", "data/run1"]));
    assert_eq!(v["type"], "directory", "{v}");

    // cat and get give the bytes on the server's disk.
    assert_eq!(
        ok(&w.run(&["cat", "data/run1/hello.txt"])),
        "hello xrootd\n"
    );
    ok(&w.run(&["get", "data/run1/hello.txt", "back.txt"]));
    assert_eq!(
        std::fs::read(w.path("work/back.txt")).unwrap(),
        b"hello xrootd\n"
    );

    // A missing file is not found, and nothing is left behind.
    let e = fails(&w.run(&["get", "data/none.bin"]), NOT_FOUND);
    assert!(e.contains("/data/none.bin"), "{e}");
    assert!(!w.path("work/none.bin").exists() && !w.path("work/none.bin.part").exists());
}

#[test]
fn list_recursive_and_json_show_the_whole_tree() {
    let w = World::new();
    w.xrd.put_file("t/a/c.txt", b"ccc");
    w.xrd.put_file("t/d.txt", b"dddd");
    w.xrd.mkdir("t/empty");

    let v = json(&w.run(&["--json", "list", "-r", "t"]));
    assert_eq!(
        paths(&v),
        vec!["/t/a", "/t/a/c.txt", "/t/d.txt", "/t/empty"],
        "{v}"
    );
    let d = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/t/d.txt")
        .unwrap();
    assert_eq!(d["size"], 4, "{d}");
    assert_eq!(d["type"], "file", "{d}");

    let text = ok(&w.run(&["list", "-r", "t"]));
    for name in ["c.txt", "d.txt", "empty"] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    let long = ok(&w.run(&["list", "-l", "t"]));
    assert!(long.contains("d.txt") && long.contains('4'), "{long}");
}

#[test]
fn list_of_a_file_shows_that_file() {
    let w = World::new();
    w.xrd.put_file("d/one.txt", b"12345");
    let v = json(&w.run(&["--json", "list", "d/one.txt"]));
    assert_eq!(paths(&v), vec!["/d/one.txt"], "{v}");
    assert_eq!(v[0]["size"], 5, "{v}");
    let text = ok(&w.run(&["list", "d/one.txt"]));
    assert!(text.contains("one.txt"), "{text}");
}

#[test]
fn awkward_names_go_up_and_come_back_one_by_one() {
    let w = World::new();
    for (i, name) in AWKWARD.iter().enumerate() {
        let content = format!("content of {name} #{i}\n");
        w.local(name, content.as_bytes());
        ok(&w.run(&["put", name, "single/"]));
        assert_eq!(
            std::fs::read_to_string(w.disk(&format!("single/{name}"))).unwrap(),
            content,
            "{name} on the server"
        );
        let remote = format!("single/{name}");
        let v = json(&w.run(&["--json", "stat", &remote]));
        assert_eq!(v["name"], *name, "{v}");
        assert_eq!(v["size"], content.len(), "{v}");
        assert_eq!(ok(&w.run(&["cat", &remote])), content, "cat {name}");
        let back = format!("back-{i}.txt");
        ok(&w.run(&["get", &remote, &back]));
        assert_eq!(
            std::fs::read_to_string(w.path("work").join(&back)).unwrap(),
            content,
            "get {name}"
        );
    }
    // Exactly these names on the server, and listed as themselves.
    let mut on_disk: Vec<String> = tree(&w.disk("single")).into_iter().map(|e| e.0).collect();
    on_disk.sort();
    let mut want: Vec<String> = AWKWARD.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(on_disk, want);
    let v = json(&w.run(&["--json", "list", "single"]));
    let mut listed: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, want, "{v}");
}

#[test]
fn a_tree_of_awkward_names_round_trips_with_r() {
    let w = World::new();
    for (i, name) in AWKWARD.iter().enumerate() {
        w.local(&format!("src/{name}"), format!("top {i} {name}").as_bytes());
        w.local(
            &format!("src/sub dir/{name}"),
            format!("deep {i} {name}").as_bytes(),
        );
    }
    std::fs::create_dir_all(w.path("work/src/empty dir")).unwrap();
    let local = tree(&w.path("work/src"));

    ok(&w.run(&["put", "-r", "src", "up"]));
    assert_eq!(tree(&w.disk("up")), local, "the server's copy");

    let v = json(&w.run(&["--json", "list", "-r", "up"]));
    let listed = paths(&v);
    let mut want: Vec<String> = local
        .iter()
        .map(|(p, _)| format!("/up/{}", p.trim_end_matches('/')))
        .collect();
    want.sort();
    assert_eq!(listed, want);

    // get -r fetches each file as itself: none skipped, none fetched in another's place.
    ok(&w.run(&["get", "-r", "up", "down"]));
    assert_eq!(tree(&w.path("work/down")), local, "the downloaded copy");
}

#[test]
fn an_empty_file_goes_up_and_comes_back_alone_and_in_a_tree() {
    let w = World::new();
    w.local("empty.txt", b"");
    ok(&w.run(&["put", "empty.txt", "e/"]));
    let m = std::fs::metadata(w.disk("e/empty.txt")).unwrap();
    assert!(m.is_file() && m.len() == 0);

    w.local("t/empty", b"");
    w.local("t/full", b"full");
    ok(&w.run(&["put", "-r", "t", "tree"]));
    assert_eq!(
        tree(&w.disk("tree")),
        vec![
            ("empty".to_string(), Vec::new()),
            ("full".to_string(), b"full".to_vec())
        ]
    );

    let v = json(&w.run(&["--json", "stat", "e/empty.txt"]));
    assert_eq!(v["size"], 0, "{v}");
    ok(&w.run(&["get", "e/empty.txt", "back"]));
    assert_eq!(std::fs::metadata(w.path("work/back")).unwrap().len(), 0);
    assert_eq!(ok(&w.run(&["cat", "e/empty.txt"])), "");
    ok(&w.run(&["get", "-r", "tree", "tree-back"]));
    assert_eq!(tree(&w.path("work/tree-back")), tree(&w.disk("tree")));
}

#[test]
fn mkdir_checks_parent_and_target_and_p_makes_parents() {
    let w = World::new();
    ok(&w.run(&["mkdir", "top"]));
    assert!(w.disk("top").is_dir());

    // The directory exists: a conflict, not a success.
    let e = fails(&w.run(&["mkdir", "top"]), CONFLICT);
    assert!(e.contains("/top"), "{e}");

    // A missing parent without -p: not found, and nothing created.
    let e = fails(&w.run(&["mkdir", "a/b/c"]), NOT_FOUND);
    assert!(e.contains("/a/b"), "{e}");
    assert!(!w.disk("a").exists(), "mkdir without -p created parents");

    // A file in the way: a conflict, the file untouched.
    w.xrd.put_file("f.txt", b"file");
    fails(&w.run(&["mkdir", "f.txt"]), CONFLICT);
    assert_eq!(std::fs::read(w.disk("f.txt")).unwrap(), b"file");

    ok(&w.run(&["mkdir", "-p", "a/b/c"]));
    assert!(w.disk("a/b/c").is_dir());
    // -p on an existing directory is fine.
    ok(&w.run(&["mkdir", "-p", "a/b"]));
    assert!(w.disk("a/b/c").is_dir());
}

#[test]
fn rm_deletes_a_file_and_rm_r_a_tree() {
    let w = World::new();
    w.xrd.put_file("d/a.txt", b"a");
    w.xrd.put_file("d/sub/b.txt", b"b");
    w.xrd.put_file("d/sub/deeper/c.txt", b"c");
    w.xrd.mkdir("d/sub/empty");
    w.xrd.mkdir("lonely");

    ok(&w.run(&["rm", "d/a.txt"]));
    assert!(!w.disk("d/a.txt").exists());
    // An empty directory needs no -r.
    ok(&w.run(&["rm", "lonely"]));
    assert!(!w.disk("lonely").exists());

    // A non-empty directory without -r: refused, nothing deleted.
    fails(&w.run(&["rm", "d"]), USAGE);
    assert!(w.disk("d/sub/deeper/c.txt").is_file());

    ok(&w.run(&["rm", "-r", "d"]));
    assert!(!w.disk("d").exists(), "left: {:?}", tree(w.xrd.root()));

    fails(&w.run(&["rm", "d"]), NOT_FOUND);
}

#[test]
fn mv_renames_and_refuses_to_replace_without_force() {
    let w = World::new();
    w.xrd.put_file("m/a.txt", b"A");
    w.xrd.put_file("m/c.txt", b"C");
    w.xrd.put_file("m/dir/x.txt", b"X");

    ok(&w.run(&["mv", "m/a.txt", "m/b.txt"]));
    assert!(!w.disk("m/a.txt").exists());
    assert_eq!(std::fs::read(w.disk("m/b.txt")).unwrap(), b"A");

    // The target exists: a conflict, both files as they were.
    let e = fails(&w.run(&["mv", "m/c.txt", "m/b.txt"]), CONFLICT);
    assert!(e.contains("/m/b.txt"), "{e}");
    assert_eq!(std::fs::read(w.disk("m/b.txt")).unwrap(), b"A");
    assert_eq!(std::fs::read(w.disk("m/c.txt")).unwrap(), b"C");

    ok(&w.run(&["mv", "-f", "m/c.txt", "m/b.txt"]));
    assert_eq!(std::fs::read(w.disk("m/b.txt")).unwrap(), b"C");
    assert!(!w.disk("m/c.txt").exists());

    // A directory moves with its content.
    ok(&w.run(&["mv", "m/dir", "moved"]));
    assert_eq!(std::fs::read(w.disk("moved/x.txt")).unwrap(), b"X");
    assert!(!w.disk("m/dir").exists());

    // A missing source is not found.
    fails(&w.run(&["mv", "m/none", "m/other"]), NOT_FOUND);
    assert!(!w.disk("m/other").exists());
}

#[test]
fn put_over_a_different_remote_file_conflicts_until_force() {
    let w = World::new();
    w.local("a.txt", b"first");
    ok(&w.run(&["put", "a.txt", "d/a.txt"]));
    assert_eq!(std::fs::read(w.disk("d/a.txt")).unwrap(), b"first");
    w.local("a.txt", b"second, longer");
    let e = fails(&w.run(&["put", "a.txt", "d/a.txt"]), CONFLICT);
    assert!(e.contains("/d/a.txt"), "{e}");
    assert_eq!(std::fs::read(w.disk("d/a.txt")).unwrap(), b"first");
    ok(&w.run(&["put", "--force", "a.txt", "d/a.txt"]));
    assert_eq!(std::fs::read(w.disk("d/a.txt")).unwrap(), b"second, longer");

    // A file in the way of a directory: a conflict, the file untouched.
    w.local("tree/x.txt", b"x");
    w.xrd.put_file("d/tree", b"a file");
    let o = w.run(&["put", "-r", "tree", "d/tree"]);
    assert!(!o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read(w.disk("d/tree")).unwrap(), b"a file");
}

/// XrdHttp 5.5.3 decodes `%3F` and then cuts the path at the `?`: a file named `r?x.txt`
/// cannot be reached (a `GET` of `/r%3Fx.txt` answers the file `r`) nor created (a `PUT`
/// to `/q%3Fx.txt` creates `q`), while `PROPFIND` lists it with its real name and answers
/// any such path with the path asked for. The client must never hand over another file's
/// bytes under that name, nor touch another file in its place: it finds out once that the
/// server cuts (a probe) and refuses every request for such a name, saying why.
#[test]
fn a_name_with_a_question_mark_is_never_downloaded_as_another_file() {
    let w = World::new();
    // Same size, other bytes: neither the size nor the server's checksum tells them apart.
    w.xrd.put_file("qm/r?x.txt", b"the real one");
    w.xrd.put_file("qm/r", b"another file");
    w.xrd.put_file("qm/plain.txt", b"plain");
    // The tree: every other file arrives, `r?x.txt` is reported (named, with the reason)
    // and skipped, and the command does not claim success.
    let o = w.run(&["get", "-r", "qm", "down"]);
    let e = fails(&o, PARTIAL);
    assert_eq!(
        std::fs::read(w.path("work/down/plain.txt")).unwrap(),
        b"plain"
    );
    assert_eq!(
        std::fs::read(w.path("work/down/r")).unwrap(),
        b"another file"
    );
    assert!(!w.path("work/down/r?x.txt").exists(), "{e}");
    assert!(e.contains("/qm/r?x.txt"), "{e}");
    assert!(e.contains("cuts request paths at '?'"), "{e}");
    // One file: refused as unsupported, nothing written.
    let e = fails(&w.run(&["get", "qm/r?x.txt", "single.txt"]), UNSUPPORTED);
    assert!(e.contains("/qm/r?x.txt") && e.contains("xroot"), "{e}");
    assert!(!w.path("work/single.txt").exists());
    // stat, cat, rm and mv of it: refused the same way; neither file touched.
    for args in [
        &["stat", "qm/r?x.txt"][..],
        &["cat", "qm/r?x.txt"],
        &["rm", "qm/r?x.txt"],
        &["mv", "qm/r?x.txt", "qm/moved.txt"],
        &["mv", "qm/plain.txt", "qm/p?x.txt"],
    ] {
        let o = w.run(args);
        assert!(out(&o).is_empty(), "{args:?}: {}", out(&o));
        let e = fails(&o, UNSUPPORTED);
        assert!(e.contains("?x.txt"), "{args:?}: {e}");
    }
    assert_eq!(std::fs::read(w.disk("qm/r")).unwrap(), b"another file");
    assert_eq!(
        std::fs::read(w.disk("qm/r?x.txt")).unwrap(),
        b"the real one"
    );
    assert_eq!(std::fs::read(w.disk("qm/plain.txt")).unwrap(), b"plain");
    assert!(!w.disk("qm/moved.txt").exists() && !w.disk("qm/p").exists());
    // The listing still shows it under its real name.
    assert!(ok(&w.run(&["list", "qm"])).contains("r?x.txt"));
}

/// The upload side of
/// [`a_name_with_a_question_mark_is_never_downloaded_as_another_file`]: a `PUT` to
/// `/up/q%3Fx.txt` writes `/up/q` on XRootD 5.5.3, over the file there.
#[test]
fn a_name_with_a_question_mark_is_never_uploaded_as_another_file() {
    let w = World::new();
    w.xrd.put_file("up/q", b"keep me");
    // The same upload of a plain name works: a refusal below is the name's.
    w.local("plain.txt", b"plain");
    ok(&w.run(&["put", "plain.txt", "up/"]));
    assert_eq!(std::fs::read(w.disk("up/plain.txt")).unwrap(), b"plain");
    // Refused, never stored as `q` (over the file there).
    w.local("q?x.txt", b"upload");
    let e = fails(&w.run(&["put", "q?x.txt", "up/"]), UNSUPPORTED);
    assert!(
        e.contains("/up/q?x.txt") && e.contains("cuts request paths at '?'"),
        "{e}"
    );
    let e = fails(&w.run(&["put", "--force", "q?x.txt", "up/"]), UNSUPPORTED);
    assert!(e.contains("/up/q?x.txt"), "{e}");
    // In a tree: the other files go up, this one is reported.
    w.local("tree/q?x.txt", b"upload");
    w.local("tree/ok.txt", b"ok");
    w.xrd.put_file("up/tree/q", b"keep me too");
    let e = fails(&w.run(&["put", "-r", "tree", "up/tree"]), PARTIAL);
    assert!(e.contains("/up/tree/q?x.txt"), "{e}");
    assert_eq!(std::fs::read(w.disk("up/tree/ok.txt")).unwrap(), b"ok");
    // A directory named with '?' is not made (MKCOL would make `d` instead).
    let e = fails(&w.run(&["mkdir", "-p", "up/d?x/sub"]), UNSUPPORTED);
    assert!(e.contains("/up/d?x"), "{e}");
    assert_eq!(std::fs::read(w.disk("up/q")).unwrap(), b"keep me");
    assert_eq!(std::fs::read(w.disk("up/tree/q")).unwrap(), b"keep me too");
    assert!(!w.disk("up/q?x.txt").exists() && !w.disk("up/tree/q?x.txt").exists());
    assert!(!w.disk("up/d").exists() && !w.disk("up/d?x").exists());
}

#[test]
fn adler32_is_checked_on_upload_and_download() {
    let w = World::new();
    let content = data(300_000, 7);
    let sum = adler32(&content);
    w.local("f.bin", &content);

    // Upload: verified with the server's adler32 of what it stored.
    let v = json(&w.run(&["--json", "put", "f.bin", "sums/f.bin"]));
    let f = &v["files"][0];
    assert_eq!(f["verified"], "adler32", "{v}");
    assert_eq!(f["checksum"], format!("adler32:{sum}"), "{v}");
    let stored = std::fs::read(w.disk("sums/f.bin")).unwrap();
    assert_eq!(adler32(&stored), sum);
    assert_eq!(
        w.xrd
            .server_digest("sums/f.bin", Some(&w.token))
            .unwrap()
            .as_deref(),
        Some(format!("adler32={sum}").as_str())
    );

    // Download: verified against the server's adler32.
    let v = json(&w.run(&["--json", "get", "sums/f.bin", "back.bin"]));
    let f = &v["files"][0];
    assert_eq!(f["verified"], "adler32", "{v}");
    assert_eq!(f["checksum"], format!("adler32:{sum}"), "{v}");
    assert_eq!(std::fs::read(w.path("work/back.bin")).unwrap(), content);

    // The bytes on the server change behind its back (same size and mtime): XRootD keeps
    // answering the adler32 it stored; the download must notice and keep nothing.
    let path = w.disk("sums/f.bin");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bad = content.clone();
    bad[1000] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        w.xrd
            .server_digest("sums/f.bin", Some(&w.token))
            .unwrap()
            .as_deref(),
        Some(format!("adler32={sum}").as_str()),
        "the server no longer answers its stored checksum: this check proves nothing"
    );
    let e = fails(&w.run(&["get", "sums/f.bin", "bad.bin"]), INTEGRITY);
    assert!(e.contains("adler32") || e.contains("checksum"), "{e}");
    assert!(!w.path("work/bad.bin").exists() && !w.path("work/bad.bin.part").exists());
}

/// XRootD answers a `GET` with a `Digest:` header it was not asked for: the last checksum
/// it computed, here another file's. A download is verified against its own file's
/// checksum, never that one.
#[test]
fn a_download_is_verified_against_its_own_checksum() {
    let w = World::new();
    let a = data(200_000, 21);
    let b = data(200_000, 22);
    w.xrd.put_file("two/a.bin", &a);
    w.xrd.put_file("two/b.bin", &b);
    // The server computes b's adler32 last.
    let digest_b = w.xrd.server_digest("two/b.bin", Some(&w.token)).unwrap();
    assert_eq!(digest_b, Some(format!("adler32={}", adler32(&b))));

    let v = json(&w.run(&["--json", "get", "two/a.bin", "a.bin"]));
    assert_eq!(std::fs::read(w.path("work/a.bin")).unwrap(), a);
    let f = &v["files"][0];
    assert_eq!(f["verified"], "adler32", "{v}");
    assert_eq!(f["checksum"], format!("adler32:{}", adler32(&a)), "{v}");

    w.xrd.server_digest("two/b.bin", Some(&w.token)).unwrap();
    ok(&w.run(&["get", "-r", "two", "both"]));
    assert_eq!(std::fs::read(w.path("work/both/a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(w.path("work/both/b.bin")).unwrap(), b);
    w.xrd.server_digest("two/b.bin", Some(&w.token)).unwrap();
    let o = w.run(&["cat", "two/a.bin"]);
    ok(&o);
    assert!(o.stdout == a, "cat gave other bytes");
}

#[test]
fn a_killed_download_resumes_where_it_stopped() {
    let w = World::new();
    let mut size = 48 << 20;
    let mut content = data(size, 11);
    let mut have = 0;
    // Kill the first run as soon as its .part holds something; should it have finished
    // first, start over with a bigger file.
    for _attempt in 0..4 {
        w.xrd.put_file("big/f.bin", &content);
        let _ = std::fs::remove_file(w.path("work/f.bin"));
        let mut c = w.cmd(Some(&w.token));
        c.args(["get", "big/f.bin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let part = w.path("work/f.bin.part");
        let started = Instant::now();
        loop {
            let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            if len > 0 && w.path("work/f.bin.part.meta").exists() {
                let _ = child.kill();
                break;
            }
            if child.try_wait().unwrap().is_some() || started.elapsed() > DEADLINE {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.wait();
        have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have > 0 && have < size as u64 && !w.path("work/f.bin").exists() {
            break;
        }
        have = 0;
        size *= 2;
        content = data(size, 11);
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(w.path("work/f.bin.part.meta"));
    }
    assert!(have > 0, "could not interrupt a download");
    // The last checksum the server computed is another file's: what it puts, unasked, in
    // the Digest header of the next GET.
    w.xrd.put_file("big/other.bin", b"another file");
    w.xrd
        .server_digest("big/other.bin", Some(&w.token))
        .unwrap();

    let o = w.run(&["-v", "--json", "get", "big/f.bin"]);
    let v = json(&o);
    assert!(!err(&o).contains("cannot resume"), "{}", err(&o));
    let f = &v["files"][0];
    assert_eq!(f["resumed_from"], have, "{v}");
    assert_eq!(f["bytes"], size as u64 - have, "{v}");
    assert_eq!(f["verified"], "adler32", "{v}");
    assert!(
        std::fs::read(w.path("work/f.bin")).unwrap() == content,
        "the resumed file differs from the server's"
    );
    assert!(!w.path("work/f.bin.part").exists() && !w.path("work/f.bin.part.meta").exists());
}

#[test]
fn a_read_only_token_reads_but_is_refused_on_put() {
    let w = World::new();
    w.xrd.put_file("ro/in.txt", b"readable");
    let ro = w.xrd.read_only_token();
    assert_eq!(
        ok(&w.run_with(Some(&ro), &["cat", "ro/in.txt"])),
        "readable"
    );

    w.local("new.txt", b"new");
    let e = fails(
        &w.run_with(Some(&ro), &["put", "new.txt", "ro/new.txt"]),
        PERMISSION,
    );
    assert!(e.contains("/ro/new.txt"), "{e}");
    assert!(!e.contains(&ro), "the token leaked: {e}");
    assert!(!w.disk("ro/new.txt").exists());
    fails(&w.run_with(Some(&ro), &["rm", "ro/in.txt"]), PERMISSION);
    assert!(w.disk("ro/in.txt").exists());
    // The same put with the read-write token works.
    ok(&w.run(&["put", "new.txt", "ro/new.txt"]));
    assert_eq!(std::fs::read(w.disk("ro/new.txt")).unwrap(), b"new");
}

#[test]
fn tokens_the_server_does_not_accept_are_refused() {
    let w = World::new();
    w.xrd.put_file("s/in.txt", b"secret");
    w.local("up.txt", b"up");
    // The read-write token works: the refusals below are the token's.
    assert_eq!(ok(&w.run(&["cat", "s/in.txt"])), "secret");

    for (what, token) in [
        ("wrong audience", w.xrd.wrong_audience_token()),
        ("unknown key", w.xrd.forged_token()),
    ] {
        let o = w.run_with(Some(&token), &["list", "s"]);
        assert!(
            matches!(o.status.code(), Some(AUTH) | Some(PERMISSION)),
            "{what}: exit {:?}: {}",
            o.status.code(),
            err(&o)
        );
        assert!(out(&o).is_empty(), "{what}: listed {}", out(&o));
        assert!(!err(&o).contains(&token), "{what}: the token leaked");
        let o = w.run_with(Some(&token), &["put", "up.txt", "s/up.txt"]);
        assert!(
            matches!(o.status.code(), Some(AUTH) | Some(PERMISSION)),
            "{what}: exit {:?}: {}",
            o.status.code(),
            err(&o)
        );
        assert!(!w.disk("s/up.txt").exists(), "{what}: uploaded");
    }

    // An expired token: refused before anything is sent, saying so.
    let expired = w.xrd.expired_token();
    let tf = w.path("token");
    std::fs::write(&tf, format!("{expired}\n")).unwrap();
    let o = w.run_with(
        None,
        &[
            "--token-file",
            tf.to_str().unwrap(),
            "put",
            "up.txt",
            "s/up.txt",
        ],
    );
    let e = fails(&o, AUTH);
    assert!(e.contains("expired"), "{e}");
    assert!(!e.contains(&expired));
    assert!(!w.disk("s/up.txt").exists());
    // The same through --token-file with a good token works.
    std::fs::write(&tf, format!("{}\n", w.token)).unwrap();
    ok(&w.run_with(
        None,
        &[
            "--token-file",
            tf.to_str().unwrap(),
            "put",
            "up.txt",
            "s/up.txt",
        ],
    ));
    assert_eq!(std::fs::read(w.disk("s/up.txt")).unwrap(), b"up");
}

/// The value of a `stat` line (`key:` then the value), or `None`.
fn stat_line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
}

#[test]
fn stat_v_says_what_xrootd_lacks_and_claims_none_of_it() {
    let w = World::new();
    w.xrd.put_file("n/f.txt", b"notes");
    // Without -v: no server notes.
    let plain = ok(&w.run(&["stat", "n/f.txt"]));
    assert!(stat_line(&plain, "create:").is_none(), "{plain}");
    let text = ok(&w.run(&["-v", "stat", "n/f.txt"]));
    eprintln!("{text}");
    // No ETag anywhere (listing or HEAD): none shown, and the note says what that means.
    assert!(stat_line(&text, "etag:").is_none(), "{text}");
    let etags = stat_line(&text, "etags:").unwrap_or_else(|| panic!("{text}"));
    assert!(etags.starts_with("none"), "{text}");
    // No checksum in PROPFIND: asked for the file alone, and said so.
    let digests = stat_line(&text, "digests:").unwrap_or_else(|| panic!("{text}"));
    assert!(
        digests.starts_with("not in listings; asked per file"),
        "{text}"
    );
    let sum = stat_line(&text, "checksum:").unwrap_or_else(|| panic!("{text}"));
    assert!(
        sum.starts_with("adler32:") && sum.ends_with("(asked for this file alone)"),
        "{text}"
    );
    // MOVE ignores `Overwrite: F`: create-if-absent is not claimed atomic.
    let create = stat_line(&text, "create:").unwrap_or_else(|| panic!("{text}"));
    assert!(
        create.starts_with("not atomic: this server ignores Overwrite: F"),
        "{text}"
    );
    let server = stat_line(&text, "server:").unwrap_or_else(|| panic!("{text}"));
    assert!(server.to_ascii_lowercase().starts_with("xrootd"), "{text}");
    // The same as JSON fields.
    let v = json(&w.run(&["-v", "--json", "stat", "n/f.txt"]));
    assert!(v.get("etag").is_none(), "{v}");
    assert_eq!(v["checksums"][0]["algorithm"], "adler32", "{v}");
    let s = &v["server"];
    assert_eq!(s["etags_in_listings"], "no", "{v}");
    assert_eq!(s["etags_on_head"], "no", "{v}");
    assert_eq!(s["checksums_in_listings"], "no", "{v}");
    assert_eq!(s["checksums_on_head"], "yes", "{v}");
    assert_eq!(s["atomic_create"], "no", "{v}");
}
