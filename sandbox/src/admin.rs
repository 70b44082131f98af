//! The sandbox's own admin surface under `/sandbox/`, for tests and demos:
//! read and set the [`crate::controls`], release held webhooks, and read the
//! per-transaction counters ("at most one capture").
//!
//! - `GET  /sandbox/controls`: the current controls.
//! - `POST /sandbox/controls`: a partial update ([`crate::ControlsPatch`]);
//!   answers the new controls.
//! - `POST /sandbox/controls/reset`: back to no faults, manual buyers.
//! - `POST /sandbox/webhooks/release` `{"order": "reverse"|"fifo"}`: delivers
//!   held webhooks one after another; answers `{"released": n}`.
//! - `GET  /sandbox/transactions/{transaction_id}`: [`crate::Counts`], 404
//!   if the sandbox never saw the transaction.
//! - `GET  /healthz`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::controls::{Controls, ControlsPatch};
use crate::webhooks::Release;
use crate::{App, db};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/sandbox/controls", get(get_controls).post(set_controls))
        .route("/sandbox/controls/reset", post(reset_controls))
        .route("/sandbox/webhooks/release", post(release))
        .route("/sandbox/transactions/{transaction_id}", get(transaction))
        .route("/healthz", get(|| async { "ok" }))
}

fn bad_request(e: &JsonRejection) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": "INVALID_ARGUMENT", "message": e.body_text()}})),
    )
        .into_response()
}

async fn get_controls(State(app): State<App>) -> Json<Controls> {
    Json(app.controls())
}

async fn set_controls(
    State(app): State<App>,
    patch: Result<Json<ControlsPatch>, JsonRejection>,
) -> Response {
    match patch {
        Ok(Json(patch)) => Json(app.with_controls(|c| {
            c.apply(patch);
            c.clone()
        }))
        .into_response(),
        Err(e) => bad_request(&e),
    }
}

async fn reset_controls(State(app): State<App>) -> Json<Controls> {
    let url = app.settings().webhook_url.clone();
    Json(app.with_controls(|c| {
        *c = Controls::new(url);
        c.clone()
    }))
}

async fn release(State(app): State<App>, body: Result<Json<Release>, JsonRejection>) -> Response {
    match body {
        Ok(Json(r)) => Json(json!({"released": app.release(r.order)})).into_response(),
        Err(e) => bad_request(&e),
    }
}

async fn transaction(State(app): State<App>, Path(txn): Path<String>) -> Response {
    match db::counts(app.pool(), &txn).await {
        Ok(Some(counts)) => Json(counts).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": {"code": "NOT_FOUND", "message": format!("no transaction {txn}")}}),
            ),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading counters failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": {"code": "INTERNAL", "message": "internal error"}})),
            )
                .into_response()
        }
    }
}
