//! `ctadata-door`: the dCache door double as a standalone server, for benchmarks and for trying
//! cta-data (or curl, davix, rclone) by hand against it.
//!
//! ```text
//! ctadata-door [--synthetic PATH=N]... [--token-file FILE] [--no-tls]
//! ```
//!
//! * `--synthetic /cta/huge=1000000`: a directory whose `Depth: 1` listing streams N file
//!   entries (`entry-0000000.dat` ...) without holding them; repeatable.
//! * The bearer token the door requires is read from `--token-file FILE`, else from the
//!   variable `CTADATA_DOOR_TOKEN`; with neither, a random one is written to a private file
//!   whose path is printed as `TOKEN_FILE`.
//! * TLS is on unless `--no-tls`; the CA certificate a client must trust is printed as
//!   `CA_FILE`.
//!
//! Once serving, it prints `KEY=VALUE` lines on stdout (`URL`, `POOL_URL`, `CA_FILE`,
//! `ROOT`, `TOKEN_FILE` when generated, then `READY=1`) and serves until SIGINT, SIGTERM or
//! SIGHUP, after which it removes its temporary directories and exits 0.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use ctadata_testsupport::{DcacheConfig, DcacheDouble};

const USAGE: &str = "usage: ctadata-door [--synthetic PATH=N]... [--token-file FILE] [--no-tls]\n\
     The token comes from --token-file, else CTADATA_DOOR_TOKEN, else a generated TOKEN_FILE.";

struct Args {
    synthetic: Vec<(String, usize)>,
    token_file: Option<String>,
    tls: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut out = Args {
        synthetic: Vec::new(),
        token_file: None,
        tls: true,
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
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    Ok(out)
}

/// Blocks the termination signals in this thread (and so in every thread started after it),
/// to take them with `sigwait` instead of dying without cleanup.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: `set` is an initialised signal set, `sig` a valid out pointer.
    while unsafe { libc::sigwait(set, &mut sig) } != 0 {}
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

    let signals = block_signals();
    let door = DcacheDouble::start(DcacheConfig {
        tls: args.tls,
        token: Some(token),
        ..Default::default()
    });
    for (path, n) in &args.synthetic {
        door.synthetic_dir(path, *n);
    }
    // Kept alive (and removed at exit) with the door.
    let _token_dir = match generated {
        Some(t) => {
            let dir = tempfile::Builder::new()
                .prefix("ctadata-door-")
                .tempdir()
                .expect("create a directory for the token");
            let path = dir.path().join("token");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .expect("create the token file");
            f.write_all(t.as_bytes()).expect("write the token file");
            println!("TOKEN_FILE={}", path.display());
            Some(dir)
        }
        None => None,
    };
    println!("URL={}", door.url());
    println!("POOL_URL={}", door.pool_url());
    if let Some(ca) = door.ca() {
        println!("CA_FILE={}", ca.ca_cert_path().display());
    }
    println!("ROOT={}", door.root().display());
    println!("READY=1");
    let _ = std::io::stdout().flush();

    wait_for_signal(&signals);
    drop(door);
    ExitCode::SUCCESS
}
