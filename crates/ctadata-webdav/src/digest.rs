//! RFC 3230 `Digest` headers and dCache's `Checksums` property, parsed tolerantly.

use base64::Engine;
use ctadata_core::{Checksum, ChecksumAlgorithm};

/// The `Want-Digest` header cta-data sends: adler32 first (dCache's default), md5 second.
pub const WANT_DIGEST: &str = "adler32;q=1.0, md5;q=0.5";

/// Parses `adler32=0a1b2c3d, MD5=HUXZLQLMuI/KZ5KDcJPcOA==` (case-insensitive names,
/// base64 md5 and sha-256 turned into hex, hex accepted too). Unparsable parts are skipped.
pub fn parse_digest(value: &str) -> Vec<Checksum> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let Some((name, val)) = part.trim().split_once('=') else {
            continue;
        };
        if name.trim().is_empty() {
            continue;
        }
        let alg = ChecksumAlgorithm::parse(name);
        let val = val.trim().trim_matches('"');
        if val.is_empty() {
            continue;
        }
        let hex = match alg {
            ChecksumAlgorithm::Adler32 => {
                if val.len() <= 8 && val.chars().all(|c| c.is_ascii_hexdigit()) {
                    val.to_string()
                } else {
                    continue;
                }
            }
            ChecksumAlgorithm::Md5 => match to_hex(val, 16) {
                Some(h) => h,
                None => continue,
            },
            ChecksumAlgorithm::Sha256 => match to_hex(val, 32) {
                Some(h) => h,
                None => continue,
            },
            ChecksumAlgorithm::Other(_) => val.to_string(),
        };
        let c = Checksum::new(alg, &hex);
        if !out.iter().any(|x: &Checksum| x.algorithm == c.algorithm) {
            out.push(c);
        }
    }
    out
}

/// A digest of `len` bytes given as hex or as base64, as lower-case hex.
fn to_hex(val: &str, len: usize) -> Option<String> {
    if val.len() == 2 * len && val.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(val.to_ascii_lowercase());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(val)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(val))
        .ok()?;
    (bytes.len() == len).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_parsing() {
        let v = parse_digest("ADLER32=0A1B2C3D, md5=HUXZLQLMuI/KZ5KDcJPcOA==,sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], Checksum::new(ChecksumAlgorithm::Adler32, "0a1b2c3d"));
        assert_eq!(v[1].value, "1d45d92d02ccb88fca6792837093dc38");
        assert_eq!(
            v[2].value,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(parse_digest("adler32=abc")[0].value, "00000abc");
        assert!(parse_digest("garbage, adler32=zzzz, =x").is_empty());
        assert_eq!(
            parse_digest("md5=1d45d92d02ccb88fca6792837093dc38")[0].value,
            "1d45d92d02ccb88fca6792837093dc38"
        );
    }
}
