//! Rows for `COPY … FROM STDIN (FORMAT binary)`: the encoder the projections'
//! row types write themselves into, and a writer that streams one table's rows
//! over a connection of its own while the rows are still being produced.
//!
//! The binary format needs no escaping and no text parsing of uuids, numbers
//! or timestamps on the server; a jsonb field is its version byte (1)
//! followed by the JSON text, which the server parses as it would for an
//! INSERT.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ProjectionError;
use crate::store::StoreError;

/// How much encoded data a writer gathers before handing it to the connection.
const CHUNK: usize = 1 << 20;
/// Chunks in flight per table: enough to keep the connection busy while the
/// producer works, little enough to bound memory (a few MB per table).
const IN_FLIGHT: usize = 4;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Binary COPY data being built up, a row at a time.
pub(crate) struct CopyRows {
    buf: Vec<u8>,
}

impl CopyRows {
    fn with_header() -> Self {
        let mut buf = Vec::with_capacity(CHUNK + CHUNK / 4);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyRows { buf }
    }

    fn empty() -> Self {
        CopyRows {
            buf: Vec::with_capacity(CHUNK + CHUNK / 4),
        }
    }

    /// Starts a row of `fields` fields; each must then be written in order.
    pub(crate) fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        // A field is at most 1 GB in PostgreSQL; the cast cannot wrap.
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub(crate) fn uuid(&mut self, v: Uuid) -> &mut Self {
        self.field(v.as_bytes())
    }

    pub(crate) fn int8(&mut self, v: i64) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub(crate) fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    pub(crate) fn text(&mut self, v: &str) -> &mut Self {
        self.field(v.as_bytes())
    }

    pub(crate) fn jsonb(&mut self, json: &str) -> &mut Self {
        self.buf
            .extend_from_slice(&(json.len() as i32 + 1).to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
        self
    }

    pub(crate) fn timestamptz(&mut self, v: DateTime<Utc>) -> &mut Self {
        self.int8(v.timestamp_micros() - PG_EPOCH_MICROS)
    }

    pub(crate) fn opt_timestamptz(&mut self, v: Option<DateTime<Utc>>) -> &mut Self {
        match v {
            Some(v) => self.timestamptz(v),
            None => self.null(),
        }
    }

    fn trailer(&mut self) {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

/// What a table writer did: rows loaded, and seconds spent waiting for the
/// server to take them (busy in `COPY`) versus waiting for rows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CopyStats {
    pub rows: u64,
    pub sending: f64,
    pub finishing: f64,
}

/// One table being loaded with `COPY` over a connection of its own. Rows are
/// written into [`CopyWriter::rows`]; full chunks go to the connection's task
/// through a bounded channel, so producing and loading overlap.
pub(crate) struct CopyWriter {
    rows: CopyRows,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    task: JoinHandle<Result<(PgConnection, CopyStats), ProjectionError>>,
}

impl CopyWriter {
    /// Connects and starts `COPY {table} ({columns}) FROM STDIN`; `table` and
    /// `columns` come from the projections' fixed registry, never from input.
    pub(crate) async fn start(
        options: &PgConnectOptions,
        table: String,
        columns: &'static str,
    ) -> Result<CopyWriter, ProjectionError> {
        let mut conn = PgConnection::connect_with(options)
            .await
            .map_err(StoreError::from)?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
        let task = tokio::spawn(async move {
            let mut stats = CopyStats::default();
            let statement = format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)");
            let mut copy = conn.copy_in_raw(&statement).await?;
            let mut ended = false;
            while let Some(chunk) = rx.recv().await {
                if chunk.is_empty() {
                    // The producer's mark that every row was written.
                    ended = true;
                    break;
                }
                let t = std::time::Instant::now();
                copy.send(chunk).await?;
                stats.sending += t.elapsed().as_secs_f64();
            }
            if !ended {
                // The producer stopped early (it failed): load nothing.
                let _ = copy.abort("the rebuild stopped").await;
                return Err(ProjectionError::Stage(format!(
                    "loading {table} stopped before its last row"
                )));
            }
            let t = std::time::Instant::now();
            stats.rows = copy.finish().await?;
            stats.finishing = t.elapsed().as_secs_f64();
            Ok((conn, stats))
        });
        Ok(CopyWriter {
            rows: CopyRows::with_header(),
            tx: Some(tx),
            task,
        })
    }

    /// Where the next row goes; call [`CopyWriter::flush_if_full`] after it.
    pub(crate) fn rows(&mut self) -> &mut CopyRows {
        &mut self.rows
    }

    /// Hands the gathered rows to the connection once a chunk is full.
    pub(crate) async fn flush_if_full(&mut self) -> Result<(), ProjectionError> {
        if self.rows.buf.len() >= CHUNK {
            let full = std::mem::replace(&mut self.rows, CopyRows::empty());
            self.send(full.buf).await?;
        }
        Ok(())
    }

    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), ProjectionError> {
        let Some(tx) = &self.tx else {
            return Err(ProjectionError::Stage("writer already finished".into()));
        };
        if tx.send(chunk).await.is_err() {
            // The connection's task ended early: its error says why.
            self.tx = None;
            return Err(self
                .join()
                .await
                .err()
                .unwrap_or_else(|| ProjectionError::Stage("a table writer stopped early".into())));
        }
        Ok(())
    }

    async fn join(&mut self) -> Result<(PgConnection, CopyStats), ProjectionError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(ProjectionError::Stage(format!(
                "a table writer failed: {e}"
            ))),
        }
    }

    /// Sends the last rows and ends the `COPY`; returns the connection (for
    /// the indexes that follow) and what was loaded.
    pub(crate) async fn finish(mut self) -> Result<(PgConnection, CopyStats), ProjectionError> {
        let mut last = std::mem::replace(&mut self.rows, CopyRows::empty());
        last.trailer();
        self.send(last.buf).await?;
        self.send(Vec::new()).await?;
        self.tx = None;
        self.join().await
    }
}
