//! One error type for both transports: rendered as a gRPC `Status` and as an
//! HTTP status with a JSON body `{"error": {"code": ..., "message": ...}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ordersaga_runtime::auth::AuthError;

/// What went wrong, classified for the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; nothing was started or stored.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named order or product does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well-formed but the system is not in a state that
    /// allows it (e.g. rating a product one has not bought).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller could not be authenticated (no, or an invalid, bearer
    /// token; a webhook whose signature or timestamp does not verify);
    /// nothing changed.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role may not do this; nothing changed.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller sent too many requests of this kind; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request body exceeds the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// A dependency (database, Temporal) failed; logged with its cause,
    /// answered with an opaque message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// A malformed request: [`ApiError::InvalidArgument`].
pub(crate) fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(msg.into())
}

impl ApiError {
    /// Wraps an internal failure.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::AlreadyExists(_) => "ALREADY_EXISTS",
            Self::FailedPrecondition(_) => "FAILED_PRECONDITION",
            Self::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    fn log(&self) {
        if let Self::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if e.is_unauthenticated() {
            Self::Unauthenticated(e.to_string())
        } else {
            Self::PermissionDenied(e.to_string())
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.log();
        let message = e.to_string();
        match e {
            ApiError::InvalidArgument(_) => tonic::Status::invalid_argument(message),
            // What tonic itself answers for a message over the size limit.
            ApiError::TooLarge(_) => tonic::Status::out_of_range(message),
            ApiError::NotFound(_) => tonic::Status::not_found(message),
            ApiError::AlreadyExists(_) => tonic::Status::already_exists(message),
            ApiError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            ApiError::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => tonic::Status::permission_denied(message),
            ApiError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = match self {
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::AlreadyExists(_) | Self::FailedPrecondition(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        });
        let mut response = (status, Json(body)).into_response();
        // RFC 6750: a 401 names the scheme the caller should use.
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
