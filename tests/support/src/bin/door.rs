//! `ctadata-door`: the dCache door double as a standalone server, for benchmarks and for trying
//! cta-data (or curl, davix, rclone) by hand against it.
//!
//! ```text
//! ctadata-door [--synthetic PATH=N]... [--token-file FILE] [--no-tls] [--stop-at-eof]
//! ```
//!
//! * `--synthetic /cta/huge=1000000`: a directory whose `Depth: 1` listing streams N file
//!   entries (`entry-0000000.dat` ...) without holding them; repeatable.
//! * The bearer token the door requires is read from `--token-file FILE`, else from the
//!   variable `CTADATA_DOOR_TOKEN`; with neither, a random one is written to a private file
//!   whose path is printed as `TOKEN_FILE`.
//! * TLS is on unless `--no-tls`; the CA certificate a client must trust is printed as
//!   `CA_FILE`.
//! * `--stop-at-eof`: the end of stdin stops the door as a signal does.
//!
//! Once serving, it prints `KEY=VALUE` lines on stdout (`URL`, `POOL_URL`, `CA_FILE`,
//! `ROOT`, `TOKEN_FILE` when generated, then `READY=1`) and serves until SIGINT, SIGTERM or
//! SIGHUP, after which it removes its temporary directories and exits 0. `ROOT` is the
//! backing directory: the namespace path `/cta/x` is the file `ROOT/cta/x`.
//!
//! Commands on stdin (one line each, answered `OK [payload]` or `ERR reason`, see
//! `ctadata_testsupport::standalone`), the double's fault switches:
//!
//! * `set_token TOKEN` (the door now requires TOKEN: the old one has "expired");
//!   `set_token -` (no token required)
//! * `fail_next STATUS COUNT`, `fail_next_pool STATUS COUNT`: the door (pool) answers STATUS
//!   to the next COUNT requests
//! * `truncate_next_get BYTES`: the next pool GET sends BYTES bytes of the announced length,
//!   then closes the connection
//! * `corrupt_digest on|off`, `malformed_propfind on|off`, `full on|off` (every PUT `507`)
//! * `strict_header_case on|off`: XRootD 5.5.3's case-sensitive header names (a lowercase
//!   `depth`, `range`, `want-digest`, `destination`, `overwrite`, `authorization` is ignored)
//! * `hang_empty_put on|off`: a PUT of 0 bytes with `Expect: 100-continue` gets `100` and
//!   then no final status
//! * `raw_hrefs on|off`: listing hrefs XML-escaped but not percent-encoded
//! * `unasked_digest on|off`: every pool GET carries a wrong `Digest` (another file's)
//! * `broken_open_range on|off`: `Range: bytes=N-` gets `206`, no body and
//!   `Content-Range: bytes N--1/SIZE`
//! * `xrootd_namespace on|off`: PROPFIND of `FILE/` and DELETE of a non-empty directory
//!   give `500`, MKCOL answers `201` for an existing directory and makes parents, MOVE
//!   ignores `Overwrite: F`
//! * `cut_at_question_mark on|off`: request paths (and `Destination`) decoded and then cut
//!   at the first `?`: `/cta/r%3Fx.txt` reads, writes, deletes `/cta/r`; `PROPFIND`
//!   answers for it under the path asked for
//! * `locality PATH ONLINE|NEARLINE|ONLINE_AND_NEARLINE`
//! * `stats`: `OK {"door_requests": N, "pool_requests": N, "redirects": N,
//!   "pool_saw_authorization": B, "pool_sent_bytes": N, "log": [{"side", "method", "path",
//!   "status"}...]}`;
//!   `reset_stats`

use std::process::ExitCode;

use ctadata_testsupport::standalone::{self, number, on_off};
use ctadata_testsupport::{DcacheConfig, DcacheDouble, Locality, Side};

const USAGE: &str =
    "usage: ctadata-door [--synthetic PATH=N]... [--token-file FILE] [--no-tls] [--stop-at-eof]\n\
     The token comes from --token-file, else CTADATA_DOOR_TOKEN, else a generated TOKEN_FILE.";

