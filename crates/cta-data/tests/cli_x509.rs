//! End-to-end tests of the `cta-data` binary with the `x509` backend: a real proxy from
//! `grid-proxy-init` against a real HTTPS WebDAV server that requires client certificates
//! (wsgidav on cheroot, OpenSSL 3 with proxy certificates allowed), the bad credentials the
//! backend refuses before connecting, and `cert info`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use ctadata_testsupport::x509dav::USER_SUBJECT;
use ctadata_testsupport::{GridPki, X509Dav};
use tempfile::TempDir;

const CONFIG: i32 = 3;
const AUTH: i32 = 4;
const TRANSPORT: i32 = 9;
const HOUR: Duration = Duration::from_secs(3600);

struct World {
    pki: GridPki,
    tmp: TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            pki: GridPki::new().unwrap(),
            tmp: TempDir::new().unwrap(),
        };
        for d in ["home", "root/cta", "work"] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn serve(&self) -> X509Dav {
        X509Dav::start(&self.path("root"), &self.pki).unwrap()
    }

    /// A proxy from grid-proxy-init (valid `valid`, `H:MM`).
    fn proxy(&self, name: &str, valid: &str) -> PathBuf {
        let p = self.pki.path(name);
        self.pki.grid_proxy_init(&p, valid).unwrap();
        p
    }

    /// Profile `door` (backend x509) on `url`.
    fn config(&self, url: &str, extra: &str) {
        std::fs::write(
            self.path("config.toml"),
            format!("[profiles.door]\nbackend = \"x509\"\nurl = \"{url}\"\n{extra}"),
        )
        .unwrap();
    }

    /// The binary with an isolated environment and no grid variables.
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("cta-data").unwrap();
        c.current_dir(self.path("work"))
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("TZ", "UTC")
            .env_remove("CTADATA_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove("X509_USER_PROXY")
            .env_remove("X509_USER_CERT")
            .env_remove("X509_USER_KEY")
            .env_remove("X509_CERT_DIR")
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["--profile", "door"]);
        c
    }

    fn cmd_proxy(&self, proxy: &Path) -> Command {
        let mut c = self.cmd();
        c.env("X509_USER_PROXY", proxy);
        c
    }
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Exit code `code`; returns stderr.
fn fails(o: &Output, code: i32) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    e
}

/// The PEM blocks of a file, in order.
fn pem_blocks(path: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        cur.push_str(line);
        cur.push('\n');
        if line.starts_with("-----END ") {
            v.push(std::mem::take(&mut cur));
        }
    }
    v
}

