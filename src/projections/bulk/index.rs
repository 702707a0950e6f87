//! Indexes for a loaded shadow table: the live table's own, under the same
//! names, each built in one sort over the rows already there.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::projections::ProjectionError;
use crate::store::StoreError;

/// Index builds sort in memory, each in one process: the indexes of all
/// tables already build side by side, and parallel workers would only add
/// coordination on top.
const SORT_SETTINGS: &str =
    "SET maintenance_work_mem = '128MB'; SET max_parallel_maintenance_workers = 0";

/// An index of a live table: its definition and name, and the constraint
/// it backs if any (name, kind, definition).
type IndexDef = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Gives a shadow table the indexes and constraints its live table has,
/// under the same names, then its statistics. Each index is built once over
/// the loaded rows (a sort), far cheaper than keeping it up row by row, and
/// on a connection of its own so that a table's indexes build side by side;
/// keys become constraints over their finished indexes.
pub(crate) async fn index_like_live(
    options: &PgConnectOptions,
    mut conn: PgConnection,
    schema: &str,
    table: &str,
) -> Result<(), ProjectionError> {
    let defs: Vec<IndexDef> = sqlx::query_as(
        "SELECT pg_get_indexdef(i.indexrelid), quote_ident(x.relname), \
                    quote_ident(c.conname), c.contype::text, pg_get_constraintdef(c.oid) \
             FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid \
             LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid \
                  AND c.contype IN ('p', 'u', 'x') \
             WHERE i.indrelid = ('public.' || quote_ident($1))::regclass \
             ORDER BY i.indisprimary DESC, i.indexrelid",
    )
    .bind(table)
    .fetch_all(&mut conn)
    .await?;
    let live = format!(" ON public.{table} ");
    let shadow = format!(" ON {schema}.{table} ");
    let mut builds = Vec::new();
    let mut after = Vec::new();
    for (indexdef, index, constraint, kind, definition) in defs {
        let build = || {
            if indexdef.matches(&live).count() != 1 {
                return Err(ProjectionError::Stage(format!(
                    "cannot read the index definition {indexdef:?}"
                )));
            }
            Ok(indexdef.replacen(&live, &shadow, 1))
        };
        match (constraint, kind.as_deref(), definition) {
            (None, ..) => builds.push(build()?),
            (Some(name), Some(kind @ ("p" | "u")), Some(def))
                if name == index && !def.contains("DEFERRABLE") =>
            {
                builds.push(build()?);
                let key = if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" };
                after.push(format!(
                    "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {key} USING INDEX {name}"
                ));
            }
            (Some(name), _, Some(def)) => {
                after.push(format!(
                    "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {def}"
                ));
            }
            (Some(_), _, None) => builds.push(build()?),
        }
    }
    let mut others = Vec::new();
    let mut mine = Vec::new();
    for (n, sql) in builds.into_iter().enumerate() {
        if n == 0 {
            mine.push(sql);
        } else {
            others.push(async move {
                let mut c = PgConnection::connect_with(options)
                    .await
                    .map_err(StoreError::from)?;
                sqlx::raw_sql(SORT_SETTINGS).execute(&mut c).await?;
                run(&mut c, sql).await?;
                let _ = c.close().await;
                Ok::<_, ProjectionError>(())
            });
        }
    }
    let own = async {
        sqlx::raw_sql(SORT_SETTINGS).execute(&mut conn).await?;
        for sql in mine {
            run(&mut conn, sql).await?;
        }
        Ok::<_, ProjectionError>(())
    };
    let (own, others) = tokio::join!(own, futures::future::try_join_all(others));
    own?;
    others?;
    for sql in after {
        run(&mut conn, sql).await?;
    }
    // Statistics once, over the whole table: a full ANALYZE also tells
    // autovacuum that the table needs none after the swap.
    run(&mut conn, format!("ANALYZE {schema}.{table}")).await?;
    let _ = conn.close().await;
    Ok(())
}

pub(super) async fn run(conn: &mut PgConnection, sql: String) -> Result<(), ProjectionError> {
    // Identifiers here come from the fixed projection registry and the
    // catalog, never from input.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