struct Args {
    synthetic: Vec<(String, usize)>,
    token_file: Option<String>,
    tls: bool,
    stop_at_eof: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut out = Args {
        synthetic: Vec::new(),
        token_file: None,
        tls: true,
        stop_at_eof: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{name} needs a value"))
        };
        match key.as_str() {
            "--synthetic" => {
                let v = value("--synthetic")?;
                let (path, n) = v
                    .rsplit_once('=')
                    .ok_or(format!("--synthetic takes PATH=N, not '{v}'"))?;
                let n = n
                    .parse()
                    .map_err(|_| format!("--synthetic: '{n}' is not a count"))?;
                if !path.starts_with('/') {
                    return Err(format!("--synthetic: '{path}' is not an absolute path"));
                }
                out.synthetic.push((path.to_string(), n));
            }
            "--token-file" => out.token_file = Some(value("--token-file")?),
            "--no-tls" => out.tls = false,
            "--stop-at-eof" => out.stop_at_eof = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ctadata-door: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut generated = None;
    let token = match (&args.token_file, std::env::var("CTADATA_DOOR_TOKEN")) {
        (Some(f), _) => match std::fs::read_to_string(f) {
            Ok(t) => t.trim().to_string(),
            Err(e) => {
                eprintln!("ctadata-door: cannot read {f}: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Ok(t)) => t.trim().to_string(),
        (None, Err(_)) => {
            let t = uuid::Uuid::new_v4().simple().to_string();
            generated = Some(t.clone());
            t
        }
    };
    if token.is_empty() {
        eprintln!("ctadata-door: the token is empty");
        return ExitCode::from(2);
    }

    let signals = standalone::block_signals();
    let door = DcacheDouble::start(DcacheConfig {
        tls: args.tls,
        token: Some(token),
        ..Default::default()
    });
    for (path, n) in &args.synthetic {
        door.synthetic_dir(path, *n);
    }
    let mut pairs = Vec::new();
    // Kept alive (and removed at exit) with the door.
    let _token_dir = match generated {
        Some(t) => {
            let dir = tempfile::Builder::new()
                .prefix("ctadata-door-")
                .tempdir()
                .expect("create a directory for the token");
            let path =
                standalone::write_private(dir.path(), "token", &t).expect("write the token file");
            pairs.push(("TOKEN_FILE", path.display().to_string()));
            Some(dir)
        }
        None => None,
    };
    pairs.push(("URL", door.url()));
    pairs.push(("POOL_URL", door.pool_url()));
    if let Some(ca) = door.ca() {
        pairs.push(("CA_FILE", ca.ca_cert_path().display().to_string()));
    }
    pairs.push(("ROOT", door.root().display().to_string()));
    standalone::announce(&pairs);

    standalone::serve_commands(signals, args.stop_at_eof, |w| command(&door, w));
    drop(door);
    ExitCode::SUCCESS
}

/// One command of stdin (see the module documentation).
fn command(door: &DcacheDouble, w: &[&str]) -> Result<String, String> {
    match w[0] {
        "set_token" => match w.get(1) {
            Some(&"-") => door.set_token(None),
            Some(t) => door.set_token(Some(t.to_string())),
            None => return Err("set_token takes TOKEN or -".into()),
        },
        "fail_next" => door.fail_next(number(w, 1)?, number(w, 2)?),
        "fail_next_pool" => door.fail_next_pool(number(w, 1)?, number(w, 2)?),
        "truncate_next_get" => door.truncate_next_get(number(w, 1)?),
        "corrupt_digest" => door.corrupt_digest(on_off(w, 1)?),
        "malformed_propfind" => door.malformed_propfind(on_off(w, 1)?),
        "full" => door.set_full(on_off(w, 1)?),
        "strict_header_case" => door.strict_header_case(on_off(w, 1)?),
        "hang_empty_put" => door.hang_empty_put(on_off(w, 1)?),
        "raw_hrefs" => door.raw_hrefs(on_off(w, 1)?),
        "unasked_digest" => door.unasked_digest(on_off(w, 1)?),
        "broken_open_range" => door.broken_open_range(on_off(w, 1)?),
        "xrootd_namespace" => door.xrootd_namespace(on_off(w, 1)?),
        "cut_at_question_mark" => door.cut_at_question_mark(on_off(w, 1)?),
        "locality" => {
            let loc = match w.get(2) {
                Some(&"ONLINE") => Locality::Online,
                Some(&"NEARLINE") => Locality::Nearline,
                Some(&"ONLINE_AND_NEARLINE") => Locality::OnlineAndNearline,
                _ => return Err("locality takes PATH ONLINE|NEARLINE|ONLINE_AND_NEARLINE".into()),
            };
            door.set_locality(w[1], loc);
        }
        "reset_stats" => door.reset_stats(),
        "stats" => {
            let s = door.stats();
            let log: Vec<_> = s
                .log
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "side": match r.side { Side::Door => "door", Side::Pool => "pool" },
                        "method": r.method,
                        "path": r.path_and_query,
                        "status": r.status,
                    })
                })
                .collect();
            return Ok(serde_json::json!({
                "door_requests": s.door_requests,
                "pool_requests": s.pool_requests,
                "redirects": s.redirects,
                "pool_saw_authorization": s.pool_saw_authorization,
                "pool_sent_bytes": s.pool_sent_bytes,
                "log": log,
            })
            .to_string());
        }
        other => return Err(format!("unknown command '{other}'")),
    }
    Ok(String::new())
}
