//! The `x509` backend: WebDAV to the dCache door with an RFC 3820 proxy certificate (or an
//! end-entity certificate) as the TLS client identity.
#![warn(missing_docs)]

use ctadata_core::config::{EnvSnapshot, ResolvedProfile};
use ctadata_core::{Error, Result};
use ctadata_webdav::WebDav;

/// Options the program passes beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct X509Options {
    /// `--insecure`.
    pub insecure: bool,
}

/// Opens the x509 backend of a resolved profile.
pub fn open(_profile: &ResolvedProfile, _env: &EnvSnapshot, _opts: &X509Options) -> Result<WebDav> {
    Err(Error::Unsupported {
        operation: "open".into(),
        backend: "x509".into(),
        hint: "this build of cta-data does not include the x509 backend yet; use the cta profile (OIDC)".into(),
    })
}
