//! Checksums as dCache reports them: adler32 (8 lowercase hex digits), md5 and sha-256
//! (base64, RFC 3230 `Digest` style).

use base64::Engine as _;
use md5::Digest as _;
use std::io::Read;
use std::path::Path;

const MOD_ADLER: u32 = 65_521;
/// Largest n such that 255 n (n + 1) / 2 + (n + 1) (MOD_ADLER - 1) fits in a u32.
const NMAX: usize = 5552;

/// Incremental adler32 (RFC 1950), the checksum dCache stores by default.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Adler32 {
    /// A fresh checksum (the value of empty input is 1).
    pub fn new() -> Self {
        Adler32 { a: 1, b: 0 }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(NMAX) {
            for &byte in chunk {
                self.a += u32::from(byte);
                self.b += self.a;
            }
            self.a %= MOD_ADLER;
            self.b %= MOD_ADLER;
        }
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }

    /// The checksum as dCache prints it: 8 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:08x}", self.value())
    }
}

/// adler32 of a byte slice as 8 lowercase hex digits.
pub fn adler32_hex(data: &[u8]) -> String {
    let mut a = Adler32::new();
    a.update(data);
    a.hex()
}

/// md5 of a byte slice, base64 encoded (the RFC 3230 `Digest: md5=` form).
pub fn md5_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// sha-256 of a byte slice, base64 encoded (the RFC 3230 `Digest: sha-256=` form).
pub fn sha256_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// The digest algorithms the dCache double answers `Want-Digest` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgo {
    /// `adler32=<8 hex digits>`.
    Adler32,
    /// `md5=<base64>`.
    Md5,
    /// `sha-256=<base64>`.
    Sha256,
}

impl DigestAlgo {
    /// The token used in `Want-Digest` and `Digest` headers.
    pub fn token(self) -> &'static str {
        match self {
            DigestAlgo::Adler32 => "adler32",
            DigestAlgo::Md5 => "md5",
            DigestAlgo::Sha256 => "sha-256",
        }
    }

    /// Parses a `Want-Digest` token (case-insensitive); unknown algorithms give `None`.
    pub fn from_token(token: &str) -> Option<Self> {
        match token.trim().to_ascii_lowercase().as_str() {
            "adler32" | "adler-32" => Some(DigestAlgo::Adler32),
            "md5" => Some(DigestAlgo::Md5),
            "sha-256" | "sha256" => Some(DigestAlgo::Sha256),
            _ => None,
        }
    }
}

/// Picks the preferred supported algorithm of a `Want-Digest` header value
/// (highest q-value, then first listed; `q=0` excludes an algorithm).
pub fn choose_digest(want_digest: &str) -> Option<DigestAlgo> {
    let mut best: Option<(f32, usize, DigestAlgo)> = None;
    for (index, item) in want_digest.split(',').enumerate() {
        let mut parts = item.split(';');
        let Some(algo) = parts.next().and_then(DigestAlgo::from_token) else {
            continue;
        };
        let mut q = 1.0f32;
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
        }
        if q <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((bq, _, _)) => q > bq,
        };
        if better {
            best = Some((q, index, algo));
        }
    }
    best.map(|(_, _, algo)| algo)
}

/// Streaming digest state for any [`DigestAlgo`].
pub(crate) enum Hasher {
    Adler32(Adler32),
    Md5(md5::Md5),
    Sha256(ring::digest::Context),
}

impl Hasher {
    pub(crate) fn new(algo: DigestAlgo) -> Self {
        match algo {
            DigestAlgo::Adler32 => Hasher::Adler32(Adler32::new()),
            DigestAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            DigestAlgo::Sha256 => Hasher::Sha256(ring::digest::Context::new(&ring::digest::SHA256)),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Adler32(a) => a.update(data),
            Hasher::Md5(m) => m.update(data),
            Hasher::Sha256(s) => s.update(data),
        }
    }

    /// The value in `Digest` header form (without the `algo=` prefix).
    pub(crate) fn finish(self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Hasher::Adler32(a) => a.hex(),
            Hasher::Md5(m) => b64.encode(m.finalize()),
            Hasher::Sha256(s) => b64.encode(s.finish().as_ref()),
        }
    }
}

/// Computes the `Digest` value (without the `algo=` prefix) of a whole file.
pub fn file_digest(path: &Path, algo: DigestAlgo) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::new(algo);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// Makes a plausible but wrong digest value of the same shape (for `corrupt_digest`).
pub(crate) fn corrupt(algo: DigestAlgo, value: &str) -> String {
    match algo {
        DigestAlgo::Adler32 => {
            let v = u32::from_str_radix(value, 16).unwrap_or(0);
            format!("{:08x}", v ^ 0x0101_0101)
        }
        DigestAlgo::Md5 | DigestAlgo::Sha256 => {
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut raw = b64.decode(value).unwrap_or_default();
            if let Some(first) = raw.first_mut() {
                *first ^= 0xff;
            }
            b64.encode(raw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32_hex(b""), "00000001");
        assert_eq!(adler32_hex(b"Wikipedia"), "11e60398");
        let big = vec![0xffu8; 100_000];
        let mut a = Adler32::new();
        for chunk in big.chunks(7) {
            a.update(chunk);
        }
        assert_eq!(a.hex(), adler32_hex(&big));
    }

    #[test]
    fn md5_and_sha256() {
        assert_eq!(md5_base64(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            sha256_base64(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn want_digest_choice() {
        assert_eq!(choose_digest("adler32"), Some(DigestAlgo::Adler32));
        assert_eq!(choose_digest("crc32c, MD5"), Some(DigestAlgo::Md5));
        assert_eq!(
            choose_digest("adler32;q=0.3, sha-256;q=1"),
            Some(DigestAlgo::Sha256)
        );
        assert_eq!(choose_digest("adler32;q=0"), None);
        assert_eq!(choose_digest("unknown"), None);
    }
}
