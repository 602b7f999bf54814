//! A plain WebDAV server in-process: the `dav-server` crate with `LocalFs`.
//!
//! What it does (as seen on this machine): PROPFIND with `Depth: 0`/`1` (`infinity` is
//! `501`), GET with `Range`, PUT (`409` when the parent is missing; replaces existing files),
//! MKCOL, DELETE, MOVE, COPY, and fake LOCK/UNLOCK. No redirects, no auth.

use crate::serve::{self, ServerRuntime};
use dav_server::{fakels::FakeLs, localfs::LocalFs, DavHandler};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// `dav-server` serving a directory on `127.0.0.1:<ephemeral>`; shut down on drop.
pub struct EmbeddedDav {
    addr: SocketAddr,
    root: PathBuf,
    _rt: ServerRuntime,
}

impl std::fmt::Debug for EmbeddedDav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedDav")
            .field("addr", &self.addr)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl EmbeddedDav {
    /// Serves `root` (which must exist); answers as soon as this returns.
    pub fn start(root: &Path) -> EmbeddedDav {
        let (listener, addr) = serve::bind(Ipv4Addr::LOCALHOST).expect("bind 127.0.0.1");
        let handler = DavHandler::builder()
            .filesystem(LocalFs::new(root, false, false, false))
            .locksystem(FakeLs::new())
            .build_handler();
        let rt = ServerRuntime::new("embedded-dav");
        rt.spawn(serve::accept_loop(listener, None, move |io| {
            let handler = handler.clone();
            async move {
                let svc = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler.handle(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            }
        }));
        EmbeddedDav {
            addr,
            root: root.to_path_buf(),
            _rt: rt,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The served directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
