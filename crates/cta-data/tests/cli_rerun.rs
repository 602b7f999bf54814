//! Running a transfer again, and what users see of transfers: reruns skip what is done
//! (identical files), `--force` and `--ignore-existing`, the one JSON shape of a summary
//! (checked against `docs/json/transfer.schema.json`), `-q`, `-v`, Ctrl-C, free space, and
//! the exit codes of local things in the way. Against the `local` profile and a real nginx.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::Nginx;
use serde_json::Value;
use tempfile::TempDir;

const CONFLICT: i32 = 7;
const LOCAL_IO: i32 = 12;
const PARTIAL: i32 = 13;
const INTERRUPTED: i32 = 130;

/// Profiles `loc` (local root `loc/`) and, when started, `dav` (nginx serving `dav/`).
struct Env {
    tmp: TempDir,
    nginx: Option<Nginx>,
}

impl Env {
    fn new(with_nginx: bool) -> Env {
        let tmp = TempDir::new().unwrap();
        for d in ["home", "work", "dav", "loc"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let nginx = with_nginx.then(|| Nginx::start(&tmp.path().join("dav")).expect("nginx"));
        let mut cfg = format!(
            "[profiles.loc]\nbackend = \"local\"\nroot = \"{}\"\n",
            tmp.path().join("loc").display()
        );
        if let Some(n) = &nginx {
            cfg.push_str(&format!(
                "[profiles.dav]\nbackend = \"dcache\"\nurl = \"{}\"\n",
                n.url()
            ));
        }
        std::fs::write(tmp.path().join("config.toml"), cfg).unwrap();
        Env { tmp, nginx }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn nginx(&self) -> &Nginx {
        self.nginx.as_ref().unwrap()
    }
    fn cmd(&self, profile: &str, args: &[&str]) -> Command {
        let mut c = Command::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .env("BEARER_TOKEN", "rerun-test-token")
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", profile])
            .args(args)
            .stdin(Stdio::null());
        c
    }
    fn run(&self, profile: &str, args: &[&str]) -> Output {
        self.cmd(profile, args).output().unwrap()
    }
    /// Runs, asserts exit 0, returns stderr.
    fn ok(&self, profile: &str, args: &[&str]) -> String {
        let o = self.run(profile, args);
        assert!(
            o.status.success(),
            "{args:?}: exit {:?}: {}",
            o.status.code(),
            err(&o)
        );
        err(&o)
    }
    /// Runs with `--json`, asserts exit `code`, validates stdout against the schema and
    /// returns it.
    fn json(&self, profile: &str, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = self.run(profile, &all);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
        let v = valid(&String::from_utf8_lossy(&o.stdout));
        assert_eq!(v["failed"], v["failures"].as_array().unwrap().len());
        v
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Stdout is exactly one JSON document (nothing before or after it) that the schema
/// accepts.
fn valid(stdout: &str) -> Value {
    let v: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json/transfer.schema.json");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let idx = compiler
        .compile(schema.to_str().unwrap(), &mut schemas)
        .unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = schemas.validate(&v, idx) {
        panic!("{e:#}\n{v:#}");
    }
    v
}

fn counts(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap();
    (n("transferred"), n("skipped"), n("failed"))
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// A tree of four files (one over 1 MiB, so resumable) and an empty directory.
fn tree(base: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("a.txt", b"alpha\n".to_vec()),
        ("sub/b.bin", (0..=255u8).cycle().take(300_000).collect()),
        ("sub/deep/c é.txt", b"gamma\n".to_vec()),
        (
            "big.bin",
            (0..3_000_000u32).map(|i| ((i * 7) >> 3) as u8).collect(),
        ),
    ];
    for (p, d) in &files {
        write(&base.join(p), d);
    }
    std::fs::create_dir_all(base.join("empty")).unwrap();
    files
}

/// (inode, mtime) of each file: unchanged means not written again.
fn stamps(base: &Path, files: &[(&str, Vec<u8>)]) -> Vec<(u64, SystemTime)> {
    files
        .iter()
        .map(|(p, _)| {
            let m = std::fs::metadata(base.join(p)).unwrap();
            (m.ino(), m.modified().unwrap())
        })
        .collect()
}

fn log_since(n: &Nginx, from: usize) -> Vec<String> {
    n.access_log_lines()[from..].to_vec()
}

fn bump_mtime(p: &Path, secs: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(secs))
        .unwrap();
}

fn get_rerun(profile: &str, env: &Env, served: &Path) {
    let files = tree(&served.join("t"));
    let v = env.json(profile, &["get", "-r", "t", "out"], 0);
    assert_eq!(counts(&v), (4, 0, 0), "{v:#}");
    let out = env.path("work/out");
    for (p, d) in &files {
        assert_eq!(&std::fs::read(out.join(p)).unwrap(), d, "{p}");
    }
    let before = stamps(&out, &files);
    let log = env.nginx.as_ref().map(|n| n.access_log_lines().len());

    // Again: everything is identical, nothing moves.
    let v = env.json(profile, &["get", "-r", "t", "out"], 0);
    assert_eq!(counts(&v), (0, 4, 0), "{v:#}");
    assert_eq!(v["bytes"], 0);
    assert_eq!(v["directories"], 0, "a rerun creates no directory: {v:#}");
    for f in v["files"].as_array().unwrap() {
        assert_eq!(f["outcome"], "skipped", "{f}");
        assert!(f["reason"].as_str().unwrap().contains("identical"), "{f}");
    }
    assert_eq!(stamps(&out, &files), before, "files were written again");
    if let (Some(n), Some(from)) = (&env.nginx, log) {
        let lines = log_since(n, from);
        assert!(lines.iter().any(|l| l.starts_with("PROPFIND")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("GET")), "{lines:?}");
    }
    // The plain summary line says so too.
    let e = env.ok(profile, &["get", "-r", "t", "out"]);
    assert!(e.contains("0 files") && e.contains("4 skipped"), "{e}");
    assert!(e.contains("0 directories"), "{e}");

    // A remote file that changed (same size, new content and mtime) is fetched again.
    let changed = served.join("t/a.txt");
    std::fs::write(&changed, b"ALPHA\n").unwrap();
    bump_mtime(&changed, 5);
    let v = env.json(profile, &["get", "-r", "t", "out"], 0);
    assert_eq!(counts(&v), (1, 3, 0), "{v:#}");
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"ALPHA\n");

    // --ignore-existing keeps whatever is there, --force fetches everything again.
    std::fs::write(&changed, b"again!").unwrap();
    bump_mtime(&changed, 10);
    let v = env.json(profile, &["get", "-r", "--ignore-existing", "t", "out"], 0);
    assert_eq!(counts(&v), (0, 4, 0), "{v:#}");
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"ALPHA\n");
    let v = env.json(profile, &["get", "-r", "--force", "t", "out"], 0);
    assert_eq!(counts(&v), (4, 0, 0), "{v:#}");
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"again!");

