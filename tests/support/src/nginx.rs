//! A private nginx serving a directory over WebDAV (`ngx_http_dav_module` + `dav_ext`).
//!
//! Started as `nginx -e ERRLOG -c CONF -p PREFIX/` in the foreground (`daemon off`) with its
//! own pid file, logs and temp paths; stopped with `SIGQUIT` (by the pid in its pid file) on
//! drop. When the tests run as root the workers run as root too (`user root;`), so any
//! served directory works without a `chown` to `nobody` (temporary directories are mode
//! 0700); as another user the `user` line is left out and nginx runs as that user.
//!
//! Configuration, close to real WebDAV servers with dCache's `MKCOL` habit:
//! `dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS;
//! create_full_put_path off`, `client_max_body_size 0`,
//! `client_body_temp_path` on the root's filesystem (a PUT ends in a rename), `MKCOL /dir`
//! rewritten to `MKCOL /dir/`, `min_delete_depth 0`, `autoindex on`. A `PUT` into a
//! missing directory is answered `409` before the body is read (an `if (!-d ...)` check:
//! nginx alone answers `500` there, its rename into the missing directory failing).
//!
//! The access log ([`Nginx::access_log_lines`]) has one line per request:
//! `METHOD "URI" STATUS range="..." auth=auth|- depth="..." expect="..." req_len=N sent=N conn=N`
//! (`conn` is nginx's connection serial number: requests with the same one shared a connection).
//! Only the presence of `Authorization` is logged, never its value.

use crate::tls::TestCa;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `libnginx-mod-http-dav-ext` puts the module.
pub const DAV_EXT_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

const NOT_INSTALLED: &str =
    "nginx not installed: run tests/run-all.sh (it installs nginx and libnginx-mod-http-dav-ext)";

/// Options for [`Nginx::start_with`].
#[derive(Debug, Clone, Default)]
pub struct NginxOptions<'a> {
    /// When set, every request needs `Authorization: Bearer <token>`, else `401`.
    pub token: Option<String>,
    /// Serve `https` with this CA's server certificate.
    pub tls: Option<&'a TestCa>,
}

/// A running private nginx; stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    prefix: tempfile::TempDir,
    addr: SocketAddr,
    scheme: &'static str,
    root: PathBuf,
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Checks that nginx and the dav_ext module are installed.
pub fn available() -> std::io::Result<()> {
    let found = Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found || !Path::new(DAV_EXT_MODULE).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            NOT_INSTALLED,
        ));
    }
    Ok(())
}

impl Nginx {
    /// Serves `root` over plain http without auth.
    pub fn start(root: &Path) -> std::io::Result<Nginx> {
        Self::start_with(root, NginxOptions::default())
    }

    /// Serves `root` with the given options; returns once the port answers.
    pub fn start_with(root: &Path, options: NginxOptions<'_>) -> std::io::Result<Nginx> {
        available()?;
        if let Some(token) = &options.token {
            if token.is_empty()
                || !token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c))
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the nginx token may only hold [A-Za-z0-9-._~+/=] (JWT/base64 characters)",
                ));
            }
        }
        let root = std::fs::canonicalize(root)?;
        // The prefix (with client_body_temp_path) goes next to the root so that an upload
        // ends in a rename on the same filesystem.
        let prefix = root
            .parent()
            .and_then(|p| {
                tempfile::Builder::new()
                    .prefix(".ctadata-nginx-")
                    .tempdir_in(p)
                    .ok()
            })
            .map_or_else(
                || tempfile::Builder::new().prefix("ctadata-nginx-").tempdir(),
                Ok,
            )?;
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            let conf = config(prefix.path(), &root, port, &options);
            let conf_path = prefix.path().join("nginx.conf");
            std::fs::write(&conf_path, conf)?;
            let _ = std::fs::remove_file(prefix.path().join("error.log"));
            let stderr = std::fs::File::create(prefix.path().join("stderr.log"))?;
            let mut prefix_arg = prefix.path().as_os_str().to_owned();
            prefix_arg.push("/");
            let mut child = Command::new("nginx")
                .arg("-e")
                .arg(prefix.path().join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&prefix_arg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{NOT_INSTALLED} (spawn: {e})"))
                })?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match wait_ready(&mut child, addr, prefix.path()) {
                Ok(()) => {
                    return Ok(Nginx {
                        child: Some(child),
                        prefix,
                        addr,
                        scheme: if options.tls.is_some() {
                            "https"
                        } else {
                            "http"
                        },
                        root,
                    })
                }
                Err(e) => {
                    stop(child, prefix.path());
                    let retry = e.contains("Address already in use");
                    last_err = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(std::io::Error::other(format!(
            "nginx did not start: {last_err}"
        )))
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The served directory (canonicalised).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The private prefix directory (configuration, logs, temp files).
    pub fn prefix(&self) -> &Path {
        self.prefix.path()
    }

    /// The access log so far, one request per line.
    pub fn access_log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child, self.prefix.path());
        }
    }
}

