//! Server-side copies for a WebDAV backend: `COPY` within the door, and HTTP third-party
//! copy (pull with `Source:`, push with `Destination:`) between doors.

use async_trait::async_trait;
use ctadata_core::{tpc::ServerCopyOps, RemotePath, Result};

use crate::WebDav;

#[async_trait]
impl ServerCopyOps for WebDav {
    async fn copy_within(
        &self,
        _from: &RemotePath,
        _to: &RemotePath,
        _overwrite: bool,
    ) -> Result<()> {
        Err(ctadata_core::backend::unsupported(
            "cp",
            self.cfg.backend_name,
        ))
    }
}
