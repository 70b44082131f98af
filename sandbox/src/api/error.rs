//! PayPal's error answers: `{"name", "message", "details": [{"issue",
//! ...}], "debug_id"}` with PayPal's status codes and names.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{SandboxError, paypal_id};

/// A PayPal error answer: `{"name", "message", "details": [{"issue", ...}],
/// "debug_id"}`.
pub(crate) struct PayPalError {
    status: StatusCode,
    name: &'static str,
    message: &'static str,
    issue: Option<(String, String)>,
}

impl PayPalError {
    pub(crate) fn unprocessable(issue: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            name: "UNPROCESSABLE_ENTITY",
            message: "The requested action could not be performed, semantically incorrect, or failed business validation.",
            issue: Some((issue.into(), description.into())),
        }
    }

    pub(crate) fn invalid(issue: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            name: "INVALID_REQUEST",
            message: "Request is not well-formed, syntactically incorrect, or violates schema.",
            issue: Some((issue.into(), description.into())),
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            name: "RESOURCE_NOT_FOUND",
            message: "The specified resource does not exist.",
            issue: Some(("INVALID_RESOURCE_ID".to_string(), what.into())),
        }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            name: "AUTHENTICATION_FAILURE",
            message: "Authentication failed due to invalid authentication credentials or a missing Authorization header.",
            issue: None,
        }
    }

    pub(crate) fn internal(status: StatusCode) -> Self {
        Self {
            status,
            name: "INTERNAL_SERVER_ERROR",
            message: "An internal server error has occurred.",
            issue: None,
        }
    }
}

impl IntoResponse for PayPalError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "name": self.name,
            "message": self.message,
            "debug_id": paypal_id().to_ascii_lowercase(),
            "links": [],
        });
        if let Some((issue, description)) = self.issue {
            body["details"] = json!([{ "issue": issue, "description": description }]);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<SandboxError> for PayPalError {
    fn from(e: SandboxError) -> Self {
        tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "sandbox failed");
        Self::internal(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<sqlx::Error> for PayPalError {
    fn from(e: sqlx::Error) -> Self {
        SandboxError::from(e).into()
    }
}
