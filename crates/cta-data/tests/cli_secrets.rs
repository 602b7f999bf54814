//! Secrets under `-vvv` (issue 17): a whole session of the `cta-data` binary at `-vvv` with
//! `RUST_LOG=trace` against the real test servers, after which no secret may be found in
//! any command's standard output or error, in any file the run left under the test's
//! directories (home, XDG directories, `TMPDIR`, working directory) other than the 0600
//! token store, or in the arguments of any process.
//!
//! The session: a device-flow login at a real OpenID provider (approved headlessly), `list`,
//! `get` and `put` on the dCache door double (which checks the provider's JWTs), a `401` from
//! the door answered by a token refresh, a TLS handshake refused (a door whose CA is not
//! trusted), `token status` and `config show`, the downloadservice (`platform` profile, hub
//! token in `JUPYTERHUB_API_TOKEN`) with `list`, `get` and `put`, a real `grid-proxy-init`
//! proxy uploaded to the certificateservice double (`cert upload` and the old
//! `upload-personal-certificate`), and `logout`.
//!
//! The secrets: every access and refresh token the store held after any command, the client
//! secret (also as the `Authorization: Basic` value it travels in), the hub token and the
//! private part of the proxy's key (its PEM body whole, every 40-character run of the body
//! that encodes only private-key bytes, the same in hex), plus anything that looks like a JWT
//! (an ID token, or a token rotated away before the test could read it).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use ctadata_testsupport::oidc::AUDIENCE;
use ctadata_testsupport::{
    DcacheConfig, DcacheDouble, GridPki, HubUser, JwtPolicy, OidcOptions, OidcProvider,
    PlatformConfig, PlatformDouble, Side,
};
use tempfile::TempDir;

const TRANSPORT: i32 = 9;

/// Programs a CLI might plausibly start (a browser for the login page, the oidc-agent
/// tools, a shell, grid tools, HTTP clients). The commands run with `PATH` holding only
/// shims of these, which append their arguments to `spawned.log`, searched for secrets with
/// the other files.
const SHIMS: &[&str] = &[
    "sh",
    "bash",
    "env",
    "xdg-open",
    "open",
    "sensible-browser",
    "x-www-browser",
    "www-browser",
    "firefox",
    "chromium",
    "google-chrome",
    "oidc-agent",
    "oidc-token",
    "oidc-add",
    "oidc-gen",
    "curl",
    "wget",
    "openssl",
    "grid-proxy-init",
    "voms-proxy-init",
    "voms-proxy-info",
    "python3",
    "node",
    "rclone",
    "ssh",
    "sudo",
];

// ----- what to look for ------------------------------------------------------------------

/// The secrets to look for: whole values, and runs (every substring of a given length) of
/// their most secret parts.
#[derive(Default)]
struct Secrets {
    whole: Vec<(String, String)>,
    runs: HashMap<usize, HashMap<Vec<u8>, String>>,
}

impl Secrets {
    /// `value` anywhere is a leak.
    fn whole(&mut self, label: &str, value: &str) {
        assert!(value.len() >= 16, "{label} is too short to look for");
        if !self.whole.iter().any(|(_, v)| v == value) {
            self.whole.push((label.to_string(), value.to_string()));
        }
    }

    /// Any `len` consecutive characters of `value` anywhere are a leak.
    fn runs(&mut self, label: &str, value: &str, len: usize) {
        let b = value.as_bytes();
        assert!(b.len() >= len, "{label} is shorter than {len}");
        let set = self.runs.entry(len).or_default();
        for w in b.windows(len) {
            set.entry(w.to_vec()).or_insert_with(|| label.to_string());
        }
    }

