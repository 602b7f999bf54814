//! A real OpenID provider on loopback: npm `oidc-provider` (9.x), run as
//! `node tests/oidc/provider.js` and set up like the CTAO Keycloak as far as a client can tell.
//!
//! * Discovery at `ISSUER/.well-known/openid-configuration` with
//!   `device_authorization_endpoint`, `token_endpoint`, `revocation_endpoint`,
//!   `introspection_endpoint` and `jwks_uri`; the issuer is `http://127.0.0.1:PORT`.
//! * One confidential client ([`OidcOptions::client_id`] / [`OidcOptions::client_secret`],
//!   `client_secret_basic`) with the device-code and refresh-token grants and the scopes
//!   `openid offline_access`; a device authorization request without `scope` gets
//!   `profile email`, as Keycloak's default client scopes (the library alone would deny it).
//! * Access tokens are RS256 JWTs (`typ: at+jwt`, `aud` [`AUDIENCE`], `sub` the approving
//!   user, `exp`, `iat`, `iss`, `client_id`, `scope`, `preferred_username`); every device-code
//!   grant gets an opaque refresh token (with or without `offline_access`) that rotates on
//!   each use; reusing a rotated one is `invalid_grant` and revokes the newest too.
//!   Token responses also carry `refresh_expires_in`, as Keycloak's do.
//! * Keycloak's polling rule: polling one device code again sooner than the advertised
//!   `interval` after its last accepted poll is `400 {"error":"slow_down"}`; an expired code
//!   is `expired_token`, a denied one `access_denied`.
//! * The user side is played by [`OidcProvider::approve`] / [`OidcProvider::deny`]: the
//!   provider drives its own `/device` pages over HTTP (enter the code, confirm or abort, sign
//!   in, consent) with a cookie jar, as a browser would.
//!
//! Node keeps running until the handle is dropped (killed) or its standard input closes, so a
//! test process that dies leaves no orphan. The provider's stderr (library warnings) goes to a
//! private log file, see [`OidcProvider::log`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long node may take to print its ready line, per attempt...
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// ...and how many starts are tried: CI saw a node process, one among dozens, hang after
/// loading its modules (alive, no ready line) while the others of the same run started in a
/// second; a second start succeeds.
const START_ATTEMPTS: u32 = 2;

/// The `aud` claim of the access tokens.
pub const AUDIENCE: &str = "dcache";

/// The resource indicator every access token is issued for.
pub const RESOURCE: &str = "urn:ctadata:dcache";

const NOT_INSTALLED: &str =
    "oidc-provider is not installed: run `npm ci --prefix tests/oidc` (tests/run-all.sh does it)";

const NO_NODE: &str =
    "node not found: install Node.js 20 or later (tests/run-all.sh installs Debian's nodejs)";

/// Options for [`OidcProvider::start`]; durations are rounded up to whole seconds.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// Access token lifetime (`expires_in`, `exp - iat`).
    pub access_ttl: Duration,
    /// Refresh token lifetime, renewed by each rotation.
    pub refresh_ttl: Duration,
    /// Device code lifetime (`expires_in` of the device authorization response).
    pub device_ttl: Duration,
    /// Polling interval advertised and enforced with `slow_down`; zero disables the check.
    pub interval: Duration,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's `client_secret`.
    pub client_secret: String,
}

impl Default for OidcOptions {
    fn default() -> Self {
        OidcOptions {
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(24 * 3600),
            device_ttl: Duration::from_secs(600),
            interval: Duration::from_secs(1),
            client_id: "cta-test-client".into(),
            client_secret: "cta-test-secret".into(),
        }
    }
}

/// Requests that reached the provider, from `GET /test/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OidcStats {
    /// Every `POST` to the token endpoint (refused ones and `slow_down` answers included).
    pub token_requests: u64,
    /// Token requests with `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
    pub device_grants: u64,
    /// Token requests with `grant_type=refresh_token`.
    pub refresh_grants: u64,
    /// Device-code polls answered `slow_down`.
    pub slow_downs: u64,
    /// Every `POST` to the revocation endpoint.
    pub revocations: u64,
}

