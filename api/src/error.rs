//! The one HTTP error type: a stable `{ "code", "message" }` body. A 5xx
//! tells the client nothing internal and is logged once.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code clients branch on.
    pub code: &'static str,
    /// Human-readable detail.
    pub message: String,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401: no or unknown credential.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403: the credential may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    /// 422: well-formed but invalid.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 503: not ready (store or node unavailable).
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }
    /// 500: logged here with its cause; the client learns nothing internal.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

/// Retry-After while the store is unavailable (it retries every second).
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

impl From<aggregator::StoreError> for ApiError {
    fn from(e: aggregator::StoreError) -> Self {
        match e {
            aggregator::StoreError::Closed => {
                ApiError::unavailable("shutting_down", "the server is shutting down")
            }
            // A full disk or failed write: nothing was stored, the store
            // reopens itself once writes work again.
            aggregator::StoreError::Unavailable { disk_full, cause } => {
                tracing::debug!(error = %cause, disk_full, "store unavailable");
                let (code, message) = if disk_full {
                    (
                        "disk_full",
                        "the server's disk is full; nothing was stored, retry later",
                    )
                } else {
                    (
                        "store_unavailable",
                        "the store cannot write; nothing was stored, retry later",
                    )
                };
                ApiError {
                    retry_after: Some(STORE_RETRY_AFTER_SECS),
                    ..ApiError::unavailable(code, message)
                }
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                code: self.code,
                message: &self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
