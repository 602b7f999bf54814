//! WebDAV for cta-data, done once: PROPFIND with `Depth: 1` parsed as a stream, GET with
//! ranges and redirects, PUT with a real `Expect: 100-continue`, MKCOL/DELETE/MOVE,
//! `Want-Digest` checksums, and rustls TLS with grid CA directories. Failures are
//! classified where they are read (temporary or not); retrying is the retry layer's job
//! (`ctadata_core::retry`), never this crate's.
//! It knows nothing of OIDC or X.509: credentials arrive as an [`Auth`] or a TLS identity.
//!
//! Layout, one idea a file: `config` (what a backend is built from), `backend` (the
//! state and the trait), `send` (one request: token, redirects, redaction), `errors`
//! (statuses and transport failures into errors), `body` (the length-checked body stream
//! and `Content-Range`, shared with the downloadservice), `list`, `get`, `put`, `ops`
//! (one verb each), `names` (names a server may not address), `propfind`, `digest`,
//! `rawput`, `tls`, `urls`, `learned` (what the server's answers showed it lacks or gives:
//! `stat -v`'s server notes).
#![warn(missing_docs)]

pub mod backend;
pub mod body;
pub mod config;
pub mod digest;
pub mod errors;
mod get;
mod learned;
mod list;
mod names;
mod ops;
pub mod profile;
pub mod propfind;
mod put;
pub mod rawput;
pub mod send;
mod share;
mod tape;
pub mod tls;
mod tpc;
pub mod urls;

pub use backend::WebDav;
pub use config::{Auth, CredentialCheck, WebDavConfig};
pub use profile::{profile_tls, webdav_config};
pub use send::http_client;
pub use tls::TlsOptions;
