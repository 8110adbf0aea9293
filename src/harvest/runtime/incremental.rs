//! Incremental cursors at run time: where a fresh run of a json source resumes from, and
//! moving the cursor at the end of a run that succeeded completely.
//!
//! The rule that keeps data from being skipped: the stored cursor moves only after a run
//! whose every page was stored (status `succeeded`, complete, paging not cut short), and
//! only from what those stored pages showed. A resumed run folds only the pages it stored
//! after resuming, which can only hold the cursor back, never push it past a record.

use super::run::Run;
use crate::harvest::extract::json::cursor::resume_value;
use crate::harvest::source::{Incremental, SourceDef, SourceSpec};
use crate::store::{StoreError, TenantDb, MAX_CURSOR_BYTES};

pub(super) fn incremental(def: &SourceDef) -> Option<&Incremental> {
    match &def.spec {
        SourceSpec::Json(s) => s.incremental.as_ref(),
        _ => None,
    }
}

/// The parameter value a fresh run of `def` starts from: `None` for a source without
/// `incremental`, before its first complete run, after a reset, or when the stored cursor
/// was kept for another field (the definition changed).
pub(super) async fn resume_from(
    db: &TenantDb,
    def: &SourceDef,
) -> Result<Option<String>, StoreError> {
    let Some(inc) = incremental(def) else {
        return Ok(None);
    };
    let Some(row) = db.source_cursor(def.id().as_str()).await? else {
        return Ok(None);
    };
    if row.basis != inc.basis() {
        tracing::info!(source = %def.id(), stored = %row.basis, now = %inc.basis(),
            "the stored incremental cursor is for another field; this run starts over");
        return Ok(None);
    }
    let v = resume_value(inc, &row.value);
    if v.is_none() {
        tracing::warn!(source = %def.id(), value = %row.value,
            "the stored incremental cursor does not parse; this run starts over");
    }
    Ok(v)
}

/// Moves the cursor after a complete, successful run. Returns why it did not move when
/// that needs telling (the run's message): the next run then starts where this one did.
pub(super) async fn commit(run: &Run) -> Option<String> {
    let inc = incremental(&run.def)?;
    let seen = run.cursor.lock().ok()?.clone();
    if seen.cut {
        return Some(
            "paging stopped before the API's last page (max_pages, or a next link that left \
             the origin); the incremental cursor was not moved"
                .into(),
        );
    }
    let prev = match run.db.source_cursor(&run.source).await {
        Ok(r) => r.filter(|r| r.basis == inc.basis()).map(|r| r.value),
        Err(e) => return Some(format!("reading the incremental cursor failed: {e}")),
    };
    if prev.is_none() && !run.full {
        // Started from a cursor (or resumed, which may have) that is gone now: it was
        // reset during the run, and the reset must win.
        return Some(
            "the incremental cursor was reset during this run; the next run starts over".into(),
        );
    }
    let next = seen.next_stored(inc, prev.as_deref())?;
    if next.len() > MAX_CURSOR_BYTES {
        return Some(format!(
            "the provider's cursor is {} bytes, more than {MAX_CURSOR_BYTES}; it was not stored",
            next.len()
        ));
    }
    match run
        .db
        .put_source_cursor(&run.source, &inc.basis(), &next, run.run_id)
        .await
    {
        Ok(()) => {
            tracing::info!(tenant = %run.tenant, source = %run.source, run_id = run.run_id,
                cursor = %next, "incremental cursor moved");
            None
        }
        Err(e) => Some(format!("storing the incremental cursor failed: {e}")),
    }
}
