//! The JSON envelope: how a command's result or its error becomes the one document `--json`
//! prints (the one DSLModel's `dsl agents` printed, so its users' scripts keep working), and the
//! same document the JSON API answers with.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::emit;
use crate::status;

/// What a command produced: the JSON `data`, the text for people, and warnings.
pub struct Output {
    pub data: Value,
    pub text: String,
    pub warnings: Vec<String>,
    /// Merged into the envelope's metadata (what a command says about how it got its data).
    pub metadata: Option<Value>,
    /// An answer given by exit code (not an error): `agents check-path` exits 2 when the path
    /// collides, with its words on stderr, where a hook's caller reads them.
    pub exit_code: Option<u8>,
}

impl Output {
    pub(super) fn new(data: Value, text: String) -> Output {
        Output {
            data,
            text,
            warnings: Vec::new(),
            metadata: None,
            exit_code: None,
        }
    }
}

/// A failure that still has data to show (with --json, in `data`), such as the divergence
/// `replay --verify` found.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub data: Value,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The seed's envelope.
#[derive(Serialize)]
pub struct Envelope {
    pub timestamp: String,
    pub command: String,
    pub success: bool,
    pub data: Value,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub metadata: Value,
}

/// An error and its causes on one line, each cause said once: a message that already quotes
/// its cause does not get it repeated.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

impl Envelope {
    /// A command's envelope, as the CLI prints it: its metadata also says which coordination
    /// directory answered, and whatever the command added.
    pub fn new(
        command: &str,
        result: &std::result::Result<Output, anyhow::Error>,
        coord_dir: Option<&Path>,
    ) -> Envelope {
        let (success, data, errors, warnings) = match result {
            Ok(out) => (true, out.data.clone(), vec![], out.warnings.clone()),
            Err(e) => (
                false,
                e.downcast_ref::<Failure>()
                    .map_or(Value::Null, |f| f.data.clone()),
                vec![error_text(e)],
                vec![],
            ),
        };
        let mut metadata = json!({
            "spanfold_version": env!("CARGO_PKG_VERSION"),
            "coord_dir": coord_dir.map(|p| p.display().to_string()),
        });
        if let (
            Ok(Output {
                metadata: Some(Value::Object(extra)),
                ..
            }),
            Some(m),
        ) = (result, metadata.as_object_mut())
        {
            m.extend(extra.clone());
        }
        Envelope::stamped(command, success, data, errors, warnings, metadata)
    }

    /// An API answer's envelope: no warnings, and metadata with the version only (a server
    /// does not say where its log lives).
    pub fn api(command: &str, result: std::result::Result<Value, String>) -> Envelope {
        let (success, data, errors) = match result {
            Ok(data) => (true, data, vec![]),
            Err(e) => (false, Value::Null, vec![e]),
        };
        let metadata = json!({"spanfold_version": env!("CARGO_PKG_VERSION")});
        Envelope::stamped(command, success, data, errors, vec![], metadata)
    }

    /// The envelope as a JSON value. Its keys come out in serde_json's map order (sorted), the
    /// order the JSON API has always answered in; printing the envelope itself keeps the
    /// fields' order instead, as the CLI does.
    pub fn to_value(&self) -> Value {
        json!({
            "timestamp": self.timestamp,
            "command": self.command,
            "success": self.success,
            "data": self.data,
            "errors": self.errors,
            "warnings": self.warnings,
            "metadata": self.metadata,
        })
    }

    fn stamped(
        command: &str,
        success: bool,
        data: Value,
        errors: Vec<String>,
        warnings: Vec<String>,
        metadata: Value,
    ) -> Envelope {
        Envelope {
            timestamp: status::rfc3339(emit::now()),
            command: command.to_owned(),
            success,
            data,
            errors,
            warnings,
            metadata,
        }
    }
}
