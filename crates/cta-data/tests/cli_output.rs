//! What a user sees, against real servers: `--json` is one document on stdout, valid against
//! its schema in `docs/json` (and README names every schema); `list` is sorted by name (`-U`:
//! the server's order); times are local with their offset (`--utc`: UTC); `cat` of a
//! directory says so and prints nothing; the man pages have EXIT STATUS, ENVIRONMENT and
//! FILES and every page they refer to exists; `--profile` completes the config's profiles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::downloadservice::certs::ProxyPki;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Locality, Nginx};
use serde_json::Value;
use tempfile::TempDir;

const TOKEN: &str = "output-test-token";
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 6;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Env {
    tmp: TempDir,
}

impl Env {
    /// A config with the profile `door` at `url` (dcache backend, bearer token).
    fn new(url: &str) -> Env {
        let e = Env {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "work", "config/cta-data", "data"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        std::fs::write(
            e.path("config/cta-data/config.toml"),
            format!(
                "[profiles.door]\nbackend = \"dcache\"\nurl = \"{url}\"\njobs = 3\n\n\
                 [profiles.site-archive]\nbackend = \"local\"\nroot = \"{}\"\n",
                e.path("data").display()
            ),
        )
        .unwrap();
        e
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .env("BEARER_TOKEN", TOKEN)
            .current_dir(self.path("work"));
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    fn door(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(["--profile", "door"])
            .args(args)
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(o));
    stdout(o)
}

/// The JSON schemas of `docs/json`, compiled from their files (relative `$ref`s resolve).
struct Schemas {
    schemas: boon::Schemas,
    compiler: boon::Compiler,
}

impl Schemas {
    fn new() -> Schemas {
        Schemas {
            schemas: boon::Schemas::new(),
            compiler: boon::Compiler::new(),
        }
    }
    /// Checks that `out` is exactly one JSON document, valid against `docs/json/<name>`.
    fn check(&mut self, name: &str, out: &[u8]) -> Value {
        let docs: Vec<Value> = serde_json::Deserializer::from_slice(out)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", String::from_utf8_lossy(out)));
        assert_eq!(
            docs.len(),
            1,
            "{name}: stdout must hold one document: {}",
            String::from_utf8_lossy(out)
        );
        let path = repo()
            .join("docs/json")
            .join(name)
            .canonicalize()
            .unwrap_or_else(|e| panic!("docs/json/{name}: {e}"));
        let idx = self
            .compiler
            .compile(path.to_str().unwrap(), &mut self.schemas)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        if let Err(e) = self.schemas.validate(&docs[0], idx) {
            panic!("{name}: {e:#}\n{:#}", docs[0]);
        }
        docs.into_iter().next().unwrap()
    }
}

fn door() -> DcacheDouble {
    DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

#[test]
fn every_json_document_matches_its_schema() {
    let d = door();
    d.put_file("/cta/run/b.dat", b"bbbb");
    d.put_file("/cta/run/a.dat", b"aaaaaaa");
    d.put_file("/cta/run/sub/c.dat", b"c");
    d.set_locality("/cta/run/a.dat", Locality::OnlineAndNearline);
    let env = Env::new(&d.url());
    let mut s = Schemas::new();

    let v = s.check(
        "entry.schema.json",
        ok(&env.door(&["--json", "stat", "/cta/run/a.dat"])).as_bytes(),
    );
    assert_eq!(v["size"], 7);
    assert!(
        v["checksums"].as_array().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    assert_eq!(v["checksums"][0]["algorithm"], "adler32");
    s.check(
        "entry.schema.json",
        ok(&env.door(&["--json", "stat", "/cta/run"])).as_bytes(),
    );
    // -v adds what was learned of the server (the door double is dCache: ETags and
    // checksums in listings, an atomic create-if-absent).
    let v = s.check(
        "entry.schema.json",
        ok(&env.door(&["-v", "--json", "stat", "/cta/run/a.dat"])).as_bytes(),
    );
    assert_eq!(v["server"]["etags_in_listings"], "yes", "{v}");
    assert_eq!(v["server"]["checksums_in_listings"], "yes", "{v}");
    assert_eq!(v["server"]["atomic_create"], "yes", "{v}");
    assert!(v["server"]["server"].is_null(), "{v}");
    let v = s.check(
        "list.schema.json",
        ok(&env.door(&["--json", "list", "/cta/run"])).as_bytes(),
    );
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.dat", "b.dat", "sub"]);
    s.check(
        "list.schema.json",
        ok(&env.door(&["--json", "list", "-r", "/cta/run"])).as_bytes(),
    );
    s.check(
        "list.schema.json",
        ok(&env.door(&["--json", "list", "-U", "/cta/run"])).as_bytes(),
    );
    s.check(
        "list.schema.json",
        ok(&env.door(&["--json", "list", "/cta/run/b.dat"])).as_bytes(),
    );

    let v = s.check(
        "config-show.schema.json",
        ok(&env.door(&["--json", "config", "show"])).as_bytes(),
    );
    let jobs = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "jobs")
        .unwrap();
    assert_eq!(jobs["value"], 3, "typed, not a string: {jobs}");
    let backend = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "backend")
        .unwrap();
    assert_eq!(backend["value"], "dcache", "{backend}");
    let v = s.check(
        "config-paths.schema.json",
        ok(&env.door(&["--json", "config", "paths"])).as_bytes(),
    );
    assert_eq!(v[1]["read"], true, "{v}");
    let v = s.check(
        "config-profiles.schema.json",
        ok(&env.run(&["--json", "config", "profiles"])).as_bytes(),
    );
    assert!(
        v.as_array().unwrap().contains(&"site-archive".into()),
        "{v}"
    );

    let v = s.check(
        "done.schema.json",
        ok(&env.door(&["--json", "mkdir", "-p", "/cta/new/deep"])).as_bytes(),
    );
    assert_eq!(v["path"], "/cta/new/deep");
    let v = s.check(
        "done.schema.json",
        ok(&env.door(&["--json", "mv", "/cta/run/b.dat", "/cta/new/b.dat"])).as_bytes(),
    );
    assert_eq!(v["to"], "/cta/new/b.dat");
    s.check(
        "done.schema.json",
        ok(&env.door(&["--json", "rm", "-r", "/cta/new"])).as_bytes(),
    );
    s.check(
        "done.schema.json",
        ok(&env.door(&["--json", "reset-config"])).as_bytes(),
    );

    let v = s.check(
        "token-status.schema.json",
        ok(&env.door(&["--json", "token", "status"])).as_bytes(),
    );
    assert_eq!(
        v["used"]["source"]
            .as_str()
            .map(|s| s.contains("BEARER_TOKEN")),
        Some(true),
        "{v}"
    );
    assert!(
        !v.to_string().contains(TOKEN),
        "the token itself never shows: {v}"
    );

    let v = s.check(
        "print-token.schema.json",
        ok(&env.door(&["--json", "print-token"])).as_bytes(),
    );
    assert_eq!(v["token"], TOKEN);
    assert_eq!(v["expires_at"], Value::Null, "not a JWT: {v}");
    // An expired token: `token status` prints its report and fails; the report stays the
    // one document (no error document after it).
    let expired = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxMDAwfQ.c2ln";
    let o = env
        .cmd()
        .env("BEARER_TOKEN", expired)
        .args(["--profile", "door", "--json", "token", "status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    s.check("token-status.schema.json", &o.stdout);

    let pki = ProxyPki::new("json CA");
    let alice = pki.user("Alice", -3600, 86400);
    let proxy = env.path("x509up");
    std::fs::write(&proxy, alice.proxy_file(0, 3600)).unwrap();
    s.check(
        "cert-info.schema.json",
        ok(&env.door(&["--json", "cert", "info", proxy.to_str().unwrap()])).as_bytes(),
    );

    // Failures: the error document on stdout, the message on stderr.
    let o = env.door(&["--json", "stat", "/cta/nothing"]);
    assert_eq!(o.status.code(), Some(NOT_FOUND), "{}", stderr(&o));
    let v = s.check("error.schema.json", &o.stdout);
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["error"]["exit_code"], NOT_FOUND);
    assert!(stderr(&o).contains("/cta/nothing"), "{}", stderr(&o));
    for args in [
        &["--json", "cat", "/cta/run/a.dat"][..],
        &["--json", "completions", "bash"][..],
        &["--json", "man"][..],
        &["--json", "login"][..],
    ] {
        let o = env.door(args);
        assert_eq!(o.status.code(), Some(USAGE), "{args:?}: {}", stderr(&o));
        let v = s.check("error.schema.json", &o.stdout);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--json does not apply"),
            "{v}"
        );
    }
}

#[test]
fn readme_documents_every_schema() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut n = 0;
    for f in std::fs::read_dir(repo().join("docs/json")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        assert!(name.ends_with(".schema.json"), "{name}");
        assert!(
            readme.contains(&format!("docs/json/{name}")),
            "README does not name docs/json/{name}"
        );
        n += 1;
    }
    assert!(n >= 10, "{n} schemas");
}

/// Names in an order that is neither sorted nor reverse-sorted.
fn shuffled(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{:03}", (i * 37) % n)).collect()
}

#[test]
fn list_is_sorted_by_name_and_u_keeps_the_servers_order() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("dir/zz")).unwrap();
    for name in shuffled(60) {
        std::fs::write(root.join("dir").join(name), b"x").unwrap();
    }
    let nginx = Nginx::start(&root).expect("nginx");
    let env = Env::new(&nginx.url());
    let lines = |o: &Output| ok(o).lines().map(str::to_string).collect::<Vec<_>>();
    let sorted = lines(&env.door(&["list", "/dir"]));
    let mut expected: Vec<String> = shuffled(60);
    expected.push("zz/".into());
    expected.sort();
    assert_eq!(sorted, expected);
    let server = lines(&env.door(&["list", "-U", "/dir"]));
    let mut again = server.clone();
    again.sort();
    assert_eq!(again, expected, "-U shows the same entries");
    let tree = lines(&env.door(&["list", "-r", "/dir"]));
    assert!(tree.windows(2).all(|w| w[0] < w[1]), "{tree:?}");
}

