//! Where the server listens: both ports bound before anything else is done (so a port in use is
//! said at once), and never beyond loopback unprotected: there a server needs a token (or anyone
//! could send spans and read the status) and TLS (or the token and the spans would cross the
//! network in the clear), unless told `--insecure`, which is then said.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ListenError {
    #[error(
        "cannot listen on {addr}: {source}; another process listens there: choose other addresses with --grpc and --http"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr} without {missing}: anyone on the network could {risk}; give {remedy}, listen on 127.0.0.1, or pass --insecure to do it anyway"
    )]
    Exposed {
        addr: SocketAddr,
        missing: &'static str,
        risk: &'static str,
        remedy: &'static str,
    },
}

/// What protects the ports.
#[derive(Debug, Clone, Copy)]
pub struct Protection {
    pub token: bool,
    pub tls: bool,
    /// Listen beyond loopback even without a token or TLS.
    pub insecure: bool,
}

/// The two listening sockets.
pub struct Listeners {
    grpc: TcpListener,
    http: TcpListener,
}

impl Listeners {
    /// Binds both ports, once it is clear that listening there is safe.
    pub fn bind(grpc: &str, http: &str, protection: Protection) -> Result<Listeners, ListenError> {
        let resolved: Vec<SocketAddr> = [grpc, http]
            .into_iter()
            .filter_map(|a| a.to_socket_addrs().ok())
            .flatten()
            .collect();
        exposed(protection, &resolved)?;
        let bind = |addr: &str| {
            TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| ListenError::Bind {
                    addr: addr.to_owned(),
                    source,
                })
        };
        Ok(Listeners {
            grpc: bind(grpc)?,
            http: bind(http)?,
        })
    }

    /// The gRPC port's socket and the HTTP port's.
    pub fn into_parts(self) -> (TcpListener, TcpListener) {
        (self.grpc, self.http)
    }
}

/// Refuses (or, with `insecure`, says) a non-loopback address without a token or TLS.
pub fn exposed(protection: Protection, addrs: &[SocketAddr]) -> Result<(), ListenError> {
    for &addr in addrs.iter().filter(|a| !a.ip().is_loopback()) {
        let refusal = match (protection.token, protection.tls) {
            (false, _) => ListenError::Exposed {
                addr,
                missing: "a token",
                risk: "submit spans and read the status",
                remedy: "--token (or SPANFOLD_TOKEN)",
            },
            (true, false) => ListenError::Exposed {
                addr,
                missing: "TLS",
                risk: "read the token and the spans as they pass",
                remedy: "--tls-cert and --tls-key",
            },
            (true, true) => continue,
        };
        if !protection.insecure {
            return Err(refusal);
        }
        tracing::warn!("--insecure: {refusal}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_both_a_token_and_tls_or_insecure() {
        let public: SocketAddr = "0.0.0.0:4317".parse().expect("address");
        let local: SocketAddr = "127.0.0.1:4317".parse().expect("address");
        let with = |token, tls, insecure| Protection {
            token,
            tls,
            insecure,
        };
        assert!(exposed(with(false, false, false), &[local]).is_ok());
        let no_token = exposed(with(false, true, false), &[public]).expect_err("no token");
        assert!(
            no_token.to_string().contains("without a token"),
            "{no_token}"
        );
        let no_tls = exposed(with(true, false, false), &[public]).expect_err("no TLS");
        assert!(no_tls.to_string().contains("without TLS"), "{no_tls}");
        assert!(exposed(with(true, true, false), &[public]).is_ok());
        assert!(
            exposed(with(false, false, true), &[public]).is_ok(),
            "--insecure"
        );
    }
}
