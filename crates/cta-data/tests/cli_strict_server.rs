//! The CLI against the dCache door double with the fault switches that mimic what strict or
//! unusual WebDAV servers (XRootD 5.5.3's XrdHttp) do: case-sensitive header names, a PUT of
//! nothing left hanging after `100 Continue`, raw hrefs, unasked digests, open ranges,
//! request paths cut at `?`.

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
    ok(&env.run(&["put", "one.txt", "cta/dir/up.txt"]));
    ok(&env.run(&["mv", "cta/dir/up.txt", "cta/dir/moved.txt"]));
    assert_eq!(
        std::fs::read(d.root().join("cta/dir/moved.txt")).unwrap(),
        b"one"
    );
    ok(&env.run(&["rm", "cta/dir/moved.txt"]));
    assert!(!d.root().join("cta/dir/moved.txt").exists());
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

const ODD_NAMES: [&str; 5] = [
    "a#b.txt",
    "q?x.txt",
    "p%41.txt",
    "plus+.txt",
    "space name.txt",
];

#[test]
fn raw_hrefs_with_hash_question_mark_and_percent_name_the_right_files() {
    let d = door();
    d.raw_hrefs(true);
    // Decoys: what a raw href read as a URL (fragment, query, one decoding) would name.
    for decoy in ["a", "q", "pA.txt"] {
        d.put_file(
            &format!("/cta/raw/{decoy}"),
            format!("decoy {decoy}").as_bytes(),
        );
    }
    for name in ODD_NAMES {
        d.put_file(
            &format!("/cta/raw/{name}"),
            format!("right {name}").as_bytes(),
        );
    }
    d.put_file("/cta/raw/sub/p%41.txt", b"right sub");
    let env = Env::new(&d.url());
    let o = env.run(&["list", "cta/raw"]);
    let out = ok(&o);
    let mut names: Vec<&str> = out.lines().map(str::trim).collect();
    names.sort();
    let mut want: Vec<&str> = ODD_NAMES.to_vec();
    want.extend(["a", "q", "pA.txt", "sub/"]);
    want.sort();
    assert_eq!(names, want, "{}", err(&o));
    ok(&env.run(&["get", "-r", "cta/raw", "back"]));
    for name in ODD_NAMES {
        assert_eq!(
            std::fs::read_to_string(env.path("work/back").join(name)).unwrap(),
            format!("right {name}")
        );
    }
    assert_eq!(
        std::fs::read_to_string(env.path("work/back/sub/p%41.txt")).unwrap(),
        "right sub"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("work/back/pA.txt")).unwrap(),
        "decoy pA.txt"
    );
}

#[test]
fn an_href_that_reads_two_ways_is_reported_and_skipped() {
    let d = door();
    d.raw_hrefs(true);
    d.put_file("/cta/amb/p%41.txt", b"literal");
    d.put_file("/cta/amb/pA.txt", b"other file");
    d.put_file("/cta/amb/plain.txt", b"plain");
    let env = Env::new(&d.url());
    // Nothing in this listing shows how the server writes hrefs: `p%41.txt` may be the file
    // `pA.txt` percent-encoded or a literal name; it is never taken for the other file.
    let o = env.run(&["list", "cta/amb"]);
    let out = ok(&o);
    let names: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(names.contains(&"plain.txt"), "{out}");
    assert_eq!(names.iter().filter(|n| **n == "pA.txt").count(), 1, "{out}");
    assert!(err(&o).contains("p%41.txt"), "{}", err(&o));
}

#[test]
fn a_wrong_digest_on_a_get_is_checked_against_the_files_own_checksum() {
    let d = door();
    d.unasked_digest(true);
    let small = b"small file".to_vec();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
    d.put_file("/cta/sum/small.txt", &small);
    d.put_file("/cta/sum/big.bin", &big);
    let env = Env::new(&d.url());
    ok(&env.run(&["get", "cta/sum/small.txt"]));
    ok(&env.run(&["get", "cta/sum/big.bin"]));
    assert_eq!(std::fs::read(env.path("work/small.txt")).unwrap(), small);
    assert_eq!(std::fs::read(env.path("work/big.bin")).unwrap(), big);
    // The file's own checksum disagreeing too: corrupt data is still caught.
    d.corrupt_digest(true);
    let env = Env::new(&d.url());
    for f in ["small.txt", "big.bin"] {
        let o = env.run(&["get", &format!("cta/sum/{f}")]);
        assert_eq!(o.status.code(), Some(8), "{f}: {}", err(&o));
        assert!(!env.path("work").join(f).exists());
    }
}

