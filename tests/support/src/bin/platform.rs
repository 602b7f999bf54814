//! `ctadata-platform`: the JupyterHub platform double (the hub's `api/user`, the
//! downloadservice in front of a private nginx WebDAV server, the certificateservice) as a
//! standalone server, for the Python tests and for trying clients by hand.
//!
//! ```text
//! ctadata-platform [--stop-at-eof]
//! ```
//!
//! `--stop-at-eof`: the end of stdin stops it as a signal does.
//!
//! Hub users: `Alice.Smith` (both scopes; her token from `CTADATA_PLATFORM_TOKEN`, else
//! random), `root` (an administrator, may upload the shared certificate) and `Bob` (a valid
//! token without the services' scopes). Each token is in a private file. The
//! certificateservice trusts a throw-away grid CA; a valid RFC 3820 proxy file of a user it
//! issued (as `grid-proxy-init` writes it, 12 hours) is made at start.
//!
//! Once serving, it prints `KEY=VALUE` lines on stdout, then `READY=1`: `URL` (the hub),
//! `CTADS_URL` and `CTACS_URL` (the services, what the variables of the `platform` profile
//! hold), `ROOT` (the storage root on disk: the service path `lst/x` is `ROOT/lst/x`),
//! `USER_FOLDER` (where Alice's uploads land, relative to `ROOT`), `TOKEN_FILE`,
//! `ADMIN_TOKEN_FILE`, `NOSCOPE_TOKEN_FILE`, `GRID_CA_FILE`, `PROXY_FILE`. It serves until
//! SIGINT, SIGTERM or SIGHUP, then removes its temporary directories and exits 0.
//!
//! Commands on stdin (one line each, answered `OK [payload]` or `ERR reason`, see
//! `ctadata_testsupport::standalone`):
//!
//! * `fault list_not_json|list_html|upload_without_path|upload_truncated`,
//!   `fault fetch_short BYTES`: a one-shot misbehaviour of the next matching request
//! * `requests`: `OK [{"service", "method", "path", "authorization", "token_in_query",
//!   "status"}...]` (never a token)
//! * `certificates`: `OK [{"user", "key", "pem"}...]` (personal certificates stored);
//!   `shared_certificate`: `OK "<pem>"` or `OK null`
//! * `proxy_file FROM TO`: writes a new proxy file valid from now+FROM to now+TO seconds
//!   (negative for the past) and answers `OK <path>`

use std::process::ExitCode;

use ctadata_testsupport::downloadservice::certs::ProxyPki;
use ctadata_testsupport::standalone::{self, number};
use ctadata_testsupport::{Fault, HubUser, PlatformConfig, PlatformDouble, Scopes};

const USAGE: &str = "usage: ctadata-platform [--stop-at-eof]\n\
     Alice's token comes from CTADATA_PLATFORM_TOKEN, else a generated TOKEN_FILE.";

/// The hub user whose token `TOKEN_FILE` holds.
const USER: &str = "Alice.Smith";

fn main() -> ExitCode {
    let mut stop_at_eof = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--stop-at-eof" => stop_at_eof = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("ctadata-platform: unknown argument '{a}'\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let token = match std::env::var("CTADATA_PLATFORM_TOKEN") {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => standalone::random_token(),
    };
    let admin = standalone::random_token();
    let noscope = standalone::random_token();

    let signals = standalone::block_signals();
    let pki = ProxyPki::new("cta-data test grid CA");
    let grid_user = pki.user("Alice Smith", -3600, 86_400 * 365);
    let platform = match PlatformDouble::start(PlatformConfig {
        users: vec![
            HubUser::new(USER, &token),
            HubUser {
                admin: true,
                ..HubUser::new("root", &admin)
            },
            HubUser {
                scopes: Scopes::NONE,
                ..HubUser::new("Bob", &noscope)
            },
        ],
        trusted_ca_pem: vec![pki.ca_pem().to_string()],
        ..Default::default()
    }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ctadata-platform: cannot start the platform double: {e}");
            return ExitCode::from(1);
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("ctadata-platform-files-")
        .tempdir()
        .expect("create a directory for the token and certificate files");
    let file = |name: &str, text: &str| {
        standalone::write_private(dir.path(), name, text)
            .unwrap_or_else(|e| panic!("write {name} in {}: {e}", dir.path().display()))
            .display()
            .to_string()
    };
    let pairs = [
        ("URL", platform.url()),
        ("CTADS_URL", platform.downloadservice_url()),
        ("CTACS_URL", platform.certificateservice_url()),
        ("ROOT", platform.storage().display().to_string()),
        ("USER_FOLDER", platform.user_folder(USER)),
        ("TOKEN_FILE", file("token", &token)),
        ("ADMIN_TOKEN_FILE", file("admin-token", &admin)),
        ("NOSCOPE_TOKEN_FILE", file("noscope-token", &noscope)),
        ("GRID_CA_FILE", file("grid-ca.pem", pki.ca_pem())),
        (
            "PROXY_FILE",
            file("proxy.pem", &grid_user.proxy_file(-60, 12 * 3600)),
        ),
    ];
    standalone::announce(&pairs);

    let mut proxies = 0;
    standalone::serve_commands(signals, stop_at_eof, |w| match w[0] {
        "fault" => {
            let f = match w.get(1).copied() {
                Some("list_not_json") => Fault::ListNotJson,
                Some("list_html") => Fault::ListHtml,
                Some("upload_without_path") => Fault::UploadWithoutPath,
                Some("upload_truncated") => Fault::UploadTruncated,
                Some("fetch_short") => Fault::FetchShort(number(w, 2)?),
                _ => return Err("fault takes list_not_json, list_html, upload_without_path, upload_truncated or fetch_short BYTES".into()),
            };
            platform.push_fault(f);
            Ok(String::new())
        }
        "requests" => {
            let r: Vec<_> = platform
                .requests()
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "service": r.service,
                        "method": r.method,
                        "path": r.path_and_query,
                        "authorization": r.authorization,
                        "token_in_query": r.token_in_query,
                        "status": r.status,
                    })
                })
                .collect();
            Ok(serde_json::Value::from(r).to_string())
        }
        "certificates" => {
            let c: Vec<_> = platform
                .stored_certificates()
                .iter()
                .map(|c| serde_json::json!({"user": c.user, "key": c.key, "pem": c.pem}))
                .collect();
            Ok(serde_json::Value::from(c).to_string())
        }
        "shared_certificate" => Ok(serde_json::json!(platform.shared_certificate()).to_string()),
        "proxy_file" => {
            let (from, to): (i64, i64) = (number(w, 1)?, number(w, 2)?);
            proxies += 1;
            standalone::write_private(
                dir.path(),
                &format!("proxy-{proxies}.pem"),
                &grid_user.proxy_file(from, to),
            )
            .map(|p| p.display().to_string())
            .map_err(|e| format!("cannot write a proxy file in {}: {e}", dir.path().display()))
        }
        other => Err(format!("unknown command '{other}'")),
    });
    drop(platform);
    ExitCode::SUCCESS
}
