//! Peer tools used to check the servers: curl, and python3 for independent checksums.

use std::path::Path;
use std::process::{Command, Stdio};

/// What one curl run gave.
#[derive(Debug)]
pub struct CurlOut {
    /// Status of the last response (`%{http_code}`), 0 when none.
    pub status: u16,
    /// All response header blocks, as dumped by `-D`.
    pub headers: String,
    /// The body of the last response.
    pub body: Vec<u8>,
    /// curl's exit code.
    pub exit: i32,
    /// curl's error output.
    pub stderr: String,
}

impl CurlOut {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Values of a header over all dumped responses, in order (name case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    }

    /// The last value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).pop()
    }

    /// The status codes of every dumped response (redirects included).
    pub fn statuses(&self) -> Vec<u16> {
        self.headers
            .lines()
            .filter(|l| l.starts_with("HTTP/"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect()
    }
}

/// Runs `curl -sS` with the given arguments plus header/body capture.
pub fn curl(args: &[&str]) -> CurlOut {
    curl_stdin(args, None)
}

/// Like [`curl`], feeding `stdin` to curl's standard input.
pub fn curl_stdin(args: &[&str], stdin: Option<&[u8]>) -> CurlOut {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.arg("-sS")
        .arg("--max-time")
        .arg("60")
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .arg("-w")
        .arg("%{http_code}")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("curl is installed");
    if let Some(data) = stdin {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    CurlOut {
        status: String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
        exit: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Independent checksums of a file from python3: (adler32 hex, md5 base64).
pub fn python_checksums(file: &Path) -> (String, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys,zlib,hashlib,base64\n\
             d=open(sys.argv[1],'rb').read()\n\
             print('%08x' % zlib.adler32(d))\n\
             print(base64.b64encode(hashlib.md5(d).digest()).decode())",
        )
        .arg(file)
        .output()
        .expect("python3 is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    )
}

/// Deterministic test data of `len` bytes.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Counts occurrences of `needle` in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The `<d:href>` values of a multistatus body, in order (loose parse, any prefix).
pub fn hrefs(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(":href>") {
        rest = &rest[i + ":href>".len()..];
        if let Some(end) = rest.find("</") {
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        // skip the closing tag's own ":href>"
        if let Some(i) = rest.find(":href>") {
            rest = &rest[i + ":href>".len()..];
        }
    }
    out
}
