//! `cert info`: what a grid certificate or proxy file holds.

use std::path::Path;

use ctadata::config::ResolvedProfile;
use ctadata::{Error, Result};

use crate::cli::Global;

/// `cert info [FILE]`.
pub fn info(_g: &Global, _r: &ResolvedProfile, _file: Option<&Path>) -> Result<()> {
    Err(Error::Unsupported {
        operation: "cert info".into(),
        backend: "x509".into(),
        hint: "this build of cta-data does not read certificates yet".into(),
    })
}
