//! Tape: staging files from tape to disk and asking where they are, through the WLCG Tape
//! REST API (v1) that dCache's frontend serves. A backend that has it returns a
//! [`TapeOps`] from [`crate::StorageBackend::tape`].

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::path::RemotePath;

/// Staging and archive information, as the WLCG Tape REST API offers them.
#[async_trait]
pub trait TapeOps: Send + Sync {
    /// Asks the server to bring `paths` from tape to disk (one bulk request), pinned for
    /// `pin_lifetime` when given; returns the request's id.
    async fn stage(&self, paths: &[RemotePath], pin_lifetime: Option<Duration>) -> Result<String>;
}