fn write_mode(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn comma(dn: &str) -> String {
    dn.trim_start_matches('/').replace('/', ",")
}

#[test]
fn every_verb_works_with_a_proxy_from_grid_proxy_init() {
    let w = World::new();
    let dav = w.serve();
    let proxy = w.proxy("x509up", "12:00");
    w.config(
        &dav.url(),
        &format!("ca_file = \"{}\"\n", w.pki.ca_path().display()),
    );
    std::fs::write(w.path("root/cta/hello.txt"), "hello\n").unwrap();
    let c = || w.cmd_proxy(&proxy);

    let out = ok(&run(c(), &["list", "cta"]));
    assert_eq!(out.trim(), "hello.txt");
    assert_eq!(ok(&run(c(), &["cat", "cta/hello.txt"])), "hello\n");
    ok(&run(c(), &["get", "cta/hello.txt"]));
    assert_eq!(
        std::fs::read_to_string(w.path("work/hello.txt")).unwrap(),
        "hello\n"
    );

    // put a file, then a tree; list -r and get -r bring it back.
    std::fs::write(w.path("work/one.bin"), vec![1u8; 100_000]).unwrap();
    ok(&run(c(), &["put", "one.bin", "cta/up/"]));
    assert_eq!(
        std::fs::read(w.path("root/cta/up/one.bin")).unwrap(),
        vec![1u8; 100_000]
    );
    for (p, body) in [
        ("tree/a.txt", "a"),
        ("tree/sub/b.txt", "bb"),
        ("tree/sub/deep/c.txt", "ccc"),
    ] {
        let f = w.path("work").join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }
    ok(&run(c(), &["put", "-r", "tree", "cta/up/"]));
    let listing = ok(&run(c(), &["list", "-r", "cta/up"]));
    for name in [
        "one.bin",
        "tree/a.txt",
        "tree/sub/b.txt",
        "tree/sub/deep/c.txt",
    ] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    let long = ok(&run(c(), &["list", "-l", "cta/up"]));
    assert!(long.contains("100000"), "{long}");
    let stat = ok(&run(c(), &["stat", "cta/up/one.bin"]));
    assert!(stat.contains("100000"), "{stat}");
    ok(&run(c(), &["get", "-r", "cta/up/tree", "back"]));
    assert_eq!(
        std::fs::read_to_string(w.path("work/back/sub/deep/c.txt")).unwrap(),
        "ccc"
    );

    ok(&run(c(), &["mkdir", "-p", "cta/made/here"]));
    assert!(w.path("root/cta/made/here").is_dir());
    ok(&run(c(), &["mv", "cta/up/one.bin", "cta/made/one.bin"]));
    assert!(w.path("root/cta/made/one.bin").is_file());
    ok(&run(c(), &["rm", "cta/made/one.bin"]));
    assert!(!w.path("root/cta/made/one.bin").exists());
    ok(&run(c(), &["rm", "-r", "cta/up"]));
    assert!(!w.path("root/cta/up").exists());

    // Every request was authenticated as the proxy (its subject, issued by the user).
    let subject = ctadata::cert::read_pem_file(&proxy)
        .unwrap()
        .leaf()
        .subject
        .clone();
    assert!(
        subject.starts_with(&format!("{USER_SUBJECT}/CN=")),
        "{subject}"
    );
    let log = dav.access_log_lines();
    let want = format!(
        "s_dn=\"{}\" i_dn=\"{}\"",
        comma(&subject),
        comma(USER_SUBJECT)
    );
    for method in ["PROPFIND", "GET", "PUT", "MKCOL", "MOVE", "DELETE"] {
        assert!(
            log.iter().any(|l| l.starts_with(method)),
            "no {method} in {log:#?}"
        );
    }
    // Every request; a connection dropped during its handshake (a pooled connection the
    // client gave up) leaves a `TLS "-" refused` line that is no request.
    for l in log.iter().filter(|l| !l.starts_with("TLS ")) {
        assert!(l.contains(&want), "{l}\nwanted {want}");
    }
}

#[test]
fn proxy_from_the_profile_and_trust_from_a_ca_directory() {
    let w = World::new();
    let dav = w.serve();
    let proxy = w.proxy("myproxy.pem", "12:00");
    std::fs::write(w.path("root/cta/x.txt"), "x").unwrap();
    w.config(
        &dav.url(),
        &format!(
            "proxy = \"{}\"\nca_dir = \"{}\"\n",
            proxy.display(),
            w.pki.ca_dir().display()
        ),
    );
    assert_eq!(ok(&run(w.cmd(), &["list", "cta"])).trim(), "x.txt");
    // X509_CERT_DIR does the same when the profile has no ca_dir.
    w.config(&dav.url(), &format!("proxy = \"{}\"\n", proxy.display()));
    let mut c = w.cmd();
    c.env("X509_CERT_DIR", w.pki.ca_dir());
    assert_eq!(ok(&run(c, &["list", "cta"])).trim(), "x.txt");
    // Without any trust for the test CA the server is refused, naming host and trust sources.
    let e = fails(&run(w.cmd(), &["list", "cta"]), TRANSPORT);
    assert!(
        e.contains("TLS: the certificate of 127.0.0.1 was not accepted"),
        "{e}"
    );
    assert!(e.contains("trusted: the system CA store"), "{e}");
}

#[test]
fn bad_credentials_fail_before_connecting() {
    let w = World::new();
    // Nothing listens there: every failure below comes from the credential check.
    w.config(
        "https://127.0.0.1:9",
        &format!("ca_file = \"{}\"\n", w.pki.ca_path().display()),
    );
    let now = SystemTime::now();

    let expired = w.pki.path("expired");
    w.pki
        .proxy_with_dates(&expired, now - 3 * HOUR, now - HOUR)
        .unwrap();
    let e = fails(&run(w.cmd_proxy(&expired), &["list", "cta"]), AUTH);
    assert!(
        e.contains("authentication failed (credential expired)"),
        "{e}"
    );
    assert!(
        e.contains(&format!("the proxy {} expired", expired.display())),
        "{e}"
    );
    assert!(e.contains("expired at 20"), "{e}");
    assert!(e.contains(&format!("subject {USER_SUBJECT}/CN=")), "{e}");
    assert!(
        e.contains(&format!("grid-proxy-init -rfc -out {}", expired.display())),
        "{e}"
    );

    let future = w.pki.path("future");
    w.pki
        .proxy_with_dates(&future, now + 2 * HOUR, now + 4 * HOUR)
        .unwrap();
    let e = fails(&run(w.cmd_proxy(&future), &["list", "cta"]), AUTH);
    assert!(e.contains("is not valid yet"), "{e}");
    assert!(e.contains("becomes valid at"), "{e}");

    let good = w.proxy("good", "12:00");
    let blocks = pem_blocks(&good);
    assert_eq!(blocks.len(), 3, "proxy, key, user certificate");

    let alone = w.pki.path("alone");
    write_mode(&alone, &format!("{}{}", blocks[0], blocks[1]), 0o600);
    let e = fails(&run(w.cmd_proxy(&alone), &["list", "cta"]), AUTH);
    assert!(e.contains("but not the certificate that signed it"), "{e}");
    assert!(e.contains("cat ~/.globus/usercert.pem >>"), "{e}");

    let mismatch = w.pki.path("mismatch");
    let user_key = std::fs::read_to_string(w.pki.user().1).unwrap();
    write_mode(
        &mismatch,
        &format!("{}{}{}", blocks[0], user_key, blocks[2]),
        0o600,
    );
    let e = fails(&run(w.cmd_proxy(&mismatch), &["list", "cta"]), AUTH);
    assert!(
        e.contains("the private key does not match the proxy certificate"),
        "{e}"
    );

    let open = w.pki.path("open");
    write_mode(&open, &blocks.concat(), 0o644);
    let e = fails(&run(w.cmd_proxy(&open), &["list", "cta"]), AUTH);
    assert!(e.contains("permissions 0644 for the private key"), "{e}");
    assert!(e.contains("are too open"), "{e}");
    assert!(
        e.contains(&format!("hint: chmod 600 {}", open.display())),
        "{e}"
    );

    // An encrypted key, found the grid way: ~/.globus/usercert.pem and userkey.pem.
    let globus = w.path("home/.globus");
    std::fs::create_dir_all(&globus).unwrap();
    std::fs::copy(w.pki.user().0, globus.join("usercert.pem")).unwrap();
    w.pki
        .encrypted_user_key(&globus.join("userkey.pem"), "s3cret")
        .unwrap();
    let default_proxy = ctadata::cert::default_proxy_path();
    if !default_proxy.exists() {
        let e = fails(&run(w.cmd(), &["list", "cta"]), AUTH);
        assert!(e.contains("is encrypted"), "{e}");
        assert!(e.contains("grid-proxy-init -rfc"), "{e}");
        assert!(e.contains("voms-proxy-init"), "{e}");
    }
    let mut c = w.cmd();
    c.env("X509_USER_CERT", globus.join("usercert.pem"))
        .env("X509_USER_KEY", globus.join("userkey.pem"));
    let e = fails(&run(c, &["list", "cta"]), AUTH);
    assert!(
        e.contains(&format!(
            "the private key in {} is encrypted",
            globus.join("userkey.pem").display()
        )),
        "{e}"
    );

    // A proxy file that is not there.
    let e = fails(
        &run(w.cmd_proxy(&w.pki.path("nope")), &["list", "cta"]),
        AUTH,
    );
    assert!(
        e.contains("does not exist (named by X509_USER_PROXY)"),
        "{e}"
    );
}

#[test]
fn configuration_mistakes_are_configuration_errors() {
    let w = World::new();
    let proxy = w.proxy("x509up", "12:00");
    w.config(
        "https://127.0.0.1:9",
        &format!(
            "proxy = \"{}\"\nca_dir = \"{}\"\n",
            proxy.display(),
            w.path("no/such/certificates").display()
        ),
    );
    let e = fails(&run(w.cmd(), &["list", "cta"]), CONFIG);
    assert!(e.contains("the CA directory"), "{e}");
    assert!(e.contains("no/such/certificates"), "{e}");
    assert!(e.contains("fix ca_dir"), "{e}");

    w.config(
        "http://127.0.0.1:9",
        &format!("proxy = \"{}\"\n", proxy.display()),
    );
    let e = fails(&run(w.cmd(), &["list", "cta"]), CONFIG);
    assert!(e.contains("http://127.0.0.1:9"), "{e}");
    assert!(e.contains("only sent over TLS"), "{e}");
}

#[test]
fn the_server_refuses_foreign_certificates_and_a_short_proxy_warns() {
    let w = World::new();
    let dav = w.serve();
    std::fs::write(w.path("root/cta/x.txt"), "x").unwrap();
    let (cert, key) = w.pki.other_ca_user().unwrap();
    w.config(
        &dav.url(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nca_file = \"{}\"\n",
            cert.display(),
            key.display(),
            w.pki.ca_path().display()
        ),
    );
    // The server's refusal is an authentication failure, not a network fault (and not retried).
    let e = fails(&run(w.cmd(), &["list", "cta"]), AUTH);
    assert!(
        e.contains("refused the client certificate") && e.contains("cert info"),
        "{e}"
    );
    let log = dav.wait_for_line(|l| l.starts_with("TLS \"-\" refused"));
    assert!(
        log.iter().any(|l| l.starts_with("TLS \"-\" refused")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("PROPFIND")), "{log:#?}");

    // A proxy with five minutes left works, with a warning that says how to renew it.
    let short = w.proxy("short", "0:05");
    w.config(
        &dav.url(),
        &format!("ca_file = \"{}\"\n", w.pki.ca_path().display()),
    );
    let o = run(w.cmd_proxy(&short), &["list", "cta"]);
    assert_eq!(ok(&o).trim(), "x.txt");
    let e = stderr(&o);
    assert!(e.contains("WARN"), "{e}");
    assert!(
        e.contains(&format!("the proxy {} expires in", short.display())),
        "{e}"
    );
    assert!(e.contains("grid-proxy-init -rfc -out"), "{e}");
}

#[test]
fn cert_info_describes_proxies_and_certificates() {
    let w = World::new();
    w.config("https://127.0.0.1:9", "");
    let proxy = w.proxy("x509up", "12:00");
    // The default file: X509_USER_PROXY.
    let out = ok(&run(w.cmd_proxy(&proxy), &["cert", "info"]));
    let subject = format!("{USER_SUBJECT}/CN=");
    assert!(
        out.contains(&format!("file:        {}", proxy.display())),
        "{out}"
    );
    assert!(out.contains(&format!("subject:     {subject}")), "{out}");
    assert!(
        out.contains(&format!("issuer:      {USER_SUBJECT}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("identity:    {USER_SUBJECT}\n")),
        "{out}"
    );
    assert!(
        out.contains("proxy type:  RFC 3820 (impersonation)"),
        "{out}"
    );
    assert!(out.contains("not before:"), "{out}");
    assert!(out.contains("not after:"), "{out}");
    assert!(
        out.contains("time left:   11 h") || out.contains("time left:   12 h"),
        "{out}"
    );
    assert!(
        out.contains("chain:       2 certificates (proxy, end-entity)"),
        "{out}"
    );
    assert!(out.contains("private key: present"), "{out}");
    assert!(!out.contains("VOMS"), "{out}");

    let j: serde_json::Value = serde_json::from_str(&ok(&run(
        w.cmd(),
        &["--json", "cert", "info", proxy.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(j["proxy_type"], "RFC 3820");
    assert_eq!(j["proxy_policy"], "impersonation");
    assert_eq!(j["chain_length"], 2);
    assert_eq!(j["identity"], USER_SUBJECT);
    assert_eq!(j["expired"], false);
    assert!(j["seconds_left"].as_i64().unwrap() > 11 * 3600, "{j}");

    let voms = w.pki.path("voms");
    w.pki.voms_proxy_fake(&voms, "cta", 2).unwrap();
    let out = ok(&run(w.cmd(), &["cert", "info", voms.to_str().unwrap()]));
    assert!(
        out.contains("VOMS VO:     cta (server voms.example:15000)"),
        "{out}"
    );
    assert!(
        out.contains("VOMS FQAN:   /cta/Role=NULL/Capability=NULL"),
        "{out}"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(&run(
        w.cmd(),
        &["--json", "cert", "info", voms.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(j["voms"][0]["vo"], "cta");

    let now = SystemTime::now();
    let expired = w.pki.path("expired");
    w.pki
        .proxy_with_dates(&expired, now - 3 * HOUR, now - HOUR)
        .unwrap();
    let out = ok(&run(w.cmd(), &["cert", "info", expired.to_str().unwrap()]));
    assert!(out.contains("time left:   0 (expired"), "{out}");

    let out = ok(&run(
        w.cmd(),
        &["cert", "info", w.pki.user().0.to_str().unwrap()],
    ));
    assert!(
        out.contains("proxy type:  none (an end-entity certificate)"),
        "{out}"
    );
    assert!(
        out.contains("chain:       1 certificate (end-entity)"),
        "{out}"
    );
    assert!(out.contains("private key: absent"), "{out}");

    let e = fails(
        &run(w.cmd(), &["cert", "info", "/nonexistent/proxy.pem"]),
        6,
    );
    assert!(e.contains("/nonexistent/proxy.pem"), "{e}");
}
