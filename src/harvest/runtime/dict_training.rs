//! Dictionary training at the end of a run: a source's first zstd dictionary, trained on
//! the CPU pool from its stored records once it has enough of them.

use super::run::Run;
use super::Harvester;

pub(super) fn status_ok_for_training(fatal: &Option<String>, run: &Run) -> bool {
    fatal.is_none() && run.ctx.dict.is_none() && run.h.cfg.dictionary_min_records > 0
}

impl Harvester {
    /// Trains the source's first zstd dictionary once it has enough records; later runs
    /// compress with it.
    pub(super) async fn train_dictionary(&self, run: &Run) {
        let min = self.cfg.dictionary_min_records as usize;
        let samples = match run
            .db
            .training_samples(&run.source, min.max(crate::store::MAX_DICT_SAMPLES))
            .await
        {
            Ok(s) if s.len() >= min => s,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(source = %run.source, error = %e, "cannot read records to train a dictionary");
                return;
            }
        };
        let trained = self
            .cpu
            .run(move || crate::store::train_dictionary(&samples))
            .await;
        match trained {
            Ok(Ok(d)) => match run.db.put_source_dictionary(&run.source, &d).await {
                Ok(v) => {
                    tracing::info!(source = %run.source, version = v, bytes = d.bytes.len(), "trained a zstd dictionary")
                }
                Err(e) => {
                    tracing::warn!(source = %run.source, error = %e, "cannot store the dictionary")
                }
            },
            Ok(Err(e)) => {
                tracing::warn!(source = %run.source, error = %e, "dictionary training failed")
            }
            Err(e) => {
                tracing::warn!(source = %run.source, error = %e, "dictionary training failed")
            }
        }
    }
}