#[test]
fn times_are_local_with_their_offset_or_utc() {
    let d = door();
    d.put_file("/cta/t.dat", b"1234");
    let env = Env::new(&d.url());
    let mtime = std::fs::metadata(d.root().join("cta/t.dat"))
        .unwrap()
        .modified()
        .unwrap();
    let utc: chrono::DateTime<chrono::Utc> = mtime.into();
    // A POSIX TZ needs no zone database: two hours east of UTC.
    let plus2 = (utc + chrono::Duration::hours(2))
        .format("%Y-%m-%d %H:%M:%S +0200")
        .to_string();
    let zulu = utc.format("%Y-%m-%d %H:%M:%S +0000").to_string();
    let run = |args: &[&str]| {
        ok(&env
            .cmd()
            .env("TZ", "UTC-2")
            .args(["--profile", "door"])
            .args(args)
            .output()
            .unwrap())
    };
    let l = run(&["list", "-l", "/cta"]);
    assert!(l.contains(&plus2), "{l}\nwanted {plus2}");
    let l = run(&["list", "-l", "--utc", "/cta"]);
    assert!(l.contains(&zulu), "{l}\nwanted {zulu}");
    let st = run(&["stat", "/cta/t.dat"]);
    assert!(st.contains(&format!("modified: {plus2}")), "{st}");
    let st = run(&["stat", "--utc", "/cta/t.dat"]);
    assert!(st.contains(&zulu), "{st}");
    let j: Value = serde_json::from_str(&run(&["--json", "stat", "/cta/t.dat"])).unwrap();
    assert_eq!(j["mtime"], utc.format("%Y-%m-%dT%H:%M:%SZ").to_string());
}

