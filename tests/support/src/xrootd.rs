//! A private XRootD server (Debian's `xrootd` 5.5.x with XrdHttp) serving a directory over
//! HTTPS WebDAV, with WLCG bearer-token authorization checked offline.
//!
//! * It runs as the package's `xrootd` user when the tests run as root (XRootD refuses to run
//!   as root), else as the current user. Everything it touches (configuration, data, admin
//!   and cache directories, certificates) lives in a private directory owned by that user.
//! * Two free loopback ports: XrdHttp ([`Xrootd::url`], `https://127.0.0.1:PORT`) and the
//!   xroot protocol port ([`Xrootd::xroot_port`]). XRootD listens on every interface.
//! * TLS: the server certificate of a [`TestCa`] (`xrd.tls`), its CA in a hashed
//!   certificate directory (`xrd.tlsca certdir`, named `<subject_hash>.0`).
//! * Tokens: `ofs.authorize 1` with `libXrdAccSciTokens.so`, trusting one issuer
//!   ([`ISSUER`], audience [`AUDIENCE`], `base_path = /`) whose ES256 key is a fresh
//!   [`TokenIssuer`]. Nothing is fetched: scitokens-cpp's key cache
//!   (`$XDG_CACHE_HOME/scitokens/scitokens_cpp.sqllite`, table `keycache`) is seeded with the
//!   issuer's JWKS by the `sqlite3` CLI before the server starts. A refused token gets `403`.
//! * `xrootd.chksum adler32`: the server computes adler32 on request (`Want-Digest`).
//!
//! Stopped with `SIGTERM` (then `SIGKILL`) on drop; its private directory is removed.

use crate::tls::TestCa;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::ffi::CString;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The token issuer the server trusts (never contacted: its keys are seeded offline).
pub const ISSUER: &str = "https://issuer.ctadata.test";
/// The audience the server requires.
pub const AUDIENCE: &str = "https://xrootd.ctadata.test";
/// Scopes of a token that may read, create and modify anything.
pub const READ_WRITE: &str = "storage.read:/ storage.create:/ storage.modify:/";
/// Scopes of a token that may only read.
pub const READ_ONLY: &str = "storage.read:/";

const NOT_INSTALLED: &str =
    "XRootD not installed: run tests/run-all.sh (it installs xrootd-server, \
     xrootd-server-plugins, xrootd-scitokens-plugins, xrootd-client and sqlite3)";

const LIB_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An ES256 key that signs WLCG tokens for [`ISSUER`].
pub struct TokenIssuer {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A fresh P-256 key.
    pub fn new() -> TokenIssuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load the P-256 key");
        TokenIssuer {
            key,
            kid: format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            rng,
        }
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        let public = self.key.public_key().as_ref();
        // Uncompressed point: 0x04 || x || y.
        let (x, y) = public[1..].split_at(32);
        serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "alg": "ES256",
                "use": "sig",
                "kid": self.kid,
                "x": b64(x),
                "y": b64(y),
            }]
        })
    }

    /// A signed token with these claims (`iss` is [`ISSUER`] unless `claims` sets it).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut claims = claims.clone();
        if claims.get("iss").is_none() {
            claims["iss"] = ISSUER.into();
        }
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&self.rng, signed.as_bytes())
            .expect("sign the token");
        format!("{signed}.{}", b64(sig.as_ref()))
    }

    /// A WLCG token (`wlcg.ver` 1.0) with `scope`, `aud`, `sub`, `iat`, `nbf`, `jti` and
    /// `exp` = now + `lifetime_secs` (negative for an expired token).
    pub fn token(&self, scopes: &str, audience: &str, lifetime_secs: i64) -> String {
        let now = now();
        self.sign(&serde_json::json!({
            "wlcg.ver": "1.0",
            "iss": ISSUER,
            "aud": audience,
            "sub": "ctadata-test-user",
            "scope": scopes,
            "iat": now.min(now + lifetime_secs) - 60,
            "nbf": now.min(now + lifetime_secs) - 60,
            "exp": now + lifetime_secs,
            "jti": uuid::Uuid::new_v4().to_string(),
        }))
    }
}