    /// Every leak in `text`: (what, where in the text).
    fn find(&self, text: &[u8]) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        for (label, v) in &self.whole {
            if let Some(at) = find_bytes(text, v.as_bytes()) {
                found.push((format!("{label} (whole)"), at));
            }
        }
        for (len, set) in &self.runs {
            if let Some((at, label)) = text
                .windows(*len)
                .enumerate()
                .find_map(|(i, w)| set.get(w).map(|l| (i, l)))
            {
                found.push((format!("{len} characters of {label}"), at));
            }
        }
        if let Some(at) = find_jwt(text) {
            found.push(("a JWT".into(), at));
        }
        found
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn b64url_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// The offset of something shaped like a signed JWT: `eyJ…` `.` `eyJ…` `.` a signature.
fn find_jwt(text: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = find_bytes(&text[from..], b"eyJ") {
        let start = from + rel;
        let seg = |at: usize| {
            text[at.min(text.len())..]
                .iter()
                .take_while(|c| b64url_char(**c))
                .count()
        };
        let h = seg(start);
        let p_at = start + h + 1;
        if text.get(start + h) == Some(&b'.') && text[p_at..].starts_with(b"eyJ") {
            let p = seg(p_at);
            let s_at = p_at + p + 1;
            if p >= 10 && text.get(p_at + p) == Some(&b'.') && seg(s_at) >= 20 {
                return Some(start);
            }
        }
        from = start + 3;
    }
    None
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}

fn unbase64(text: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c).expect("base64") as u32;
        acc = (acc << 6 | v) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// One DER element at `at`: (tag, start of its content, end of its content).
fn der(buf: &[u8], at: usize) -> (u8, usize, usize) {
    let tag = buf[at];
    let first = buf[at + 1];
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        let len = buf[at + 2..at + 2 + n]
            .iter()
            .fold(0usize, |l, b| l << 8 | *b as usize);
        (len, 2 + n)
    };
    (tag, at + head, at + head + len)
}

/// Where the private part (the private exponent and everything after it) of an RSA key
/// starts, in its PKCS#1 or PKCS#8 DER.
fn rsa_private_offset(key: &[u8]) -> usize {
    let (tag, body, _) = der(key, 0);
    assert_eq!(tag, 0x30, "not a DER SEQUENCE");
    let (_, _, after_version) = der(key, body);
    let (tag, _, _) = der(key, after_version);
    let rsa = match tag {
        0x02 => body, // PKCS#1 RSAPrivateKey: version, n, e, d ...
        0x30 => {
            // PKCS#8: version, algorithm, OCTET STRING { RSAPrivateKey }
            let (_, _, after_alg) = der(key, after_version);
            let (tag, octets, _) = der(key, after_alg);
            assert_eq!(tag, 0x04, "PKCS#8 without its OCTET STRING");
            let (tag, rsa_body, _) = der(key, octets);
            assert_eq!(tag, 0x30, "not an RSA key");
            rsa_body
        }
        t => panic!("unexpected DER tag {t:#x} in the key"),
    };
    let mut at = rsa;
    for _ in 0..3 {
        at = der(key, at).2; // version, modulus, public exponent
    }
    at
}

/// The private key in a PEM file (grid-proxy-init writes proxy, key, user certificate):
/// its base64 body, its DER and the offset in the DER of its private bytes.
fn private_key_of(pem: &str) -> (String, Vec<u8>, usize) {
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            inside = true;
        } else if line.starts_with("-----END") && inside {
            break;
        } else if inside {
            body.push_str(line.trim());
        }
    }
    assert!(!body.is_empty(), "no PRIVATE KEY block in:\n{pem}");
    let der = unbase64(&body);
    let private = rsa_private_offset(&der);
    (body, der, private)
}

