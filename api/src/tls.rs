//! TLS for both listeners (rustls, ring): gRPC through tonic's own TLS,
//! HTTP through [`TlsListener`], an `axum::serve` listener that hands out
//! connections once their handshake is done. Configured with a PEM
//! certificate chain and key ([`TlsSettings`]); without them both serve
//! plain text (local development, or TLS ended by a proxy in front).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// Longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// Where the server's certificate chain and private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The loaded certificate and key, for both listeners.
#[derive(Clone)]
pub struct Tls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    http: Arc<ServerConfig>,
}

impl Tls {
    /// Reads and checks the certificate and key.
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Self> {
        let cert_pem = std::fs::read(&settings.cert)
            .with_context(|| format!("TLS certificate {}", settings.cert.display()))?;
        // The key's file name may be logged, never its content.
        let key_pem = std::fs::read(&settings.key)
            .with_context(|| format!("TLS key {}", settings.key.display()))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("TLS certificate: not a PEM certificate chain")?;
        anyhow::ensure!(!chain.is_empty(), "TLS certificate: no certificate");
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| anyhow::anyhow!("TLS key: not a PEM private key"))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut http = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("TLS certificate and key do not match")?;
        // axum serves HTTP/1.1 only.
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_pem,
            key_pem,
            http: Arc::new(http),
        })
    }

    /// tonic's configuration of the same certificate.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }

    /// An HTTP listener serving TLS over `tcp`.
    pub fn listener(&self, tcp: TcpListener) -> std::io::Result<TlsListener> {
        TlsListener::new(tcp, TlsAcceptor::from(Arc::clone(&self.http)))
    }
}

/// Accepts TCP connections and runs their handshakes concurrently (a slow
/// or silent client holds up no other), handing out the finished ones. The
/// accepting task ends when the listener is dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: back off
                            // as axum's own listener does.
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        // A client's failed handshake is its problem.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task holds the sender until this listener is
            // dropped, so this is not reached; wait like an idle listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
