//! The plans the service's statements get, for the plan tests
//! (`tests/it/listing_plans.rs`).

use super::error::StoreError;

/// `EXPLAIN EXECUTE` of `statement` prepared as `signature` with `args`:
/// the plan a connection uses once it caches the statement (with
/// `plan_cache_mode = force_generic_plan`, from the first execution).
pub(crate) async fn explain_prepared(
    conn: &mut sqlx::PgConnection,
    signature: &str,
    statement: &str,
    args: &str,
) -> Result<Vec<String>, StoreError> {
    let name = signature.split(' ').next().unwrap_or(signature);
    // Constants of ours, integers and uuids: nothing from outside.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE {signature} AS {statement}"
    )))
    .execute(&mut *conn)
    .await?;
    let plan = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN EXECUTE {name} ({args})"
    )))
    .fetch_all(&mut *conn)
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DEALLOCATE {name}")))
        .execute(&mut *conn)
        .await?;
    Ok(plan?)
}

/// A list as a PostgreSQL array literal, for [`explain_prepared`]'s
/// arguments: our own uuids, integers and stream names only.
pub(crate) fn array_literal<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("'{{{}}}'", items.join(","))
}