impl Default for TokenIssuer {
    fn default() -> Self {
        TokenIssuer::new()
    }
}

/// Options for [`Xrootd::start_with`].
#[derive(Debug, Clone, Default)]
pub struct XrootdOptions<'a> {
    /// Serve HTTPS with this CA's server certificate (else plain HTTP).
    pub tls: Option<&'a TestCa>,
    /// Require a WLCG token signed by the server's [`TokenIssuer`] (else anyone may do
    /// anything).
    pub tokens: bool,
}

/// A running private XRootD; stopped on drop.
pub struct Xrootd {
    child: Option<Child>,
    prefix: tempfile::TempDir,
    http: SocketAddr,
    xroot_port: u16,
    scheme: &'static str,
    root: PathBuf,
    owner: Option<(u32, u32)>,
    issuer: Arc<TokenIssuer>,
    started_in: Duration,
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Xrootd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xrootd")
            .field("url", &self.url())
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of `xrootd` when running as root (the server's user), else `None` (the
/// server runs as the current user).
fn server_user() -> std::io::Result<Option<(u32, u32)>> {
    if !running_as_root() {
        return Ok(None);
    }
    let name = CString::new("xrootd").expect("no NUL");
    // SAFETY: getpwnam(3) with a valid C string; the result is read at once, before any other
    // call that could reuse its static buffer.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no user `xrootd` (XRootD refuses to run as root): {NOT_INSTALLED}"),
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd entry.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn find_lib(name: &str) -> Option<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Checks that XRootD (server, HTTP and SciTokens plugins), `sqlite3` and, when running as
/// root, the `xrootd` user are there; the error says what is missing.
pub fn available() -> std::io::Result<()> {
    let mut missing = Vec::new();
    if !runs("xrootd", "-v") {
        missing.push("the xrootd binary".to_string());
    }
    for lib in ["libXrdHttp-5.so", "libXrdAccSciTokens-5.so"] {
        if find_lib(lib).is_none() {
            missing.push(lib.to_string());
        }
    }
    if !runs("sqlite3", "-version") {
        missing.push("the sqlite3 CLI".to_string());
    }
    if !runs("openssl", "version") {
        missing.push("the openssl CLI".to_string());
    }
    if !missing.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{NOT_INSTALLED}; missing: {}", missing.join(", ")),
        ));
    }
    server_user()?;
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `chown -R` to the server's user (no-op when it is the current user).
fn chown_tree(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    Ok(())
}

fn subject_hash(cert: &Path) -> std::io::Result<String> {
    let out = Command::new("openssl")
        .args(["x509", "-hash", "-noout", "-in"])
        .arg(cert)
        .output()
        .map_err(|e| std::io::Error::new(e.kind(), format!("openssl: {e}")))?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "openssl x509 -hash: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Seeds scitokens-cpp's key cache with the issuer's keys, valid for a day.
fn seed_key_cache(cache_home: &Path, issuer: &TokenIssuer) -> std::io::Result<()> {
    let dir = cache_home.join("scitokens");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("scitokens_cpp.sqllite");
    let keys = serde_json::json!({
        "jwks": issuer.jwks(),
        "next_update": now() + 86_400,
        "expires": now() + 86_400,
    });
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL, keys text NOT NULL);\n\
         INSERT OR REPLACE INTO keycache VALUES ({}, {});\n",
        sql_quote(ISSUER),
        sql_quote(&keys.to_string())
    );
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(sql)
        .output()
        .map_err(|e| std::io::Error::new(e.kind(), format!("sqlite3: {e}: {NOT_INSTALLED}")))?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "sqlite3 {}: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

impl Xrootd {
    /// Serves a fresh private directory ([`Xrootd::root`]) with the given options.
    pub fn start(options: XrootdOptions<'_>) -> std::io::Result<Xrootd> {
        Self::start_inner(None, options, None)
    }

