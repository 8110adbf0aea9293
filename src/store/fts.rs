//! Full-text indexing of records (`records_fts`): index maintenance and query building.
//!
//! A record's index text ([`super::text::record_text`]) is computed when the record is
//! encoded, on the CPU pool, and travels in its [`super::EncodedPayload`], so the writer
//! thread never decodes or parses a payload. The one function that writes `records` rows
//! ([`super::records::put`]) stages the text in `temp.fts_pending`, inside the same
//! savepoint as the record; the writer folds the staged rows into `records_fts` once per
//! transaction, just before COMMIT ([`flush`]). So the index commits with exactly the
//! records it describes (a rolled-back operation takes its staged rows with it), readers
//! never see one without the other, and FTS5 is touched once per batch: FTS5 flushes its
//! pending terms to a new segment at every SAVEPOINT once it is part of a transaction,
//! which, with one savepoint per write operation, made most of its cost merging tiny
//! segments. Deleting a record removes its index row by trigger (no payload is read).
//!
//! `gleaner_record_text(payload)` (decode + extract, in SQL) remains only for migrating a
//! database created before the index existed; newer migrations dropped the triggers that
//! called it on every write.
//!
//! Queries never pass user text to FTS5's query parser as is: [`match_expression`] turns
//! words into quoted terms, so no input can be an FTS5 syntax error.

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use super::base::MAX_RECORD_BYTES;
use super::schema::WriterHooks;
use super::text::record_text;

/// A tenant database's write connection: full-text indexing, handed to `schema::migrate`
/// and `Db::open_blocking` by whoever opens a tenant database (this file sits above both).
pub(crate) const TENANT_WRITER: WriterHooks = WriterHooks {
    prepare,
    before_commit: flush,
};

fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    // Migration `records_fts_stats_source_index` calls this function to index the records
    // of a database created before full-text search; record writes stage index rows in a
    // TEMP table of the write connection, which this connection is.
    register(conn).and_then(|()| prepare_writer(conn))
}

/// Prepares a tenant database's write connection: the staging table for index rows. TEMP,
/// so staging writes no WAL frames; it is part of the connection's transactions and
/// savepoints like any table.
fn prepare_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS fts_pending (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            replace INTEGER NOT NULL
        );",
    )
}

/// Stages record `id`'s index text; `replace` when the index may hold an older row of it.
/// A second staging of the same record in one transaction keeps the first `replace`.
pub(crate) fn stage(c: &Connection, id: i64, text: &str, replace: bool) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO temp.fts_pending (id, text, replace) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET text = excluded.text",
    )?
    .execute(rusqlite::params![id, text, replace])?;
    Ok(())
}

/// Moves the staged index rows into `records_fts` (the writer calls this before COMMIT,
/// outside any savepoint). Rows of records deleted since they were staged are dropped.
pub(crate) fn flush(c: &Connection) -> rusqlite::Result<()> {
    let any: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM temp.fts_pending)")?
        .query_row([], |r| r.get(0))?;
    if !any {
        return Ok(());
    }
    let replaced: Vec<i64> = c
        .prepare_cached(
            "SELECT p.id FROM temp.fts_pending p JOIN main.records r ON r.id = p.id
             WHERE p.replace ORDER BY p.id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    {
        // One statement per row: FTS5 serves `rowid = ?` directly, an IN list by scanning.
        let mut del = c.prepare_cached("DELETE FROM main.records_fts WHERE rowid = ?1")?;
        for id in replaced {
            del.execute([id])?;
        }
    }
    c.prepare_cached(
        "INSERT INTO main.records_fts (rowid, text)
         SELECT p.id, p.text FROM temp.fts_pending p JOIN main.records r ON r.id = p.id
         ORDER BY p.id",
    )?
    .execute([])?;
    c.prepare_cached("DELETE FROM temp.fts_pending")?
        .execute([])?;
    Ok(())
}

/// Registers `gleaner_record_text` on `conn`, for the migration that built the index from
/// the records already stored (a database created before full-text search reaches it).
fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "gleaner_record_text",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            let payload: Vec<u8> = ctx.get(0)?;
            // SAFETY: the connection is only queried (the payload's dictionary, which
            // harvested records may use), never closed or reconfigured, while the function
            // runs; SQLite allows a function to query its own connection.
            let conn = unsafe { ctx.get_connection()? };
            let bytes = super::dict::decode_stored(&conn, &payload, MAX_RECORD_BYTES)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(record_text(&v))
        },
    )
}

/// Most words one full-text query may hold.
pub const MAX_QUERY_TERMS: usize = 16;

/// Builds an FTS5 MATCH expression from user words: each word becomes a quoted term (an
/// implicit AND between them); a trailing `*` on a word is kept as a prefix query. Returns
/// `None` when no word remains.
pub fn match_expression(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split_whitespace()
        .take(MAX_QUERY_TERMS)
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(w) => (w, true),
                None => (w, false),
            };
            let word: String = word.chars().filter(|c| !c.is_control()).collect();
            if word.is_empty() {
                return None;
            }
            let quoted = format!("\"{}\"", word.replace('"', "\"\""));
            Some(if prefix { format!("{quoted}*") } else { quoted })
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_expressions_are_always_quoted() {
        assert_eq!(match_expression("  "), None);
        assert_eq!(match_expression("a b*").unwrap(), "\"a\" \"b\"*");
        assert_eq!(match_expression("x\"y OR").unwrap(), "\"x\"\"y\" \"OR\"");
        assert_eq!(match_expression("*"), None);
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(text); INSERT INTO f VALUES ('the quick fox');",
        )
        .unwrap();
        for q in ["\"", "NEAR(", "a AND", "(", "fo*", "-x", "text:fox", "^q"] {
            let e = match_expression(q).unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM f WHERE f MATCH ?1", [&e], |r| {
                    r.get(0)
                })
                .unwrap_or_else(|err| panic!("{q:?} → {e:?}: {err}"));
            assert!(n <= 1);
        }
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM f WHERE f MATCH ?1",
                [match_expression("qui*").unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}
