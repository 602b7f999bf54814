//! WebDAV for cta-data, done once: PROPFIND with `Depth: 1` parsed as a stream, GET with
//! ranges and redirects, PUT with a real `Expect: 100-continue`, MKCOL/DELETE/MOVE,
//! `Want-Digest` checksums, retries with backoff, and rustls TLS with grid CA directories.
//! It knows nothing of OIDC or X.509: credentials arrive as an [`Auth`] or a TLS identity.
#![warn(missing_docs)]

pub mod client;
pub mod digest;
pub mod profile;
pub mod propfind;
pub mod rawput;
pub mod retry;
pub mod tls;
pub mod urls;

pub use client::{Auth, WebDav, WebDavConfig};
pub use profile::{profile_tls, webdav_config};
pub use retry::RetryPolicy;
pub use tls::TlsOptions;
