//! `cert upload` / `cert upload-shared`: delegating a grid proxy to the platform's
//! certificateservice.

use std::path::Path;

use ctadata::config::ResolvedProfile;
use ctadata::{Error, Result};

use crate::cli::Global;

fn not_yet() -> Error {
    Error::Unsupported {
        operation: "cert upload".into(),
        backend: "downloadservice".into(),
        hint: "this build of cta-data does not talk to the certificateservice yet".into(),
    }
}

/// `cert upload FILE --key KEY [--user NAME]`.
pub async fn upload(
    _g: &Global,
    _r: &ResolvedProfile,
    _file: &Path,
    _key: &str,
    _user: Option<&str>,
) -> Result<()> {
    Err(not_yet())
}

/// `cert upload-shared FILE`.
pub async fn upload_shared(_g: &Global, _r: &ResolvedProfile, _file: &Path) -> Result<()> {
    Err(not_yet())
}