    // A single file too.
    let v = env.json(profile, &["get", "t/sub/b.bin", "b.bin"], 0);
    assert_eq!(counts(&v), (1, 0, 0), "{v:#}");
    let v = env.json(profile, &["get", "t/sub/b.bin", "b.bin"], 0);
    assert_eq!(counts(&v), (0, 1, 0), "{v:#}");
    let v = env.json(profile, &["get", "--force", "t/sub/b.bin", "b.bin"], 0);
    assert_eq!(counts(&v), (1, 0, 0), "{v:#}");
}

#[test]
fn a_get_r_run_again_skips_identical_files_on_the_local_backend() {
    let env = Env::new(false);
    get_rerun("loc", &env, &env.path("loc"));
}

#[test]
fn a_get_r_run_again_skips_identical_files_on_nginx() {
    let env = Env::new(true);
    get_rerun("dav", &env, &env.path("dav"));
}

fn put_rerun(profile: &str, env: &Env, served: &Path) {
    let files = tree(&env.path("work/src"));
    let v = env.json(profile, &["put", "-r", "src", "up"], 0);
    assert_eq!(counts(&v), (4, 0, 0), "{v:#}");
    let remote = served.join("up");
    let before = stamps(&remote, &files);
    let log = env.nginx.as_ref().map(|n| n.access_log_lines().len());

    let v = env.json(profile, &["put", "-r", "src", "up"], 0);
    assert_eq!(counts(&v), (0, 4, 0), "{v:#}");
    assert_eq!(stamps(&remote, &files), before, "files were uploaded again");
    if let (Some(n), Some(from)) = (&env.nginx, log) {
        let lines = log_since(n, from);
        assert!(!lines.iter().any(|l| l.starts_with("PUT")), "{lines:?}");
    }

    // A local file that differs: a conflict with what to do; the others are skipped.
    std::fs::write(env.path("work/src/a.txt"), b"changed content\n").unwrap();
    let v = env.json(profile, &["put", "-r", "src", "up"], PARTIAL);
    assert_eq!(counts(&v), (0, 3, 1), "{v:#}");
    let f = &v["failures"][0];
    assert_eq!(f["exit_code"], CONFLICT);
    assert!(f["reason"].as_str().unwrap().contains("--force"), "{f}");
    // The same for a single file: exit 7 and the hint.
    let o = env.run(profile, &["put", "src/a.txt", "up/a.txt"]);
    assert_eq!(o.status.code(), Some(CONFLICT), "{}", err(&o));
    assert!(
        err(&o).contains("hint:") && err(&o).contains("--force"),
        "{}",
        err(&o)
    );
    // A partial failure that a rerun cannot heal does not say to rerun.
    let o = env.run(profile, &["put", "-r", "src", "up"]);
    assert_eq!(o.status.code(), Some(PARTIAL));
    assert!(!err(&o).contains("retry them"), "{}", err(&o));

    let v = env.json(profile, &["put", "-r", "--ignore-existing", "src", "up"], 0);
    assert_eq!(counts(&v), (0, 4, 0), "{v:#}");
    let v = env.json(profile, &["put", "-r", "--force", "src", "up"], 0);
    assert_eq!(counts(&v), (4, 0, 0), "{v:#}");
    assert_eq!(
        std::fs::read(remote.join("a.txt")).unwrap(),
        b"changed content\n"
    );
}

