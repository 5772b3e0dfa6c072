//! Opens the sockets of one HTTP checkout connection: TCP to the target's address whatever the
//! request's authority says (so `--authority` changes only the name verified and sent), then TLS
//! for an `https://` target. The pool of [`hyper_util`]'s client calls it for every new socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::tls::Tls;

/// Connects to one address, with TLS when the target is `https://`.
#[derive(Clone)]
pub(super) struct Dialer {
    /// `host:port` as the target gave it (resolved on each new socket).
    pub address: std::sync::Arc<str>,
    pub tls: Option<Tls>,
    pub timeout: Duration,
}

/// Why a socket could not be opened: nothing was sent on it.
#[derive(Debug, thiserror::Error)]
pub(super) enum DialError {
    #[error("connecting to {address} timed out after {after:?}")]
    Timeout { address: String, after: Duration },
    #[error("connecting to {address}: {source}")]
    Tcp { address: String, source: io::Error },
    #[error("TLS handshake with {address}: {source}")]
    Tls { address: String, source: io::Error },
}

impl Dialer {
    /// One new socket, TLS done.
    pub async fn dial(&self) -> Result<Stream, DialError> {
        let address = &*self.address;
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| DialError::Timeout {
                address: address.to_string(),
                after: self.timeout,
            })?
            .map_err(|source| DialError::Tcp {
                address: address.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let handshake = tls.connector.connect(tls.server_name.clone(), tcp);
        let stream = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| DialError::Timeout {
                address: address.to_string(),
                after: self.timeout,
            })?
            .map_err(|source| DialError::Tls {
                address: address.to_string(),
                source,
            })?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// How long [`Dialer::probe`] waits for a refusal after an anonymous TLS handshake.
const REFUSAL_WAIT: Duration = Duration::from_millis(250);

impl Dialer {
    /// Opens one socket and drops it: the target is there and, over TLS, accepts the
    /// handshake. TLS 1.3 lets the client finish its side before the server checks it, so
    /// without a client certificate (`anonymous`) the server's refusal (`CertificateRequired`)
    /// comes only with the first read: wait briefly for it.
    pub async fn probe(&self, anonymous: bool) -> Result<(), DialError> {
        let stream = self.dial().await?;
        let Stream::Tls(mut tls) = stream else {
            return Ok(());
        };
        if !anonymous {
            return Ok(());
        }
        let mut byte = [0u8; 1];
        let refused = |source: io::Error| DialError::Tls {
            address: self.address.to_string(),
            source,
        };
        match tokio::time::timeout(REFUSAL_WAIT, tls.read(&mut byte)).await {
            Ok(Err(e)) => Err(refused(e)),
            Ok(Ok(0)) => Err(refused(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection right after the handshake",
            ))),
            // Nothing (the server waits for a request) or data: accepted.
            Ok(Ok(_)) | Err(_) => Ok(()),
        }
    }
}

impl tower_service::Service<hyper::Uri> for Dialer {
    type Response = TokioIo<Stream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: hyper::Uri) -> Self::Future {
        let dialer = self.clone();
        Box::pin(async move { dialer.dial().await.map(TokioIo::new) })
    }
}

/// A socket to the checkout, plaintext or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(_) => Connected::new(),
            Stream::Tls(tls) => {
                let connected = Connected::new();
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
