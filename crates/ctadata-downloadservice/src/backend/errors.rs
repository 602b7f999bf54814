//! The downloadservice's failures as the errors a user acts on: the answers that mean the
//! hub token was refused, the service's own known faults (`..` in a path, `500` for a name
//! with parentheses), the operations it cannot do; every other status as the webdav crate
//! maps it.

use ctadata_core::credentials::BearerToken;
use ctadata_core::{Error, RemotePath};
use ctadata_webdav::errors::status_error;
use reqwest::Response;

use super::core::Core;
use crate::client::{location, read_limited, short_text};

impl Core {
    /// Reads a non-success answer and turns it into the error the user acts on.
    pub(super) async fn failure(
        &self,
        resp: Response,
        token: &BearerToken,
        path: &RemotePath,
        what: &str,
    ) -> Error {
        let status = resp.status().as_u16();
        match status {
            400 if path.as_str().contains("..") => return dots(path),
            // A known fault of the service, the same every time: no retry can help.
            500 if path.as_str().contains('(') || path.as_str().contains(')') => return Error::Unsupported {
                operation: format!("{what} a name with parentheses"),
                backend: "downloadservice".into(),
                hint: format!("the downloadservice answers 500 for {path}; use the cta profile for this path ('cta-data --profile cta ...')"),
            },
            // The answers that may say the hub token was not accepted: read below.
            301..=303 | 307 | 308 | 401 | 403 => {}
            // Its excerpt and `Retry-After` read as for every WebDAV server.
            _ => return status_error(resp, path, what).await,
        }
        let loc = location(&resp);
        let body = String::from_utf8_lossy(&read_limited(resp, 4096).await).to_string();
        if let Some(e) = self.s.auth_failure(status, loc.as_deref(), &body, token) {
            return e;
        }
        // Only a `403` without a word of scopes is left: `auth_failure` answers every `401`
        // and redirect.
        let text = short_text(&body);
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        Error::PermissionDenied {
            path: path.to_string(),
            message: format!("the downloadservice refused to {what} (HTTP 403){detail}"),
        }
    }
}

/// The error for a path with `..` in it, which the service refuses even inside a name.
pub(super) fn dots(path: &RemotePath) -> Error {
    Error::InvalidPath {
        path: path.as_str().to_string(),
        reason: "the downloadservice refuses any path containing '..', even inside a name; use the cta profile for it".into(),
    }
}

/// The error for an operation the service does not offer; `how` is the command that does it
/// with the cta profile.
pub(super) fn unsupported(operation: &str, how: &str) -> Error {
    Error::Unsupported {
        operation: operation.into(),
        backend: "downloadservice".into(),
        hint: format!(
            "the downloadservice cannot {operation} files or directories; do it on the dCache door with the cta profile: 'cta-data --profile cta {how}' (after 'cta-data --profile cta login')"
        ),
    }
}

/// The error for a `409` to a write at `abs`: its parent directory is missing (`fix` says
/// what creates it).
pub(super) fn missing_parent(abs: &RemotePath, what: &str, fix: &str) -> Error {
    Error::NotFound {
        path: abs.parent().unwrap_or_default().to_string(),
        detail: Some(format!("the {what} of {abs} does not exist (409); {fix}")),
    }
}
