//! Query parameters of the reads, each refusal naming its parameter (422).

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Required};
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::error::{FieldError, text_schema};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1_000;
/// Longest text a query parameter may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 1_000;

pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?;
        Ok(Params(q.0))
    }
}

impl Params {
    pub fn text(&self, name: &str) -> Result<Option<String>, FieldError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) if v.contains('\0') => Err(FieldError::new(name, "must not contain U+0000")),
            Some(v) if v.chars().count() > MAX_TEXT_CHARS => {
                Err(FieldError::new(name, "is too long"))
            }
            Some(v) => Ok(Some(v.clone())),
        }
    }

    /// A text parameter that `parse` reads, refused with `expected` when it
    /// does not.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, FieldError> {
        self.text(name)?
            .map(|v| parse(&v).ok_or_else(|| FieldError::new(name, expected)))
            .transpose()
    }

    /// Page size: 1 to 1,000, default 100.
    pub fn limit(&self) -> Result<i64, FieldError> {
        match self.0.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| FieldError::new("limit", "must be an integer from 1 to 1000")),
        }
    }

    pub fn position(&self, name: &str) -> Result<Option<i64>, FieldError> {
        self.0
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| FieldError::new(name, "must be a non-negative integer position"))
            })
            .transpose()
    }

    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, FieldError> {
        self.0
            .get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| FieldError::new(name, "must be a UUID"))
            })
            .transpose()
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
        self.0
            .get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| FieldError::new(name, "must be an RFC 3339 timestamp"))
            })
            .transpose()
    }

    /// Cursors are opaque to clients; here they are the last key of a page.
    pub fn uuid_cursor(&self) -> Result<Option<Uuid>, FieldError> {
        self.uuid("cursor")
            .map_err(|_| FieldError::new("cursor", "is not a cursor this API issued"))
    }

    pub fn position_cursor(&self) -> Result<Option<i64>, FieldError> {
        self.position("cursor")
            .map_err(|_| FieldError::new("cursor", "is not a cursor this API issued"))
    }

    pub fn wait_for(&self) -> Result<Option<i64>, FieldError> {
        self.position("wait_for")
    }

    /// A `Link` header naming this request's next page: the same
    /// parameters (in a stable order) with `cursor` replaced.
    pub fn next_link(&self, path: &str, cursor: &str) -> Option<HeaderValue> {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k.as_str() != "cursor")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        pairs.push(("cursor", cursor));
        let query = serde_urlencoded::to_string(&pairs).ok()?;
        HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")).ok()
    }
}

// The parameters as `/openapi.json` describes them, from the limits above.

/// An optional query parameter.
fn query(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .description(Some(description))
        .required(Required::False)
        .schema(Some(schema))
        .build()
}

/// `limit`, as [`Params::limit`] reads it.
pub struct Limit;

impl IntoParams for Limit {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query(
            "limit",
            &format!("Page size (default {DEFAULT_LIMIT})"),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT)),
        )]
    }
}

/// `wait_for`, as [`Params::wait_for`] reads it.
pub struct WaitFor;

impl IntoParams for WaitFor {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query(
            "wait_for",
            "Answer once the projections have applied this position",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        )]
    }
}

/// What a listing pages by: [`Limit`], `cursor` (as [`Params::uuid_cursor`]
/// and [`Params::position_cursor`] read it) and [`WaitFor`].
pub struct Paging;

impl IntoParams for Paging {
    fn into_params(in_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let cursor = query(
            "cursor",
            "`next_cursor` of the previous page",
            ObjectBuilder::new().schema_type(Type::String),
        );
        let mut params = Limit::into_params(&in_);
        params.push(cursor);
        params.extend(WaitFor::into_params(in_));
        params
    }
}

/// Free-text query filters, each as [`Params::text`] reads it: declares a
/// type to list in `#[utoipa::path(params(...))]`.
macro_rules! text_filters {
    ($(#[$doc:meta])* $name:ident { $($param:literal: $description:literal),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![$($crate::api::params::text_filter($param, $description)),+]
            }
        }
    };
}
pub(crate) use text_filters;

pub fn text_filter(name: &str, description: &str) -> Parameter {
    query(name, description, text_schema(MAX_TEXT_CHARS, true))
}
