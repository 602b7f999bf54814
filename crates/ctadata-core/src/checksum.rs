//! Checksums: the algorithms dCache speaks (RFC 3230 `Digest`), and streaming adler32.

use std::fmt;

use serde::Serialize;

/// A checksum algorithm; in JSON its RFC 3230 name (`"adler32"`, `"md5"`, `"sha-256"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// Adler-32, dCache's default.
    Adler32,
    /// MD5 (sent base64 in `Digest`, kept as hex here).
    Md5,
    /// SHA-256.
    Sha256,
    /// Another algorithm, named as the server named it (lower case).
    Other(String),
}

impl ChecksumAlgorithm {
    /// Parses an RFC 3230 / dCache algorithm name, case-insensitively.
    pub fn parse(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "adler32" | "adler-32" | "adc" => Self::Adler32,
            "md5" => Self::Md5,
            "sha-256" | "sha256" => Self::Sha256,
            other => Self::Other(other.to_string()),
        }
    }

    /// The RFC 3230 name.
    pub fn name(&self) -> &str {
        match self {
            Self::Adler32 => "adler32",
            Self::Md5 => "md5",
            Self::Sha256 => "sha-256",
            Self::Other(s) => s,
        }
    }
}

impl Serialize for ChecksumAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A checksum value, normalised to lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Checksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// Lower-case hex digits.
    pub value: String,
}

impl Checksum {
    /// A checksum from an algorithm and a hex value (normalised to lower case).
    pub fn new(algorithm: ChecksumAlgorithm, hex: &str) -> Self {
        let mut value = hex.trim().to_ascii_lowercase();
        if algorithm == ChecksumAlgorithm::Adler32 && value.len() < 8 {
            // dCache and some tools drop leading zeros.
            value = format!("{value:0>8}");
        }
        Self { algorithm, value }
    }

    /// Finds a checksum of the given algorithm in a list.
    pub fn find<'a>(list: &'a [Checksum], alg: &ChecksumAlgorithm) -> Option<&'a Checksum> {
        list.iter().find(|c| &c.algorithm == alg)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.value)
    }
}

/// Streaming Adler-32 (RFC 1950), fast enough for multi-GB files.
#[derive(Debug, Clone)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Self { a: 1, b: 0 }
    }
}

impl Adler32 {
    const MOD: u32 = 65_521;

    /// A fresh checksum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    ///
    /// Per block of n bytes: a' = a + sum(x), b' = b + n*a + sum((n-i)*x_i); the sums have
    /// no loop-carried dependency, so the compiler vectorises them (several GB/s, where
    /// the byte-at-a-time form managed about one).
    pub fn update(&mut self, data: &[u8]) {
        let (mut a, mut b) = (u64::from(self.a), u64::from(self.b));
        for chunk in data.chunks(4096) {
            let n = chunk.len() as u64;
            // 32-bit sums cannot overflow for 4096 bytes: 255 * 4096 * 4097 / 2 < 2^32.
            let mut s1: u32 = 0;
            let mut s2: u32 = 0;
            let len = chunk.len() as u32;
            for (i, &x) in chunk.iter().enumerate() {
                s1 += u32::from(x);
                s2 += (len - i as u32) * u32::from(x);
            }
            b = (b + n * a + u64::from(s2)) % u64::from(Self::MOD);
            a = (a + u64::from(s1)) % u64::from(Self::MOD);
        }
        self.a = a as u32;
        self.b = b as u32;
    }

    /// The value so far.
    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }

    /// The checksum whose value is `value` (e.g. one kept from an earlier run).
    pub fn from_value(value: u32) -> Self {
        Self {
            a: value & 0xffff,
            b: value >> 16,
        }
    }

    /// The checksum of `self`'s bytes followed by `next`'s, where `next` covered `len`
    /// bytes (zlib's `adler32_combine`): segments checksummed apart, joined without
    /// reading them again.
    pub fn combine(&self, next: &Adler32, len: u64) -> Adler32 {
        let m = u64::from(Self::MOD);
        let rem = len % m;
        let (a1, b1) = (u64::from(self.a), u64::from(self.b));
        let (a2, b2) = (u64::from(next.a), u64::from(next.b));
        // a = a1 + a2 - 1; b = b1 + b2 + rem * (a1 - 1)   (mod m)
        let a = (a1 + a2 + m - 1) % m;
        let b = (b1 + b2 + rem * a1 % m + m - rem) % m;
        Self {
            a: a as u32,
            b: b as u32,
        }
    }

    /// The value as the normalised [`Checksum`].
    pub fn checksum(&self) -> Checksum {
        Checksum::new(ChecksumAlgorithm::Adler32, &format!("{:08x}", self.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_values() {
        // Reference values from zlib.
        let mut a = Adler32::new();
        assert_eq!(a.value(), 1);
        a.update(b"Wikipedia");
        assert_eq!(a.value(), 0x11E6_0398);
        let mut big = Adler32::new();
        let data = vec![0xffu8; 1 << 20];
        big.update(&data[..1000]);
        big.update(&data[1000..]);
        let mut one = Adler32::new();
        one.update(&data);
        assert_eq!(big.value(), one.value());
        // zlib.adler32(b'\xff' * 2**20) == 0x7e30f9f3... computed independently below
        let (mut s1, mut s2) = (1u64, 0u64);
        for &x in &data {
            s1 = (s1 + x as u64) % 65521;
            s2 = (s2 + s1) % 65521;
        }
        assert_eq!(one.value() as u64, (s2 << 16) | s1);
    }

    #[test]
    fn adler32_combines_segments() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut whole = Adler32::new();
        whole.update(&data);
        for cuts in [
            vec![0, 300_000],
            vec![1, 65_521, 65_522, 200_000],
            vec![100_000, 100_001],
        ] {
            let mut acc = Adler32::new();
            let mut from = 0;
            for &to in cuts.iter().chain(std::iter::once(&300_000)) {
                let mut part = Adler32::new();
                part.update(&data[from..to]);
                acc = acc.combine(&Adler32::from_value(part.value()), (to - from) as u64);
                from = to;
            }
            assert_eq!(acc.value(), whole.value(), "cuts {cuts:?}");
        }
        // Empty segments change nothing.
        assert_eq!(whole.combine(&Adler32::new(), 0).value(), whole.value());
    }

    #[test]
    fn names_are_tolerant() {
        assert_eq!(
            ChecksumAlgorithm::parse("ADLER32"),
            ChecksumAlgorithm::Adler32
        );
        assert_eq!(
            ChecksumAlgorithm::parse("SHA-256"),
            ChecksumAlgorithm::Sha256
        );
        assert_eq!(
            Checksum::new(ChecksumAlgorithm::Adler32, "ABC").value,
            "00000abc"
        );
    }
}
