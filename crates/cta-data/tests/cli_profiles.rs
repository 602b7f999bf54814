//! Which profile runs when none is named, URLs pasted as remote paths, `login` on profiles
//! without an identity provider, and tokens that have expired: the `cta-data` binary
//! against the downloadservice double, a private nginx WebDAV server, and token files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{HubUser, Nginx, NginxOptions, PlatformConfig, PlatformDouble, TestCa};
use tempfile::TempDir;

const USAGE: i32 = 2;
const CONFIG: i32 = 3;
const AUTH: i32 = 4;

const HUB_TOKEN: &str = "alice-hub-token";
const DAV_TOKEN: &str = "profiles-test-token";

/// A private home, work directory and config file; commands run with only these set.
struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Env {
        let e = Env {
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home/.config", "root", "work", "bin"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        e
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `program` (the built binary, or a link to it) with an isolated environment.
    fn cmd_of(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_RUNTIME_DIR", self.path("home/run"))
            .current_dir(self.path("work"))
            .stdin(Stdio::null());
        c
    }

    fn cmd(&self) -> Command {
        self.cmd_of(&cargo_bin("cta-data"))
    }

    /// `cta-data --config CFG` (the config file written by the test).
    fn with_config(&self) -> Command {
        let mut c = self.cmd();
        c.arg("--config").arg(self.path("config.toml"));
        c
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), err(o));
    out(o)
}

fn fails(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout {} stderr {}",
        out(o),
        err(o)
    );
    err(o)
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn platform() -> PlatformDouble {
    let d = PlatformDouble::start(PlatformConfig {
        users: vec![HubUser::new("Alice.Smith", HUB_TOKEN)],
        ..Default::default()
    })
    .expect("the platform double (nginx: tests/run-all.sh installs it)");
    d.put_file("lst/DL1/20241114/run 1.h5", b"first run\n");
    d
}

#[test]
fn hub_variables_choose_the_platform_profile() {
    let env = Env::new();
    let d = platform();
    let hub = |token: &str| {
        let mut c = env.cmd();
        c.env("JUPYTERHUB_API_TOKEN", token)
            .env("CTADS_URL", d.downloadservice_url());
        c
    };
    // The old `cta-data list` on the hub, word for word: the downloadservice answers.
    assert_eq!(ok(&run(hub(HUB_TOKEN), &["list"])), "cta/\nlst/\n");
    let o = run(hub(HUB_TOKEN), &["-v", "list", "lst/DL1/20241114"]);
    assert_eq!(ok(&o), "run 1.h5\n");
    assert!(
        err(&o).contains(
            "profile 'platform' (downloadservice backend), chosen by the environment: JUPYTERHUB_API_TOKEN and CTADS_URL are set (the old cta-data used the downloadservice)"
        ),
        "{}",
        err(&o)
    );
    // The hub token alone is enough (CTADS_URL only moves the service).
    let mut c = env.cmd();
    c.env("JUPYTERHUB_API_TOKEN", HUB_TOKEN);
    let shown = ok(&run(c, &["config", "show"]));
    assert!(
        shown.starts_with(
            "# profile 'platform' (chosen by the environment: JUPYTERHUB_API_TOKEN is set"
        ),
        "{shown}"
    );
    // A refused hub token: the hint is the hub's, never a dCache login.
    let e = fails(&run(hub("not-a-token"), &["list"]), AUTH);
    assert!(
        e.contains("JUPYTERHUB_API_TOKEN") && !e.contains("login"),
        "{e}"
    );

    // Naming a profile wins over the guess: the flag, then CTADATA_PROFILE.
    let shown = ok(&run(
        hub(HUB_TOKEN),
        &["--profile", "cta", "config", "show"],
    ));
    assert!(
        shown.starts_with("# profile 'cta' (chosen by flag --profile)"),
        "{shown}"
    );
    let shown = ok(&run(hub(HUB_TOKEN), &["-d", "config", "show"]));
    assert!(
        shown.starts_with("# profile 'cta-dev' (chosen by flag -d/--dev)"),
        "{shown}"
    );
    std::fs::create_dir_all(env.path("home/.local/share/cta-data/local")).unwrap();
    let mut c = hub(HUB_TOKEN);
    c.env("CTADATA_PROFILE", "local");
    let o = run(c, &["-v", "list"]);
    ok(&o);
    assert!(
        err(&o).contains("profile 'local' (local backend), chosen by variable CTADATA_PROFILE"),
        "{}",
        err(&o)
    );
    // And so does default_profile in the user's file.
    env.write(
        "home/.config/cta-data/config.toml",
        "default_profile = \"local\"\n",
    );
    let shown = ok(&run(hub(HUB_TOKEN), &["config", "show"]));
    assert!(
        shown.starts_with("# profile 'local' (chosen by default_profile (file "),
        "{shown}"
    );
    std::fs::remove_file(env.path("home/.config/cta-data/config.toml")).unwrap();

    // Without hub variables: cta, and -v says why.
    let o = run(env.cmd(), &["-v", "config", "show"]);
    assert!(ok(&o).starts_with("# profile 'cta' (chosen by the built-in default: neither JUPYTERHUB_API_TOKEN nor CTADS_URL is set"), "{}", out(&o));
    assert!(
        err(&o).contains("profile 'cta' (dcache backend), chosen by the built-in default"),
        "{}",
        err(&o)
    );
}

