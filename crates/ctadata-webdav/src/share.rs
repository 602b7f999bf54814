//! Share links for a WebDAV backend: dCache macaroons, asked for with a `POST` of
//! `Content-Type: application/macaroon-request`.

use async_trait::async_trait;
use ctadata_core::share::{ShareLink, ShareOps, ShareRequest};
use ctadata_core::{RemotePath, Result};

use crate::WebDav;

#[async_trait]
impl ShareOps for WebDav {
    async fn share(&self, _path: &RemotePath, _req: &ShareRequest) -> Result<ShareLink> {
        Err(ctadata_core::backend::unsupported(
            "share",
            self.cfg.backend_name,
        ))
    }
}