/// A running `oidc-provider`; killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    issuer: String,
    options: OidcOptions,
    logdir: tempfile::TempDir,
}

/// The `tests/oidc` directory (with `provider.js` and `node_modules`).
pub fn provider_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../oidc");
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// Checks that `node` runs and that `npm ci --prefix tests/oidc` has been done.
pub fn available() -> std::io::Result<()> {
    match Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(std::io::Error::other(format!(
                "{NO_NODE} (node --version: {s})"
            )))
        }
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("{NO_NODE} ({e})"))),
    }
    let dir = provider_dir();
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{NOT_INSTALLED} (no {})",
                dir.join("node_modules").display()
            ),
        ));
    }
    Ok(())
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

impl OidcProvider {
    /// Starts node on `127.0.0.1:<free port>`; returns once it has printed its ready line.
    /// A node that prints nothing within [`READY_TIMEOUT`] is killed and started again (at
    /// most [`START_ATTEMPTS`] in all), with a line on stderr saying what it was doing.
    pub fn start(options: OidcOptions) -> std::io::Result<OidcProvider> {
        let mut attempt = 1;
        loop {
            match Self::start_once(options.clone()) {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && attempt < START_ATTEMPTS => {
                    eprintln!("oidc-provider: starting it again: {e}");
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    fn start_once(options: OidcOptions) -> std::io::Result<OidcProvider> {
        available()?;
        for (name, d) in [
            ("access_ttl", options.access_ttl),
            ("refresh_ttl", options.refresh_ttl),
            ("device_ttl", options.device_ttl),
        ] {
            if d.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("OidcOptions::{name} must not be zero"),
                ));
            }
        }
        let logdir = tempfile::Builder::new().prefix("ctadata-oidc-").tempdir()?;
        let stderr = std::fs::File::create(logdir.path().join("stderr.log"))?;
        let dir = provider_dir();
        let mut child = Command::new("node")
            .arg(dir.join("provider.js"))
            .current_dir(&dir)
            .env("PORT", "0")
            .env("CLIENT_ID", &options.client_id)
            .env("CLIENT_SECRET", &options.client_secret)
            .env("ACCESS_TTL", whole_seconds(options.access_ttl).to_string())
            .env(
                "REFRESH_TTL",
                whole_seconds(options.refresh_ttl).to_string(),
            )
            .env("DEVICE_TTL", whole_seconds(options.device_ttl).to_string())
            .env("INTERVAL", whole_seconds(options.interval).to_string())
            .env("AUDIENCE", AUDIENCE)
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{NO_NODE} (spawn: {e})")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        // The ready line, read on a thread so that a hung node cannot block the test forever;
        // the thread then drains stdout until node exits.
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("oidc-provider-stdout".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = tx.send(reader.read_line(&mut line).map(|_| line));
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            })?;
        let mut provider = OidcProvider {
            child: Some(child),
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: String::new(),
            options,
            logdir,
        };
        // Generous: a cold start of node with oidc-provider's module tree, several at once
        // on a busy 2-core CI machine, has been seen to take more than 30 s.
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            Ok(Ok(_)) => {
                return Err(provider.failure("node exited before it was ready"));
            }
            Ok(Err(e)) => return Err(provider.failure(&format!("reading node's stdout: {e}"))),
            Err(_) => {
                let state = provider.process_state();
                let e = provider.failure(&format!(
                    "node was not ready within {} s ({state})",
                    READY_TIMEOUT.as_secs()
                ));
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    e.to_string(),
                ));
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| provider.failure(&format!("bad ready line {line:?}: {e}")))?;
        let (Some(issuer), Some(port)) = (
            ready["issuer"].as_str(),
            ready["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
        ) else {
            return Err(provider.failure(&format!("bad ready line {line:?}")));
        };
        provider.issuer = issuer.to_string();
        provider.addr = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(provider)
    }

    /// What the kernel says node is doing (state, wait channel), for a start that hangs.
    fn process_state(&self) -> String {
        let Some(pid) = self.child.as_ref().map(|c| c.id()) else {
            return "no process".into();
        };
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        let status = read("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("?")
                .to_string()
        };
        format!(
            "pid {pid}, state {}, threads {}, wchan {}, cpu ticks (utime stime) {}",
            field("State:"),
            field("Threads:"),
            read("wchan").trim(),
            read("stat")
                .rsplit(')')
                .next()
                .map(|r| r
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        )
    }

    /// An error with node's exit status and log, after stopping it.
    fn failure(&mut self, what: &str) -> std::io::Error {
        self.stop();
        std::io::Error::other(format!(
            "oidc-provider did not start: {what}; its log:\n{}",
            self.log()
        ))
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The issuer, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.issuer.clone()
    }

    /// The provider's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client's `client_id`.
    pub fn client_id(&self) -> &str {
        &self.options.client_id
    }

    /// The client's `client_secret`.
    pub fn client_secret(&self) -> &str {
        &self.options.client_secret
    }

    /// The options it was started with.
    pub fn options(&self) -> &OidcOptions {
        &self.options
    }

    /// `user` enters `user_code` at `/device`, confirms, signs in and consents.
    pub fn approve(&self, user_code: &str, user: &str) -> std::io::Result<()> {
        let body = serde_json::json!({ "user_code": user_code, "user": user }).to_string();
        self.test_call("/test/approve", &body)
    }

    /// The user enters `user_code` at `/device` and aborts: polling gives `access_denied`.
    pub fn deny(&self, user_code: &str) -> std::io::Result<()> {
        let body = serde_json::json!({ "user_code": user_code }).to_string();
        self.test_call("/test/deny", &body)
    }

    fn test_call(&self, path: &str, body: &str) -> std::io::Result<()> {
        let (status, text) = self.http("POST", path, Some(body))?;
        if status == 200 {
            Ok(())
        } else {
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            Err(std::io::Error::other(format!("{path}: {status}: {msg}")))
        }
    }

    /// The request counters so far; panics when the provider does not answer.
    pub fn stats(&self) -> OidcStats {
        let (status, text) = self
            .http("GET", "/test/stats", None)
            .expect("GET /test/stats");
        assert_eq!(status, 200, "GET /test/stats: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("stats JSON");
        let n = |k: &str| {
            v[k].as_u64()
                .unwrap_or_else(|| panic!("stats without {k}: {text}"))
        };
        OidcStats {
            token_requests: n("token_requests"),
            device_grants: n("device_grants"),
            refresh_grants: n("refresh_grants"),
            slow_downs: n("slow_downs"),
            revocations: n("revocations"),
        }
    }

    /// The JWKS (JSON text) that verifies its tokens; panics when the provider does not answer.
    pub fn jwks(&self) -> String {
        let (status, text) = self.http("GET", "/jwks", None).expect("GET /jwks");
        assert_eq!(status, 200, "GET /jwks: {text}");
        text
    }

    /// The provider's stderr so far (library warnings, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logdir.path().join("stderr.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request on a fresh connection: (status, body).
    fn http(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(Duration::from_secs(60)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(body) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        stream.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse_response(&raw)
    }
}

/// Status and body of a whole `Connection: close` response (plain or chunked body).
fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("response without end of headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line in {head:?}")))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let mut body = &raw[end + 4..];
    if !chunked {
        return Ok((status, String::from_utf8_lossy(body).into_owned()));
    }
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunked body".into()))?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| invalid(format!("bad chunk size {size_text:?}: {e}")))?;
        body = &body[eol + 2..];
        if size == 0 {
            break;
        }
        if body.len() < size {
            return Err(invalid("truncated chunk".into()));
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (200, "{}".to_string()));
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (400, "abcde".to_string()));
    }
}