#[test]
fn cat_of_a_directory_says_so_and_prints_nothing() {
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/a"), b"a").unwrap();
    let nginx = Nginx::start(&root).expect("nginx");
    let env = Env::new(&nginx.url());
    let o = env.door(&["cat", "/dir"]);
    assert_eq!(o.status.code(), Some(USAGE), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "printed: {}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains("/dir is a directory"), "{e}");
    assert!(e.contains("cta-data list /dir"), "{e}");
    assert_eq!(ok(&env.door(&["cat", "/dir/a"])), "a");
}

#[test]
fn man_pages_have_the_shell_sections_and_every_page_they_name() {
    let env = Env::new("http://127.0.0.1:9");
    let main = ok(&env.run(&["man"]));
    for s in [
        ".SH \"EXIT STATUS\"",
        ".SH \"ENVIRONMENT\"",
        ".SH \"FILES\"",
        "JUPYTERHUB_API_TOKEN",
        "config.toml",
    ] {
        assert!(main.contains(s), "{s} missing from the main page");
    }
    for code in ["130", "13", "12"] {
        assert!(
            main.contains(&format!("\\fB{code}\\fR")),
            "exit status {code}"
        );
    }
    let dir = env.path("man1");
    let written = ok(&env.run(&["man", "--dir", dir.to_str().unwrap()]));
    assert!(written.lines().count() > 10, "{written}");
    let mut pages: Vec<String> = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        pages.push(f.unwrap().file_name().into_string().unwrap());
    }
    // Every `cta-data-xxx(1)` reference of every page is a page that exists.
    let mut refs = 0;
    for p in &pages {
        let text = std::fs::read_to_string(dir.join(p))
            .unwrap()
            .replace("\\-", "-");
        for (i, _) in text.match_indices("(1)") {
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |s| s + 1);
            let name = &text[start..i];
            if name.starts_with("cta-data") {
                refs += 1;
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{p} refers to {name}(1), which is not written"
                );
            }
        }
    }
    assert!(refs > 10, "{refs} references");
    assert_eq!(
        ok(&env.run(&["man", "config", "show"])),
        std::fs::read_to_string(dir.join("cta-data-config-show.1")).unwrap()
    );
    let o = env.run(&["man", "nope"]);
    assert_eq!(o.status.code(), Some(USAGE));
    assert!(stderr(&o).contains("config-show"), "{}", stderr(&o));
}