    // ---- third-party copy (issue 14, cp) ----
    /// Like [`Xrootd::start`], trusting `issuer` (shared with another instance, so one token
    /// works on both: a third-party copy between them).
    pub fn start_with_issuer(
        options: XrootdOptions<'_>,
        issuer: Arc<TokenIssuer>,
    ) -> std::io::Result<Xrootd> {
        Self::start_inner(None, options, Some(issuer))
    }

    /// Two instances over TLS with tokens, trusting the same issuer and `ca` (each one's
    /// HTTP-TPC plugin trusts the other's certificate): for third-party copies.
    pub fn start_pair(ca: &TestCa) -> std::io::Result<(Xrootd, Xrootd)> {
        let options = XrootdOptions {
            tls: Some(ca),
            tokens: true,
        };
        let a = Self::start(options.clone())?;
        let b = Self::start_with_issuer(options, a.issuer.clone())?;
        Ok((a, b))
    }
    // ---- end of third-party copy ----

    /// Serves `root` (its tree is handed to the server's user, and every directory above it
    /// must be searchable by that user).
    pub fn start_with(root: &Path, options: XrootdOptions<'_>) -> std::io::Result<Xrootd> {
        Self::start_inner(Some(root), options, None)
    }

    fn start_inner(
        root: Option<&Path>,
        options: XrootdOptions<'_>,
        issuer: Option<Arc<TokenIssuer>>,
    ) -> std::io::Result<Xrootd> {
        available()?;
        let started = Instant::now();
        let owner = server_user()?;
        let prefix = tempfile::Builder::new()
            .prefix("ctadata-xrootd-")
            .tempdir()?;
        let p = prefix.path();
        for d in ["admin", "cache", "home", "certs", "cadir"] {
            std::fs::create_dir_all(p.join(d))?;
        }
        let root = match root {
            Some(r) => std::fs::canonicalize(r)?,
            None => {
                std::fs::create_dir_all(p.join("data"))?;
                p.join("data")
            }
        };
        let issuer = issuer.unwrap_or_else(|| Arc::new(TokenIssuer::new()));
        let mut ca_file = None;
        if let Some(ca) = options.tls {
            std::fs::copy(ca.server_cert_path(), p.join("certs/server.pem"))?;
            std::fs::copy(ca.server_key_path(), p.join("certs/server.key"))?;
            let hash = subject_hash(&ca.ca_cert_path())?;
            std::fs::copy(ca.ca_cert_path(), p.join(format!("cadir/{hash}.0")))?;
            ca_file = Some(p.join(format!("cadir/{hash}.0")));
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                p.join("certs/server.key"),
                std::fs::Permissions::from_mode(0o600),
            )?;
        }
        if options.tokens {
            seed_key_cache(&p.join("cache"), &issuer)?;
            std::fs::write(
                p.join("scitokens.cfg"),
                format!(
                    "[Global]\naudience = {AUDIENCE}\n\n[Issuer test]\nissuer = {ISSUER}\nbase_path = /\ndefault_user = xrootd\n"
                ),
            )?;
        }
        chown_tree(p, owner)?;
        chown_tree(&root, owner)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // The temporary directory is 0700; its owner is now the server's user.
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
        }

