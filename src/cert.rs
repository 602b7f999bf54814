//! Grid certificates and proxies as `cert info` shows them: reading a PEM file (chain,
//! proxy type, validity, VOMS attributes, key state) and finding the one a profile would use.

use std::path::PathBuf;

use ctadata_core::config::ResolvedProfile;
use ctadata_core::Result;

pub use ctadata_x509::inspect::read_pem_file;
pub use ctadata_x509::{
    CertInfo, CredentialKind, CredentialSource, KeyState, PemFile, ProxyKind, ProxyPolicy,
    VomsAttributes,
};

/// The file `cert info` reads when none is given: the credential the profile would use
/// (its `proxy` or `cert`, `X509_USER_PROXY`, `X509_USER_CERT`, `/tmp/x509up_u<uid>`, ...),
/// looked up in the environment the profile was resolved in.
pub fn default_info_file(profile: &ResolvedProfile) -> Result<PathBuf> {
    ctadata_x509::default_info_file(profile, profile.env())
}

/// Where a grid proxy lives by default: `/tmp/x509up_u<uid>`.
pub fn default_proxy_path() -> PathBuf {
    ctadata_x509::credential::default_proxy_path()
}
