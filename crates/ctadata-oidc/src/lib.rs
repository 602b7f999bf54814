//! OIDC
