//! The WLCG Tape REST API for a WebDAV backend (dCache's frontend): discovery through the
//! door's `/.well-known/wlcg-tape-rest-api`, then stage, status, cancel, release and
//! archiveinfo.

use std::time::Duration;

use async_trait::async_trait;
use ctadata_core::{tape::TapeOps, RemotePath, Result};

use crate::WebDav;

#[async_trait]
impl TapeOps for WebDav {
    async fn stage(&self, _paths: &[RemotePath], _pin: Option<Duration>) -> Result<String> {
        Err(ctadata_core::backend::unsupported(
            "stage",
            self.cfg.backend_name,
        ))
    }
}
