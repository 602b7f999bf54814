//! End-to-end tests of the `cta-data` binary against the `local` backend.
//!
//! Every test runs the real binary in a fresh temporary directory: HOME and the XDG
//! directories point inside it, the variables that could leak the user's settings are
//! removed, and `--config` names a file with a `local` profile rooted in the sandbox.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use assert_cmd::cargo::cargo_bin;
use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

// The documented exit codes, spelled out so that a change to them fails here.
const USAGE: i32 = 2;
const CONFIG: i32 = 3;
const NOT_FOUND: i32 = 6;
const CONFLICT: i32 = 7;
const LOCAL_IO: i32 = 12;

/// Variables of the user's environment that must not reach the binary.
const LEAKY_VARS: [&str; 5] = [
    "CTADATA_PROFILE",
    "CTADATA_TOKEN",
    "RUST_LOG",
    "CTADS_URL",
    "CTACS_URL",
];

/// A temporary directory holding HOME, the XDG dirs, `config.toml`, the storage root
/// `root/` and `work/`, the working directory for local files.
struct Sandbox {
    tmp: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let sb = Sandbox {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "xdg-config", "xdg-data", "work"] {
            fs::create_dir_all(sb.path(d)).unwrap();
        }
        let root = sb.root().display().to_string();
        let cfg =
            format!("default_profile = 't'\n[profiles.t]\nbackend = 'local'\nroot = '{root}'\n");
        fs::write(sb.config(), cfg).unwrap();
        sb
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn root(&self) -> PathBuf {
        self.path("root")
    }
    fn work(&self) -> PathBuf {
        self.path("work")
    }
    fn config(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// The binary in `work/`, isolated from the user's environment, without `--config`.
    fn std_bare(&self) -> std::process::Command {
        let mut c = std::process::Command::new(cargo_bin!("cta-data"));
        c.current_dir(self.work())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_DATA_HOME", self.path("xdg-data"));
        for v in LEAKY_VARS {
            c.env_remove(v);
        }
        c
    }
    fn bare(&self) -> Command {
        Command::from_std(self.std_bare())
    }

    /// `bare()` with `--config <sandbox>/config.toml` (profile `t`, root `root/`).
    fn cmd(&self) -> Command {
        let mut c = self.bare();
        c.arg("--config").arg(self.config());
        c
    }

    /// Runs `cmd()` with `args`, asserts success and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        text(&succeed(self.cmd().args(args)).stdout)
    }

    /// Runs `cmd()` with `args` and checks the failure: see [`fails`].
    fn fails(&self, args: &[&str], code: i32, error_has: &[&str], hint: &str) {
        fails(self.cmd().args(args), code, error_has, hint)
    }

    /// The bytes of a file in the storage root.
    fn stored(&self, rel: &str) -> Vec<u8> {
        fs::read(self.root().join(rel)).unwrap_or_else(|e| panic!("root/{rel}: {e}"))
    }

    /// Writes a file under `work/`.
    fn local_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        write_file(&self.work().join(rel), data)
    }

    /// Writes a file straight into the storage root.
    fn remote_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        write_file(&self.root().join(rel), data)
    }
}

fn write_file(p: &Path, data: &[u8]) -> PathBuf {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    p.to_path_buf()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8 output")
}

/// Runs a command and asserts exit 0 (showing stderr otherwise).
fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run cta-data");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} failed:\n{stderr}", out.status);
    out
}

/// Runs a command that must fail with `code`, an `error: ` line containing each of
/// `error_has`, and a following `  hint: ` line containing `hint`.
fn fails(cmd: &mut Command, code: i32, error_has: &[&str], hint: &str) {
    let out = cmd.output().expect("run cta-data");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("error: "));
    let error = lines.next().expect("an 'error: ' line");
    for s in error_has {
        assert!(error.contains(s), "{error:?} does not contain {s:?}");
    }
    let hint_line = lines.find(|l| l.starts_with("  hint: ")).expect("a hint");
    assert!(hint_line.contains(hint), "{hint_line:?} lacks {hint:?}");
}

