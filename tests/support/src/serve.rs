//! Plumbing shared by the in-process servers: a private runtime, listeners, TLS, bodies.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The response body type of the in-process servers.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body in memory.
pub(crate) fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A connection, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A small multi-threaded tokio runtime owned by one test server; dropping it (also from
/// inside an async test) closes every socket of the server before returning.
pub(crate) struct ServerRuntime {
    rt: Option<tokio::runtime::Runtime>,
}

impl ServerRuntime {
    pub(crate) fn new(name: &str) -> ServerRuntime {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("build a tokio runtime for a test server");
        ServerRuntime { rt: Some(rt) }
    }

    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt
            .as_ref()
            .expect("runtime is alive until drop")
            .spawn(fut);
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Waiting for the workers is not allowed on a thread that runs async code, so
            // wait on a plain thread: when drop returns, every listener and connection of
            // this server is closed.
            let waiter = std::thread::spawn(move || rt.shutdown_timeout(Duration::from_secs(3)));
            let _ = waiter.join();
        }
    }
}

/// Binds a std listener on `ip` with an ephemeral port, ready for tokio.
pub(crate) fn bind(ip: Ipv4Addr) -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind((ip, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Accepts connections forever, doing the TLS handshake when configured, and hands each
/// connection to `on_conn` on its own task.
pub(crate) async fn accept_loop<F, Fut>(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    on_conn: F,
) where
    F: Fn(Box<dyn Io>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("test server: cannot register listener: {e}");
            return;
        }
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let on_conn = Arc::new(on_conn);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let on_conn = on_conn.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match acceptor {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => Box::new(tls),
                        _ => return,
                    }
                }
            };
            on_conn(io).await;
        });
    }
}
