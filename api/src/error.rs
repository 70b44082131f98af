//! One error type for both transports: rendered as a gRPC `Status` and as an
//! HTTP status with a JSON body `{"error": {"code": ..., "message": ...}}`
//! ([`ErrorBody`], the shape the OpenAPI document names for every error).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordersaga_runtime::auth::AuthError;
use serde::Serialize;
use utoipa::ToSchema;

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
    /// The route exists, the method does not (HTTP only).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request target exceeds the size limit (HTTP only).
    #[error("{0}")]
    UriTooLong(String),
    /// The body is not `application/json` (HTTP only).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency the answer needs is down (readiness).
    #[error("{0}")]
    Unavailable(String),
    /// A dependency (database, Temporal) failed; logged with its cause,
    /// answered with an opaque message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// A malformed request: [`ApiError::InvalidArgument`].
pub(crate) fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(msg.into())
}

/// The body of every HTTP error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The gRPC-style code; the HTTP status follows from it.
    pub code: ErrorCode,
    /// For people: what to change.
    pub message: String,
}

/// The codes of [`ErrorDetail`], each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400.
    InvalidArgument,
    /// 401.
    Unauthenticated,
    /// 403.
    PermissionDenied,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 409: the thing to create exists.
    AlreadyExists,
    /// 409: not in a state that allows it.
    FailedPrecondition,
    /// 413.
    PayloadTooLarge,
    /// 414.
    UriTooLong,
    /// 415.
    UnsupportedMediaType,
    /// 429.
    ResourceExhausted,
    /// 500.
    Internal,
    /// 503.
    Unavailable,
}

impl ApiError {
    /// Wraps an internal failure.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    /// The error of an answer the framework made (a rejection, a `405`),
    /// by its status; `None` for a status no [`ApiError`] answers.
    pub fn from_status(status: StatusCode, message: String) -> Option<Self> {
        Some(match status {
            StatusCode::BAD_REQUEST => Self::InvalidArgument(message),
            StatusCode::UNAUTHORIZED => Self::Unauthenticated(message),
            StatusCode::FORBIDDEN => Self::PermissionDenied(message),
            StatusCode::NOT_FOUND => Self::NotFound(message),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed(message),
            StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge(message),
            StatusCode::URI_TOO_LONG => Self::UriTooLong(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(message),
            StatusCode::TOO_MANY_REQUESTS => Self::ResourceExhausted(message),
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(message),
            StatusCode::INTERNAL_SERVER_ERROR => Self::internal(anyhow::anyhow!(message)),
            _ => return None,
        })
    }

    /// The code of the JSON body.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::TooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            Self::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            Self::UriTooLong(_) => ErrorCode::UriTooLong,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::AlreadyExists(_) | Self::FailedPrecondition(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            ApiError::InvalidArgument(_)
            | ApiError::UriTooLong(_)
            | ApiError::UnsupportedMediaType(_) => tonic::Status::invalid_argument(message),
            // What tonic itself answers for a message over the size limit.
            ApiError::TooLarge(_) => tonic::Status::out_of_range(message),
            ApiError::NotFound(_) => tonic::Status::not_found(message),
            ApiError::AlreadyExists(_) => tonic::Status::already_exists(message),
            ApiError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            ApiError::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => tonic::Status::permission_denied(message),
            ApiError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            ApiError::MethodNotAllowed(_) => tonic::Status::unimplemented(message),
            ApiError::Unavailable(_) => tonic::Status::unavailable(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        // RFC 6750: a 401 names the scheme the caller should use.
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