/// Asserts that `hay` contains `needle`, showing both otherwise.
fn has(hay: &str, needle: &str) {
    assert!(hay.contains(needle), "{needle:?} not in\n{hay}");
}

/// Asserts that `line` ends with `suffix`.
fn ends(line: &str, suffix: &str) {
    assert!(line.ends_with(suffix), "{line:?} lacks {suffix:?}");
}

/// Every entry below `dir`: relative path -> `None` for a directory, the bytes for a file.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, None);
                walk(base, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A tree with empty directories, spaces, non-ASCII names and a binary file.
fn make_tree(base: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fs::create_dir_all(base.join("empty")).unwrap();
    fs::create_dir_all(base.join("sub dir/ünïcødé/deeper empty")).unwrap();
    write_file(&base.join("top.txt"), b"top\n");
    write_file(&base.join("sub dir/ünïcødé/f ü.txt"), "grüße\n".as_bytes());
    write_file(&base.join("sub dir/all.bin"), &all_bytes());
    let snap = snapshot(base);
    assert_eq!(snap.len(), 7, "{snap:?}");
    snap
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

/// Leftover temporary files (`.part` downloads, `.cta-data-tmp` uploads) below `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let tmp = |k: &String| k.ends_with(".part") || k.ends_with(".cta-data-tmp");
    snapshot(dir).into_keys().filter(tmp).collect()
}

/// The `key = value  # origin` line of `config show` for `key`.
fn show_line<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key} = ");
    let line = text.lines().find(|l| l.starts_with(&prefix));
    line.unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

// ---------------------------------------------------------------------------------- put

#[test]
fn put_file_to_a_full_path_creates_missing_parents() {
    let sb = Sandbox::new();
    sb.local_file("a.txt", b"hello\n");
    let out = succeed(sb.cmd().args(["put", "a.txt", "new/deep/b.txt"]));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    has(&stderr, "uploaded a.txt -> /new/deep/b.txt");
    assert_eq!(sb.stored("new/deep/b.txt"), b"hello\n");
    assert!(leftovers(&sb.root()).is_empty());
}

#[test]
fn put_takes_the_local_name_under_a_slash_or_an_existing_directory() {
    let sb = Sandbox::new();
    sb.local_file("dir/a.txt", b"A");
    sb.ok(&["put", "dir/a.txt", "x/"]);
    assert_eq!(sb.stored("x/a.txt"), b"A");
    fs::create_dir_all(sb.root().join("existing")).unwrap();
    sb.ok(&["put", "dir/a.txt", "existing"]);
    assert_eq!(sb.stored("existing/a.txt"), b"A");
    sb.ok(&["put", "dir/a.txt", "/"]);
    assert_eq!(sb.stored("a.txt"), b"A");
}

#[test]
fn put_twice_conflicts_until_force() {
    let sb = Sandbox::new();
    let a = sb.local_file("a.txt", b"first");
    sb.ok(&["put", "a.txt", "d/a.txt"]);
    fs::write(&a, b"second").unwrap();
    let args = ["put", "a.txt", "d/a.txt"];
    sb.fails(&args, CONFLICT, &["/d/a.txt", "already there"], "--force");
    assert_eq!(sb.stored("d/a.txt"), b"first");
    sb.ok(&["put", "--force", "a.txt", "d/a.txt"]);
    assert_eq!(sb.stored("d/a.txt"), b"second");
    assert!(leftovers(&sb.root()).is_empty());
}

