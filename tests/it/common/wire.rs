//! Raw exchanges with the receivers, for tests that send what no honest client would: bodies
//! through curl, gRPC frames that lie about their length or compression.

use std::path::Path;
use std::process::Command;

use super::{Sandbox, Served, curl};

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// POST /v1/traces with these bytes and headers; returns (status, body).
pub fn post(sb: &Sandbox, served: &Served, body: &[u8], headers: &[&str]) -> (u16, String) {
    post_at(sb, served, "/v1/traces", body, headers)
}

/// POST `path` (an OTLP/HTTP receiver) with these bytes and headers; returns (status, body).
pub fn post_at(
    sb: &Sandbox,
    served: &Served,
    path: &str,
    body: &[u8],
    headers: &[&str],
) -> (u16, String) {
    let file = sb.tmp.path().join("body.bin");
    std::fs::write(&file, body).expect("write body");
    curl(&served.http, "POST", path, None, Some(&file), headers)
}

/// POST a protobuf export; returns (status, rejected spans, message) from the protobuf answer.
pub fn post_proto(sb: &Sandbox, served: &Served, body: &[u8]) -> (u16, i64, String) {
    let file = sb.tmp.path().join("body.bin");
    let answer = sb.tmp.path().join("answer.bin");
    std::fs::write(&file, body).expect("write body");
    let out = Command::new("curl")
        .args(["-s", "-o"])
        .arg(&answer)
        .args(["-w", "%{http_code}", "-H", PROTOBUF, "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("{}/v1/traces", served.http))
        .output()
        .expect("curl runs");
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let bytes = std::fs::read(&answer).unwrap_or_default();
    let (rejected, message) =
        spanfold::otlp::decode_response(spanfold::otlp::Encoding::Protobuf, &bytes)
            .unwrap_or((-1, String::from_utf8_lossy(&bytes).into_owned()));
    (code, rejected, message)
}

pub const JSON: &str = "Content-Type: application/json";
pub const PROTOBUF: &str = "Content-Type: application/x-protobuf";

/// A raw gRPC Export call through curl (HTTP/2 without TLS): `frame` is the whole
/// length-prefixed message, so it can lie about its length or compression. Returns grpc-status
/// and grpc-message from the trailers.
pub fn grpc_raw(served: &Served, dir: &Path, frame: &[u8], headers: &[&str]) -> (String, String) {
    grpc_raw_at(served, dir, "trace.v1.TraceService", frame, headers)
}

/// [`grpc_raw`] to another OTLP service (`logs.v1.LogsService`, `metrics.v1.MetricsService`).
pub fn grpc_raw_at(
    served: &Served,
    dir: &Path,
    service: &str,
    frame: &[u8],
    headers: &[&str],
) -> (String, String) {
    let file = dir.join("frame.bin");
    std::fs::write(&file, frame).expect("write frame");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-D",
        "-",
    ])
    .args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!(
            "http://{}/opentelemetry.proto.collector.{service}/Export",
            served.grpc
        ));
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .next_back()
            .unwrap_or_default()
    };
    (
        field("grpc-status"),
        percent_decoded(&field("grpc-message")),
    )
}

pub fn frame(compressed: bool, declared: usize, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::from(compressed)];
    f.extend((declared as u32).to_be_bytes());
    f.extend(payload);
    f
}

/// grpc-message is percent-encoded on the wire.
pub fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