#[test]
fn invoked_as_cta_data_direct_the_default_is_cta() {
    let env = Env::new();
    let direct = env.path("bin/cta-data-direct");
    std::os::unix::fs::symlink(cargo_bin("cta-data"), &direct).unwrap();
    let on_hub = |args: &[&str]| {
        let mut c = env.cmd_of(&direct);
        c.env("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
            .env("CTADS_URL", "http://127.0.0.1:9/services/downloadservice/");
        run(c, args)
    };
    let shown = ok(&on_hub(&["config", "show"]));
    assert!(
        shown.starts_with("# profile 'cta' (chosen by the command name cta-data-direct (the old client's dCache command))"),
        "{shown}"
    );
    let shown = ok(&on_hub(&["-d", "config", "show"]));
    assert!(
        shown.starts_with("# profile 'cta-dev' (chosen by flag -d/--dev)"),
        "{shown}"
    );
    let shown = ok(&on_hub(&["--profile", "platform", "config", "show"]));
    assert!(
        shown.starts_with("# profile 'platform' (chosen by flag --profile)"),
        "{shown}"
    );
    // The same binary under its own name on the hub: platform.
    let mut c = env.cmd();
    c.env("JUPYTERHUB_API_TOKEN", HUB_TOKEN);
    assert!(ok(&run(c, &["config", "show"])).starts_with("# profile 'platform'"));
}

/// nginx over TLS with a token, and profile `door` on it (plus `other`, on another port).
fn dav_world(env: &Env) -> (Nginx, TestCa) {
    let ca = TestCa::new();
    let nginx = Nginx::start_with(
        &env.path("root"),
        NginxOptions {
            token: Some(DAV_TOKEN.into()),
            tls: Some(&ca),
        },
    )
    .expect("nginx (tests/run-all.sh installs it)");
    std::fs::create_dir_all(nginx.root().join("dir/sub")).unwrap();
    std::fs::write(nginx.root().join("dir/a b.txt"), "a and b\n").unwrap();
    std::fs::write(nginx.root().join("dir/plain.txt"), "plain\n").unwrap();
    env.write(
        "config.toml",
        &format!(
            "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\nca_file = \"{}\"\n\
             [profiles.elsewhere]\nbackend = \"dcache\"\nurl = \"https://door.example:2880/base/\"\n",
            nginx.url(),
            ca.ca_cert_path().display()
        ),
    );
    (nginx, ca)
}

fn door(env: &Env) -> Command {
    let mut c = env.with_config();
    c.env("BEARER_TOKEN", DAV_TOKEN).args(["--profile", "door"]);
    c
}

#[test]
fn urls_of_the_profiles_door_are_paths() {
    let env = Env::new();
    let (nginx, _ca) = dav_world(&env);
    let base = nginx.url();
    let authority = base.strip_prefix("https://").unwrap();
    let plain = ok(&run(door(&env), &["list", "/dir"]));
    let mut names: Vec<&str> = plain.lines().collect();
    names.sort();
    assert_eq!(names, ["a b.txt", "plain.txt", "sub/"]);
    assert_eq!(
        ok(&run(door(&env), &["list", &format!("{base}/dir/")])),
        plain
    );
    assert_eq!(
        ok(&run(
            door(&env),
            &["ls", &format!("davs://{authority}/dir")]
        )),
        plain
    );
    let stat = ok(&run(
        door(&env),
        &["stat", &format!("{base}/dir/a%20b.txt")],
    ));
    assert!(stat.contains("size:     8 "), "{stat}");
    assert_eq!(
        ok(&run(
            door(&env),
            &["cat", &format!("davs://{authority}/dir/a%20b.txt")]
        )),
        "a and b\n"
    );
    // get: the decoded name lands in the current directory.
    ok(&run(
        door(&env),
        &["get", &format!("davs://{authority}/dir/a%20b.txt")],
    ));
    assert_eq!(
        std::fs::read_to_string(env.path("work/a b.txt")).unwrap(),
        "a and b\n"
    );
    // put to a URL ending in '/': the local name inside it, as with a path.
    env.write("work/up.txt", "up\n");
    ok(&run(
        door(&env),
        &["put", "up.txt", &format!("{base}/dir/sub/")],
    ));
    assert_eq!(
        std::fs::read_to_string(nginx.root().join("dir/sub/up.txt")).unwrap(),
        "up\n"
    );
    ok(&run(door(&env), &["mkdir", &format!("{base}/dir/new")]));
    assert!(nginx.root().join("dir/new").is_dir());
    ok(&run(
        door(&env),
        &["mv", &format!("{base}/dir/plain.txt"), "dir/moved.txt"],
    ));
    assert!(nginx.root().join("dir/moved.txt").is_file());
    ok(&run(
        door(&env),
        &["rm", &format!("davs://{authority}/dir/moved.txt")],
    ));
    assert!(!nginx.root().join("dir/moved.txt").exists());
}

#[test]
fn urls_of_other_servers_are_refused_naming_their_profile() {
    let env = Env::new();
    let (nginx, _ca) = dav_world(&env);
    let port: u16 = nginx.url().rsplit(':').next().unwrap().parse().unwrap();
    let other_port = if port == 65535 { 1 } else { port + 1 };
    let before = nginx.access_log_lines().len();

    // Another port, no profile has it: --url.
    let u = format!("https://127.0.0.1:{other_port}/dir/");
    let e = fails(&run(door(&env), &["list", &u]), USAGE);
    assert!(
        e.contains(&format!(
            "is on 127.0.0.1:{other_port}, not on the door of profile 'door' (127.0.0.1:{port})"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!("--url https://127.0.0.1:{other_port}")),
        "{e}"
    );
    // Another host that a profile has: that profile, and the path on it.
    let e = fails(
        &run(
            door(&env),
            &["get", "davs://door.example:2880/base/lst/x.h5"],
        ),
        USAGE,
    );
    assert!(e.contains("door.example:2880"), "{e}");
    assert!(e.contains("profile 'elsewhere': run the command with --profile elsewhere, or give the path /lst/x.h5"), "{e}");
    // A query may carry a secret: refused, not repeated.
    let e = fails(
        &run(
            door(&env),
            &[
                "cat",
                &format!("{}/dir/a%20b.txt?access_token=SECRETTOK", nginx.url()),
            ],
        ),
        USAGE,
    );
    assert!(!e.contains("SECRETTOK"), "{e}");
    assert!(e.contains("'?query'"), "{e}");
    // The downloadservice takes paths only, and says so.
    let mut c = env.with_config();
    c.env("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
        .env("CTADS_URL", "http://127.0.0.1:9/ds/");
    let e = fails(
        &run(c, &["list", "https://dcache.cta.cscs.ch:2880/lst/DL1"]),
        USAGE,
    );
    assert!(
        e.contains(
            "profile 'platform' (downloadservice backend) takes paths on the storage, not URLs"
        ),
        "{e}"
    );
    assert!(
        e.contains("--profile cta, or give the path /lst/DL1"),
        "{e}"
    );
    // Nothing reached the server.
    assert_eq!(nginx.access_log_lines().len(), before);
    // `?authz=` makes it a share link (cli_share tests those): this server refuses the
    // macaroon, and the error does not repeat it either.
    let e = fails(
        &run(
            door(&env),
            &[
                "cat",
                &format!("{}/dir/a%20b.txt?authz=SECRETMAC", nginx.url()),
            ],
        ),
        AUTH,
    );
    assert!(!e.contains("SECRETMAC"), "{e}");
    assert!(e.contains("share link"), "{e}");
}

#[test]
fn login_without_an_identity_provider_stops_before_any_prompt() {
    let env = Env::new();
    env.write(
        "config.toml",
        "[profiles.bare]\nbackend = \"dcache\"\nurl = \"https://door.example:2880\"\n",
    );
    for (profile, code, says) in [
        ("platform", USAGE, "the hub token (JUPYTERHUB_API_TOKEN"),
        ("grid", USAGE, "a grid proxy"),
        (
            "local",
            USAGE,
            "nothing (a local directory needs no credential)",
        ),
        ("bare", CONFIG, "[oidc] section has no issuer and client_id"),
    ] {
        // stdin closed.
        let e = fails(
            &run(env.with_config(), &["--profile", profile, "login"]),
            code,
        );
        assert!(
            e.contains(&format!("profile '{profile}'")) && e.contains("no identity provider"),
            "{e}"
        );
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("secret"), "it must not ask for a secret: {e}");
        // --secret-stdin with a pipe nobody writes to: it must not wait for it.
        let started = Instant::now();
        let mut child = env
            .with_config()
            .args(["--profile", profile, "login", "--secret-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("login --secret-stdin on '{profile}' waited for stdin");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(stdin);
        assert_eq!(status.code(), Some(code));
    }
    // logout says the same.
    let e = fails(
        &run(env.with_config(), &["--profile", "platform", "logout"]),
        USAGE,
    );
    assert!(e.contains("no identity provider"), "{e}");
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// An unsigned JWT for `sub` that expires at `exp` (seconds since the epoch).
fn jwt(sub: &str, exp: i64) -> String {
    format!(
        "{}.{}.c2ln",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(format!(r#"{{"sub":"{sub}","exp":{exp},"scope":"storage.read:/"}}"#).as_bytes())
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn an_expired_token_is_never_printed() {
    let env = Env::new();
    env.write(
        "config.toml",
        "[profiles.door]\nbackend = \"dcache\"\nurl = \"https://door.example:2880\"\n",
    );
    let door = || {
        let mut c = env.with_config();
        c.args(["--profile", "door"]);
        c
    };
    let old = jwt("alice", now() - 3600);
    let tf = env.write("token", &format!("{old}\n"));
    let tf_s = tf.to_str().unwrap();

    let o = run(door(), &["--token-file", tf_s, "print-token"]);
    let e = fails(&o, AUTH);
    assert_eq!(out(&o), "", "an expired token went to stdout");
    assert!(
        e.contains("credential expired") && e.contains(tf_s) && e.contains("expired 1 h 0 min ago"),
        "{e}"
    );
    assert!(
        e.contains(&format!("hint: write a fresh token to {tf_s}")),
        "{e}"
    );
    assert!(!e.contains(&old));
    // The same from a variable: the hint names the variable.
    let mut c = door();
    c.env("BEARER_TOKEN", &old);
    let o = run(c, &["print-token", "--json"]);
    let e = fails(&o, AUTH);
    // With --json the failure is the error document, never the token.
    let doc: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["error"]["kind"], "auth", "{doc}");
    assert!(!out(&o).contains(&old));
    assert!(e.contains("hint: set BEARER_TOKEN to a fresh token"), "{e}");

    // token status still reports, then exits 4.
    let o = run(door(), &["--token-file", tf_s, "token", "status"]);
    let e = fails(&o, AUTH);
    let report = out(&o);
    assert!(
        report.contains("token (used)")
            && report.contains("subject: alice")
            && report.contains("expired 1 h"),
        "{report}"
    );
    assert!(e.contains(&format!("write a fresh token to {tf_s}")), "{e}");
    let o = run(door(), &["--token-file", tf_s, "--json", "token", "status"]);
    fails(&o, AUTH);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["used"]["subject"], "alice");

    // A valid one: printed, and with --json one object with its expiry in UTC.
    let exp = now() + 7200;
    let fresh = jwt("alice", exp);
    std::fs::write(&tf, &fresh).unwrap();
    let o = run(door(), &["--token-file", tf_s, "print-token"]);
    assert_eq!(ok(&o), format!("{fresh}\n"));
    ok(&run(door(), &["--token-file", tf_s, "token", "status"]));
    let o = run(door(), &["--token-file", tf_s, "print-token", "--json"]);
    let text = ok(&o);
    let v: serde_json::Value =
        serde_json::from_str(&text).expect("exactly one JSON value on stdout");
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 3, "{text}");
    assert_eq!(v["token"], fresh.as_str());
    assert_eq!(v["source"], format!("flag --token-file ({tf_s})"));
    let expected = time::OffsetDateTime::from_unix_timestamp(exp)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(v["expires_at"], expected.as_str());
    // An opaque token: its expiry is unknown.
    std::fs::write(&tf, "opaque-token\n").unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&run(
        door(),
        &["--token-file", tf_s, "--json", "print-token"],
    )))
    .unwrap();
    assert_eq!(
        (v["token"].as_str(), v["expires_at"].is_null()),
        (Some("opaque-token"), true)
    );

    // print-token on the platform profile: not a bearer chain, and no login hint.
    let mut c = env.cmd();
    c.env("JUPYTERHUB_API_TOKEN", HUB_TOKEN);
    let o = run(c, &["print-token"]);
    let e = fails(&o, CONFIG);
    assert_eq!(out(&o), "");
    assert!(
        e.contains("profile 'platform'") && e.contains("--profile cta print-token"),
        "{e}"
    );
    assert!(!e.contains(HUB_TOKEN));
}
