//! Tape (issue 14): `stage`, `stage status`, `stage cancel`, `release`, `archiveinfo` and
//! `get --stage`, run as the real binary against the dCache door double's WLCG Tape REST
//! API (staging that takes time, a file that fails to stage, `Retry-After`, no API).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Locality, Side};
use tempfile::TempDir;

const TOKEN: &str = "tape-test-t0ken-Zq9";
const AUTH: i32 = 4;
const UNSUPPORTED: i32 = 11;
const PARTIAL: i32 = 13;
const TAPE: i32 = 14;

struct Env {
    tmp: TempDir,
    door: DcacheDouble,
}

impl Env {
    fn new() -> Env {
        let door = DcacheDouble::start(DcacheConfig {
            token: Some(TOKEN.into()),
            ..Default::default()
        });
        door.tape_stage_delay(Duration::from_millis(600));
        let e = Env {
            tmp: TempDir::new().unwrap(),
            door,
        };
        for d in ["home", "work", "local"] {
            std::fs::create_dir_all(e.path(d)).unwrap();
        }
        std::fs::write(
            e.path("config.toml"),
            format!(
                "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\n[profiles.loc]\nbackend = \"local\"\nroot = \"{}\"\n",
                e.door.url(),
                e.path("local").display()
            ),
        )
        .unwrap();
        e
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A file on tape only.
    fn on_tape(&self, path: &str, body: &[u8]) {
        self.door.put_file(path, body);
        self.door.set_locality(path, Locality::Nearline);
    }

    fn cmd(&self, profile: &str, token: bool) -> Command {
        let mut c = Command::new("timeout");
        c.arg("90")
            .arg(cargo_bin("cta-data"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("home"))
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", profile])
            .stdin(Stdio::null());
        if token {
            c.env("BEARER_TOKEN", TOKEN);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd("door", true).args(args).output().unwrap()
    }

    /// The paths of the stage requests the door received.
    fn stage_posts(&self) -> usize {
        self.door
            .stats()
            .log
            .iter()
            .filter(|r| r.method == "POST" && r.path_and_query == "/api/v1/tape/stage")
            .count()
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

/// The one JSON document on stdout, checked against `docs/json/tape.schema.json` (or
/// `error.schema.json` / `transfer.schema.json` for those shapes).
fn json(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out(o), err(o)));
    let schema = if v.get("error").is_some() {
        "error.schema.json"
    } else if v.get("transferred").is_some() {
        "transfer.schema.json"
    } else {
        "tape.schema.json"
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/json")
        .join(schema)
        .canonicalize()
        .unwrap();
    let mut schemas = boon::Schemas::new();
    let idx = boon::Compiler::new()
        .compile(path.to_str().unwrap(), &mut schemas)
        .unwrap_or_else(|e| panic!("{schema}: {e:#}"));
    if let Err(e) = schemas.validate(&v, idx) {
        panic!("{schema}: {e:#}\n{v:#}");
    }
    v
}

#[test]
fn stage_status_release_and_archiveinfo_with_spaces_and_non_ascii() {
    let e = Env::new();
    e.on_tape("/cta/tape dir/a b.dat", b"first file");
    e.on_tape("/cta/tape dir/é ü.dat", b"second");
    e.door.put_file("/cta/tape dir/online.dat", b"on disk");

    let info = json(&e.run(&[
        "--json",
        "archiveinfo",
        "/cta/tape dir/a b.dat",
        "/cta/tape dir/online.dat",
    ]));
    assert_eq!(info["command"], "archiveinfo");
    assert_eq!(info["files"][0]["path"], "/cta/tape dir/a b.dat");
    assert_eq!(info["files"][0]["locality"], "TAPE");
    assert_eq!(info["files"][1]["locality"], "DISK");

    let o = e.run(&[
        "stage",
        "--pin",
        "1d",
        "/cta/tape dir/a b.dat",
        "/cta/tape dir/é ü.dat",
    ]);
    let id = ok(&o).trim().to_string();
    assert!(!id.is_empty() && !id.contains(' '), "{id}");
    assert!(
        err(&o).contains(&format!("cta-data stage status {id}")),
        "{}",
        err(&o)
    );
    let made = e.door.tape_requests();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].0, id);
    assert_eq!(
        made[0].1,
        vec![
            "/cta/tape dir/a b.dat".to_string(),
            "/cta/tape dir/é ü.dat".to_string()
        ]
    );
    assert_eq!(made[0].2.as_deref(), Some("P1D"));

    // At once: still being staged.
    let st = json(&e.run(&["--json", "stage", "status", &id]));
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["files"][0]["state"], "STARTED");
    assert_eq!(st["files"][0]["path"], "/cta/tape dir/a b.dat");
    assert_eq!(st["on_disk"], 0);

    // Then on disk.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = ok(&e.run(&["stage", "status", &id]));
        if text.contains("2 of 2 on disk") {
            assert!(
                text.contains("COMPLETED  yes     /cta/tape dir/é ü.dat"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never on disk: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let info = ok(&e.run(&[
        "archiveinfo",
        "/cta/tape dir/a b.dat",
        "/cta/tape dir/é ü.dat",
    ]));
    assert!(
        info.contains("DISK_AND_TAPE  /cta/tape dir/a b.dat"),
        "{info}"
    );
    // `list -l` and `stat` show the new locality.
    let l = ok(&e.run(&["list", "-l", "/cta/tape dir"]));
    assert!(l.contains("ONLINE_AND_NEARLINE a b.dat"), "{l}");
    let s = ok(&e.run(&["stat", "/cta/tape dir/é ü.dat"]));
    assert!(s.contains("locality: ONLINE_AND_NEARLINE"), "{s}");

    let r = json(&e.run(&["--json", "release", &id, "/cta/tape dir/a b.dat"]));
    assert_eq!(r["command"], "release");
    assert_eq!(r["paths"][0], "/cta/tape dir/a b.dat");
    assert_eq!(
        e.door.tape_released(),
        vec!["/cta/tape dir/a b.dat".to_string()]
    );
    // Without paths: every file of the request.
    ok(&e.run(&["release", &id]));
    assert_eq!(e.door.tape_released().len(), 3);

    // Every tape request carried the token; none of it reached a log line.
    let stats = e.door.stats();
    let tape_reqs: Vec<_> = stats
        .log
        .iter()
        .filter(|r| {
            r.path_and_query.starts_with("/api/v1/tape")
                || r.path_and_query.starts_with("/.well-known")
        })
        .collect();
    assert!(tape_reqs.len() >= 6);
    assert!(tape_reqs
        .iter()
        .all(|r| r.authorization && r.side == Side::Door));
}

#[test]
fn stage_json_cancel_delete_and_a_file_named_like_a_subcommand() {
    let e = Env::new();
    e.on_tape("/status", b"a file named status");
    e.on_tape("/cta/long.dat", b"long");
    e.door.tape_never_online("/cta/long.dat");
    let o = json(&e.run(&["--json", "stage", "./status", "/cta/long.dat"]));
    assert_eq!(o["command"], "stage");
    assert_eq!(o["files"][0], "/status");
    let id = o["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        e.door.tape_requests()[0].1,
        vec!["/status", "/cta/long.dat"]
    );

    let c = json(&e.run(&["--json", "stage", "cancel", &id, "/cta/long.dat"]));
    assert_eq!(c["command"], "stage cancel");
    assert_eq!(c["paths"][0], "/cta/long.dat");
    let st = json(&e.run(&["--json", "stage", "status", &id]));
    assert_eq!(st["files"][1]["state"], "CANCELLED");
    let d = json(&e.run(&["--json", "stage", "delete", &id]));
    assert_eq!(d["command"], "stage delete");
    let gone = e.run(&["stage", "status", &id]);
    assert_eq!(gone.status.code(), Some(TAPE), "{}", err(&gone));

    // `stage status` without an id is a usage error, not a file named "status".
    let bad = e.run(&["stage", "status"]);
    assert_eq!(bad.status.code(), Some(2), "{}", err(&bad));
    // After a path, `status` is a path too (a file at the root).
    let o = e.run(&["stage", "/cta/long.dat", "status"]);
    ok(&o);
    assert_eq!(
        e.door.tape_requests()[1].1,
        vec!["/cta/long.dat", "/status"]
    );
}

#[test]
fn stage_recursive_waits_with_a_progress_line() {
    let e = Env::new();
    e.on_tape("/cta/rw/x.dat", b"x");
    e.on_tape("/cta/rw/sub/y.dat", b"y");
    let o = e.run(&["stage", "-r", "--wait", "/cta/rw"]);
    let id = ok(&o).trim().to_string();
    let text = err(&o);
    assert!(text.contains("staging: 0 of 2 on disk"), "{text}");
    assert!(text.contains("staging: 2 of 2 on disk"), "{text}");
    let made = e.door.tape_requests();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].0, id);
    let mut paths = made[0].1.clone();
    paths.sort();
    assert_eq!(paths, vec!["/cta/rw/sub/y.dat", "/cta/rw/x.dat"]);

    // --json, with a file that fails: the document names it; exit 13 (one of two failed).
    e.on_tape("/cta/rw2/ok.dat", b"ok");
    e.on_tape("/cta/rw2/bad.dat", b"bad");
    e.door.tape_fail("/cta/rw2/bad.dat", "cartridge missing");
    let o = e.run(&["--json", "stage", "-r", "--wait", "/cta/rw2"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    let v = json(&o);
    assert_eq!(v["on_disk"][0], "/cta/rw2/ok.dat");
    assert_eq!(v["failed"][0]["path"], "/cta/rw2/bad.dat");
    assert!(
        v["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cartridge missing"),
        "{v}"
    );
}

#[test]
fn get_stage_of_a_tree_stages_once_downloads_as_files_come_and_reports_the_failure() {
    let e = Env::new();
    let files = [
        ("/cta/run 1/a.dat", "alpha bytes".repeat(100)),
        ("/cta/run 1/β.dat", "beta".repeat(1000)),
        ("/cta/run 1/sub/c.dat", "gamma".repeat(10)),
    ];
    for (p, body) in &files {
        e.on_tape(p, body.as_bytes());
    }
    e.door.put_file("/cta/run 1/online.dat", b"already on disk");
    e.door
        .tape_fail("/cta/run 1/sub/c.dat", "tape CTA0042 is unreadable");
    // A read of a file still on tape would hang, as dCache's does.
    e.door.nearline_get_delay(Some(Duration::from_secs(600)));

    let started = Instant::now();
    let o = e.run(&["--json", "get", "-r", "--stage", "/cta/run 1", "out"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    assert!(started.elapsed() < Duration::from_secs(30));
    let summary = json(&o);
    assert_eq!(summary["transferred"], 3, "{summary}");
    assert_eq!(summary["failed"], 1);
    let reason = summary["failures"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("tape CTA0042 is unreadable"), "{reason}");
    assert!(reason.contains("/cta/run 1/sub/c.dat"), "{reason}");
    assert_eq!(summary["failures"][0]["exit_code"], TAPE);

    let out_dir = e.path("work/out");
    for (p, body) in &files[..2] {
        let local = out_dir.join(p.trim_start_matches("/cta/run 1/"));
        assert_eq!(std::fs::read(&local).unwrap(), body.as_bytes(), "{p}");
    }
    assert_eq!(
        std::fs::read(out_dir.join("online.dat")).unwrap(),
        b"already on disk"
    );
    assert!(!out_dir.join("sub/c.dat").exists());
    assert!(!out_dir.join("sub/c.dat.part").exists());

    // One bulk request for the three files on tape; the file on disk was not in it.
    assert_eq!(e.stage_posts(), 1);
    let mut staged = e.door.tape_requests()[0].1.clone();
    staged.sort();
    assert_eq!(
        staged,
        vec![
            "/cta/run 1/a.dat",
            "/cta/run 1/sub/c.dat",
            "/cta/run 1/β.dat"
        ]
    );
    // The file on disk was read before staging ended (at once).
    let log = e.door.stats().log;
    let first_online = log
        .iter()
        .position(|r| {
            r.side == Side::Pool && r.path_and_query.starts_with("/cta/run%201/online.dat")
        })
        .expect("online.dat read");
    let last_status = log
        .iter()
        .rposition(|r| r.method == "GET" && r.path_and_query.starts_with("/api/v1/tape/stage/"))
        .expect("polled");
    assert!(
        first_online < last_status,
        "the file on disk waited for staging"
    );

    // The same without --json: a progress line and the failure on stderr.
    let e2 = Env::new();
    e2.on_tape("/cta/r/a.dat", b"a");
    e2.on_tape("/cta/r/b.dat", b"b");
    e2.door.tape_fail("/cta/r/b.dat", "no such tape");
    let o = e2.run(&["get", "-r", "--stage", "/cta/r", "o"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    let text = err(&o);
    assert!(text.contains("staging: 0 of 2 on disk"), "{text}");
    assert!(text.contains("staging: 1 of 2 on disk, 1 failed"), "{text}");
    assert!(text.contains("no such tape"), "{text}");
    assert_eq!(std::fs::read(e2.path("work/o/a.dat")).unwrap(), b"a");
}

#[test]
fn get_stage_of_one_file_waits_for_it_then_downloads() {
    let e = Env::new();
    e.on_tape("/cta/one ö.dat", b"single staged file");
    e.door.nearline_get_delay(Some(Duration::from_secs(600)));
    e.door.tape_stage_delay(Duration::from_millis(1500));
    e.door.tape_retry_after(1);
    let o = e.run(&["get", "--stage", "/cta/one ö.dat"]);
    ok(&o);
    // Polled as the server asked (Retry-After: 1) over 1.5 s: at once, then about every
    // second; not in a tight loop.
    let polls = e
        .door
        .stats()
        .log
        .iter()
        .filter(|r| r.method == "GET" && r.path_and_query.starts_with("/api/v1/tape/stage/"))
        .count();
    assert!((2..=4).contains(&polls), "{polls} status requests");
    assert_eq!(
        std::fs::read(e.path("work/one ö.dat")).unwrap(),
        b"single staged file"
    );
    assert!(err(&o).contains("staging: 1 of 1 on disk"), "{}", err(&o));
}

#[test]
fn get_without_stage_of_a_file_on_tape_fails_at_once() {
    let e = Env::new();
    e.on_tape("/cta/cold/t.dat", b"on tape");
    e.door.put_file("/cta/cold/warm.dat", b"warm");
    e.door.nearline_get_delay(Some(Duration::from_secs(600)));
    let started = Instant::now();
    let o = e.run(&["get", "/cta/cold/t.dat"]);
    assert_eq!(o.status.code(), Some(TAPE), "{}", err(&o));
    assert!(started.elapsed() < Duration::from_secs(20));
    let text = err(&o);
    assert!(text.contains("/cta/cold/t.dat is on tape"), "{text}");
    assert!(
        text.contains("--stage") && text.contains("cta-data stage /cta/cold/t.dat"),
        "{text}"
    );
    assert!(!e.path("work/t.dat").exists());
    assert!(!e.path("work/t.dat.part").exists());
    // No read was even tried.
    assert!(!e
        .door
        .stats()
        .log
        .iter()
        .any(|r| r.method == "GET" && r.path_and_query.contains("t.dat")));

    // In a tree: that file fails, the others go on.
    let o = e.run(&["get", "-r", "/cta/cold", "tree"]);
    assert_eq!(o.status.code(), Some(PARTIAL), "{}", err(&o));
    assert!(err(&o).contains("is on tape"), "{}", err(&o));
    assert_eq!(
        std::fs::read(e.path("work/tree/warm.dat")).unwrap(),
        b"warm"
    );
    assert!(!e.path("work/tree/t.dat.part").exists());
}

#[test]
fn a_stage_timeout_names_the_files_still_on_tape_and_the_request() {
    let e = Env::new();
    e.on_tape("/cta/slow.dat", b"never");
    e.door.tape_never_online("/cta/slow.dat");
    let started = Instant::now();
    let o = e.run(&["get", "--stage", "--stage-timeout", "2s", "/cta/slow.dat"]);
    assert_eq!(o.status.code(), Some(TAPE), "{}", err(&o));
    assert!(started.elapsed() < Duration::from_secs(20));
    let id = e.door.tape_requests()[0].0.clone();
    let text = err(&o);
    assert!(
        text.contains("/cta/slow.dat is still on tape after 2.0 s"),
        "{text}"
    );
    assert!(
        text.contains(&format!("cta-data stage status {id}")),
        "{text}"
    );
    assert!(!e.path("work/slow.dat.part").exists());
}

#[test]
fn no_tape_api_and_unknown_requests_are_clear() {
    let e = Env::new();
    e.door.put_file("/cta/x.dat", b"x");
    let o = e.run(&["stage", "status", "does-not-exist"]);
    assert_eq!(o.status.code(), Some(TAPE), "{}", err(&o));
    assert!(
        err(&o).contains("no stage request 'does-not-exist'"),
        "{}",
        err(&o)
    );
    let j = e.run(&["--json", "stage", "status", "does-not-exist"]);
    assert_eq!(json(&j)["error"]["kind"], "tape");

    e.door.tape_no_api(true);
    let o = e.run(&["stage", "/cta/x.dat"]);
    assert_eq!(o.status.code(), Some(TAPE), "{}", err(&o));
    assert!(
        err(&o).contains("this storage has no tape REST API"),
        "{}",
        err(&o)
    );
    let o = e.run(&["archiveinfo", "/cta/x.dat"]);
    assert_eq!(o.status.code(), Some(TAPE), "{}", err(&o));
}

#[test]
fn the_local_backend_says_unsupported_and_names_a_profile_that_has_it() {
    let e = Env::new();
    for args in [
        vec!["stage", "x"],
        vec!["stage", "status", "id"],
        vec!["archiveinfo", "x"],
        vec!["release", "id"],
        vec!["get", "--stage", "x"],
    ] {
        let o = e.cmd("loc", false).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(UNSUPPORTED), "{args:?}: {}", err(&o));
        assert!(err(&o).contains("--profile cta"), "{args:?}: {}", err(&o));
    }
}

#[test]
fn the_token_is_needed_and_never_shown() {
    let e = Env::new();
    e.on_tape("/cta/sec.dat", b"secret data");
    let o = e
        .cmd("door", false)
        .args(["stage", "/cta/sec.dat"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));

    let o = e.run(&["-vvv", "get", "--stage", "/cta/sec.dat"]);
    ok(&o);
    let o2 = e.run(&["-vvv", "archiveinfo", "/cta/sec.dat"]);
    ok(&o2);
    for o in [&o, &o2] {
        let all = format!("{}{}", out(o), err(o));
        assert!(
            all.contains("tape request"),
            "no debug lines of the tape API: {all}"
        );
        assert!(!all.contains(TOKEN), "the token leaked: {all}");
    }
}

#[test]
fn the_api_on_a_frontend_port_of_the_same_host_gets_the_token_over_https() {
    let door = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        tls: true,
        tape_frontend: true,
        ..Default::default()
    });
    door.tape_stage_delay(Duration::from_millis(300));
    let ca = door.ca().unwrap().ca_cert_path();
    let e = Env::new();
    std::fs::write(
        e.path("config.toml"),
        format!(
            "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\nca_file = \"{}\"\n",
            door.url(),
            ca.display()
        ),
    )
    .unwrap();
    door.put_file("/cta/f.dat", b"behind the frontend");
    door.set_locality("/cta/f.dat", Locality::Nearline);
    let o = e.run(&["get", "--stage", "/cta/f.dat"]);
    ok(&o);
    assert_eq!(
        std::fs::read(e.path("work/f.dat")).unwrap(),
        b"behind the frontend"
    );
    // The door itself serves no tape API here: the client went where discovery said.
    let log = door.stats().log;
    assert!(log
        .iter()
        .any(|r| r.path_and_query == "/api/v1/tape/stage" && r.status == 201 && r.authorization));
    assert!(!log
        .iter()
        .any(|r| r.path_and_query.starts_with("/api/") && r.status == 404));
}

#[test]
fn no_token_goes_to_a_tape_endpoint_off_the_doors_https_origin() {
    // Plain http, the API on another port: the token stays home, and the error says why.
    let door = DcacheDouble::start(DcacheConfig {
        token: Some(TOKEN.into()),
        tape_frontend: true,
        ..Default::default()
    });
    let e = Env::new();
    std::fs::write(
        e.path("config.toml"),
        format!(
            "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\n",
            door.url()
        ),
    )
    .unwrap();
    door.put_file("/cta/f.dat", b"x");
    let o = e.run(&["stage", "/cta/f.dat"]);
    assert_eq!(o.status.code(), Some(AUTH), "{}", err(&o));
    assert!(
        err(&o).contains("only to the door's host over https"),
        "{}",
        err(&o)
    );
    let log = door.stats().log;
    let api: Vec<_> = log
        .iter()
        .filter(|r| r.path_and_query.starts_with("/api/"))
        .collect();
    assert!(!api.is_empty() && api.iter().all(|r| !r.authorization));
}
