//! `ctadata-xrootd-pair`: two private XRootD servers (see `ctadata_testsupport::xrootd`)
//! over TLS with the HTTP-TPC plugin, trusting one test CA and one token issuer, for the
//! third-party copy benchmark (bench/tpc.sh) and for trying copies by hand.
//!
//! ```text
//! ctadata-xrootd-pair [--stop-at-eof]
//! ```
//!
//! Once serving, it prints `KEY=VALUE` lines on stdout: `A_URL`, `A_ROOT`, `B_URL`,
//! `B_ROOT` (the exported directories, owned by the server's user), `CA_FILE`,
//! `TOKEN_FILE` (a private file holding a read-write token valid for 12 hours on both),
//! `SERVER_USER` (the user the servers run as), then `READY=1`; it serves until SIGINT,
//! SIGTERM or SIGHUP (or the end of stdin with `--stop-at-eof`), then stops both servers
//! and removes their directories. No commands are read from stdin.

use std::process::ExitCode;

use ctadata_testsupport::standalone;
use ctadata_testsupport::xrootd::{AUDIENCE, READ_WRITE};
use ctadata_testsupport::{TestCa, Xrootd};

fn main() -> ExitCode {
    let mut stop_at_eof = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--stop-at-eof" => stop_at_eof = true,
            _ => {
                eprintln!("usage: ctadata-xrootd-pair [--stop-at-eof]");
                return ExitCode::from(2);
            }
        }
    }
    let signals = standalone::block_signals();
    let dir = tempfile::Builder::new()
        .prefix("ctadata-xrootd-pair-")
        .tempdir()
        .expect("create a temporary directory");
    let ca = TestCa::new();
    let (a, b) = match Xrootd::start_pair(&ca) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ctadata-xrootd-pair: cannot start xrootd: {e}");
            return ExitCode::from(1);
        }
    };
    let token = a.token(READ_WRITE, AUDIENCE, 12 * 3600);
    let token_file = match standalone::write_private(dir.path(), "token", &token) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ctadata-xrootd-pair: cannot write the token file: {e}");
            return ExitCode::from(1);
        }
    };
    // SAFETY: geteuid(2) has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "xrootd"
    } else {
        "-"
    };
    standalone::announce(&[
        ("A_URL", a.url()),
        ("A_ROOT", a.root().display().to_string()),
        ("B_URL", b.url()),
        ("B_ROOT", b.root().display().to_string()),
        ("CA_FILE", ca.ca_cert_path().display().to_string()),
        ("TOKEN_FILE", token_file.display().to_string()),
        ("SERVER_USER", user.to_string()),
    ]);
    standalone::serve_commands(signals, stop_at_eof, |w| {
        Err(format!("unknown command '{}'", w[0]))
    });
    drop((a, b));
    ExitCode::SUCCESS
}