        let mut last_err = String::new();
        for _attempt in 0..5 {
            let http_port = free_port()?;
            let xroot_port = free_port()?;
            if http_port == xroot_port {
                continue;
            }
            let conf = config(p, &root, http_port, xroot_port, &options);
            std::fs::write(p.join("xrootd.cfg"), conf)?;
            let _ = std::fs::remove_file(p.join("xrootd.log"));
            let stdout = std::fs::File::create(p.join("stdout.log"))?;
            let stderr = stdout.try_clone()?;
            chown_tree(&p.join("xrootd.cfg"), owner)?;
            chown_tree(&p.join("stdout.log"), owner)?;
            let mut cmd = Command::new("xrootd");
            cmd.arg("-c")
                .arg(p.join("xrootd.cfg"))
                .arg("-l")
                .arg(p.join("xrootd.log"))
                .current_dir(p)
                .env("XDG_CACHE_HOME", p.join("cache"))
                .env("HOME", p.join("home"))
                .env_remove("X509_CERT_DIR")
                .env_remove("BEARER_TOKEN")
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr);
            if let Some((uid, gid)) = owner {
                cmd.uid(uid).gid(gid).env("USER", "xrootd");
            }
            let mut child = cmd.spawn().map_err(|e| {
                std::io::Error::new(e.kind(), format!("{NOT_INSTALLED} (spawn xrootd: {e})"))
            })?;
            let http = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
            match wait_ready(&mut child, http, p) {
                Ok(()) => {
                    return Ok(Xrootd {
                        child: Some(child),
                        prefix,
                        http,
                        xroot_port,
                        scheme: if options.tls.is_some() {
                            "https"
                        } else {
                            "http"
                        },
                        root,
                        owner,
                        issuer: issuer.clone(),
                        started_in: started.elapsed(),
                        ca_file: ca_file.clone(),
                    });
                }
                Err(e) => {
                    stop(child);
                    let retry = e.contains("in use");
                    last_err = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(std::io::Error::other(format!(
            "xrootd did not start: {last_err}"
        )))
    }

    /// Base URL of XrdHttp, e.g. `https://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.http)
    }

    /// The xroot protocol port (`root://127.0.0.1:PORT`).
    pub fn xroot_port(&self) -> u16 {
        self.xroot_port
    }

    /// The exported directory (what `/` is on the server).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The private directory (configuration, logs, key cache).
    pub fn prefix(&self) -> &Path {
        self.prefix.path()
    }

    /// How long [`Xrootd::start_with`] took, from its call until the server answered.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The key the server trusts.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// A token of [`ISSUER`] with `scopes` for `audience`, valid `lifetime_secs` from now
    /// (negative: expired that long ago).
    pub fn token(&self, scopes: &str, audience: &str, lifetime_secs: i64) -> String {
        self.issuer.token(scopes, audience, lifetime_secs)
    }

    /// A token that may read, create and modify everything, valid for an hour.
    pub fn read_write_token(&self) -> String {
        self.token(READ_WRITE, AUDIENCE, 3600)
    }

    /// A token that may only read (`storage.read:/`), valid for an hour.
    pub fn read_only_token(&self) -> String {
        self.token(READ_ONLY, AUDIENCE, 3600)
    }

    /// A read-write token that expired ten minutes ago.
    pub fn expired_token(&self) -> String {
        self.token(READ_WRITE, AUDIENCE, -600)
    }

    /// A read-write token for another audience.
    pub fn wrong_audience_token(&self) -> String {
        self.token(READ_WRITE, "https://other.ctadata.test", 3600)
    }

    /// A read-write token signed by a key the server does not know (same issuer and kid
    /// format).
    pub fn forged_token(&self) -> String {
        TokenIssuer::new().token(READ_WRITE, AUDIENCE, 3600)
    }

