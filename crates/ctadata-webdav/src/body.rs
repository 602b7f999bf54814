//! Reading a GET's answer, shared by every HTTP backend: the byte range the server says it
//! sent (checked against the one asked for), and the body as a stream that fails when the
//! connection breaks, stalls, or ends short of its announced length.

use std::ops::Range;
use std::time::Duration;

use ctadata_core::{ByteRange, ByteStream, Error, RemotePath, Result};
use futures::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::Url;

use crate::urls::redact;

/// Parses `bytes 0-9/100` (the total may be `*`); `None` for anything else, including an
/// inverted range.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let v = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = v.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let total = if total.trim() == "*" {
        None
    } else {
        Some(total.trim().parse().ok()?)
    };
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    if b < a || total.is_some_and(|t| b >= t) {
        return None;
    }
    Some((a, b, total))
}

/// What a `200` or `206` answer to a GET delivers: the whole file's size (when known) and
/// the absolute byte range of the body. A `206` must start where `asked` starts; a `200` to
/// a request for bytes after the first is refused (the server ignored the range), so a
/// resumed download never splices the wrong bytes.
pub fn delivered_range(
    status: u16,
    headers: &HeaderMap,
    asked: Option<ByteRange>,
    path: &RemotePath,
) -> Result<(Option<u64>, Option<Range<u64>>)> {
    let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let content_length: Option<u64> = text("content-length").and_then(|v| v.trim().parse().ok());
    if status == 206 {
        let cr = text("content-range").unwrap_or_default();
        let Some((start, end, total)) = parse_content_range(cr) else {
            return Err(Error::protocol(
                path,
                Some(206),
                format!("unreadable Content-Range '{cr}'"),
            ));
        };
        if let Some(want) = asked.and_then(|r| r.start()) {
            if want != start {
                return Err(Error::protocol(
                    path,
                    Some(206),
                    format!("asked for bytes from {want}, the server sent from {start} ('{cr}')"),
                ));
            }
        }
        if let Some(ByteRange::Bounded { end: want_end, .. }) = asked {
            // Fewer bytes than asked is fine only where the file ends.
            if end + 1 != want_end && total.is_none_or(|t| end + 1 != t) {
                return Err(Error::protocol(
                    path,
                    Some(206),
                    format!(
                        "asked for bytes up to {}, the server sent '{cr}'",
                        want_end - 1
                    ),
                ));
            }
        }
        if let Some(l) = content_length.filter(|&l| l != end - start + 1) {
            return Err(Error::protocol(
                path,
                Some(206),
                format!("Content-Range '{cr}' and Content-Length {l} disagree"),
            ));
        }
        return Ok((total, Some(start..end + 1)));
    }
    if asked.and_then(|r| r.start()).is_some_and(|s| s > 0) {
        return Err(Error::protocol(
            path,
            Some(status),
            "the server ignored the byte range and sent the whole file",
        ));
    }
    Ok((content_length, content_length.map(|l| 0..l)))
}

/// The body of `resp` as a stream that fails (temporarily, so the retry layer may resume)
/// when the connection breaks, when no data comes for `idle`, or when it ends before
/// `expected` bytes.
pub fn checked_body(
    resp: reqwest::Response,
    path: &RemotePath,
    expected: Option<u64>,
    idle: Duration,
) -> ByteStream {
    let url = resp.url().clone();
    body_stream(resp.bytes_stream(), path.clone(), url, expected, idle)
}

