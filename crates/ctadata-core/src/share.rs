//! Share links: a bearer credential of limited rights and lifetime for one path (dCache
//! macaroons), handed to somebody who has no account. A backend that can ask for them
//! returns a [`ShareOps`] from [`crate::StorageBackend::share_links`].

use async_trait::async_trait;

use crate::error::Result;
use crate::path::RemotePath;

/// Asking the server for share links.
#[async_trait]
pub trait ShareOps: Send + Sync {
    /// A ready link to `path` (the credential is inside: a secret).
    async fn share(&self, path: &RemotePath) -> Result<String>;
}