#[test]
fn a_put_r_run_again_skips_identical_files_on_the_local_backend() {
    let env = Env::new(false);
    put_rerun("loc", &env, &env.path("loc"));
}

#[test]
fn a_put_r_run_again_skips_identical_files_on_nginx() {
    let env = Env::new(true);
    put_rerun("dav", &env, &env.path("dav"));
}

#[test]
fn every_summary_has_the_one_json_shape() {
    let env = Env::new(false);
    tree(&env.path("loc/t"));
    tree(&env.path("work/src"));
    // Single files, trees, dry runs: each validated by `json`.
    let v = env.json("loc", &["get", "t/a.txt", "a.txt"], 0);
    assert_eq!(
        (v["command"].as_str(), v["dry_run"].as_bool()),
        (Some("get"), Some(false))
    );
    let f = &v["files"][0];
    assert_eq!(
        (f["outcome"].as_str(), f["size"].as_u64()),
        (Some("done"), Some(6))
    );
    assert!(f["source"].as_str().unwrap().ends_with("t/a.txt"), "{f}");
    assert!(f["destination"].as_str().unwrap().ends_with("a.txt"), "{f}");
    let v = env.json("loc", &["get", "-r", "t", "out"], 0);
    assert_eq!(v["files"].as_array().unwrap().len(), 4);
    let v = env.json("loc", &["put", "src/a.txt", "single/a.txt"], 0);
    assert_eq!(v["command"], "put");
    // The local backend checks what it stored: adler32.
    assert_eq!(v["files"][0]["verified"], "adler32", "{v:#}");
    assert!(v["files"][0]["checksum"]
        .as_str()
        .unwrap()
        .starts_with("adler32:"));
    env.json("loc", &["put", "-r", "src", "up"], 0);
    for args in [
        &["get", "-r", "-n", "t", "plan"][..],
        &["get", "-n", "t/a.txt", "plan.txt"],
        &["put", "-r", "-n", "src", "planned"],
    ] {
        let v = env.json("loc", args, 0);
        assert_eq!(v["dry_run"], true, "{v:#}");
        assert!(v["planned"].as_u64().unwrap() >= 1, "{v:#}");
        assert!(v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["outcome"] == "planned"));
    }
    assert!(!env.path("work/plan").exists() && !env.path("loc/planned").exists());
    // Partly failed: one file differs remotely.
    std::fs::write(env.path("work/src/a.txt"), b"something else").unwrap();
    let v = env.json("loc", &["put", "-r", "src", "up"], PARTIAL);
    assert_eq!(counts(&v), (0, 3, 1), "{v:#}");
    let failed: Vec<_> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{v:#}");
    // A failed single file prints the summary too, and exits with its own code.
    let v = env.json("loc", &["put", "src/a.txt", "up/a.txt"], CONFLICT);
    assert_eq!(counts(&v), (0, 0, 1), "{v:#}");
}

#[test]
fn a_dry_run_prints_the_plan_on_stdout_and_nothing_else() {
    let env = Env::new(false);
    tree(&env.path("loc/t"));
    let o = env.run("loc", &["get", "-r", "-n", "t", "out"]);
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(plan.lines().count(), 4, "{plan}");
    assert!(
        plan.lines().all(|l| l.starts_with("would transfer")),
        "{plan}"
    );
}