/// [`checked_body`] over any stream of chunks from `url`.
pub fn body_stream<S>(
    body: S,
    path: RemotePath,
    url: Url,
    expected: Option<u64>,
    idle: Duration,
) -> ByteStream
where
    S: futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + Unpin + 'static,
{
    struct St<S> {
        body: S,
        path: RemotePath,
        url: Url,
        received: u64,
        done: bool,
    }
    let st = St {
        body,
        path,
        url,
        received: 0,
        done: false,
    };
    futures::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        let next = match tokio::time::timeout(idle, st.body.next()).await {
            Ok(n) => n,
            Err(_) => {
                st.done = true;
                let host = st.url.host_str().unwrap_or("?").to_string();
                let e = Error::transport(
                    redact(&st.url),
                    format!(
                        "no data for {} s from {host} (the download of {} stalled after {} bytes)",
                        idle.as_secs(),
                        st.path,
                        st.received
                    ),
                );
                return Some((Err(e), st));
            }
        };
        match next {
            Some(Ok(b)) => {
                st.received += b.len() as u64;
                if expected.is_some_and(|exp| st.received > exp) {
                    st.done = true;
                    let e = Error::integrity(
                        &st.path,
                        format!(
                            "the server sent more than the {} bytes it announced; nothing was kept",
                            expected.unwrap_or_default()
                        ),
                    );
                    return Some((Err(e), st));
                }
                Some((Ok(b), st))
            }
            Some(Err(e)) => {
                st.done = true;
                let err = Error::transport(
                    redact(&st.url),
                    format!(
                        "the download of {} broke after {} bytes",
                        st.path, st.received
                    ),
                )
                .with_source(e.without_url());
                Some((Err(err), st))
            }
            None => match expected {
                Some(exp) if exp != st.received => {
                    st.done = true;
                    let e = Error::transport(
                        redact(&st.url),
                        format!(
                            "the download of {} ended after {} of {exp} bytes",
                            st.path, st.received
                        ),
                    );
                    Some((Err(e), st))
                }
                _ => None,
            },
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[tokio::test]
    async fn a_stalled_body_is_given_up_temporarily() {
        let p = RemotePath::parse("f").unwrap();
        let url = Url::parse("https://pool.example:2880/f?dcache-http-uuid=secret").unwrap();
        let first =
            futures::stream::iter([Ok::<_, reqwest::Error>(bytes::Bytes::from_static(b"abc"))]);
        let body = first.chain(futures::stream::pending());
        let mut s = body_stream(body, p, url, Some(10), Duration::from_millis(50));
        assert_eq!(s.next().await.unwrap().unwrap(), &b"abc"[..]);
        let e = s.next().await.unwrap().unwrap_err();
        assert!(e.is_temporary(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("no data for 0 s from pool.example"), "{msg}");
        assert!(
            msg.contains("after 3 bytes") && !msg.contains("secret"),
            "{msg}"
        );
        assert!(s.next().await.is_none(), "the stream ends after its error");
    }

    #[tokio::test]
    async fn short_and_long_bodies_fail() {
        let p = RemotePath::parse("f").unwrap();
        let url = Url::parse("https://door/f").unwrap();
        let chunks =
            || futures::stream::iter([Ok::<_, reqwest::Error>(bytes::Bytes::from_static(b"abcd"))]);
        let out: Vec<_> = body_stream(
            chunks(),
            p.clone(),
            url.clone(),
            Some(5),
            Duration::from_secs(5),
        )
        .collect()
        .await;
        assert!(
            matches!(out.last(), Some(Err(e)) if e.is_temporary()),
            "short: {out:?}"
        );
        let out: Vec<_> = body_stream(chunks(), p, url, Some(3), Duration::from_secs(5))
            .collect()
            .await;
        assert!(
            matches!(out.last(), Some(Err(Error::Integrity { .. }))),
            "long: {out:?}"
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((0, 9, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        // XRootD 5.5's answer to `bytes=N-`: not a range.
        assert_eq!(parse_content_range("bytes 5--1/10"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn delivered_ranges_are_checked_against_the_request() {
        let p = RemotePath::parse("f").unwrap();
        let h = headers(&[("content-range", "bytes 5-9/10"), ("content-length", "5")]);
        let (size, r) = delivered_range(206, &h, Some(ByteRange::From(5)), &p).unwrap();
        assert_eq!((size, r), (Some(10), Some(5..10)));
        // Another start than asked: refused.
        assert!(delivered_range(206, &h, Some(ByteRange::From(4)), &p).is_err());
        // A 200 for a resume: the server ignored the range.
        let h200 = headers(&[("content-length", "10")]);
        assert!(delivered_range(200, &h200, Some(ByteRange::From(5)), &p).is_err());
        assert_eq!(
            delivered_range(200, &h200, None, &p).unwrap(),
            (Some(10), Some(0..10))
        );
        // A closed range answered in part, or XRootD 5.5.3's answer to an open one.
        let short = headers(&[("content-range", "bytes 5-7/10"), ("content-length", "3")]);
        let asked = ByteRange::bounded(5, 9).ok();
        assert!(delivered_range(206, &short, asked, &p).is_err());
        let asked = ByteRange::bounded(5, 12).ok();
        let to_end = headers(&[("content-range", "bytes 5-9/10"), ("content-length", "5")]);
        assert!(delivered_range(206, &to_end, asked, &p).is_ok());
        let xrd = headers(&[("content-range", "bytes 5--1/10"), ("content-length", "0")]);
        assert!(delivered_range(206, &xrd, Some(ByteRange::From(5)), &p).is_err());
        // Length and range disagree.
        let bad = headers(&[("content-range", "bytes 5-9/10"), ("content-length", "0")]);
        assert!(delivered_range(206, &bad, Some(ByteRange::From(5)), &p).is_err());
    }
}
