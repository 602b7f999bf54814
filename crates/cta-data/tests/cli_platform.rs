//! End-to-end tests of the `cta-data` binary with the `platform` profile: the
//! downloadservice and certificateservice double in front of a real nginx WebDAV server,
//! reached through `CTADS_URL`, `CTACS_URL` and `JUPYTERHUB_API_TOKEN` as the old client was.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use ctadata_testsupport::downloadservice::certs::ProxyPki;
use ctadata_testsupport::{HubUser, PlatformConfig, PlatformDouble};
use tempfile::TempDir;

const USAGE: i32 = 2;
const AUTH: i32 = 4;
const PERMISSION: i32 = 5;
const CONFLICT: i32 = 7;
const PROTOCOL: i32 = 10;
const UNSUPPORTED: i32 = 11;

const TOKEN: &str = "alice-hub-token";
const ADMIN: &str = "admin-hub-token";
const H: i64 = 3600;

struct World {
    tmp: TempDir,
    d: PlatformDouble,
    pki: ProxyPki,
    home: String,
}

impl World {
    fn new() -> World {
        let pki = ProxyPki::new("cta-data test CA");
        let d = PlatformDouble::start(PlatformConfig {
            users: vec![
                HubUser::new("Alice.Smith", TOKEN),
                HubUser {
                    admin: true,
                    ..HubUser::new("root", ADMIN)
                },
            ],
            trusted_ca_pem: vec![pki.ca_pem().to_string()],
            ..Default::default()
        })
        .expect("the platform double (nginx: tests/run-all.sh installs it)");
        d.put_file("lst/DL1/20241114/run 1.h5", b"first run\n");
        d.put_file("lst/DL1/20241114/sub/run+2.h5", &[42u8; 100_000]);
        let home = d.user_folder("Alice.Smith");
        let w = World {
            tmp: TempDir::new().unwrap(),
            d,
            pki,
            home,
        };
        for dir in ["home", "work"] {
            std::fs::create_dir_all(w.path(dir)).unwrap();
        }
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// The binary with an isolated environment, without `--profile`.
    fn bare(&self, token: Option<&str>) -> Command {
        let mut c = Command::cargo_bin("cta-data").unwrap();
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_RUNTIME_DIR", self.path("home/run"))
            .env("CTADS_URL", self.d.downloadservice_url())
            .env("CTACS_URL", self.d.certificateservice_url())
            .current_dir(self.path("work"));
        if let Some(t) = token {
            c.env("JUPYTERHUB_API_TOKEN", t);
        }
        c
    }

    /// `cta-data --profile platform` with the hub token of Alice.
    fn cmd(&self) -> Command {
        let mut c = self.bare(Some(TOKEN));
        c.args(["--profile", "platform"]);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fails(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    stderr(o)
}

#[test]
fn reading_through_the_service() {
    let w = World::new();
    assert_eq!(ok(&w.run(&["list"])), "cta/\nlst/\n");
    assert_eq!(ok(&w.run(&["ls", "lst/DL1/20241114"])), "run 1.h5\nsub/\n");
    let long = ok(&w.run(&["ls", "-l", "lst/DL1/20241114"]));
    assert!(
        long.contains("             10 ") && long.contains("run 1.h5"),
        "{long}"
    );
    let rec = ok(&w.run(&["ls", "-r", "lst/DL1"]));
    assert!(rec.contains("20241114/sub/run+2.h5"), "{rec}");
    let stat = ok(&w.run(&["stat", "/lst/DL1/20241114/run 1.h5"]));
    assert!(stat.contains("size:     10 "), "{stat}");
    assert_eq!(
        ok(&w.run(&["cat", "lst/DL1/20241114/run 1.h5"])),
        "first run\n"
    );

    let out = w.run(&["get", "lst/DL1/20241114/run 1.h5"]);
    ok(&out);
    assert_eq!(
        std::fs::read(w.path("work/run 1.h5")).unwrap(),
        b"first run\n"
    );
    let out = w.run(&["get", "-r", "lst/DL1/20241114", "copy"]);
    ok(&out);
    assert_eq!(
        std::fs::read(w.path("work/copy/sub/run+2.h5")).unwrap(),
        vec![42u8; 100_000]
    );
    let e = fails(&w.run(&["get", "lst/DL1/20241114"]), USAGE);
    assert!(e.contains("get -r"), "{e}");
    let reqs = w.d.requests();
    assert!(
        reqs.len() >= 6,
        "the commands above reached the service: {reqs:?}"
    );
    assert!(reqs.iter().all(|r| !r.token_in_query), "{reqs:?}");
}

#[test]
fn writing_lands_in_the_user_folder() {
    let w = World::new();
    let home = &w.home;
    assert_eq!(home, "lst/users/alice_smith");
    let local = w.write("work/notes.txt", "my notes\n");

    // The old client's rule: a destination ending in '/' receives the local name.
    let out = w.run(&["put", local.to_str().unwrap(), "results/"]);
    ok(&out);
    let e = stderr(&out);
    assert!(
        e.contains(&format!("-> /{home}/results/notes.txt")),
        "the path to share is printed: {e}"
    );
    assert_eq!(
        w.d.read_file(&format!("{home}/results/notes.txt")).unwrap(),
        b"my notes\n"
    );
    assert_eq!(ok(&w.run(&["ls", "results"])), "notes.txt\n");
    assert_eq!(
        ok(&w.run(&["cat", &format!("{home}/results/notes.txt")])),
        "my notes\n"
    );

    // The same file again is identical: skipped. A different one needs --force.
    let again = w.run(&["put", "notes.txt", "results/"]);
    ok(&again);
    assert!(stderr(&again).contains("identical"), "{}", stderr(&again));
    w.write("work/notes.txt", "new notes\n");
    let e = fails(&w.run(&["put", "notes.txt", "results/"]), CONFLICT);
    assert!(e.contains("--force"), "{e}");
    ok(&w.run(&["put", "--force", "notes.txt", "results/"]));
    assert_eq!(
        w.d.read_file(&format!("{home}/results/notes.txt")).unwrap(),
        b"new notes\n"
    );

    let e = fails(
        &w.run(&["put", "notes.txt", "lst/DL1/notes.txt"]),
        PERMISSION,
    );
    assert!(
        e.contains(&format!("writes only inside your user folder /{home}/")),
        "{e}"
    );

    // Trees, and a second run that skips what is there.
    w.write("work/tree/a.txt", "A");
    w.write("work/tree/deep/er/b.txt", "B");
    ok(&w.run(&["put", "-r", "tree", "up/tree"]));
    assert_eq!(
        w.d.read_file(&format!("{home}/up/tree/deep/er/b.txt"))
            .unwrap(),
        b"B"
    );
    let e = stderr(&w.run(&["put", "-r", "--skip-existing", "tree", "up/tree"]));
    assert!(e.contains("0 files") && e.contains("2 skipped"), "{e}");
    let e = stderr(&w.run(&["put", "-r", "tree", "up/tree"]));
    assert!(e.contains("0 files") && e.contains("2 skipped"), "{e}");
    w.write("work/tree/a.txt", "AA");
    fails(&w.run(&["put", "-r", "tree", "up/tree"]), 13);

    ok(&w.run(&["mkdir", "-p", "made/here"]));
    assert!(w.d.storage().join(home).join("made/here").is_dir());
    assert_eq!(ok(&w.run(&["ls", "made"])), "here/\n");
    fails(&w.run(&["mkdir", "made"]), CONFLICT);
}

#[test]
fn delete_and_rename_name_the_cta_profile() {
    let w = World::new();
    w.d.put_file(&format!("{}/x.txt", w.home), b"x");
    let e = fails(&w.run(&["rm", "x.txt"]), UNSUPPORTED);
    assert!(
        e.contains("error: 'delete' is not supported by the downloadservice backend"),
        "{e}"
    );
    assert!(e.contains("'cta-data --profile cta rm x.txt'"), "{e}");
    let e = fails(&w.run(&["mv", "x.txt", "y.txt"]), UNSUPPORTED);
    assert!(e.contains("'cta-data --profile cta mv x.txt y.txt'"), "{e}");
    assert!(w.d.read_file(&format!("{}/x.txt", w.home)).is_some());
}

#[test]
fn hub_tokens() {
    let w = World::new();
    let mut c = w.bare(Some("not-a-token"));
    let e = fails(
        &c.args(["--profile", "platform", "ls", "lst"])
            .output()
            .unwrap(),
        AUTH,
    );
    assert!(
        e.contains("refused the hub token from variable JUPYTERHUB_API_TOKEN"),
        "{e}"
    );
    assert!(
        e.contains(&format!("hint: make a token at {}", w.d.token_page())),
        "{e}"
    );
    assert!(!e.contains("not-a-token"));

    let mut c = w.bare(None);
    let e = fails(
        &c.args(["--profile", "platform", "ls"]).output().unwrap(),
        AUTH,
    );
    assert!(
        e.contains("no hub token found; tried, in order: variable CTADATA_TOKEN, variable JUPYTERHUB_API_TOKEN"),
        "{e}"
    );
    let mut c = w.bare(Some("   "));
    let e = fails(
        &c.args(["--profile", "platform", "ls"]).output().unwrap(),
        AUTH,
    );
    assert!(
        e.contains("the hub token in variable JUPYTERHUB_API_TOKEN is empty or only white space"),
        "{e}"
    );
    let tf = w.write("token", &format!("{TOKEN}\n"));
    let mut c = w.bare(Some("not-a-token"));
    c.args(["--profile", "platform", "--token-file"])
        .arg(&tf)
        .arg("ls");
    assert_eq!(ok(&c.output().unwrap()), "cta/\nlst/\n");
}

#[test]
fn cert_upload() {
    let w = World::new();
    let alice = w.pki.user("Alice Smith", -24 * H, 300 * 24 * H);
    let good = w.write("x509up", &alice.proxy_file(-60, 12 * H));

    // Without --profile: the certificateservice of the platform profile (CTACS_URL).
    let out = w
        .bare(Some(TOKEN))
        .args(["cert", "upload"])
        .arg(&good)
        .args(["--key", "cta"])
        .output()
        .unwrap();
    let said = ok(&out);
    assert!(said.contains("Certificate stored, valid until "), "{said}");
    assert!(said.contains(" GMT"), "{said}");
    assert_eq!(w.d.stored_certificates().len(), 1);
    // The old name, with the key as an argument.
    ok(&w
        .cmd()
        .arg("upload-personal-certificate")
        .arg(&good)
        .arg("lst")
        .output()
        .unwrap());
    let json = ok(&w
        .cmd()
        .args(["--json", "cert", "upload-personal"])
        .arg(&good)
        .args(["--key", "cta"])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["message"], "Certificate stored");

    // Every problem is found before anything is sent.
    let before = w.d.requests().len();
    let f = |name: &str, text: &str| w.write(name, text);
    let cases: Vec<(PathBuf, &str, i32, String)> = vec![
        (f("notpem", "hello"), "cta", USAGE, "is not a PEM file: it has no '-----BEGIN ...-----' block".into()),
        (f("keyonly", &alice.key_pem), "cta", USAGE, "holds no certificate (its PEM blocks: PRIVATE KEY)".into()),
        (
            f("nokey", &format!("{}{}", alice.proxy(0, H).0, alice.cert_pem)),
            "cta",
            USAGE,
            "holds no private key (its PEM blocks: CERTIFICATE, CERTIFICATE)".into(),
        ),
        (
            f("orphan", &{
                let (c, k) = alice.proxy(0, H);
                format!("{c}{k}")
            }),
            "cta",
            USAGE,
            "holds a proxy certificate without the certificate that signed it".into(),
        ),
        (f("expired", &alice.proxy_file(-48 * H, -H)), "cta", AUTH, "expired on".into()),
        (f("later", &alice.proxy_file(2 * H, 12 * H)), "cta", USAGE, "is not valid yet".into()),
        (f("long", &alice.proxy_file(0, 10 * 24 * H)), "cta", USAGE, "more than 7 days from today".into()),
        (good.clone(), "foo", USAGE, "the certificate key 'foo' is not one of the allowed keys: cta, lst, arc (CTACS_ALLOWED_CERT_KEYS)".into()),
    ];
    for (file, key, code, want) in cases {
        let out = w
            .cmd()
            .args(["cert", "upload"])
            .arg(&file)
            .args(["--key", key])
            .output()
            .unwrap();
        let e = fails(&out, code);
        assert!(e.contains(&want), "{}: {e}", file.display());
        assert!(e.contains("hint: "), "{e}");
    }
    let e = fails(
        &w.cmd()
            .env("CTACS_ALLOWED_CERT_KEYS", "cta")
            .args(["cert", "upload"])
            .arg(&good)
            .args(["--key", "lst"])
            .output()
            .unwrap(),
        USAGE,
    );
    assert!(
        e.contains("allowed keys: cta (CTACS_ALLOWED_CERT_KEYS)"),
        "{e}"
    );
    assert_eq!(w.d.requests().len(), before, "nothing was sent");

    // The service's own refusals: 'arc' is unknown to it (500), another CA (400).
    let e = fails(
        &w.cmd()
            .args(["cert", "upload"])
            .arg(&good)
            .args(["--key", "arc"])
            .output()
            .unwrap(),
        PROTOCOL,
    );
    assert!(e.contains("for the key 'arc'"), "{e}");
    let other = ProxyPki::new("another CA").user("Mallory", -H, 100 * 24 * H);
    let foreign = w.write("foreign", &other.proxy_file(0, 12 * H));
    let e = fails(
        &w.cmd()
            .args(["cert", "upload"])
            .arg(&foreign)
            .args(["--key", "cta"])
            .output()
            .unwrap(),
        AUTH,
    );
    assert!(
        e.contains("did not store the certificate from")
            && e.contains("(400): invalid certificate verification chain"),
        "{e}"
    );

    // The shared certificate: admins only; the old name kept.
    let e = fails(
        &w.cmd()
            .args(["cert", "upload-shared"])
            .arg(&good)
            .output()
            .unwrap(),
        PERMISSION,
    );
    assert!(e.contains("only hub administrators"), "{e}");
    let mut c = w.bare(Some(ADMIN));
    let said = ok(&c
        .arg("upload-shared-certificate")
        .arg(&good)
        .output()
        .unwrap());
    assert!(said.contains("Shared certificate stored"), "{said}");
    assert!(w.d.shared_certificate().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn porting_functions() {
    use ctadata::porting::Client;
    let w = World::new();
    let tf = w.write("token", TOKEN);
    let env = ctadata::config::EnvSnapshot::from_pairs([
        ("CTADS_URL", w.d.downloadservice_url()),
        ("CTACS_URL", w.d.certificateservice_url()),
        ("HOME", w.path("home").display().to_string()),
    ]);
    let opts = ctadata::LoadOptions::default()
        .with_profile(Some("platform".into()))
        .with_token_file(Some(tf))
        .with_system_file(Some(w.path("none.toml")));
    let profile = ctadata::config::load(&opts, &env).unwrap();
    let c = Client::with_backend(ctadata::open(&profile, &Default::default()).unwrap());

    let v = c.list_dir("lst/DL1/20241114").await.unwrap();
    let mut names: Vec<_> = v.iter().map(|e| e.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["run 1.h5", "sub"]);
    let v = c.list_dir("lst/DL1/20241114/run 1.h5").await.unwrap();
    assert_eq!((v.len(), v[0].size), (1, Some(10)), "a file lists itself");

    let target = w.path("work/fetched.h5");
    let n = c
        .fetch_and_save_file("lst/DL1/20241114/run 1.h5", Some(&target))
        .await
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(std::fs::read(&target).unwrap(), b"first run\n");

    // Recursive: saved under ./<remote path>, as the old client did.
    let cwd = w.path("work/recursive");
    std::fs::create_dir_all(&cwd).unwrap();
    std::env::set_current_dir(&cwd).unwrap();
    let s = c
        .fetch_and_save_file_or_dir("lst/DL1/20241114", true)
        .await
        .unwrap();
    assert_eq!(s.transferred, 2);
    assert_eq!(
        std::fs::read(cwd.join("lst/DL1/20241114/sub/run+2.h5")).unwrap(),
        vec![42u8; 100_000]
    );

    // upload_file: a trailing '/' takes the local name; the answer says where it landed.
    let local = w.write("work/latest-file-list", "a\nb\n");
    let out = c.upload_file(&local, "filelists/").await.unwrap();
    assert_eq!(
        out.path.as_str(),
        format!("{}/filelists/latest-file-list", w.home)
    );
    let out = c.upload_file(&local, "filelists/").await.unwrap();
    assert_eq!(out.size, 4, "replaced, as before");
    w.write("work/updir/x/y.txt", "y");
    let s = c
        .upload_dir(&w.path("work/updir"), "uploaded")
        .await
        .unwrap();
    assert_eq!(s.transferred, 1);
    assert_eq!(
        w.d.read_file(&format!("{}/uploaded/x/y.txt", w.home))
            .unwrap(),
        b"y"
    );
}
