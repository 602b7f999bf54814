//! Server-side copies: a WebDAV `COPY` within one door, and HTTP third-party copy (pull,
//! then push) between two doors. A backend that does them returns a [`ServerCopyOps`] from
//! [`crate::StorageBackend::server_copy`].

use async_trait::async_trait;

use crate::error::Result;
use crate::path::RemotePath;

/// Copies done by the servers, without the bytes passing through the client.
#[async_trait]
pub trait ServerCopyOps: Send + Sync {
    /// Copies `from` to `to` on the same storage (WebDAV `COPY`).
    async fn copy_within(&self, from: &RemotePath, to: &RemotePath, overwrite: bool) -> Result<()>;
}