#[test]
fn put_recursive_copies_empty_dirs_unicode_and_spaces() {
    let sb = Sandbox::new();
    let want = make_tree(&sb.work().join("tree"));
    sb.ok(&["put", "-r", "tree", "up/loaded"]);
    assert_eq!(snapshot(&sb.root().join("up/loaded")), want);
    // Again: the same place (no nesting); identical files are skipped...
    let out = succeed(sb.cmd().args(["put", "-r", "tree", "up/loaded"]));
    has(&String::from_utf8_lossy(&out.stderr), "0 files");
    // ...a file that differs is refused without --force...
    fs::write(sb.work().join("tree/top.txt"), b"changed\n").unwrap();
    let out = sb
        .cmd()
        .args(["put", "-r", "tree", "up/loaded"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(13));
    has(&String::from_utf8_lossy(&out.stderr), "--force");
    // ...and kept with --skip-existing (the old name of --ignore-existing).
    sb.ok(&["put", "-r", "--skip-existing", "tree", "up/loaded"]);
    assert_eq!(snapshot(&sb.root().join("up/loaded")), want);
    fs::write(sb.work().join("tree/top.txt"), b"top\n").unwrap();
    // A remote ending in '/' receives the local name inside it.
    sb.ok(&["put", "-r", "tree", "up/loaded/"]);
    assert_eq!(snapshot(&sb.root().join("up/loaded/tree")), want);
}

#[test]
fn put_recursive_of_dot_with_a_full_remote_path() {
    // Regression: the local name of '.' was required even with the remote path in full.
    let sb = Sandbox::new();
    let want = make_tree(&sb.work().join("tree"));
    let mut cmd = sb.cmd();
    cmd.current_dir(sb.work().join("tree"));
    succeed(cmd.args(["put", "-r", ".", "dest"]));
    assert_eq!(snapshot(&sb.root().join("dest")), want);
}

#[test]
fn put_directory_without_r_is_a_usage_error() {
    let sb = Sandbox::new();
    make_tree(&sb.work().join("tree"));
    let hint = "use 'cta-data put -r tree x'";
    sb.fails(&["put", "tree", "x"], USAGE, &["tree is a directory"], hint);
    assert!(snapshot(&sb.root()).is_empty());
}

#[test]
fn put_missing_local_file_is_not_found() {
    let sb = Sandbox::new();
    let (args, hint) = (["put", "no/such.txt", "x/"], "check the local path");
    sb.fails(&args, NOT_FOUND, &["no/such.txt", "local path"], hint);
}

// ---------------------------------------------------------------------------------- get

#[test]
fn get_without_local_writes_into_the_current_directory() {
    let sb = Sandbox::new();
    sb.remote_file("r/f.bin", &all_bytes());
    let cwd = sb.work().join("here");
    fs::create_dir_all(&cwd).unwrap();
    let out = succeed(sb.cmd().current_dir(&cwd).args(["get", "r/f.bin"]));
    let stderr = text(&out.stderr);
    has(&stderr, "downloaded /r/f.bin -> f.bin");
    let want = BTreeMap::from([("f.bin".to_string(), Some(all_bytes()))]);
    assert_eq!(snapshot(&cwd), want); // and no f.bin.part
}

#[test]
fn get_to_an_explicit_path_and_into_an_existing_directory() {
    let sb = Sandbox::new();
    sb.remote_file("r/f.txt", b"data");
    sb.ok(&["get", "r/f.txt", "renamed.txt"]);
    assert_eq!(fs::read(sb.work().join("renamed.txt")).unwrap(), b"data");
    fs::create_dir_all(sb.work().join("dl")).unwrap();
    sb.ok(&["get", "r/f.txt", "dl"]);
    assert_eq!(fs::read(sb.work().join("dl/f.txt")).unwrap(), b"data");
    let abs = sb.path("elsewhere.txt");
    sb.ok(&["get", "/r/f.txt", abs.to_str().unwrap()]);
    assert_eq!(fs::read(&abs).unwrap(), b"data");
    assert!(leftovers(&sb.work()).is_empty());
    assert!(!sb.path("elsewhere.txt.part").exists());
}

#[test]
fn get_recursive_reproduces_the_tree_byte_for_byte() {
    let sb = Sandbox::new();
    let want = make_tree(&sb.root().join("data/tree"));
    sb.ok(&["get", "-r", "data/tree", "copy"]);
    assert_eq!(snapshot(&sb.work().join("copy")), want);
    // The same command again mirrors onto the same place (no nesting), so reruns resume.
    sb.ok(&["get", "-r", "data/tree", "copy"]);
    assert_eq!(snapshot(&sb.work().join("copy")), want);
    // A target ending in '/' receives the remote name inside it.
    sb.ok(&["get", "-r", "data/tree", "into/"]);
    assert_eq!(snapshot(&sb.work().join("into/tree")), want);
    assert!(leftovers(&sb.work()).is_empty());
}

#[test]
fn get_directory_without_r_is_a_usage_error() {
    let sb = Sandbox::new();
    make_tree(&sb.root().join("tree"));
    let hint = "use 'cta-data get -r tree'";
    sb.fails(&["get", "tree"], USAGE, &["/tree is a directory"], hint);
    assert!(snapshot(&sb.work()).is_empty());
}

#[test]
fn get_missing_remote_is_not_found() {
    let sb = Sandbox::new();
    let hint = "check the path with 'cta-data list'";
    let error_has = ["not found: /nope/x.txt"];
    sb.fails(&["get", "nope/x.txt"], NOT_FOUND, &error_has, hint);
    assert!(snapshot(&sb.work()).is_empty());
}

// --------------------------------------------------------------------------------- list

/// A sandbox whose root holds a.txt (3 bytes), d/b.txt (5 bytes) and the empty e/.
fn seeded() -> Sandbox {
    let sb = Sandbox::new();
    sb.remote_file("a.txt", b"abc");
    sb.remote_file("d/b.txt", b"12345");
    fs::create_dir_all(sb.root().join("e")).unwrap();
    sb
}

#[test]
fn list_plain_long_and_recursive() {
    let sb = seeded();
    assert_eq!(sb.ok(&["list"]), "a.txt\nd/\ne/\n");
    assert_eq!(sb.ok(&["ls", "d"]), "b.txt\n");
    let long = sb.ok(&["list", "-l"]);
    // kind, size, date, time, offset, name
    let row = |l: &str| {
        let f: Vec<String> = l.split_whitespace().map(String::from).collect();
        [f[0].clone(), f[1].clone(), f[5].clone()]
    };
    let rows: Vec<[String; 3]> = long.lines().map(row).collect();
    assert_eq!(rows.len(), 3, "{long}");
    assert_eq!(rows[0], ["-", "3", "a.txt"], "{long}");
    assert_eq!(rows[1], ["d", "-", "d/"], "{long}");
    assert_eq!(sb.ok(&["list", "-r"]), "a.txt\nd/\nd/b.txt\ne/\n");
    assert_eq!(sb.ok(&["list", "-r", "d"]), "b.txt\n");
}

#[test]
fn list_json_is_an_array_of_entries() {
    let sb = seeded();
    let v: Value = serde_json::from_str(&sb.ok(&["list", "--json"])).unwrap();
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 3);
    for e in arr {
        for k in ["path", "name", "type", "size", "mtime"] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }
        assert!(e["mtime"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let pick = |e: &Value| (e["path"].clone(), e["name"].clone(), e["type"].clone());
    let file = ("/a.txt".into(), "a.txt".into(), "file".into());
    assert_eq!(pick(&arr[0]), file);
    assert_eq!(pick(&arr[1]), ("/d".into(), "d".into(), "directory".into()));
    assert_eq!(arr[0]["size"], 3);
    assert!(arr[1]["size"].is_null());
}

#[test]
fn list_of_a_file_shows_the_file() {
    let sb = seeded();
    assert_eq!(sb.ok(&["list", "d/b.txt"]), "b.txt\n");
    // Regression: with -r this failed with "it is a file, not a directory".
    assert_eq!(sb.ok(&["list", "-r", "d/b.txt"]), "b.txt\n");
    let v: Value = serde_json::from_str(&sb.ok(&["list", "--json", "d/b.txt"])).unwrap();
    assert_eq!(
        (&v[0]["path"], &v[0]["size"]),
        (&"/d/b.txt".into(), &5.into())
    );
}

#[test]
fn list_refuses_dot_dot() {
    let sb = seeded();
    let error_has = ["'d/../../etc'", "'..' is not allowed"];
    sb.fails(&["list", "d/../../etc"], USAGE, &error_has, "without '..'");
}

// ------------------------------------------------------------- stat, mkdir, rm, mv, cat

#[test]
fn stat_text_and_json() {
    let sb = seeded();
    let out = sb.ok(&["stat", "d/b.txt"]);
    for line in ["path:     /d/b.txt", "type:     file", "size:     5 (5 B)"] {
        assert!(out.lines().any(|l| l == line), "{line:?} not in\n{out}");
    }
    assert!(out.contains("\nmodified: "), "{out}");
    let v: Value = serde_json::from_str(&sb.ok(&["stat", "--json", "e"])).unwrap();
    assert_eq!(
        (&v["path"], &v["type"]),
        (&"/e".into(), &"directory".into())
    );
    sb.fails(&["stat", "d/zz"], NOT_FOUND, &["/d/zz"], "cta-data list");
}

#[test]
fn mkdir_with_and_without_parents() {
    let sb = Sandbox::new();
    sb.ok(&["mkdir", "top"]);
    assert!(sb.root().join("top").is_dir());
    let error_has = ["not found: /a/b ", "mkdir -p"];
    sb.fails(&["mkdir", "a/b/c"], NOT_FOUND, &error_has, "cta-data list");
    assert!(!sb.root().join("a").exists());
    sb.ok(&["mkdir", "-p", "a/b/c"]);
    assert!(sb.root().join("a/b/c").is_dir());
    sb.ok(&["mkdir", "-p", "a/b/c"]); // an existing directory is fine with -p
    sb.fails(&["mkdir", "top"], CONFLICT, &["/top"], "remove it first");
}

#[test]
fn rm_files_empty_and_full_directories() {
    let sb = seeded();
    sb.ok(&["rm", "a.txt"]);
    assert!(!sb.root().join("a.txt").exists());
    sb.ok(&["rm", "e"]); // empty: no -r needed
    assert!(!sb.root().join("e").exists());
    let (error_has, hint) = (
        ["/d is a directory that is not empty"],
        "'cta-data rm -r d'",
    );
    sb.fails(&["rm", "d"], USAGE, &error_has, hint);
    assert_eq!(sb.stored("d/b.txt"), b"12345");
    sb.ok(&["rm", "-r", "d"]);
    assert!(snapshot(&sb.root()).is_empty());
    sb.fails(&["rm", "d"], NOT_FOUND, &["/d"], "cta-data list");
}

#[test]
fn mv_renames_and_refuses_to_clobber_without_force() {
    let sb = seeded();
    sb.ok(&["mv", "a.txt", "d/moved.txt"]);
    assert!(!sb.root().join("a.txt").exists());
    assert_eq!(sb.stored("d/moved.txt"), b"abc");
    let args = ["mv", "d/moved.txt", "d/b.txt"];
    sb.fails(&args, CONFLICT, &["/d/b.txt", "exists"], "--force");
    assert_eq!(sb.stored("d/b.txt"), b"12345");
    sb.ok(&["mv", "-f", "d/moved.txt", "d/b.txt"]);
    assert_eq!(sb.stored("d/b.txt"), b"abc");
    sb.ok(&["mv", "d", "renamed"]);
    assert_eq!(snapshot(&sb.root().join("renamed")).len(), 1);
}

#[test]
fn cat_writes_the_exact_bytes() {
    let sb = seeded();
    let bin: Vec<u8> = all_bytes().repeat(3);
    sb.remote_file("bin/all.dat", &bin);
    assert_eq!(succeed(sb.cmd().args(["cat", "bin/all.dat"])).stdout, bin);
    assert_eq!(sb.ok(&["cat", "/d/b.txt"]), "12345");
    sb.fails(&["cat", "bin/x"], NOT_FOUND, &["/bin/x"], "cta-data list");

    // Larger than the writer's blocks: a full disk is a local I/O error, a reader that
    // stops early (`| head`) is not an error.
    let big: Vec<u8> = all_bytes().repeat(20 << 10);
    sb.remote_file("bin/big.dat", &big);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let cat = || {
        let mut c = sb.std_bare();
        c.arg("--config")
            .arg(sb.config())
            .args(["cat", "bin/big.dat"]);
        c
    };
    let out = cat().stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(LOCAL_IO), "{stderr}");
    has(&stderr, "standard output");
    let mut child = cat()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
    assert_eq!(&head, &big[..10]);
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------------------- config

#[test]
fn config_show_names_the_file_and_the_variable() {
    let sb = Sandbox::new();
    let cfg = sb.config().display().to_string();
    let out = sb.ok(&["config", "show"]);
    has(
        &out,
        &format!("# profile 't' (chosen by default_profile (file {cfg}))\n"),
    );
    has(&out, &format!("# read {cfg}\n"));
    ends(show_line(&out, "backend"), &format!("# file {cfg}"));
    let root = show_line(&out, "root");
    has(root, &sb.root().display().to_string());
    ends(root, &format!("# file {cfg}"));

    // The variable wins over the file, is reported, and is what the commands use.
    let other = sb.path("other-root");
    let with_var = || {
        let mut c = sb.cmd();
        c.env("CTADATA_PROFILES__T__ROOT", &other);
        c
    };
    let out = text(&succeed(with_var().args(["config", "show"])).stdout);
    let root = show_line(&out, "root");
    has(root, &other.display().to_string());
    ends(root, "# variable CTADATA_PROFILES__T__ROOT");
    sb.local_file("a.txt", b"A");
    succeed(with_var().args(["put", "a.txt", "x/"]));
    assert_eq!(fs::read(other.join("x/a.txt")).unwrap(), b"A");
    assert!(!sb.root().join("x").exists());
}

#[test]
fn config_show_built_in_and_flag_origins() {
    let sb = Sandbox::new();
    let mut cmd = sb.bare();
    cmd.args(["config", "show", "--profile", "platform"]);
    let out = text(&succeed(cmd.args(["--url", "https://u.example/"])).stdout);
    has(&out, "# no config file read");
    ends(show_line(&out, "backend"), "# built-in");
    let url = show_line(&out, "url");
    has(url, "url = \"https://u.example/\"");
    ends(url, "# flag --url");
    // The user file is looked for under XDG_CONFIG_HOME, not in the real home.
    let paths = text(&succeed(sb.bare().args(["config", "paths"])).stdout);
    let user = sb.path("xdg-config/cta-data/config.toml");
    has(&paths, &format!("{}\tabsent", user.display()));
}

#[test]
fn config_show_json() {
    let sb = Sandbox::new();
    let args = ["--profile", "local", "config", "show", "--json"];
    let v: Value = serde_json::from_slice(&succeed(sb.bare().args(args)).stdout).unwrap();
    assert_eq!(v["profile"], "local");
    assert_eq!(v["chosen_by"], "flag --profile");
    assert_eq!(v["files"], serde_json::json!([]));
    let values = v["values"].as_array().unwrap();
    let root = values.iter().find(|e| e["key"] == "root").expect("root");
    let want = sb.path("xdg-data/cta-data/local");
    // Values keep their type: a string is a JSON string, not TOML text.
    assert_eq!(root["value"], want.display().to_string());
    assert_eq!(root["origin"], "built-in");
    let backend = values.iter().find(|e| e["key"] == "backend");
    let backend = backend.expect("backend");
    assert_eq!(backend["value"], "local");
    assert_eq!(backend["origin"], "built-in");
}

#[test]
fn builtin_local_profile_lives_under_xdg_data_home() {
    let sb = Sandbox::new();
    sb.local_file("a.txt", b"A");
    succeed(sb.bare().args(["--profile", "local", "put", "a.txt", "x/"]));
    let stored = sb.path("xdg-data/cta-data/local/x/a.txt");
    assert_eq!(fs::read(stored).unwrap(), b"A");
    let listed = succeed(sb.bare().args(["--profile", "local", "list", "-r"]));
    assert_eq!(text(&listed.stdout), "x/\nx/a.txt\n");
    assert!(!sb.root().exists());
}

#[test]
fn legacy_ctads_url_sets_the_platform_url() {
    let sb = Sandbox::new();
    let mut cmd = sb.bare();
    cmd.env("CTADS_URL", "http://x/");
    let out = succeed(cmd.args(["config", "show", "--profile", "platform"]));
    let out = text(&out.stdout);
    let url = show_line(&out, "url");
    has(url, "url = \"http://x/\"");
    ends(url, "# variable CTADS_URL");
}

// ------------------------------------------------------------------------------- errors

#[test]
fn malformed_config_file_is_a_config_error() {
    let sb = Sandbox::new();
    fs::write(sb.config(), "[profiles.t\nroot = ").unwrap();
    let error_has = ["configuration error", &sb.config().display().to_string()];
    sb.fails(&["list"], CONFIG, &error_has, "fix or remove the setting");
}

#[test]
fn unknown_config_key_names_the_file_and_the_key() {
    let sb = Sandbox::new();
    let root = sb.root().display().to_string();
    let cfg = format!("[profiles.t]\nbackend = \"local\"\nrooot = '{root}'\n");
    fs::write(sb.config(), cfg).unwrap();
    let file = sb.config().display().to_string();
    let error_has = [&file, "profiles.t.rooot", "unknown key 'rooot'"];
    sb.fails(&["list"], CONFIG, &error_has, "fix or remove the setting");
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let sb = Sandbox::new();
    let error_has = ["unknown profile 'nope'", "flag --profile"];
    let hint = "use one of: cta, cta-dev, grid, local, platform, t; or add [profiles.nope]";
    sb.fails(&["--profile", "nope", "list"], CONFIG, &error_has, hint);
}

#[test]
fn dev_flag_conflicts_with_profile() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd();
    let out = cmd
        .args(["-d", "--profile", "local", "list"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{stderr}");
    has(
        &stderr,
        "error: the argument '--dev' cannot be used with '--profile <NAME>'",
    );
    has(&stderr, "Usage:");
    assert!(!sb.root().exists(), "nothing may run");
}

// ------------------------------------------------------------------- completions, man

#[test]
fn completions_and_man_page() {
    let sb = Sandbox::new();
    let bash = text(&succeed(sb.bare().args(["completions", "bash"])).stdout);
    has(&bash, "complete -F _cta__data");
    has(&bash, "cta-data");
    let man = text(&succeed(sb.bare().arg("man")).stdout);
    assert!(man.lines().any(|l| l.starts_with(".TH cta-data")), "{man}");
    assert!(man.contains("put"), "{man}");
}

#[test]
fn generated_text_into_a_closed_pipe_is_no_error() {
    // Regression: `completions bash | head` panicked and `man | head` exited 12.
    // assert_cmd cannot close stdout early, so this spawns the binary itself.
    let sb = Sandbox::new();
    for args in [&["completions", "bash"][..], &["man"]] {
        let mut cmd = sb.std_bare();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take()); // the reader is gone before the binary writes
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}\n{stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
