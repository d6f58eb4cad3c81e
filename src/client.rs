//! A client of a running `spanfold serve`, used by the CLI when a server holds the log: spans go
//! in over OTLP/HTTP, answers come back from the JSON API. The only module that knows ureq.

use std::time::Duration;

use thiserror::Error;

pub use crate::advert::{ADVERT_FILE, Advert, SERVER_HEADER};
use crate::model::ResourceSpans;
use crate::otlp::{self, Encoding};

/// The API answers failures in the envelope: its message, not the JSON.
fn envelope_error(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|doc| doc["errors"][0].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the spanfold server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the spanfold server at {url} refused the request: {message}")]
    Unauthorized { url: String, message: String },
    #[error("the spanfold server at {url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the spanfold server at {url} sent an answer that could not be read: {message}")]
    BadAnswer { url: String, message: String },
    /// The server understood the request and refused it (a person's command the fold could
    /// not apply): its own words say what to do.
    #[error("{message}")]
    Refused { message: String },
    #[error(
        "the server answering at {url} is not the one this coordination directory's advert names (it serves another log); run `spanfold serve` here again, or pass --endpoint"
    )]
    OtherServer { url: String },
    #[error(
        "cannot use {path} as the server's certificate: {message}; give the PEM file the server's --tls-cert names"
    )]
    BadCertificate { path: String, message: String },
}

/// The certificates in the PEM file at `path`; an error that says what is wrong with the file
/// when there are none.
pub fn certificates(
    path: &std::path::Path,
) -> Result<Vec<ureq::tls::Certificate<'static>>, ClientError> {
    let bad = |message: String| ClientError::BadCertificate {
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(Result::ok)
        .filter_map(|item| match item {
            ureq::tls::PemItem::Certificate(cert) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".to_owned()));
    }
    Ok(certs)
}

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// When set, every answer must come from the server with this id (an advert's).
    expect_server: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client::trusting(base, token, None)
    }

    /// A client that trusts, for `https://`, the certificates in the PEM file `ca` (a server's
    /// own self-signed one) instead of the public roots.
    pub fn trusting(base: &str, token: Option<String>, ca: Option<&std::path::Path>) -> Client {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false);
        if let Some(certs) = ca.and_then(|path| certificates(path).ok()) {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                    .build(),
            );
        }
        let agent = config.build().into();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent,
            expect_server: None,
        }
    }

    /// A client of the server an advert names, which refuses answers from any other server
    /// (a stale advert's address may since have been taken by another repository's server).
    pub fn for_advert(advert: &Advert, token: Option<String>) -> Client {
        let ca = advert.tls_cert.as_deref().map(std::path::Path::new);
        let mut client = Client::trusting(&advert.http, token, ca);
        client.expect_server = advert.server_id.clone();
        client
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>, ClientError> {
        self.send_to(method, path, body, None)
    }

    /// GETs `path` and copies a successful body to `out` as it arrives.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<(), ClientError> {
        self.send_to("GET", path, None, Some(out)).map(|_| ())
    }

    fn send_to(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        stream: Option<&mut dyn std::io::Write>,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let mut response = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                if stream.is_some() {
                    // A download (an export) takes as long as the log is large: no time limit.
                    req = req
                        .config()
                        .timeout_global(None)
                        .timeout_recv_body(None)
                        .timeout_per_call(None)
                        .build();
                }
                if let Some(a) = self.auth() {
                    req = req.header("Authorization", a);
                }
                req.call().map_err(unreachable)?
            }
            (_, body) => {
                let mut req = self.agent.post(&url);
                if let Some(a) = self.auth() {
                    req = req.header("Authorization", a);
                }
                match body {
                    Some((content_type, bytes)) => req
                        .header("Content-Type", content_type)
                        .send(&bytes[..])
                        .map_err(unreachable)?,
                    None => req.send_empty().map_err(unreachable)?,
                }
            }
        };
        if let Some(expected) = &self.expect_server {
            let answered = response
                .headers()
                .get(SERVER_HEADER)
                .and_then(|v| v.to_str().ok());
            if answered != Some(expected.as_str()) {
                return Err(ClientError::OtherServer {
                    url: self.base.clone(),
                });
            }
        }
        let status = response.status().as_u16();
        if let (200, Some(out)) = (status, stream) {
            let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
            std::io::copy(&mut reader, out).map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                message: e.to_string(),
            })?;
            return Ok(Vec::new());
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                message: e.to_string(),
            })?;
        match status {
            200..=299 => Ok(bytes),
            422 => Err(ClientError::Refused {
                message: envelope_error(&bytes),
            }),
            401 => Err(ClientError::Unauthorized {
                url,
                message: String::from_utf8_lossy(&bytes).into_owned(),
            }),
            _ => Err(ClientError::Status {
                url,
                status,
                message: envelope_error(&bytes),
            }),
        }
    }

    /// Asks `/healthz`: Ok when the expected server answers healthy.
    pub fn probe(&self) -> Result<(), ClientError> {
        self.send("GET", "/healthz", None).map(|_| ())
    }

    /// Exports spans over OTLP/HTTP protobuf; returns the partial-success rejections.
    pub fn export(&self, resource_spans: &[ResourceSpans]) -> Result<(i64, String), ClientError> {
        let body = otlp::encode_request(resource_spans);
        let answer = self.send(
            "POST",
            "/v1/traces",
            Some((Encoding::Protobuf.content_type(), body)),
        )?;
        otlp::decode_response(Encoding::Protobuf, &answer).map_err(|e| ClientError::BadAnswer {
            url: format!("{}/v1/traces", self.base),
            message: e.to_string(),
        })
    }

    /// Sends log records over OTLP/HTTP (protobuf) to `/v1/logs`; returns the refused count and
    /// the server's message.
    pub fn export_logs(
        &self,
        resource_logs: &[crate::model::ResourceLogs],
    ) -> Result<(i64, String), ClientError> {
        let body = otlp::logs::encode_request(resource_logs);
        let answer = self.send(
            "POST",
            "/v1/logs",
            Some((Encoding::Protobuf.content_type(), body)),
        )?;
        otlp::decode_response(Encoding::Protobuf, &answer).map_err(|e| ClientError::BadAnswer {
            url: format!("{}/v1/logs", self.base),
            message: e.to_string(),
        })
    }

    /// Sends a person's spans to `/api/submit`: appended all together, or refused with the
    /// reason and nothing written.
    pub fn submit(&self, resource_spans: &[ResourceSpans]) -> Result<(), ClientError> {
        let body = otlp::encode_request(resource_spans);
        self.api_with(
            "POST",
            "/api/submit",
            Some((Encoding::Protobuf.content_type(), body)),
        )
        .map(|_| ())
    }

    /// GETs or POSTs an API path answering with the JSON envelope; returns its `data`.
    pub fn api(&self, method: &str, path: &str) -> Result<serde_json::Value, ClientError> {
        self.api_with(method, path, None)
    }

    fn api_with(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = self.send(method, path, body)?;
        let bad = |message: String| ClientError::BadAnswer {
            url: format!("{}{path}", self.base),
            message,
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if doc["success"] != true {
            let message = doc["errors"][0]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned();
            return Err(ClientError::Status {
                url: format!("{}{path}", self.base),
                status: 200,
                message,
            });
        }
        Ok(doc["data"].clone())
    }
}