fn logs(prefix: &Path) -> String {
    let mut out = String::new();
    for name in ["error.log", "stderr.log"] {
        if let Ok(s) = std::fs::read_to_string(prefix.join(name)) {
            let _ = write!(out, "{s}");
        }
    }
    out
}

fn wait_ready(child: &mut Child, addr: SocketAddr, prefix: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("nginx exited with {status}: {}", logs(prefix)));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nginx did not answer in 15 s: {}", logs(prefix)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `SIGQUIT` to the master (pid from its pid file), waits, then kills if needed.
fn stop(mut child: Child, prefix: &Path) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = std::fs::read_to_string(prefix.join("nginx.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&p| p == child.id() as i32)
        .unwrap_or(child.id() as i32);
    // SAFETY: kill(2) on the nginx master this process started; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGQUIT);
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

fn config(prefix: &Path, root: &Path, port: u16, options: &NginxOptions<'_>) -> String {
    let p = prefix.display();
    let mut c = String::new();
    let _ = writeln!(c, "# generated by ctadata-testsupport");
    let _ = writeln!(c, "load_module {DAV_EXT_MODULE};");
    if running_as_root() {
        let _ = writeln!(c, "user root;");
    }
    let _ = writeln!(c, "worker_processes 1;");
    let _ = writeln!(c, "daemon off;");
    let _ = writeln!(c, "master_process on;");
    let _ = writeln!(c, "pid {p}/nginx.pid;");
    let _ = writeln!(c, "error_log {p}/error.log warn;");
    let _ = writeln!(c, "events {{ worker_connections 512; }}");
    let _ = writeln!(c, "http {{");
    let _ = writeln!(c, "  default_type application/octet-stream;");
    let _ = writeln!(c, "  sendfile on;");
    let _ = writeln!(c, "  client_body_temp_path {p}/client_body;");
    for t in ["proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(c, "  {t}_temp_path {p}/{t}_temp;");
    }
    let _ = writeln!(
        c,
        "  map $http_authorization $cta_auth_present {{ default auth; \"\" -; }}"
    );
    if let Some(token) = &options.token {
        let _ = writeln!(
            c,
            "  map $http_authorization $cta_auth_ok {{ default 0; \"Bearer {token}\" 1; }}"
        );
    }
    // The parent directory of the request path, to answer a PUT into a missing directory
    // with 409 as WebDAV servers do (nginx itself answers 500 when its rename fails).
    let _ = writeln!(
        c,
        "  map $uri $cta_parent {{ \"~^(?<p>.*)/[^/]*$\" $p; default \"\"; }}"
    );
    let _ = writeln!(
        c,
        "  log_format cta '$request_method \"$request_uri\" $status range=\"$http_range\" auth=$cta_auth_present depth=\"$http_depth\" expect=\"$http_expect\" req_len=$request_length sent=$bytes_sent conn=$connection';"
    );
    let _ = writeln!(c, "  access_log {p}/access.log cta;");
    let _ = writeln!(c, "  server {{");
    match options.tls {
        Some(ca) => {
            let _ = writeln!(c, "    listen 127.0.0.1:{port} ssl;");
            let _ = writeln!(
                c,
                "    ssl_certificate {};",
                ca.server_cert_path().display()
            );
            let _ = writeln!(
                c,
                "    ssl_certificate_key {};",
                ca.server_key_path().display()
            );
        }
        None => {
            let _ = writeln!(c, "    listen 127.0.0.1:{port};");
        }
    }
    let _ = writeln!(c, "    server_name localhost;");
    let _ = writeln!(c, "    root {};", root.display());
    let _ = writeln!(c, "    client_max_body_size 0;");
    let _ = writeln!(c, "    location / {{");
    if options.token.is_some() {
        let _ = writeln!(
            c,
            "      if ($cta_auth_ok = 0) {{ add_header WWW-Authenticate 'Bearer realm=\"nginx\"' always; return 401; }}"
        );
    }
    let _ = writeln!(c, "      set $cta_put_check \"\";");
    let _ = writeln!(
        c,
        "      if ($request_method = PUT) {{ set $cta_put_check P; }}"
    );
    let _ = writeln!(
        c,
        "      if (!-d $document_root$cta_parent) {{ set $cta_put_check \"${{cta_put_check}}M\"; }}"
    );
    let _ = writeln!(c, "      if ($cta_put_check = PM) {{ return 409; }}");
    let _ = writeln!(
        c,
        "      if ($request_method = MKCOL) {{ rewrite ^(.*[^/])$ $1/ break; }}"
    );
    let _ = writeln!(c, "      dav_methods PUT DELETE MKCOL COPY MOVE;");
    let _ = writeln!(c, "      dav_ext_methods PROPFIND OPTIONS;");
    let _ = writeln!(c, "      create_full_put_path off;");
    let _ = writeln!(c, "      min_delete_depth 0;");
    let _ = writeln!(c, "      dav_access user:rw group:rw all:r;");
    let _ = writeln!(c, "      autoindex on;");
    let _ = writeln!(c, "    }}");
    let _ = writeln!(c, "  }}");
    let _ = writeln!(c, "}}");
    c
}
