//! Grid X.509 for tests: a PKI made in the test run with the `openssl` command line and a real
//! proxy made by `grid-proxy-init`, and a real HTTPS WebDAV server that requires client
//! certificates and accepts RFC 3820 proxies.
//!
//! * [`GridPki`]: a test CA (`ca.pem`, also as a hashed directory `certificates/<hash>.0`), a
//!   host certificate for `localhost`/`127.0.0.1`, a user certificate (`/O=cta-data
//!   tests/CN=Alice Tester`), proxies from `grid-proxy-init -rfc` (Debian
//!   `globus-proxy-utils`), RFC 3820 proxies with any validity window signed by `openssl ca`
//!   (expired, not yet valid), VOMS proxies from `voms-proxy-fake` (Debian `voms-clients`), an
//!   encrypted copy of the user key, and a user of another CA.
//! * [`X509Dav`]: `tests/x509dav/server.py`, wsgidav served by cheroot with Python's `ssl`
//!   (OpenSSL 3) on `127.0.0.1`: `CERT_REQUIRED` against the test CA, with
//!   `VERIFY_ALLOW_PROXY_CERTS` set on the context (OpenSSL 3 ignores the old
//!   `OPENSSL_ALLOW_PROXY_CERTS` variable). Its access log has one line per request with the
//!   client subject the server authenticated, and one line per refused handshake with
//!   OpenSSL's reason. Installed by `tests/run-all.sh` (pip, `tests/x509dav/requirements.txt`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server script.
pub const SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../x509dav/server.py");

/// The subject of the test user, in the grid's slash form.
pub const USER_SUBJECT: &str = "/O=cta-data tests/CN=Alice Tester";

const NOT_INSTALLED: &str =
    "run tests/run-all.sh: it installs openssl, globus-proxy-utils, voms-clients and the Python packages of tests/x509dav/requirements.txt";

fn err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