#[test]
fn a_resume_asks_a_closed_range_where_open_ones_come_back_empty() {
    let d = door();
    d.broken_open_range(true);
    let content: Vec<u8> = (0..4_000_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
    d.put_file("/cta/big.bin", &content);
    let env = Env::new(&d.url());
    d.truncate_next_get(1_500_000);
    let o = env.run(&["get", "--retries", "0", "cta/big.bin"]);
    assert_eq!(o.status.code(), Some(9), "{}", err(&o));
    let have = std::fs::metadata(env.path("work/big.bin.part"))
        .unwrap()
        .len();
    assert!(have > 0 && have < 4_000_000, "partial size {have}");
    d.reset_stats();
    let o = env.run(&["-v", "get", "cta/big.bin"]);
    ok(&o);
    assert!(err(&o).contains("resumed at"), "{}", err(&o));
    let ranges: Vec<String> = d
        .stats()
        .log
        .iter()
        .filter(|r| r.side == Side::Pool && r.method == "GET")
        .filter_map(|r| r.range.clone())
        .collect();
    assert_eq!(ranges, vec![format!("bytes={have}-3999999")]);
    assert_eq!(std::fs::read(env.path("work/big.bin")).unwrap(), content);
}

const NOT_FOUND: i32 = 6;
const CONFLICT: i32 = 7;

#[test]
fn namespace_operations_hold_where_the_server_answers_loosely() {
    let d = door();
    d.xrootd_namespace(true);
    d.put_file("/cta/ns/file.txt", b"file");
    d.put_file("/cta/ns/tree/a/b/deep.txt", b"deep");
    d.put_file("/cta/ns/tree/top.txt", b"top");
    d.put_file("/cta/ns/from.txt", b"from");
    d.put_file("/cta/ns/to.txt", b"to");
    std::fs::create_dir_all(d.root().join("cta/ns/there")).unwrap();
    let env = Env::new(&d.url());
    // `list` of a file, refused in the collection form: the file itself.
    let out = ok(&env.run(&["list", "cta/ns/file.txt"]));
    assert!(out.contains("file.txt"), "{out}");
    // `rm -r` where a DELETE of a non-empty directory is refused: bottom-up.
    ok(&env.run(&["rm", "-r", "cta/ns/tree"]));
    assert!(!d.root().join("cta/ns/tree").exists());
    // `mkdir` without -p: an existing target and a missing parent are errors, whatever
    // MKCOL answers, and no parent is made.
    let o = env.run(&["mkdir", "cta/ns/there"]);
    assert_eq!(o.status.code(), Some(CONFLICT), "{}", err(&o));
    let o = env.run(&["mkdir", "cta/ns/missing/child"]);
    assert_eq!(o.status.code(), Some(NOT_FOUND), "{}", err(&o));
    assert!(!d.root().join("cta/ns/missing").exists());
    ok(&env.run(&["mkdir", "cta/ns/new"]));
    assert!(d.root().join("cta/ns/new").is_dir());
    // `mv` without -f where MOVE ignores `Overwrite: F`: the target is checked first.
    let o = env.run(&["mv", "cta/ns/from.txt", "cta/ns/to.txt"]);
    assert_eq!(o.status.code(), Some(CONFLICT), "{}", err(&o));
    assert_eq!(
        std::fs::read(d.root().join("cta/ns/to.txt")).unwrap(),
        b"to"
    );
}

const UNSUPPORTED: i32 = 11;
const PARTIAL: i32 = 13;

/// XRootD 5.5.3 cuts a request path at a `?` once decoded (`/r%3Fx.txt` is `/r`) and
/// answers `PROPFIND` under the path asked: the client finds that out once (one probe per
/// command), refuses every request for a name holding `?` with the reason, and never reads,
/// writes, moves or deletes the other file in its place; a server that addresses such
/// names faithfully serves them, and names without `?` cost no probe.
#[test]
fn a_name_with_a_question_mark_never_reaches_another_file_where_the_server_cuts_at_it() {
    let d = door();
    d.raw_hrefs(true);
    d.cut_at_question_mark(true);
    // Same size, other bytes: neither the size nor the checksum tells them apart.
    d.put_file("/cta/qm/r?x.txt", b"the real one");
    d.put_file("/cta/qm/r", b"another file");
    d.put_file("/cta/qm/plain.txt", b"plain");
    let env = Env::new(&d.url());
    let probes = |d: &DcacheDouble| {
        let log = d.stats().log;
        // Nothing but a probe ever addressed a name with '?'.
        for r in &log {
            if r.path_and_query.contains("%3F") {
                assert!(
                    r.method == "PROPFIND" && r.path_and_query.contains("cta-data-probe"),
                    "{r:?}"
                );
            }
        }
        d.reset_stats();
        log.iter()
            .filter(|r| r.path_and_query.contains("cta-data-probe"))
            .count()
    };

    // Ordinary names: no probe.
    ok(&env.run(&["get", "cta/qm/plain.txt", "plain.txt"]));
    assert_eq!(probes(&d), 0);

    // A tree: the others arrive, this one is named with the reason, and no success.
    let o = env.run(&["get", "-r", "cta/qm", "back"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("/cta/qm/r?x.txt"), "{e}");
    assert!(e.contains("cuts request paths at '?'"), "{e}");
    assert_eq!(
        std::fs::read(env.path("work/back/r")).unwrap(),
        b"another file"
    );
    assert_eq!(
        std::fs::read(env.path("work/back/plain.txt")).unwrap(),
        b"plain"
    );
    assert!(!env.path("work/back/r?x.txt").exists());
    assert_eq!(probes(&d), 1, "one probe per command");

    // Each verb on it: unsupported, nothing on stdout, nothing touched.
    std::fs::write(env.path("work/q?x.txt"), b"upload").unwrap();
    for args in [
        &["get", "cta/qm/r?x.txt", "single.txt"][..],
        &["stat", "cta/qm/r?x.txt"],
        &["cat", "cta/qm/r?x.txt"],
        &["rm", "cta/qm/r?x.txt"],
        &["mv", "cta/qm/r?x.txt", "cta/qm/moved.txt"],
        &["mv", "cta/qm/plain.txt", "cta/qm/p?x.txt"],
        &["put", "q?x.txt", "cta/qm/"],
        &["put", "--force", "q?x.txt", "cta/qm/"],
        &["mkdir", "-p", "cta/qm/d?x/sub"],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(UNSUPPORTED), "{args:?}: {}", err(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(err(&o).contains("?x"), "{args:?}: {}", err(&o));
        assert_eq!(probes(&d), 1, "{args:?}");
    }
    let disk = |p: &str| std::fs::read(d.root().join(p)).ok();
    assert_eq!(disk("cta/qm/r").as_deref(), Some(&b"another file"[..]));
    assert_eq!(
        disk("cta/qm/r?x.txt").as_deref(),
        Some(&b"the real one"[..])
    );
    assert_eq!(disk("cta/qm/plain.txt").as_deref(), Some(&b"plain"[..]));
    for absent in [
        "cta/qm/q",
        "cta/qm/q?x.txt",
        "cta/qm/p",
        "cta/qm/moved.txt",
        "cta/qm/d",
    ] {
        assert!(!d.root().join(absent).exists(), "{absent}");
    }
    assert!(!env.path("work/single.txt").exists());

    // The same server addressing such names as written: they work.
    d.cut_at_question_mark(false);
    ok(&env.run(&["get", "cta/qm/r?x.txt", "single.txt"]));
    assert_eq!(
        std::fs::read(env.path("work/single.txt")).unwrap(),
        b"the real one"
    );
    ok(&env.run(&["put", "q?x.txt", "cta/qm/"]));
    assert_eq!(disk("cta/qm/q?x.txt").as_deref(), Some(&b"upload"[..]));
    assert!(!d.root().join("cta/qm/q").exists());
    // Into directories that do not exist yet: the probe looks further up.
    std::fs::create_dir_all(env.path("work/tree")).unwrap();
    std::fs::write(env.path("work/tree/t?x.txt"), b"in a tree").unwrap();
    ok(&env.run(&["put", "-r", "tree", "cta/new/deeper"]));
    assert_eq!(
        disk("cta/new/deeper/t?x.txt").as_deref(),
        Some(&b"in a tree"[..])
    );
}

#[test]
fn very_verbose_output_shows_the_exchange_without_secrets() {
    let d = door();
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i * 3 + i / 11) as u8).collect();
    d.put_file("/cta/vv/big.bin", &content);
    let env = Env::new(&d.url());
    let o = env.run(&["-vv", "list", "cta/vv"]);
    ok(&o);
    let log = err(&o);
    assert!(log.contains("Depth: 1"), "{log}");
    assert!(log.contains("Authorization: Bearer <redacted>"), "{log}");
    assert!(log.contains("status=207"), "{log}");
    assert!(log.contains("Content-Type: application/xml"), "{log}");
    d.truncate_next_get(700_000);
    let o = env.run(&["get", "--retries", "0", "cta/vv/big.bin"]);
    assert_eq!(o.status.code(), Some(9), "{}", err(&o));
    std::fs::write(env.path("work/up.txt"), b"up").unwrap();
    let o = env.run(&["-vv", "get", "cta/vv/big.bin"]);
    ok(&o);
    let mut log = err(&o);
    let o = env.run(&["-vv", "put", "up.txt", "cta/vv/"]);
    ok(&o);
    log.push_str(&err(&o));
    assert!(log.contains("Range: bytes="), "{log}");
    assert!(log.contains("Content-Range: bytes"), "{log}");
    assert!(log.contains("Location: http"), "{log}");
    assert!(log.contains("Want-Digest: adler32"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    assert!(!log.contains("dcache-http-uuid"), "{log}");
}

/// The value of a `stat` line (`key:` then the value), or `None`.
fn stat_line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
}

#[test]
fn stat_v_on_dcache_states_what_it_gives() {
    let d = door();
    d.put_file("/cta/n/f.txt", b"notes");
    let env = Env::new(&d.url());
    let text = ok(&env.run(&["-v", "stat", "cta/n/f.txt"]));
    eprintln!("{text}");
    assert!(stat_line(&text, "etag:").is_some(), "{text}");
    assert_eq!(stat_line(&text, "etags:"), Some("in listings"), "{text}");
    assert_eq!(stat_line(&text, "digests:"), Some("in listings"), "{text}");
    let sum = stat_line(&text, "checksum:").unwrap_or_else(|| panic!("{text}"));
    assert!(!sum.contains("asked for this file alone"), "{text}");
    let create = stat_line(&text, "create:").unwrap_or_else(|| panic!("{text}"));
    assert!(create.starts_with("atomic"), "{text}");
}
