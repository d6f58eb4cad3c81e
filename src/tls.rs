//! TLS for both receivers, for agents on other machines: `serve --tls-cert FILE --tls-key FILE`
//! (PEM) puts rustls (with ring) in front of the OTLP/gRPC port (ALPN `h2`) and the OTLP/HTTP
//! and API port (ALPN `http/1.1`). The only module that knows rustls.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use thiserror::Error;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// The handshake half of a receiver's TLS, as the accept loops hold it (the only rustls type
/// that leaves this module).
pub type Acceptor = TlsAcceptor;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum TlsError {
    #[error(
        "cannot read the TLS certificate {path}: {why}; give a PEM file with the server's certificate chain"
    )]
    Certificate { path: PathBuf, why: String },
    #[error(
        "cannot read the TLS private key {path}: {why}; give a PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1)"
    )]
    Key { path: PathBuf, why: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(String),
}

/// What both ports need to accept TLS: the certificate chain and key, loaded once.
#[derive(Clone)]
pub struct Tls {
    grpc: TlsAcceptor,
    http: TlsAcceptor,
    /// The certificate file, for the advert: a CLI on this machine trusts the server by it.
    pub cert: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        use pki_types::pem::PemObject;
        let certs = pki_types::CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::Certificate {
                path: cert.to_path_buf(),
                why: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::Certificate {
                path: cert.to_path_buf(),
                why: "it holds no certificate".into(),
            });
        }
        let private = pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.to_path_buf(),
            why: e.to_string(),
        })?;
        let acceptor = |alpn: &[u8]| -> Result<TlsAcceptor, TlsError> {
            // ring builds with the C compiler every machine here has; aws-lc-rs, which
            // rustls now prefers for its post-quantum key exchange, needs more to build.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(certs.clone(), private.clone_key())
                .map_err(|e| TlsError::Config(e.to_string()))?;
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Tls {
            grpc: acceptor(b"h2")?,
            http: acceptor(b"http/1.1")?,
            cert: std::fs::canonicalize(cert).unwrap_or_else(|_| cert.to_path_buf()),
        })
    }

    /// The gRPC port's acceptor (HTTP/2).
    pub fn grpc(&self) -> &TlsAcceptor {
        &self.grpc
    }

    /// The HTTP port's acceptor (HTTP/1.1).
    pub fn http(&self) -> &TlsAcceptor {
        &self.http
    }
}

/// A client connection (the receivers' own stream type `S`), in TLS or not.
pub enum Conn<S> {
    Plain(S),
    Tls(Box<tokio_rustls::server::TlsStream<S>>),
}

/// The connection as the port serves it: handshaken within [`HANDSHAKE_TIMEOUT`] when the
/// port has TLS.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: Option<&TlsAcceptor>,
    io: S,
) -> std::io::Result<Conn<S>> {
    let Some(acceptor) = acceptor else {
        return Ok(Conn::Plain(io));
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Ok(Conn::Tls(Box::new(tls))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the TLS handshake did not finish in time",
        )),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write(cx, data),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
