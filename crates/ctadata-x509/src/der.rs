//! Just enough DER to read the two grid extensions x509-parser does not know: RFC 3820's
//! ProxyCertInfo and the VOMS attribute certificates.

/// One DER element: its tag byte and its contents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet (class, constructed bit, tag number < 31).
    pub tag: u8,
    /// The contents octets.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Is this element constructed (holds other elements)?
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The elements inside a constructed element (stops at the first malformed one).
    pub fn children(&self) -> Vec<Tlv<'a>> {
        let mut out = Vec::new();
        let mut rest = self.value;
        while !rest.is_empty() {
            match read(rest) {
                Some((t, r)) => {
                    out.push(t);
                    rest = r;
                }
                None => break,
            }
        }
        out
    }
}

/// Reads one element from the front of `data`; returns it and what follows.
pub(crate) fn read(data: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = data.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers: not used by the structures read here
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first & 0x80 == 0 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &b in &rest[..n] {
            l = (l << 8) | b as usize;
        }
        rest = &rest[n..];
        l
    };
    if rest.len() < len {
        return None;
    }
    Some((
        Tlv {
            tag,
            value: &rest[..len],
        },
        &rest[len..],
    ))
}

/// Encodes an OID's dotted text as DER contents (no tag, no length).
pub(crate) fn oid_contents(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    out
}

/// Decodes OID contents to dotted text.
pub(crate) fn oid_text(contents: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    for &b in contents {
        v = (v << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    arcs.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// Every element below `root` (depth first, in document order), constructed ones
/// included. Iterative: a hostile certificate nested thousands deep cannot exhaust the
/// stack.
pub(crate) fn walk<'a>(root: Tlv<'a>, out: &mut Vec<Tlv<'a>>) {
    let mut stack = vec![root];
    while let Some(t) = stack.pop() {
        out.push(t);
        // Context-specific primitive tags may still hold DER (implicit tagging): only
        // descend into elements marked constructed.
        if t.constructed() {
            stack.extend(t.children().into_iter().rev());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_round_trip() {
        for o in [
            "1.3.6.1.5.5.7.1.14",
            "1.3.6.1.4.1.8005.100.100.4",
            "2.5.4.3",
        ] {
            assert_eq!(oid_text(&oid_contents(o)), o);
        }
        assert_eq!(
            oid_contents("1.3.6.1.4.1.8005.100.100.4"),
            [0x2B, 0x06, 0x01, 0x04, 0x01, 0xBE, 0x45, 0x64, 0x64, 0x04]
        );
    }

    #[test]
    fn reads_long_lengths_and_refuses_truncation() {
        let mut d = vec![0x04, 0x81, 0x80];
        d.extend([7u8; 128]);
        let (t, rest) = read(&d).unwrap();
        assert_eq!(t.value.len(), 128);
        assert!(rest.is_empty());
        assert!(read(&d[..50]).is_none());
        assert!(read(&[]).is_none());
    }
}
