//! The advert: the file a running server writes into the coordination directory so that the
//! CLI (and the demo) can find it. Written by the server, read by the client.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The header naming the server that answered (its `server_id`).
pub const SERVER_HEADER: &str = "spanfold-server";

/// What a server writes into the coordination directory so that the CLI can find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advert {
    pub pid: u32,
    /// Base URL of the HTTP port (OTLP/HTTP and the API), e.g. `http://127.0.0.1:4318`.
    pub http: String,
    /// Address of the OTLP/gRPC port, e.g. `127.0.0.1:4317`.
    pub grpc: String,
    pub version: String,
    /// The id the server answers with in its [`SERVER_HEADER`]; absent in adverts of servers
    /// older than it.
    #[serde(default)]
    pub server_id: Option<String>,
    /// The certificate the server's ports present when they use TLS (a PEM file): a client on
    /// this machine trusts the server by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
}

pub const ADVERT_FILE: &str = "server.json";

impl Advert {
    /// The advert in `coord_dir`, if a server wrote one (it may be stale: the server may be gone).
    pub fn read(coord_dir: &Path) -> Option<Advert> {
        let text = std::fs::read_to_string(coord_dir.join(ADVERT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the advert whole, then renames it into place, so a reader never sees half a file;
    /// returns its path. Best effort: a CLI that finds no advert opens the log itself, and waits
    /// for the server's lock.
    pub fn write(&self, coord_dir: &Path) -> PathBuf {
        let path = coord_dir.join(ADVERT_FILE);
        if let Ok(text) = serde_json::to_string_pretty(self) {
            let tmp = coord_dir.join(format!("{ADVERT_FILE}.tmp"));
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        path
    }
}
