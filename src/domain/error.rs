//! The error every domain check returns: which request field is wrong and
//! why, in words a client can act on. The HTTP layer turns it into a 422
//! problem+json response naming `field`.

use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// A request field failed validation.
// `FieldProblem` in the OpenAPI document: 422 responses list them as `errors`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, utoipa::ToSchema)]
#[error("{field}: {message}")]
#[schema(as = FieldProblem)]
pub struct FieldError {
    /// Dotted path of the offending field, e.g. `value.amount`.
    pub field: String,
    /// Human-readable reason, phrased to follow the field name.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same complaint about a differently named field, for callers that
    /// reuse a parser under another name (e.g. a query parameter).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

/// Common checks for client-supplied text: U+0000 is refused (PostgreSQL
/// text cannot hold it), length is bounded in Unicode scalar values (not
/// bytes, so the limit means the same for every script), and the string must
/// have something besides white space unless `allow_empty`.
///
/// Everything else, including leading/trailing white space, is accepted and
/// kept exactly as sent.
pub fn check_text(
    field: &str,
    s: &str,
    max_chars: usize,
    allow_empty: bool,
) -> Result<(), FieldError> {
    if s.contains('\0') {
        return Err(FieldError::new(field, "must not contain U+0000"));
    }
    if s.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if !allow_empty && s.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field() {
        let e = FieldError::new("value.amount", "must be a decimal");
        assert_eq!(e.to_string(), "value.amount: must be a decimal");
        assert_eq!(e.with_field("at").field, "at");
    }

    #[test]
    fn check_text_rules() {
        assert!(check_text("f", "ok", 2, false).is_ok());
        assert!(
            check_text("f", "é€", 2, false).is_ok(),
            "counts chars, not bytes"
        );
        assert_eq!(check_text("f", "abc", 2, false).unwrap_err().field, "f");
        assert!(check_text("f", "a\0b", 10, true).is_err());
        assert!(check_text("f", " \t\u{a0}\n", 10, false).is_err());
        assert!(check_text("f", " \t\n", 10, true).is_ok());
        assert!(check_text("f", "", 10, true).is_ok());
    }
}

/// Why the domain refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The state forbids the transition whoever asks (409).
    #[error("{0}")]
    Conflict(String),
    /// This actor may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Invalid input (422).
    #[error(transparent)]
    Invalid(#[from] FieldError),
}

/// Text as [`check_text`] accepts it, for the OpenAPI document: no U+0000,
/// at most `max_chars` characters and, unless `allow_empty`, not blank.
/// (`usize::MAX` means no bound of its own.)
pub fn text_schema(max_chars: usize, allow_empty: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(if allow_empty {
            r"^[^\x00]*$"
        } else {
            r"^[^\x00]*[^\s\x00][^\x00]*$"
        }))
        .max_length((max_chars != usize::MAX).then_some(max_chars))
}

/// [`text_schema`] for a field that may also be `null`.
pub fn nullable_text_schema(max_chars: usize) -> ObjectBuilder {
    text_schema(max_chars, false).schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}