    /// Writes a file under the export (creating parents), owned by the server's user.
    pub fn put_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let path = self.root.join(rel.trim_start_matches('/'));
        let parent = path.parent().expect("a file has a parent");
        self.mkdirs(parent);
        std::fs::write(&path, data).expect("write a file under the export");
        chown_tree(&path, self.owner).expect("chown the file");
        path
    }

    /// Creates a directory under the export (and its parents), owned by the server's user.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.root.join(rel.trim_start_matches('/'));
        self.mkdirs(&path);
        path
    }

    fn mkdirs(&self, dir: &Path) {
        let mut todo = Vec::new();
        let mut d = dir;
        while !d.exists() {
            todo.push(d.to_path_buf());
            d = d.parent().expect("the root exists");
        }
        for d in todo.iter().rev() {
            std::fs::create_dir(d).expect("create a directory under the export");
            chown_tree(d, self.owner).expect("chown the directory");
        }
    }

    /// The status code of `METHOD rel` sent with `curl` (HTTP/1.1, header names as given
    /// here), with `Authorization: Bearer token` when given and the extra `headers`.
    pub fn status_of(
        &self,
        method: &str,
        rel: &str,
        token: Option<&str>,
        headers: &[&str],
    ) -> std::io::Result<u16> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]);
        if method == "HEAD" {
            cmd.arg("-I");
        }
        if let Some(ca) = &self.ca_file {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some(t) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        cmd.arg(format!("{}/{}", self.url(), rel.trim_start_matches('/')));
        let out = cmd
            .output()
            .map_err(|e| std::io::Error::new(e.kind(), format!("curl: {e}")))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                std::io::Error::other(format!(
                    "curl: no status: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            })
    }

    /// What the server answers to `HEAD` of `rel` (a plain path, no characters to escape)
    /// with `Want-Digest: adler32`: the value of its `Digest` header (`adler32=...`), asked
    /// with `curl` (bearer `token` when given). `None` when it gave none.
    pub fn server_digest(&self, rel: &str, token: Option<&str>) -> std::io::Result<Option<String>> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-I", "-H", "Want-Digest: adler32"]);
        if let Some(ca) = &self.ca_file {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some(t) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        cmd.arg(format!("{}/{}", self.url(), rel.trim_start_matches('/')));
        let out = cmd
            .output()
            .map_err(|e| std::io::Error::new(e.kind(), format!("curl: {e}")))?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "curl: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("digest")
                .then(|| v.trim().to_string())
        }))
    }

    /// The server's log and its standard output so far.
    pub fn logs(&self) -> String {
        logs(self.prefix.path())
    }
}

impl Drop for Xrootd {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}

fn logs(prefix: &Path) -> String {
    let mut out = String::new();
    for name in ["xrootd.log", "stdout.log"] {
        if let Ok(s) = std::fs::read_to_string(prefix.join(name)) {
            let _ = write!(out, "{s}");
        }
    }
    out
}

fn wait_ready(child: &mut Child, addr: SocketAddr, prefix: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("xrootd exited with {status}: {}", logs(prefix)));
        }
        if logs(prefix).contains("initialization completed")
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("xrootd did not answer in 60 s: {}", logs(prefix)));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn stop(mut child: Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) on the server this process started; no memory is involved.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn config(
    prefix: &Path,
    root: &Path,
    http_port: u16,
    xroot_port: u16,
    options: &XrootdOptions<'_>,
) -> String {
    let p = prefix.display();
    let mut c = String::new();
    let _ = writeln!(c, "# generated by ctadata-testsupport");
    let _ = writeln!(c, "all.export / writable");
    let _ = writeln!(c, "oss.localroot {}", root.display());
    let _ = writeln!(c, "all.adminpath {p}/admin");
    let _ = writeln!(c, "all.pidpath {p}/admin");
    let _ = writeln!(c, "xrd.port {xroot_port}");
    let _ = writeln!(c, "xrd.protocol XrdHttp:{http_port} libXrdHttp.so");
    let _ = writeln!(c, "xrootd.chksum adler32");
    if options.tls.is_some() {
        let _ = writeln!(c, "xrd.tls {p}/certs/server.pem {p}/certs/server.key");
        let _ = writeln!(c, "xrd.tlsca certdir {p}/cadir");
        // ---- third-party copy (issue 14, cp): the HTTP-TPC plugin (it loads only with
        // TLS); its libcurl trusts the CAs of `xrd.tlsca` (a file it makes from the
        // directory), so two instances of one test CA trust each other ----
        let _ = writeln!(c, "http.exthandler xrdtpc libXrdHttpTPC.so");
        let _ = writeln!(c, "tpc.trace info");
    }
    if options.tokens {
        let _ = writeln!(c, "ofs.authorize 1");
        let _ = writeln!(
            c,
            "ofs.authlib libXrdAccSciTokens.so config={p}/scitokens.cfg"
        );
        let _ = writeln!(c, "http.header2cgi Authorization authz");
    }
    c
}
