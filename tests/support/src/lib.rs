//! Real servers on loopback for cta-data's integration tests.
//!
//! * [`tls::TestCa`]: a throw-away certificate authority and a server certificate for
//!   `localhost`, `127.0.0.1`, `127.0.0.2` and `::1`.
//! * [`dcache::DcacheDouble`]: a double of a dCache WebDAV door (on `127.0.0.1`) and one pool
//!   node (on `127.0.0.2`, another host as far as a client can tell), backed by a real
//!   directory, with fault injection and a request log.
//! * [`nginx::Nginx`]: a private nginx with the WebDAV modules serving a directory.
//! * [`xrootd::Xrootd`]: a private XRootD (XrdHttp) serving a directory over HTTPS with WLCG
//!   token authorization, its tokens signed by a test key it trusts offline.
//! * [`davserver::EmbeddedDav`]: the `dav-server` crate serving a directory in-process.
//! * [`oidc::OidcProvider`]: a real OpenID provider (npm `oidc-provider`, run by node) with the
//!   device authorization grant, JWT access tokens and rotating refresh tokens, like Keycloak.
//! * [`mount::MountGuard`]: a `cta-data mount` run by a test, unmounted when dropped.
//! * [`profile::dcache_profile`]: a `dcache` profile pointing at one of these servers, loaded
//!   from a config file with a token in the environment.
//! * [`standalone`]: what the standalone server binaries share (`ctadata-door`,
//!   `ctadata-platform`, `ctadata-nginx`: the servers of the Python tests, started by
//!   `crates/ctadata-python/tests/conftest.py`).
//!
//! Every server runs on its own small tokio runtime (or, for nginx and node, its own process),
//! so it works from plain `#[test]` functions as well as from any `#[tokio::test]` flavour, and
//! it is shut down when its handle is dropped.

#![warn(missing_docs)]

pub mod checksum;
pub mod davserver;
pub mod dcache;
pub mod downloadservice;
pub mod mount;
pub mod nginx;
pub mod oidc;
pub mod profile;
pub mod standalone;
pub mod tls;
pub mod x509dav;
pub mod xrootd;

mod serve;

pub use davserver::EmbeddedDav;
pub use dcache::{
    jwt::JwtPolicy, DcacheConfig, DcacheDouble, Locality, RequestRecord, Side, Stats,
};
pub use downloadservice::{Fault, HubUser, PlatformConfig, PlatformDouble, Scopes};
pub use nginx::{Nginx, NginxOptions};
pub use oidc::{OidcOptions, OidcProvider, OidcStats};
pub use profile::{dcache_profile, LoadedProfile};
pub use tls::{ClientCert, TestCa};
pub use x509dav::{GridPki, X509Dav};
pub use xrootd::{TokenIssuer, Xrootd, XrootdOptions};