/// Adds the private key of a PEM file: the body whole, every 40-character run of the body
/// that encodes private bytes only, and the same in hex (public parts, which also appear in
/// the certificate, are left out).
fn add_private_key(secrets: &mut Secrets, label: &str, pem: &str) {
    let (body, der, private) = private_key_of(pem);
    secrets.whole(&format!("{label} (PEM body)"), &body);
    // Base64 character i holds bits 6i..6i+6, i.e. starts in byte 6i/8.
    let first = (private * 8).div_ceil(6);
    secrets.runs(&format!("{label} (base64)"), &body[first..], 40);
    let hex: String = der[private..].iter().map(|b| format!("{b:02x}")).collect();
    secrets.runs(&format!("{label} (hex)"), &hex, 40);
    secrets.runs(&format!("{label} (HEX)"), &hex.to_uppercase(), 40);
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files_under(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

// ----- the world -------------------------------------------------------------------------

/// One command as run: its argument list and what it wrote.
struct Run {
    argv: Vec<String>,
    output: Output,
}

struct World {
    tmp: TempDir,
    idp: OidcProvider,
    door: DcacheDouble,
    untrusted_door: DcacheDouble,
    platform: PlatformDouble,
    pki: GridPki,
    hub_token: String,
    runs: Vec<Run>,
    secrets: Secrets,
}

impl World {
    fn new() -> World {
        let client_secret = format!("cs-{}", random_hex(24));
        let hub_token = format!("hub-{}", random_hex(24));
        let idp = OidcProvider::start(OidcOptions {
            client_secret: client_secret.clone(),
            ..Default::default()
        })
        .expect("oidc-provider (npm ci --prefix tests/oidc; tests/run-all.sh does it)");
        let policy = JwtPolicy::from_jwks(&idp.jwks(), &idp.issuer(), AUDIENCE).unwrap();
        let door = DcacheDouble::start(DcacheConfig {
            jwt: Some(policy.clone()),
            ..Default::default()
        });
        door.put_file("/cta/hello.txt", b"hello from the door\n");
        door.put_file("/cta/run1.dat", &[7u8; 50_000]);
        // The same door over TLS, with a CA of its own that nothing trusts.
        let untrusted_door = DcacheDouble::start(DcacheConfig {
            jwt: Some(policy),
            tls: true,
            ..Default::default()
        });
        untrusted_door.put_file("/cta/hello.txt", b"hello\n");
        let pki = GridPki::new().expect("openssl and grid-proxy-init (tests/run-all.sh)");
        let platform = PlatformDouble::start(PlatformConfig {
            users: vec![HubUser::new("Alice.Smith", &hub_token)],
            trusted_ca_pem: vec![std::fs::read_to_string(pki.ca_path()).unwrap()],
            ..Default::default()
        })
        .expect("the platform double (nginx: tests/run-all.sh installs it)");
        platform.put_file("lst/DL1/20241114/run 1.h5", b"first run\n");

        let mut w = World {
            tmp: TempDir::new().unwrap(),
            idp,
            door,
            untrusted_door,
            platform,
            pki,
            hub_token: hub_token.clone(),
            runs: Vec::new(),
            secrets: Secrets::default(),
        };
        for d in [
            "home/.config",
            "home/.local/share",
            "home/.local/state",
            "home/.cache",
            "home/run",
            "tmp",
            "work",
            "bin",
        ] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        std::fs::set_permissions(w.path("home/run"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let log = w.path("spawned.log");
        for name in SHIMS {
            let shim = w.path("bin").join(name);
            std::fs::write(
                &shim,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >> '{}'\nexit 1\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(
            w.path("config.toml"),
            format!(
                "[profiles.door]\nbackend = \"dcache\"\nurl = \"{}\"\n[profiles.door.oidc]\nissuer = \"{}\"\nclient_id = \"{}\"\nscope = \"openid offline_access\"\nrefresh_margin = 1\n",
                w.door.url(),
                w.idp.issuer(),
                w.idp.client_id()
            ),
        )
        .unwrap();

        w.secrets.whole("the client secret", &client_secret);
        w.secrets.runs("the client secret", &client_secret, 24);
        let basic = base64(format!("{}:{client_secret}", w.idp.client_id()).as_bytes());
        w.secrets
            .whole("the client secret as HTTP Basic credentials", &basic);
        // Runs from the characters that encode the secret only.
        let from = (w.idp.client_id().len() + 2) * 8 / 6 + 1;
        w.secrets.runs(
            "the client secret as HTTP Basic credentials",
            &basic[from..],
            24,
        );
        w.secrets.whole("the hub token", &hub_token);
        w.secrets.runs("the hub token", &hub_token, 24);
        let (_, user_key) = w.pki.user();
        add_private_key(
            &mut w.secrets,
            "the user's private key",
            &std::fs::read_to_string(user_key).unwrap(),
        );
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn store_dir(&self) -> PathBuf {
        self.path("home/.config/cta-data/profiles/door")
    }

    fn session_file(&self) -> PathBuf {
        self.store_dir().join("session.json")
    }

    fn secret_file(&self) -> PathBuf {
        self.store_dir().join("client-secret")
    }

    /// The tokens the store holds now, added to the secrets; (access, refresh).
    fn read_store(&mut self) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.session_file()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let access = v["access_token"].as_str().unwrap().to_string();
        let refresh = v["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_string();
        self.secrets.whole("an access token", &access);
        let signature = access.rsplit('.').next().unwrap();
        self.secrets
            .runs("an access token's signature", signature, 40);
        self.secrets.whole("a refresh token", &refresh);
        self.secrets.runs("a refresh token", &refresh, 24);
        Some((access, refresh))
    }

    /// The store's files are private: 0600 files in a 0700 directory.
    fn assert_store_private(&self) {
        assert_eq!(mode(&self.store_dir()), 0o700, "the token store directory");
        for f in std::fs::read_dir(self.store_dir()).unwrap() {
            let p = f.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    /// `cta-data --config CFG -vvv ARGS` with `RUST_LOG=trace`, secrets only in the
    /// environment (the hub token) or on stdin; `approve_as` approves the login code that
    /// the command shows, as that user.
    fn run(&mut self, args: &[&str], stdin: Option<&str>, approve_as: Option<&str>) -> Output {
        let mut c = Command::new(cargo_bin("cta-data"));
        c.env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("XDG_STATE_HOME", self.path("home/.local/state"))
            .env("XDG_CACHE_HOME", self.path("home/.cache"))
            .env("XDG_RUNTIME_DIR", self.path("home/run"))
            .env("TMPDIR", self.path("tmp"))
            .env("TZ", "UTC")
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .env("CTADS_URL", self.platform.downloadservice_url())
            .env("CTACS_URL", self.platform.certificateservice_url())
            .env("JUPYTERHUB_API_TOKEN", &self.hub_token)
            .current_dir(self.path("work"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .arg("-vvv")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let argv: Vec<String> = std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        // Both pipes drained on threads: at -vvv stderr is large.
        let (tx, rx) = mpsc::channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let out_reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut line = Vec::new();
            while stdout.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line);
                if let Some(code) = text.trim().strip_prefix("and enter the code") {
                    let _ = tx.send(code.trim().to_string());
                }
                all.append(&mut line);
            }
            all
        });
        let mut stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        if let Some(user) = approve_as {
            let code = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the login shows a code");
            self.idp.approve(&code, user).unwrap();
        }
        let status = child.wait().unwrap();
        let output = Output {
            status,
            stdout: out_reader.join().unwrap(),
            stderr: err_reader.join().unwrap(),
        };
        self.runs.push(Run {
            argv,
            output: output.clone(),
        });
        self.read_store();
        output
    }

    fn door(&mut self, args: &[&str]) -> Output {
        let mut a = vec!["--profile", "door"];
        a.extend_from_slice(args);
        self.run(&a, None, None)
    }

    fn platform(&mut self, args: &[&str]) -> Output {
        let mut a = vec!["--profile", "platform"];
        a.extend_from_slice(args);
        self.run(&a, None, None)
    }

    /// Every place a secret might have landed: (description, bytes).
    fn places(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for r in &self.runs {
            let cmd = r.argv[1..].join(" ");
            v.push((format!("the arguments of `cta-data {cmd}`"), {
                r.argv.join("\0").into_bytes()
            }));
            v.push((
                format!("stdout of `cta-data {cmd}`"),
                r.output.stdout.clone(),
            ));
            v.push((
                format!("stderr of `cta-data {cmd}`"),
                r.output.stderr.clone(),
            ));
        }
        let mut files = Vec::new();
        files_under(self.tmp.path(), &mut files);
        for f in files {
            if f == self.session_file() || f == self.secret_file() {
                continue;
            }
            let rel = f
                .strip_prefix(self.tmp.path())
                .unwrap()
                .display()
                .to_string();
            v.push((
                format!("the name of the file {rel}"),
                rel.clone().into_bytes(),
            ));
            if let Ok(bytes) = std::fs::read(&f) {
                v.push((format!("the file {rel}"), bytes));
            }
        }
        v
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The last lines of stderr (at -vvv the whole of it is far too long for a message).
fn tail(o: &Output) -> String {
    let e = stderr(o);
    let lines: Vec<&str> = e.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}; stderr ends with:\n{}",
        o.status.code(),
        tail(o)
    );
    stdout(o)
}

// ----- the session -----------------------------------------------------------------------

#[test]
fn no_secret_escapes_a_whole_session_at_trace_level() {
    let started = Instant::now();
    let mut w = World::new();

    // Login: the client secret on stdin, the code approved by "alice".
    let secret = w.idp.client_secret().to_string();
    let o = w.run(
        &["--profile", "door", "login", "--secret-stdin", "--no-qr"],
        Some(&secret),
        Some("alice"),
    );
    ok(&o);
    assert!(stderr(&o).contains("logged in"), "{}", tail(&o));
    assert!(
        stderr(&o).contains("TRACE"),
        "-vvv with RUST_LOG=trace logs at trace level"
    );
    let (access1, refresh1) = w.read_store().expect("a session after login");
    assert!(w.idp.stats().device_grants >= 1);
    w.assert_store_private();

    // list, get, put on the door, with the session's token.
    assert_eq!(ok(&w.door(&["list", "cta"])), "hello.txt\nrun1.dat\n");
    ok(&w.door(&["get", "cta/hello.txt", "got.txt"]));
    assert_eq!(
        std::fs::read(w.path("work/got.txt")).unwrap(),
        b"hello from the door\n"
    );
    ok(&w.door(&["get", "cta/run1.dat"]));
    assert_eq!(
        std::fs::read(w.path("work/run1.dat")).unwrap(),
        vec![7u8; 50_000]
    );
    std::fs::write(w.path("work/up.txt"), b"uploaded by the session\n").unwrap();
    ok(&w.door(&["put", "up.txt", "cta/up/"]));
    assert_eq!(
        std::fs::read(w.door.root().join("cta/up/up.txt")).unwrap(),
        b"uploaded by the session\n"
    );
    assert_eq!(w.idp.stats().refresh_grants, 0);

    // The door refuses the current token once: refreshed, and the request retried.
    w.door.fail_next(401, 1);
    assert_eq!(ok(&w.door(&["list", "cta/up"])), "up.txt\n");
    assert_eq!(w.idp.stats().refresh_grants, 1, "one refresh after the 401");
    let (access2, refresh2) = w.read_store().unwrap();
    assert_ne!(access1, access2, "a new access token");
    assert_ne!(refresh1, refresh2, "the refresh token rotated");
    w.assert_store_private();
    assert_eq!(
        ok(&w.door(&["cat", "cta/up/up.txt"])),
        "uploaded by the session\n"
    );

    let stats = w.door.stats();
    let door_log: Vec<_> = stats.log.iter().filter(|r| r.side == Side::Door).collect();
    for method in ["PROPFIND", "GET", "PUT"] {
        assert!(
            door_log
                .iter()
                .any(|r| r.method == method && r.authorization && r.status < 400),
            "no authorized {method} at the door: {door_log:#?}"
        );
    }
    assert!(
        door_log.iter().any(|r| r.status == 401),
        "the door's 401: {door_log:#?}"
    );
    assert!(stats.pool_requests > 0 && !stats.pool_saw_authorization);

    let s = ok(&w.door(&["token", "status"]));
    assert!(s.contains("subject: alice"), "{s}");
    ok(&w.door(&["config", "show"]));

    // A TLS handshake the client refuses: the same session, a door nobody trusts.
    let untrusted = w.untrusted_door.url();
    assert!(untrusted.starts_with("https://"), "{untrusted}");
    let o = w.door(&["--url", &untrusted, "list", "cta"]);
    assert_eq!(o.status.code(), Some(TRANSPORT), "{}", tail(&o));
    assert!(
        stderr(&o).contains("TLS: the certificate of 127.0.0.1 was not accepted"),
        "{}",
        tail(&o)
    );
    assert_eq!(
        w.untrusted_door.stats().door_requests,
        0,
        "no request passed the handshake"
    );

    // The downloadservice, with the hub token from JUPYTERHUB_API_TOKEN.
    assert_eq!(ok(&w.platform(&["list", "lst/DL1/20241114"])), "run 1.h5\n");
    ok(&w.platform(&["get", "lst/DL1/20241114/run 1.h5", "run1.h5"]));
    assert_eq!(
        std::fs::read(w.path("work/run1.h5")).unwrap(),
        b"first run\n"
    );
    ok(&w.platform(&["put", "up.txt", "results/"]));
    let home = w.platform.user_folder("Alice.Smith");
    assert_eq!(
        w.platform
            .read_file(&format!("{home}/results/up.txt"))
            .unwrap(),
        b"uploaded by the session\n"
    );
    ok(&w.platform(&["config", "show"]));

    // A real proxy from grid-proxy-init, delegated to the certificateservice.
    let proxy = w.pki.path("x509up");
    w.pki.grid_proxy_init(&proxy, "12:00").unwrap();
    let proxy_pem = std::fs::read_to_string(&proxy).unwrap();
    add_private_key(&mut w.secrets, "the proxy's private key", &proxy_pem);
    let proxy_arg = proxy.to_str().unwrap().to_string();
    let said = ok(&w.platform(&["cert", "upload", &proxy_arg, "--key", "cta"]));
    assert!(said.contains("Certificate stored"), "{said}");
    ok(&w.platform(&["upload-personal-certificate", &proxy_arg, "lst"]));
    let stored = w.platform.stored_certificates();
    assert_eq!(stored.len(), 2, "{stored:#?}");
    let (key_body, _, _) = private_key_of(&proxy_pem);
    assert!(
        stored
            .iter()
            .all(|c| c.user == "Alice.Smith" && private_key_of(&c.pem).0 == key_body),
        "the service received the proxy with its key"
    );
    let reqs = w.platform.requests();
    assert!(
        reqs.iter().all(|r| r.authorization && !r.token_in_query),
        "{reqs:#?}"
    );
    for service in ["downloadservice", "certificateservice"] {
        assert!(reqs.iter().any(|r| r.service == service), "{reqs:#?}");
    }

    // Logout revokes the refresh token at the provider.
    w.assert_store_private();
    let o = w.door(&["logout"]);
    ok(&o);
    assert!(stderr(&o).contains("revoked"), "{}", tail(&o));
    assert_eq!(w.idp.stats().revocations, 1);
    assert!(!w.session_file().exists());

    // Now look everywhere.
    // Programs the CLI started (their arguments are searched below with the other files).
    let spawned = std::fs::read_to_string(w.path("spawned.log")).unwrap_or_default();
    if !spawned.is_empty() {
        println!("cta-data started:\n{spawned}");
    }
    let places = w.places();
    let bytes: usize = places.iter().map(|(_, b)| b.len()).sum();
    let mut leaks = BTreeSet::new();
    for (place, text) in &places {
        for (what, at) in w.secrets.find(text) {
            let from = at.saturating_sub(80);
            let to = (at + 120).min(text.len());
            leaks.insert(format!(
                "{what} in {place}: …{}…",
                String::from_utf8_lossy(&text[from..to])
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets leaked:\n{}",
        leaks.into_iter().collect::<Vec<_>>().join("\n")
    );
    println!(
        "{} commands, {} places, {} KiB searched for {} secret values and {} runs of them in {:.1} s",
        w.runs.len(),
        places.len(),
        bytes / 1024,
        w.secrets.whole.len(),
        w.secrets.runs.values().map(HashMap::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
}

// ----- the search itself -----------------------------------------------------------------

/// The search finds what it is meant to find (so the session test cannot pass by a broken
/// search): planted whole values, runs, a JWT, runs of a private key in base64 and in hex.
#[test]
fn the_search_finds_planted_secrets() {
    let mut s = Secrets::default();
    s.whole("the token", "hub-0123456789abcdef0123");
    s.runs("the token", "hub-0123456789abcdef0123", 20);
    assert!(s.find(b"nothing here").is_empty());
    assert_eq!(s.find(b"x hub-0123456789abcdef0123 y").len(), 2);
    let found = s.find(b"token=0123456789abcdef0123&");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, 6);

    let jwt = b"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    assert_eq!(Secrets::default().find(jwt)[0].0, "a JWT");
    assert!(Secrets::default()
        .find(b"eyJhbGciOiJSUzI1NiJ9 is a header")
        .is_empty());

    assert_eq!(
        base64(b"cta-test-client:s3cret"),
        "Y3RhLXRlc3QtY2xpZW50OnMzY3JldA=="
    );
    assert_eq!(
        unbase64("Y3RhLXRlc3QtY2xpZW50OnMzY3JldA=="),
        b"cta-test-client:s3cret"
    );

    // A real RSA key (PKCS#8 from openssl, as GridPki makes them).
    let pki = GridPki::new().unwrap();
    let pem = std::fs::read_to_string(pki.user().1).unwrap();
    let (body, der, private) = private_key_of(&pem);
    assert!(private > 256 && private < der.len() - 512, "{private}");
    let mut s = Secrets::default();
    add_private_key(&mut s, "the key", &pem);
    let mid = body.len() / 2;
    let line = format!("key: {}", &body[mid..mid + 40]);
    assert_eq!(s.find(line.as_bytes()).len(), 1);
    let hex: String = der[der.len() - 30..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(s.find(hex.as_bytes()).len(), 1);
    // The public modulus (also in the certificate) is not a secret.
    let public = &body[20..(private * 8 / 6) - 2];
    assert!(s.find(public.as_bytes()).is_empty());
}