#[test]
fn quiet_still_lists_each_failed_file_with_its_reason() {
    let env = Env::new(false);
    tree(&env.path("work/src"));
    env.ok("loc", &["put", "-r", "src", "up"]);
    std::fs::write(env.path("work/src/a.txt"), b"another content").unwrap();
    let o = env.run("loc", &["-q", "put", "-r", "src", "up"]);
    assert_eq!(o.status.code(), Some(PARTIAL));
    let e = err(&o);
    assert!(
        e.contains("a.txt") && e.contains("different file is already there"),
        "{e}"
    );
    assert!(e.contains("--force"), "{e}");
    // Only errors: no summary line.
    assert!(!e.contains("skipped"), "{e}");
    // Without failures, -q prints nothing at all.
    let o = env.run(
        "loc",
        &["-q", "put", "-r", "--ignore-existing", "src", "up"],
    );
    assert!(o.status.success() && o.stderr.is_empty(), "{}", err(&o));
}

#[test]
fn verbose_lines_name_source_then_destination_and_the_verification() {
    let env = Env::new(true);
    tree(&env.path("work/src"));
    let e = env.ok("dav", &["-v", "put", "-r", "src", "up"]);
    let line = e
        .lines()
        .find(|l| l.contains("a.txt ->"))
        .unwrap_or_else(|| panic!("{e}"));
    assert!(
        line.contains("src/a.txt -> ") && line.ends_with("up/a.txt (6 B, verified by size only)"),
        "{line}"
    );
    // nginx gives no checksum: the summary says so.
    assert!(
        e.contains("4 verified by size only (the server offers no checksum)"),
        "{e}"
    );
    let e = env.ok("dav", &["-v", "get", "-r", "up", "back"]);
    let line = e
        .lines()
        .find(|l| l.contains("a.txt ->"))
        .unwrap_or_else(|| panic!("{e}"));
    assert!(
        line.contains("up/a.txt -> ") && line.contains("back/a.txt (6 B, verified by size only)"),
        "{line}"
    );
    // The local backend verifies by adler32.
    let e = env.ok("loc", &["put", "src/sub/b.bin", "b.bin"]);
    assert!(
        e.contains("src/sub/b.bin -> ") && e.contains("verified by adler32 (adler32:"),
        "{e}"
    );
}

