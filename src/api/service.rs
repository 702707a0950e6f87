//! Service endpoints that need no token.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::db;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let applied = db::migrations_applied(state.store.pool())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::Unavailable("the database is unreachable".into())
        })?;
    if !applied {
        return Err(ApiError::Unavailable(
            "migrations are not applied yet".into(),
        ));
    }
    Ok(Json(
        json!({"status": "ready", "head": state.store.known_head()}),
    ))
}
