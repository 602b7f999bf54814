//! Turning what went wrong into the error a user acts on, once, where it is read: HTTP
//! statuses, transport failures (with the TLS cases told apart by type) and error bodies.

use std::time::Duration;

use ctadata_core::retry::parse_retry_after;
use ctadata_core::{AuthProblem, Error, RemotePath};
use futures::StreamExt;
use reqwest::Url;

use crate::urls::redact;

/// Reads the first bytes of an error body, as text without tags.
pub async fn excerpt(resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_secs(2), s.next()).await {
        out.extend_from_slice(&b);
        if out.len() > 2048 {
            break;
        }
    }
    short_text(&String::from_utf8_lossy(&out))
}

/// Removes tags and squeezes white space, keeping at most 200 characters.
pub fn short_text(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let squeezed: Vec<&str> = out.split_whitespace().collect();
    let t = squeezed.join(" ");
    if t.chars().count() > 200 {
        format!("{}...", t.chars().take(200).collect::<String>())
    } else {
        t
    }
}

/// The error for an unexpected status of a request about `path`; `what` names the
/// operation ("read", "upload"...). 408, 429, 500, 502, 503 and 504 come out temporary.
pub fn status_to_error(status: u16, path: &RemotePath, what: &str, excerpt: &str) -> Error {
    let excerpt = short_text(excerpt);
    let detail = if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    };
    match status {
        401 => Error::Auth {
            problem: AuthProblem::Refused,
            message: format!("the server answered 401 for {path}"),
            hint: "check the profile's credential ('cta-data config show')".into(),
        },
        403 => Error::PermissionDenied {
            path: path.to_string(),
            message: format!("the server refused to {what} it (403){detail}"),
        },
        404 | 410 => Error::NotFound {
            path: path.to_string(),
            detail: None,
        },
        409 => Error::NotFound {
            path: path
                .parent()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into()),
            detail: Some(format!("the parent of {path} does not exist (409){detail}")),
        },
        412 => Error::conflict(path, "the target exists", "pass --force to replace it"),
        413 | 507 => Error::protocol(
            path,
            Some(status),
            format!("the storage has no room for this file{detail}; contact the data center"),
        ),
        416 => Error::protocol(
            path,
            Some(416),
            "the requested byte range is outside the file",
        ),
        502..=504 | 429 => Error::transport(
            path.to_string(),
            format!("the server is unavailable (HTTP {status}){detail}"),
        ),
        _ => Error::protocol(path, Some(status), format!("{what} failed{detail}")),
    }
}

/// [`status_to_error`] for an answer in hand: reads its excerpt and its `Retry-After`.
pub async fn status_error(resp: reqwest::Response, path: &RemotePath, what: &str) -> Error {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let excerpt = excerpt(resp).await;
    with_retry_after(status_to_error(status, path, what, &excerpt), retry)
}

/// Sets the server's `Retry-After` on a temporary transport error.
pub fn with_retry_after(e: Error, after: Option<Duration>) -> Error {
    match e {
        Error::Transport {
            target,
            message,
            temporary,
            source,
            ..
        } if after.is_some() => Error::Transport {
            target,
            message,
            temporary,
            retry_after: after,
            source,
        },
        other => other,
    }
}

/// The TLS alerts by which a server refuses *our* certificate.
pub(crate) fn refused_our_certificate(a: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        a,
        A::UnknownCA
            | A::BadCertificate
            | A::CertificateRequired
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied
    )
}

/// The rustls error under a transport failure, looked for by type (io errors hide their
/// payload from `source()`, so they are opened too).
pub fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(t) = find_tls_error(inner) {
                    return Some(t);
                }
            }
        }
        cur = c.source();
    }
    None
}

/// The error for a request to `url` that failed below HTTP, `trust` naming the trusted CAs.
/// The cause is kept (without the URL, which may hold dCache's single-use secret).
pub fn transport_error(url: &Url, e: reqwest::Error, trust: &str) -> Error {
    let mut parts: Vec<String> = Vec::new();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let t = s.to_string();
        if !(t.starts_with("client error")
            || t.contains(url.as_str())
            || parts.iter().any(|p| p.contains(&t)))
        {
            parts.push(t);
        }
        src = s.source();
    }
    if e.is_timeout() {
        parts.insert(0, "timed out".into());
    }
    if parts.is_empty() {
        parts.push(kind_words(&e).into());
    }
    let msg = parts.join(": ");
    let host = url.host_str().unwrap_or("?");
    let tls = find_tls_error(&e).cloned();
    let cause = e.without_url();
    match tls {
        Some(rustls::Error::AlertReceived(a)) if refused_our_certificate(a) => Error::Auth {
            problem: AuthProblem::Refused,
            message: format!(
                "{host} refused the client certificate during the TLS handshake (alert {a:?})"
            ),
            hint: "check that the server trusts your certificate's CA and that the proxy carries its chain ('cta-data cert info')".into(),
        },
        Some(rustls::Error::InvalidCertificate(_)) => Error::transport_permanent(
            redact(url),
            format!("TLS: the certificate of {host} was not accepted ({msg}); trusted: {trust}"),
        )
        .with_source(cause),
        _ => Error::transport(redact(url), msg).with_source(cause),
    }
}

fn kind_words(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer's body broke off"
    } else if e.is_request() {
        "the request failed"
    } else {
        "HTTP error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_shortened() {
        assert_eq!(
            short_text("<html><body><h1>Forbidden</h1>\n<p>no  access</p></body></html>"),
            "Forbidden no access"
        );
        assert!(short_text(&"x".repeat(500)).len() < 210);
    }

    #[test]
    fn statuses_map_to_what_users_do() {
        let p = RemotePath::parse("a/b").unwrap();
        assert!(matches!(
            status_to_error(403, &p, "read", ""),
            Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            status_to_error(404, &p, "read", ""),
            Error::NotFound { .. }
        ));
        let e = status_to_error(409, &p, "upload", "");
        assert!(e.to_string().contains("/a"), "{e}");
        assert!(matches!(
            status_to_error(507, &p, "upload", ""),
            Error::Protocol {
                status: Some(507),
                ..
            }
        ));
        assert!(status_to_error(500, &p, "read", "boom")
            .to_string()
            .contains("boom"));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status_to_error(s, &p, "read", "").is_temporary(), "{s}");
        }
        for s in [400, 403, 404, 409, 412, 416, 507] {
            assert!(!status_to_error(s, &p, "read", "").is_temporary(), "{s}");
        }
    }

    #[test]
    fn tls_errors_are_found_by_type_under_io_errors() {
        let inner = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        let io = std::io::Error::other(inner);
        let found = find_tls_error(&io).cloned();
        assert_eq!(
            found,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            ))
        );
        let plain = std::io::Error::other("certificate words but no TLS error");
        assert!(find_tls_error(&plain).is_none());
    }
}
