//! How the JSON API fails: [`ApiError`], a failure's kind (which gives its status) and message,
//! and the one place that turns it — or a handler's data — into the answer a client reads.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::envelope::Envelope;

/// What kind of failure an API request met; each answers with one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// 400: the request itself is wrong — its query string, a point in time, a body that is not
    /// an export — or a read of the log it asked for failed.
    BadRequest,
    /// 401: no token, or not one this server knows. The answer asks for a bearer token.
    Unauthorized,
    /// 403: a token that may not do this (an agent's running a cycle, or sending another's
    /// spans).
    Forbidden,
    /// 404: what was asked for is not there (an agent that is not registered).
    NotFound,
    /// 422: a person's command that was not applied — the coordinator refused it, or the writer
    /// could not take it; either way nothing was written.
    Refused,
    /// 500: the server failed at what it was asked (a cycle or gc that could not run, the log
    /// not read for `/api/events`).
    Internal,
}

impl Kind {
    pub(super) fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The shape of a failure's body: what the client of that endpoint parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The envelope of the command the request was for (`Envelope::api`), as every JSON API
    /// answer is.
    Envelope(&'static str),
    /// Only the envelope's verdict, `{"success": false, "errors": [..]}`: the token check answers
    /// before any command is known.
    Verdict,
    /// Plain text, for an endpoint whose answer is not one JSON document (`/api/events`).
    Text,
}

/// A failed API request: its kind, the message a client reads, and the body's form.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct ApiError {
    kind: Kind,
    message: String,
    form: Form,
}

impl ApiError {
    /// A failure answered with the verdict alone until [`ApiError::of`] names its command.
    pub(super) fn new(kind: Kind, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            kind,
            message: message.to_string(),
            form: Form::Verdict,
        }
    }

    pub(super) fn bad_request(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Kind::BadRequest, message)
    }

    pub(super) fn unauthorized(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Kind::Unauthorized, message)
    }

    pub(super) fn forbidden(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Kind::Forbidden, message)
    }

    pub(super) fn not_found(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Kind::NotFound, message)
    }

    pub(super) fn refused(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Kind::Refused, message)
    }

    pub(super) fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(Kind::Internal, message)
    }

    /// The failure of `command`: answered in its envelope.
    pub(super) fn of(self, command: &'static str) -> ApiError {
        ApiError {
            form: Form::Envelope(command),
            ..self
        }
    }

    /// The failure of an endpoint that answers in text.
    pub(super) fn in_text(self) -> ApiError {
        ApiError {
            form: Form::Text,
            ..self
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let mut response = match self.form {
            Form::Envelope(command) => {
                let body = Envelope::api(command, Err(self.message)).to_value();
                (status, axum::Json(body)).into_response()
            }
            Form::Verdict => (status, axum::Json(verdict(self.message))).into_response(),
            Form::Text => (status, self.message).into_response(),
        };
        if self.kind == Kind::Unauthorized {
            // A client without a token is told which scheme to use (RFC 9110, 11.6.1).
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn verdict(message: String) -> Value {
    json!({"success": false, "errors": [message]})
}

/// A JSON API answer that succeeded: `command`'s envelope around its data, with 200.
pub(super) struct Enveloped {
    command: &'static str,
    data: Value,
}

impl IntoResponse for Enveloped {
    fn into_response(self) -> Response {
        let body = Envelope::api(self.command, Ok(self.data)).to_value();
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

/// What a JSON API handler answers: the envelope either way.
pub(super) type Answer = Result<Enveloped, ApiError>;

/// `command`'s answer to `result`: its data or its failure, in the command's envelope.
pub(super) fn answer(command: &'static str, result: Result<Value, ApiError>) -> Answer {
    match result {
        Ok(data) => Ok(Enveloped { command, data }),
        Err(e) => Err(e.of(command)),
    }
}

/// An answer's data as JSON. Serialising spanfold's own documents cannot fail (string and
/// integer keys only); were it to, that would be the server's fault, not the request's.
pub(super) fn to_json(data: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(data).map_err(ApiError::internal)
}
