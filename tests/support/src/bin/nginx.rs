//! `ctadata-nginx`: a private nginx WebDAV server (see `ctadata_testsupport::nginx`) as a
//! standalone server, for the Python tests and for trying clients by hand.
//!
//! ```text
//! ctadata-nginx [--token-file FILE] [--tls] [--stop-at-eof]
//! ```
//!
//! * Plain `http` without authentication by default. `--token-file FILE`: every request
//!   needs `Authorization: Bearer <the file's token>`, else `401`. `--tls`: `https` with a
//!   throw-away CA, whose certificate is printed as `CA_FILE`. `--stop-at-eof`: the end of
//!   stdin stops it as a signal does.
//!
//! Once serving, it prints `KEY=VALUE` lines on stdout (`URL`, `ROOT` (the served
//! directory, fresh and empty), `CA_FILE` with `--tls`, then `READY=1`) and serves until
//! SIGINT, SIGTERM or SIGHUP, then stops nginx, removes its temporary directories and exits 0.
//!
//! Commands on stdin (one line each, answered `OK [payload]` or `ERR reason`, see
//! `ctadata_testsupport::standalone`): `access_log` answers `OK ["<line>"...]`, one line a
//! request (`METHOD "URI" STATUS range=... auth=auth|- ...`, never a token).

use std::process::ExitCode;

use ctadata_testsupport::standalone;
use ctadata_testsupport::{Nginx, NginxOptions, TestCa};

const USAGE: &str = "usage: ctadata-nginx [--token-file FILE] [--tls] [--stop-at-eof]";

fn main() -> ExitCode {
    let mut token = None;
    let mut tls = false;
    let mut stop_at_eof = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tls" => tls = true,
            "--stop-at-eof" => stop_at_eof = true,
            "--token-file" => {
                let Some(f) = it.next() else {
                    eprintln!("ctadata-nginx: --token-file needs a value\n{USAGE}");
                    return ExitCode::from(2);
                };
                match std::fs::read_to_string(&f) {
                    Ok(t) => token = Some(t.trim().to_string()),
                    Err(e) => {
                        eprintln!("ctadata-nginx: cannot read {f}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("ctadata-nginx: unknown argument '{a}'\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let signals = standalone::block_signals();
    let dir = tempfile::Builder::new()
        .prefix("ctadata-nginx-")
        .tempdir()
        .expect("create a temporary directory");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("create the served directory");
    let ca = tls.then(TestCa::new);
    let nginx = match Nginx::start_with(
        &root,
        NginxOptions {
            token,
            tls: ca.as_ref(),
        },
    ) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ctadata-nginx: cannot start nginx: {e}");
            return ExitCode::from(1);
        }
    };
    let mut pairs = vec![
        ("URL", nginx.url()),
        ("ROOT", nginx.root().display().to_string()),
    ];
    if let Some(ca) = &ca {
        pairs.push(("CA_FILE", ca.ca_cert_path().display().to_string()));
    }
    standalone::announce(&pairs);

    standalone::serve_commands(signals, stop_at_eof, |w| match w[0] {
        "access_log" => Ok(serde_json::Value::from(nginx.access_log_lines()).to_string()),
        other => Err(format!("unknown command '{other}'")),
    });
    drop(nginx);
    ExitCode::SUCCESS
}