#[test]
fn bash_completes_the_profiles_of_the_config_file() {
    let env = Env::new("http://127.0.0.1:9");
    let script = env.path("cta-data.bash");
    std::fs::write(&script, ok(&env.run(&["completions", "bash"]))).unwrap();
    let bin_dir = cargo_bin("cta-data").parent().unwrap().to_path_buf();
    let complete = |words: &str| -> String {
        let mut c = env.cmd();
        c.env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        let snippet = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _cta__data cta-data \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        // The same environment, with bash in place of the binary.
        let mut b = Command::new("bash");
        b.arg("-c").arg(snippet).env_clear();
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                b.env(k, v);
            }
        }
        b.current_dir(env.path("work"));
        ok(&b.output().unwrap())
    };
    let all = complete("cta-data list --profile ''");
    for p in [
        "cta",
        "cta-dev",
        "platform",
        "grid",
        "local",
        "door",
        "site-archive",
    ] {
        assert!(all.lines().any(|l| l == p), "{p} not offered: {all}");
    }
    assert_eq!(complete("cta-data --profile site").trim(), "site-archive");
    // Options of subcommands complete too (clap's script needs a fix for `cta-data`).
    assert_eq!(complete("cta-data list --ut").trim(), "--utc");
    assert_eq!(complete("cta-data get --fail").trim(), "--fail-fast");
}
