//! Rows for `COPY … FROM STDIN (FORMAT binary)`: the encoder the projections'
//! row types write themselves into, and a writer that streams one table's rows
//! over a connection of its own while the rows are still being produced.
//!
//! The binary format needs no escaping and no text parsing of uuids, numbers
//! or timestamps on the server; a json field is the JSON text itself, which
//! the server only checks (projection documents are json, not jsonb). JSON is serialized straight into the buffer, and buffers go back
//! and forth between the producer and the connection rather than being
//! allocated per chunk.

use chrono::{DateTime, Utc};
use serde::Serialize;
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

/// Where a field written ahead of its value sits in a [`CopyRows`] buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hole(usize);

/// Binary COPY data being built up, a row at a time.
pub(crate) struct CopyRows {
    buf: Vec<u8>,
}

impl CopyRows {
    fn with_header(mut buf: Vec<u8>) -> Self {
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyRows { buf }
    }

    /// Starts a row of `fields` fields; each must then be written in order.
    pub(crate) fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn length(&mut self, len: usize) {
        // A field is at most 1 GB in PostgreSQL; the cast cannot wrap.
        self.buf.extend_from_slice(&(len as i32).to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.length(bytes.len());
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

    /// A json field serialized in place (json's binary form is its text).
    pub(crate) fn json_of(&mut self, value: &impl Serialize) -> Result<&mut Self, ProjectionError> {
        let at = self.buf.len();
        self.length(0);
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, value).map_err(|e| ProjectionError::Unappliable {
            position: 0,
            reason: format!("cannot encode projection row: {e}"),
        })?;
        let end = self.buf.len();
        let len = ((end - start) as i32).to_be_bytes();
        self.buf[at..at + 4].copy_from_slice(&len);
        Ok(self)
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

    /// An 8-byte field (int8 or timestamptz) whose value is filled in later
    /// with [`CopyRows::fill_int8`] or [`CopyRows::fill_timestamptz`]; the
    /// rows must not be flushed in between.
    pub(crate) fn hole8(&mut self) -> Hole {
        self.length(8);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 8]);
        Hole(at)
    }

    pub(crate) fn fill_int8(&mut self, hole: Hole, v: i64) {
        self.buf[hole.0..hole.0 + 8].copy_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn fill_timestamptz(&mut self, hole: Hole, v: DateTime<Utc>) {
        self.fill_int8(hole, v.timestamp_micros() - PG_EPOCH_MICROS);
    }

    fn trailer(&mut self) {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

/// What a table writer did: rows loaded, and seconds spent waiting for the
/// server to take them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CopyStats {
    pub rows: u64,
    pub sending: f64,
}

/// One table being loaded with `COPY` over a connection of its own, inside
/// the transaction that empties it. Rows are written into
/// [`CopyWriter::rows`]; full chunks go to the connection's task through a
/// bounded channel, so producing and loading overlap.
pub(crate) struct CopyWriter {
    rows: CopyRows,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Buffers the connection has sent, back for reuse.
    spare: mpsc::Receiver<Vec<u8>>,
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
        let (spare_tx, spare) = mpsc::channel::<Vec<u8>>(IN_FLIGHT + 1);
        let task = tokio::spawn(async move {
            let mut stats = CopyStats::default();
            // Emptied in the loading transaction, the table takes its rows
            // frozen and its pages all-visible: nothing is left for vacuum
            // or for the first reader to rewrite.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("BEGIN; TRUNCATE {table}")))
                .execute(&mut conn)
                .await?;
            let statement = format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary, FREEZE)");
            let mut copy = conn.copy_in_raw(&statement).await?;
            let mut ended = false;
            while let Some(mut chunk) = rx.recv().await {
                if chunk.is_empty() {
                    // The producer's mark that every row was written.
                    ended = true;
                    break;
                }
                let t = std::time::Instant::now();
                copy.send(chunk.as_slice()).await?;
                stats.sending += t.elapsed().as_secs_f64();
                chunk.clear();
                let _ = spare_tx.try_send(chunk);
            }
            if !ended {
                // The producer stopped early (it failed): load nothing.
                let _ = copy.abort("the rebuild stopped").await;
                return Err(ProjectionError::Stage(format!(
                    "loading {table} stopped before its last row"
                )));
            }
            stats.rows = copy.finish().await?;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
            Ok((conn, stats))
        });
        Ok(CopyWriter {
            rows: CopyRows::with_header(Vec::with_capacity(CHUNK + CHUNK / 4)),
            tx: Some(tx),
            spare,
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
            let next = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK + CHUNK / 4));
            let full = std::mem::replace(&mut self.rows.buf, next);
            self.send(full).await?;
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

    /// Sends the last rows, ends the `COPY` and commits; returns the
    /// connection (for the indexes that follow) and what was loaded.
    pub(crate) async fn finish(mut self) -> Result<(PgConnection, CopyStats), ProjectionError> {
        self.rows.trailer();
        let last = std::mem::take(&mut self.rows.buf);
        self.send(last).await?;
        self.send(Vec::new()).await?;
        self.tx = None;
        self.join().await
    }
}