#[test]
fn a_local_file_in_the_way_of_a_directory_download_is_a_conflict() {
    let env = Env::new(false);
    tree(&env.path("loc/t"));
    let target = env.path("work/out");
    std::fs::write(&target, b"my notes").unwrap();
    let o = env.run("loc", &["get", "-r", "t", "out"]);
    assert_eq!(o.status.code(), Some(CONFLICT), "{}", err(&o));
    let e = err(&o);
    // The path as the user gave it.
    assert!(
        e.contains("conflict at out: a local file is in the way"),
        "{e}"
    );
    assert!(
        e.contains("hint:") && e.contains("nothing was written"),
        "{e}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"my notes");
}

#[test]
fn a_symbolic_link_as_the_target_is_never_written_through() {
    let env = Env::new(false);
    tree(&env.path("loc/t"));
    let elsewhere = env.path("elsewhere.txt");
    std::fs::write(&elsewhere, b"precious").unwrap();
    let link = env.path("work/link.txt");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let o = env.run("loc", &["get", "t/a.txt", "link.txt"]);
    assert_eq!(o.status.code(), Some(CONFLICT), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains("link.txt") && e.contains("symbolic link") && e.contains("hint:"),
        "{e}"
    );
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A link to a directory inside a tree's target is refused too (the file alone fails).
    std::fs::create_dir_all(env.path("work/out")).unwrap();
    std::fs::create_dir_all(env.path("outside")).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), env.path("work/out/sub")).unwrap();
    let o = env.run("loc", &["get", "-r", "t", "out"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    assert!(err(&o).contains("symbolic link"), "{}", err(&o));
    assert_eq!(std::fs::read_dir(env.path("outside")).unwrap().count(), 0);
}

/// Free bytes of the filesystem holding `dir`, as `df` says.
fn df_free(dir: &Path) -> u64 {
    let o = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df --output=avail")
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_before_it_starts() {
    let env = Env::new(false);
    let free = df_free(&env.path("work"));
    // A sparse file on the storage side: as large as announced, no disk used.
    let huge = std::fs::File::create(env.path("loc/huge.bin")).unwrap();
    huge.set_len(free + (1 << 30)).unwrap();
    let o = env.run("loc", &["get", "huge.bin"]);
    assert_eq!(o.status.code(), Some(LOCAL_IO), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains("not enough free space") && e.contains("needed") && e.contains("free"),
        "{e}"
    );
    assert!(e.contains("hint:") && e.contains("free some space"), "{e}");
    assert!(!env.path("work/huge.bin").exists() && !env.path("work/huge.bin.part").exists());
}

/// Large enough to be still under way when the small files are done.
const LARGE: u64 = 256 << 20;

#[test]
fn ctrl_c_keeps_the_unfinished_part_and_the_same_command_resumes_without_fetching_again() {
    let env = Env::new(true);
    let t = env.path("dav/t");
    for i in 0..3 {
        write(
            &t.join(format!("small{i}.txt")),
            format!("small {i}\n").as_bytes(),
        );
    }
    // Sparse on the server's side: large, and made in no time.
    std::fs::File::create(t.join("large.bin"))
        .unwrap()
        .set_len(LARGE)
        .unwrap();
    let out = env.path("work/out");
    let child = env
        .cmd("dav", &["get", "-r", "t", "out"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let smalls_done = || (0..3).all(|i| out.join(format!("small{i}.txt")).exists());
    let part = out.join("large.bin.part");
    // Some of the large file on disk (its `.part` is sparse: count the blocks).
    let on_disk = || {
        std::fs::metadata(&part)
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512 >= 4 << 20)
    };
    while !(smalls_done() && on_disk()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run never got under way"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(INTERRUPTED), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains(".part") && e.contains("same command again"),
        "{e}"
    );
    // The file came in several streams: the sparse `.part` has its full length, and its
    // description says how much of each chunk is on disk.
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("large.bin.part.meta")).expect("the .part.meta"),
    )
    .unwrap();
    let kept: u64 = meta["chunks"]["done"]
        .as_array()
        .expect("a chunked .part.meta")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(kept > 0 && kept < LARGE, "{kept}: {meta}");
    assert!(!out.join("large.bin").exists());

    // nginx logs the broken request when it notices the closed connection.
    let logged = Instant::now();
    while !env
        .nginx()
        .access_log_lines()
        .iter()
        .any(|l| l.starts_with("GET \"/t/large.bin\""))
    {
        assert!(
            logged.elapsed() < Duration::from_secs(10),
            "the first GET was never logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let from = env.nginx().access_log_lines().len();
    let v = env.json("dav", &["get", "-r", "t", "out"], 0);
    assert_eq!(counts(&v), (1, 3, 0), "{v:#}");
    assert!(v["resumed_bytes"].as_u64().unwrap() > 0, "{v:#}");
    let gets: Vec<String> = log_since(env.nginx(), from)
        .into_iter()
        .filter(|l| l.starts_with("GET"))
        .collect();
    // Only the unfinished file, and only what was not on disk: ranged GETs (one per
    // unfinished chunk) whose bodies add up to what the first run lacked.
    assert!(!gets.is_empty());
    assert!(
        gets.iter()
            .all(|g| g.contains("large.bin") && g.contains("range=\"bytes=")),
        "{gets:?}"
    );
    let sent: u64 = gets
        .iter()
        .filter_map(|l| {
            l.split(" sent=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let missing = LARGE - kept;
    assert!(
        (missing..missing + 4096 * gets.len() as u64).contains(&sent),
        "sent {sent} for {missing} missing bytes: {gets:?}"
    );
    assert_eq!(
        std::fs::metadata(out.join("large.bin")).unwrap().len(),
        LARGE
    );
    assert!(!part.exists());
}

/// A private tmpfs of `mib` MiB, unmounted on drop (tests run as root in CI).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, mib: u32) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs (needs root)");
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_disk_that_fills_during_a_download_loses_no_space_to_a_part() {
    let env = Env::new(false);
    // Two files that each fit the free space, but not together.
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    for name in ["one.bin", "two.bin"] {
        write(&env.path("loc/t").join(name), &content);
    }
    let disk = SmallDisk::mount(env.path("work/small"), 4);
    let out = disk.0.join("out");
    let o = env.run("loc", &["get", "-r", "-j", "2", "t", "small/out"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    let e = err(&o);
    // Either the write ran out of space, or the second file's check saw too little room:
    // each says how much the file needs.
    assert!(
        (e.contains("the disk is full") && e.contains("2.9 MiB needed"))
            || e.contains("not enough free space: 2.9 MiB needed"),
        "{e}"
    );
    assert!(e.contains("free some space"), "{e}");
    // Whatever arrived is whole; nothing of a failed file is left taking space.
    for f in std::fs::read_dir(&out).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        assert!(!name.contains(".part"), "{name} left behind");
        assert_eq!(std::fs::read(f.path()).unwrap(), content, "{name}");
    }
}
