//! Share links: a bearer credential of limited rights and lifetime for one path (dCache
//! macaroons), handed to somebody who has no account. A backend that can ask for them
//! returns a [`ShareOps`] from [`crate::StorageBackend::share_links`].

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::credentials::Secret;
use crate::error::Result;
use crate::path::RemotePath;

/// What a share link may do, and for how long.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareRequest {
    /// How long the link works.
    pub validity: Duration,
    /// dCache activities allowed (`DOWNLOAD`, `LIST`, `UPLOAD`, `DELETE`, `MANAGE`,
    /// `READ_METADATA`, `UPDATE_METADATA`, `STAGE`), upper case.
    pub activities: Vec<String>,
    /// Client networks allowed (`ip:` caveat); empty for any.
    pub ip: Vec<(IpAddr, u8)>,
}

impl ShareRequest {
    /// A link valid for `validity` that allows `activities`.
    pub fn new(validity: Duration, activities: Vec<String>) -> Self {
        Self {
            validity,
            activities,
            ip: Vec::new(),
        }
    }

    /// Only from these networks (address, prefix length).
    pub fn with_ip(mut self, nets: Vec<(IpAddr, u8)>) -> Self {
        self.ip = nets;
        self
    }
}

/// A link the server made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareLink {
    /// The ready link (the macaroon is inside it: a secret).
    pub link: Secret,
    /// The macaroon alone, for a `--token-file` (a secret).
    pub macaroon: Secret,
    /// When it stops working.
    pub expires: Option<SystemTime>,
    /// The caveats asked for (`activity:DOWNLOAD,LIST`, `ip:...`, `path:...`).
    pub caveats: Vec<String>,
}

impl ShareLink {
    /// A link with its macaroon, expiry and caveats.
    pub fn new(
        link: Secret,
        macaroon: Secret,
        expires: Option<SystemTime>,
        caveats: Vec<String>,
    ) -> Self {
        Self {
            link,
            macaroon,
            expires,
            caveats,
        }
    }
}

/// Asking the server for share links.
#[async_trait]
pub trait ShareOps: Send + Sync {
    /// A link to `path` with the rights and lifetime of `req`.
    async fn share(&self, path: &RemotePath, req: &ShareRequest) -> Result<ShareLink>;
}
