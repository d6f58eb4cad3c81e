//! The receivers' connections, bounded: both ports accept through one [`Gate`], which holds a
//! permit per open connection (beyond the bound, connections wait in the kernel's backlog and
//! take no descriptor), closes a connection on which no byte moved for [`IDLE`] (unfinished
//! headers, a stalled body, a silent socket, an HTTP/2 preface alone), and backs off when
//! `accept` fails instead of spinning. The bound leaves descriptors for the log, so a flood of
//! sockets can never make an append fail. [`serve_http1`] and [`serve_h2`] are the ports'
//! accept loops over hyper: HTTP/1.1 with a deadline on each request's headers (which an idle
//! timeout alone cannot give: a drip of one byte now and then keeps a connection from being
//! idle), HTTP/2 with a bound on the requests open at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A connection on which nothing moved for this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);
/// Descriptors kept for the log (sled's files, blobs, checkpoints) and everything else that
/// is not a client connection.
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// Most client connections at once, whatever the descriptor limit.
pub const MAX_CONNECTIONS: u64 = 4096;

/// Permits for client connections, shared by both receivers.
#[derive(Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl Gate {
    /// A gate sized to this process's descriptor limit, less [`RESERVED_DESCRIPTORS`].
    pub fn for_this_process() -> Gate {
        Gate::new(connection_bound(open_files_limit()), IDLE)
    }

    pub fn new(connections: usize, idle: Duration) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(connections.max(1))),
            idle,
        }
    }

    /// The next connection, once a permit is free. Accept errors (a descriptor limit reached
    /// elsewhere in the process, a connection reset before it was taken) are waited out.
    pub async fn accept(&self, listener: &TcpListener) -> (Guarded, SocketAddr) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed; if it were, refusing to accept is the answer.
                std::future::pending::<()>().await;
                unreachable!("pending never completes");
            };
            match listener.accept().await {
                Ok((tcp, addr)) => {
                    // Small answers go out at once: with Nagle's algorithm a reply written in
                    // pieces waits for the client's delayed ACK (40 ms on Linux).
                    let _ = tcp.set_nodelay(true);
                    return (Guarded::new(tcp, permit, self.idle), addr);
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!("accepting a connection failed ({e}); retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Client connections the descriptor limit allows, keeping [`RESERVED_DESCRIPTORS`].
pub fn connection_bound(limit: u64) -> usize {
    limit
        .saturating_sub(RESERVED_DESCRIPTORS)
        .clamp(1, MAX_CONNECTIONS) as usize
}

/// The soft limit on open files (Linux: `/proc/self/limits`); 1024 when it cannot be read.
pub fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1024)
}

/// A client connection holding its permit, closed when idle for too long.
pub struct Guarded {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(tcp: TcpStream, permit: OwnedSemaphorePermit, idle: Duration) -> Guarded {
        Guarded {
            tcp,
            _permit: permit,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// While the socket waits: an error once nothing moved for `idle`.
    fn idle_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing moved on the connection for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_out(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.tcp).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.idle_out(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// How long a client may take to send a request's headers, from its first byte: a drip of one
/// byte now and then keeps a connection from being idle, but not its headers from being late.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent requests one HTTP/2 connection may have open, each of which may hold a message
/// being received.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// A tower service that hyper can serve on a connection of either port.
pub trait Served<B>:
    tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = hyper::Response<B>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> Served<B> for S where
    S: tower::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves HTTP/1.1 on connections taken through the gate, with a deadline on each request's
/// headers (the HTTP port).
pub async fn serve_http1<S, B>(
    listener: TcpListener,
    gate: Gate,
    tls: Option<crate::tls::Acceptor>,
    service: S,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    S: Served<B>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    accept_loop(listener, gate, tls, shutdown, move |io, watcher| {
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        async move {
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!("an HTTP connection ended: {e}");
            }
        }
    })
    .await;
}

/// Serves HTTP/2 on connections taken through the gate, at most
/// [`MAX_STREAMS_PER_CONNECTION`] requests at once on each (the gRPC port).
pub async fn serve_h2<S, B>(
    listener: TcpListener,
    gate: Gate,
    tls: Option<crate::tls::Acceptor>,
    service: S,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    S: Served<B>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder =
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    accept_loop(listener, gate, tls, shutdown, move |io, watcher| {
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        async move {
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!("an HTTP/2 connection ended: {e}");
            }
        }
    })
    .await;
}

/// Takes connections through the gate until `shutdown`, each served by `serve` on its own task
/// (after its TLS handshake, if the port has TLS, so a slow one delays no other); then waits for
/// the open ones to finish their requests.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    gate: Gate,
    tls: Option<crate::tls::Acceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send,
    serve: F,
) where
    F: Fn(crate::tls::Conn<Guarded>, hyper_util::server::graceful::Watcher) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let io = tokio::select! {
            (io, _) = gate.accept(&listener) => io,
            () = &mut shutdown => break,
        };
        let (serve, watcher, tls) = (serve.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            match crate::tls::accept(tls.as_ref(), io).await {
                Ok(io) => serve(io, watcher).await,
                Err(e) => tracing::debug!("a TLS handshake failed: {e}"),
            }
        });
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_keeps_descriptors_for_the_log() {
        assert_eq!(connection_bound(1024), 896);
        assert_eq!(connection_bound(100), 1, "always at least one");
        assert_eq!(connection_bound(1 << 20), MAX_CONNECTIONS as usize);
        assert!(open_files_limit() > 0);
    }
}