/// Runs a command; fails with its stderr.
fn run(cmd: &mut Command) -> std::io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("{:?}: {e} ({NOT_INSTALLED})", cmd.get_program()),
        )
    })?;
    if !out.status.success() {
        return Err(err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn openssl() -> Command {
    Command::new("openssl")
}

fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `YYYYMMDDHHMMSSZ` for `openssl ca -startdate/-enddate`.
pub fn generalized_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A test PKI in a directory of its own (removed on drop).
#[derive(Debug)]
pub struct GridPki {
    dir: tempfile::TempDir,
    serial: AtomicU32,
}

impl GridPki {
    /// Makes the CA, its hashed directory, the host certificate and the user certificate.
    pub fn new() -> std::io::Result<GridPki> {
        let dir = tempfile::Builder::new()
            .prefix("ctadata-gridpki-")
            .tempdir()?;
        let pki = GridPki {
            dir,
            serial: AtomicU32::new(
                (SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
                    % 1_000_000)
                    + 1000,
            ),
        };
        pki.make_ca("ca", "/O=cta-data tests/CN=cta-data test CA")?;
        std::fs::create_dir_all(pki.ca_dir())?;
        let hash = run(openssl()
            .args(["x509", "-subject_hash", "-noout", "-in"])
            .arg(pki.ca_path()))?;
        std::fs::copy(
            pki.ca_path(),
            pki.ca_dir().join(format!("{}.0", hash.trim())),
        )?;
        pki.issue(
            "ca",
            "host",
            "/O=cta-data tests/CN=localhost",
            "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
            "rsa",
        )?;
        pki.issue(
            "ca",
            "user",
            USER_SUBJECT,
            "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
            "rsa",
        )?;
        Ok(pki)
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file of the PKI directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The test CA certificate (`ca.pem`).
    pub fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The hashed CA directory (`certificates/<hash>.0`), as `X509_CERT_DIR` would name it.
    pub fn ca_dir(&self) -> PathBuf {
        self.path("certificates")
    }

    /// The host certificate (`localhost`, `127.0.0.1`) and its key.
    pub fn host(&self) -> (PathBuf, PathBuf) {
        (self.path("host.pem"), self.path("host.key"))
    }

    /// The user certificate and its key (mode 0600, unencrypted).
    pub fn user(&self) -> (PathBuf, PathBuf) {
        (self.path("user.pem"), self.path("user.key"))
    }

    fn next_serial(&self) -> u32 {
        self.serial.fetch_add(1, Ordering::Relaxed)
    }

    fn new_key(&self, out: &Path, kind: &str) -> std::io::Result<()> {
        let mut c = openssl();
        c.args(["genpkey", "-out"]).arg(out);
        match kind {
            "ec" => c.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            _ => c.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        };
        run(&mut c)?;
        chmod(out, 0o600)
    }

    fn make_ca(&self, name: &str, subject: &str) -> std::io::Result<()> {
        let key = self.path(&format!("{name}.key"));
        self.new_key(&key, "rsa")?;
        run(openssl()
            .args(["req", "-x509", "-new", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(self.path(&format!("{name}.pem")))
            .args(["-days", "30", "-subj", subject])
            .args(["-addext", "basicConstraints=critical,CA:true"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]))?;
        Ok(())
    }

    /// Issues `<name>.pem`/`<name>.key` signed by CA `<ca>` with the given extensions.
    fn issue(
        &self,
        ca: &str,
        name: &str,
        subject: &str,
        ext: &str,
        key_kind: &str,
    ) -> std::io::Result<()> {
        let key = self.path(&format!("{name}.key"));
        self.new_key(&key, key_kind)?;
        let csr = self.path(&format!("{name}.csr"));
        run(openssl()
            .args(["req", "-new", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", subject]))?;
        let extfile = self.path(&format!("{name}.ext"));
        std::fs::write(&extfile, ext)?;
        run(openssl()
            .args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(self.path(&format!("{ca}.pem")))
            .arg("-CAkey")
            .arg(self.path(&format!("{ca}.key")))
            .args(["-set_serial", &self.next_serial().to_string()])
            .args(["-days", "30", "-sha256", "-extfile"])
            .arg(&extfile)
            .arg("-out")
            .arg(self.path(&format!("{name}.pem"))))?;
        Ok(())
    }

    /// A user (`/O=other tests/CN=Mallory`) of another CA, not trusted by the server.
    pub fn other_ca_user(&self) -> std::io::Result<(PathBuf, PathBuf)> {
        if !self.path("other-user.pem").exists() {
            self.make_ca("other-ca", "/O=other tests/CN=other test CA")?;
            self.issue(
                "other-ca",
                "other-user",
                "/O=other tests/CN=Mallory",
                "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
                "rsa",
            )?;
        }
        Ok((self.path("other-user.pem"), self.path("other-user.key")))
    }

    /// The other CA's certificate (made by [`GridPki::other_ca_user`]).
    pub fn other_ca_path(&self) -> std::io::Result<PathBuf> {
        self.other_ca_user()?;
        Ok(self.path("other-ca.pem"))
    }

    /// A real RFC 3820 proxy: `grid-proxy-init -rfc -cert user.pem -key user.key -out OUT
    /// -valid VALID` (`H:MM`). The file holds proxy, key and user certificate, mode 0600.
    pub fn grid_proxy_init(&self, out: &Path, valid: &str) -> std::io::Result<()> {
        let (cert, key) = self.user();
        run(Command::new("grid-proxy-init")
            .args(["-rfc", "-q", "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-out")
            .arg(out)
            .args(["-valid", valid]))?;
        Ok(())
    }

    /// A VOMS proxy from `voms-proxy-fake` (the host certificate plays the VOMS server) with
    /// VO `vo` and FQAN `/<vo>/Role=NULL/Capability=NULL`, valid `hours`.
    pub fn voms_proxy_fake(&self, out: &Path, vo: &str, hours: u32) -> std::io::Result<()> {
        let (cert, key) = self.user();
        let (hcert, hkey) = self.host();
        run(Command::new("voms-proxy-fake")
            .env("RANDFILE", self.path("rnd"))
            .arg("-certdir")
            .arg(self.ca_dir())
            .args(["-rfc", "-q", "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-hostcert")
            .arg(hcert)
            .arg("-hostkey")
            .arg(hkey)
            .args(["-voms", vo, "-uri", "voms.example:15000"])
            .args(["-fqan", &format!("/{vo}/Role=NULL/Capability=NULL")])
            .args(["-hours", &hours.to_string()])
            .arg("-out")
            .arg(out))?;
        Ok(())
    }

    /// An RFC 3820 impersonation proxy of the user valid from `start` to `end`, signed by
    /// `openssl ca` (grid-proxy-init refuses dates in the past or future); written as
    /// grid-proxy-init writes it: proxy, key, user certificate, mode 0600.
    pub fn proxy_with_dates(
        &self,
        out: &Path,
        start: SystemTime,
        end: SystemTime,
    ) -> std::io::Result<()> {
        let serial = self.next_serial();
        let work = self.path(&format!("proxy-{serial}"));
        std::fs::create_dir_all(work.join("new"))?;
        std::fs::write(work.join("index.txt"), "")?;
        std::fs::write(work.join("serial"), format!("{serial:08X}\n"))?;
        let conf = work.join("ca.cnf");
        std::fs::write(
            &conf,
            format!(
                "[ca]\ndefault_ca = proxyca\n[proxyca]\ndatabase = {w}/index.txt\nnew_certs_dir = {w}/new\nserial = {w}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\nemail_in_dn = no\n[any]\norganizationName = optional\ncommonName = optional\n[proxy]\nkeyUsage = critical,digitalSignature,keyEncipherment\nproxyCertInfo = critical,language:id-ppl-inheritAll\n",
                w = work.display()
            ),
        )?;
        let key = work.join("proxy.key");
        self.new_key(&key, "rsa")?;
        let csr = work.join("proxy.csr");
        run(openssl()
            .args(["req", "-new", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("{USER_SUBJECT}/CN={serial}")]))?;
        let (ucert, ukey) = self.user();
        let pem = work.join("proxy.pem");
        run(openssl()
            .args(["ca", "-batch", "-notext", "-preserveDN", "-config"])
            .arg(&conf)
            .args(["-extensions", "proxy", "-cert"])
            .arg(&ucert)
            .arg("-keyfile")
            .arg(&ukey)
            .args(["-startdate", &generalized_time(start)])
            .args(["-enddate", &generalized_time(end)])
            .arg("-in")
            .arg(&csr)
            .arg("-out")
            .arg(&pem))?;
        let mut all = std::fs::read(&pem)?;
        all.extend(std::fs::read(&key)?);
        all.extend(std::fs::read(&ucert)?);
        std::fs::write(out, all)?;
        chmod(out, 0o600)
    }

    /// The user key encrypted with `pass` (PKCS#8 `ENCRYPTED PRIVATE KEY`), mode 0600.
    pub fn encrypted_user_key(&self, out: &Path, pass: &str) -> std::io::Result<()> {
        run(openssl()
            .args([
                "pkey",
                "-aes256",
                "-passout",
                &format!("pass:{pass}"),
                "-in",
            ])
            .arg(self.user().1)
            .arg("-out")
            .arg(out))?;
        chmod(out, 0o600)
    }
}

/// Checks that Python with wsgidav and cheroot is there.
pub fn available() -> std::io::Result<()> {
    run(Command::new("python3").args([
        "-c",
        "import ssl, wsgidav, cheroot; ssl.VERIFY_ALLOW_PROXY_CERTS",
    ]))
    .map(|_| ())
    .map_err(|e| err(format!("python3 with wsgidav and cheroot is missing: {e}")))
}

/// The HTTPS WebDAV server; stopped on drop.
#[derive(Debug)]
pub struct X509Dav {
    child: Option<Child>,
    logs: tempfile::TempDir,
    addr: SocketAddr,
    root: PathBuf,
}

impl X509Dav {
    /// Serves `root` with the PKI's host certificate, requiring client certificates of its CA
    /// (proxies accepted); returns once it listens.
    pub fn start(root: &Path, pki: &GridPki) -> std::io::Result<X509Dav> {
        available()?;
        let root = std::fs::canonicalize(root)?;
        let logs = tempfile::Builder::new()
            .prefix("ctadata-x509dav-")
            .tempdir()?;
        let (cert, key) = pki.host();
        let stderr = std::fs::File::create(logs.path().join("stderr.log"))?;
        let mut child = Command::new("python3")
            .arg(SERVER_SCRIPT)
            .arg("--root")
            .arg(&root)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--client-ca")
            .arg(pki.ca_path())
            .arg("--access-log")
            .arg(logs.path().join("access.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| err(format!("python3: {e} ({NOT_INSTALLED})")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let e = std::fs::read_to_string(logs.path().join("stderr.log")).unwrap_or_default();
            return Err(err(format!(
                "the x509 WebDAV server did not start ({NOT_INSTALLED}): {line}{e}"
            )));
        };
        Ok(X509Dav {
            child: Some(child),
            logs,
            addr,
            root,
        })
    }

    /// Base URL, `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The served directory (canonicalised).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The access log so far: `METHOD "PATH" STATUS verify=... s_dn="..." i_dn="..."` per
    /// request, `TLS "-" refused reason="..."` per refused handshake.
    pub fn access_log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.logs.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The access log once a line matches `pred` (or after 10 s): a refused handshake is
    /// logged by the server after the client has seen the alert.
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.access_log_lines();
            if lines.iter().any(|l| pred(l)) || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for X509Dav {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_times() {
        assert_eq!(generalized_time(UNIX_EPOCH), "19700101000000Z");
        assert_eq!(
            generalized_time(UNIX_EPOCH + Duration::from_secs(1_732_577_062)),
            "20241125232422Z"
        );
    }
}
