//! The plan's share of a loader's resume state: which epoch, how many planned rows this rank
//! consumed, and the world sizes the epoch ran under. With the plan's inputs this is enough to
//! recompute the exact remaining order, so the state stays a few numbers whatever the dataset.

use crate::error::{Error, Result};
use crate::plan::{PlanSpec, Resume, Stop};

/// Section `"plan"` of a loader's state (see [`crate::loader::LoaderState`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanState {
    /// Epoch in progress (or next, when `rows` is 0).
    pub epoch: u64,
    /// Base seed.
    pub seed: u64,
    /// Shuffle on or off.
    pub shuffle: bool,
    /// World size at the start of the epoch.
    pub epoch_world_size: usize,
    /// Earlier interruptions of this epoch, oldest first.
    pub resumes: Vec<Resume>,
    /// World size of the ranks that wrote this state.
    pub world_size: usize,
    /// The rank that wrote this state.
    #[serde(default)]
    pub rank: usize,
    /// Planned rows this rank consumed in the epoch since the last resume.
    pub rows: usize,
    /// A state merged from the states of all `world_size` ranks: each one's stop, in rank
    /// order (`rows` and `rank` then say nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<Stop>,
    /// Rows in the dataset (a guard against resuming on other data).
    pub dataset_rows: usize,
    /// Rows per shuffle window (the plan depends on it).
    pub window_rows: usize,
    /// Rows of the first window.
    pub first_window_rows: usize,
}

/// The plan's inputs that do not change during a loader's life (apart from a restored state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanInputs {
    /// Base seed.
    pub seed: u64,
    /// Shuffle on or off.
    pub shuffle: bool,
    /// Rows in the dataset.
    pub dataset_rows: usize,
    /// Rows per shuffle window.
    pub window_rows: usize,
    /// Rows of a rank's first window.
    pub first_window_rows: usize,
}

/// Where a loader is in its epochs; updated by the consumer as batches are delivered.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    epoch: u64,
    epoch_world_size: usize,
    resumes: Vec<Resume>,
    /// World size of the generation that `rows` counts in.
    world_size: usize,
    rows: usize,
    /// Set by a restored state: the next iteration continues from `rows`.
    resume_pending: bool,
    /// The iteration of `epoch` ran to its end.
    finished: bool,
}

impl Progress {
    /// The start of `epoch` under `world_size`, nothing consumed.
    pub(crate) fn start(epoch: u64, world_size: usize) -> Progress {
        Progress {
            epoch,
            epoch_world_size: world_size,
            resumes: Vec::new(),
            world_size,
            rows: 0,
            resume_pending: false,
            finished: false,
        }
    }

    /// The epoch the next iteration runs.
    pub(crate) fn next_epoch(&self) -> u64 {
        self.epoch + u64::from(self.finished)
    }

    /// Counts planned positions the consumer received.
    pub(crate) fn consumed(&mut self, positions: usize) {
        self.rows += positions;
    }

    /// Marks the epoch as run to its end.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// Starts an iteration under `world_size`: the next epoch after a finished one, the
    /// restored position after a state was loaded, otherwise the current epoch from its start.
    /// Returns the plan to run and the planned rows to skip in it.
    pub(crate) fn begin(&mut self, inputs: &PlanInputs, world_size: usize) -> (PlanSpec, usize) {
        if self.finished {
            *self = Progress::start(self.epoch + 1, world_size);
        } else if !self.resume_pending {
            self.rows = 0;
            self.resumes.clear();
            self.epoch_world_size = world_size;
        }
        self.resume_pending = false;
        let spec = PlanSpec {
            seed: inputs.seed,
            epoch: self.epoch,
            shuffle: inputs.shuffle,
            window_rows: inputs.window_rows,
            first_window_rows: inputs.first_window_rows,
            world_size: self.epoch_world_size,
            resumes: self.resumes.clone(),
        };
        (spec, self.rows)
    }

    /// The state of `rank` to resume from after what the consumer received so far.
    pub(crate) fn state(&self, inputs: &PlanInputs, rank: usize) -> PlanState {
        let (epoch, rows, resumes, epoch_world_size) = if self.finished {
            (self.epoch + 1, 0, Vec::new(), self.world_size)
        } else {
            (
                self.epoch,
                self.rows,
                self.resumes.clone(),
                self.epoch_world_size,
            )
        };
        PlanState {
            epoch,
            seed: inputs.seed,
            shuffle: inputs.shuffle,
            epoch_world_size,
            resumes,
            world_size: self.world_size,
            rank,
            rows,
            ranks: Vec::new(),
            dataset_rows: inputs.dataset_rows,
            window_rows: inputs.window_rows,
            first_window_rows: inputs.first_window_rows,
        }
    }

    /// Checks `state` against this loader and returns the progress and plan inputs it
    /// restores for `rank` of `world_size`, with the stop to continue from (the plan's rows
    /// are in the progress; the stop's run is the packer's). `own` is where the state's rank
    /// stopped (its `rows` and its packer's carry), unless the state is merged from all
    /// ranks. The rest of an epoch interrupted under another world size is split again among
    /// the current ranks; `lockstep` says that one rank's stop is every rank's (batches of
    /// rows), otherwise that needs the merged state.
    pub(crate) fn restore(
        state: &PlanState,
        own: Stop,
        inputs: &PlanInputs,
        (rank, world_size): (usize, usize),
        lockstep: bool,
    ) -> Result<(Progress, PlanInputs, Stop)> {
        if state.dataset_rows != inputs.dataset_rows {
            return Err(Error::invalid(
                "state",
                format!(
                    "state is for a dataset of {} rows, this one has {}",
                    state.dataset_rows, inputs.dataset_rows
                ),
            ));
        }
        if state.shuffle != inputs.shuffle {
            return Err(Error::invalid(
                "state",
                "state was saved with a different shuffle setting",
            ));
        }
        if state.world_size == 0 || state.epoch_world_size == 0 || state.window_rows == 0 {
            return Err(Error::invalid(
                "state",
                "world sizes and window rows must be positive",
            ));
        }
        let merged = !state.ranks.is_empty();
        if merged && state.ranks.len() != state.world_size {
            return Err(Error::invalid(
                "state",
                format!(
                    "the state holds the stops of {} ranks, not of its world size {}",
                    state.ranks.len(),
                    state.world_size
                ),
            ));
        }
        let same_world = state.world_size == world_size;
        let own = match (merged, same_world) {
            (true, true) => state.ranks[rank],
            (true, false) => Stop::default(),
            (false, _) => own,
        };
        let untouched = |s: &Stop| s.rows == 0 && s.skip == 0;
        let fresh = state.resumes.is_empty()
            && if merged {
                state.ranks.iter().all(untouched)
            } else {
                untouched(&own)
            };
        let mut resumes = state.resumes.clone();
        let mut epoch_world_size = state.epoch_world_size;
        let mut stop = Stop::default();
        if fresh {
            // Nothing consumed yet: the epoch simply starts under the current world size.
            epoch_world_size = world_size;
        } else if same_world {
            stop = own;
        } else if merged {
            resumes.push(Resume::Ranks {
                world_size: state.world_size,
                stops: state.ranks.clone(),
            });
        } else if lockstep {
            resumes.push(Resume::Lockstep(state.world_size, own.rows));
        } else {
            return Err(Error::invalid(
                "state",
                format!(
                    "a packed loader continues an epoch under another world size (saved under {}, this loader has {}) from the states of all {} ranks: pass the list of their state_dict()s",
                    state.world_size, world_size, state.world_size
                ),
            ));
        }
        let progress = Progress {
            epoch: state.epoch,
            epoch_world_size,
            resumes,
            world_size,
            rows: stop.rows,
            resume_pending: true,
            finished: false,
        };
        let inputs = PlanInputs {
            seed: state.seed,
            window_rows: state.window_rows,
            first_window_rows: state.first_window_rows,
            ..*inputs
        };
        Ok((progress, inputs, stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUTS: PlanInputs = PlanInputs {
        seed: 7,
        shuffle: true,
        dataset_rows: 1000,
        window_rows: 256,
        first_window_rows: 64,
    };

    #[test]
    fn a_restored_state_continues_where_it_was_taken() {
        let mut p = Progress::start(0, 2);
        let (spec, skip) = p.begin(&INPUTS, 2);
        assert_eq!((spec.epoch, spec.world_size, skip), (0, 2, 0));
        p.consumed(96);
        let state = p.state(&INPUTS, 1);
        assert_eq!(
            (state.epoch, state.rows, state.world_size, state.rank),
            (0, 96, 2, 1)
        );

        let (mut q, inputs, _) = restore(&state, (1, 2), true).unwrap();
        let (spec, skip) = q.begin(&inputs, 2);
        assert_eq!((spec.epoch, skip, spec.resumes.clone()), (0, 96, vec![]));
        // Under another world size the consumed rows become a resume point of the plan.
        let (mut r, inputs, _) = restore(&state, (0, 4), true).unwrap();
        let (spec, skip) = r.begin(&inputs, 4);
        assert_eq!(
            (spec.world_size, skip, spec.resumes),
            (2, 0, vec![Resume::Lockstep(2, 96)])
        );
        // Ranks that are not in step need every rank's stop.
        let e = restore(&state, (0, 4), false).unwrap_err().to_string();
        assert!(e.contains("from the states of all 2 ranks"), "{e}");
        let stops = vec![
            Stop {
                rows: 90,
                skip: 3,
                span: 1,
                key: 0,
            },
            Stop {
                rows: 96,
                ..Stop::default()
            },
        ];
        let merged = PlanState {
            ranks: stops.clone(),
            ..state.clone()
        };
        let (mut m, inputs, stop) = restore(&merged, (0, 4), false).unwrap();
        let (spec, skip) = m.begin(&inputs, 4);
        assert_eq!((skip, stop), (0, Stop::default()));
        assert_eq!(
            spec.resumes,
            vec![Resume::Ranks {
                world_size: 2,
                stops: stops.clone()
            }]
        );
        // Under the same world size a merged state is each rank's own.
        let (mut m, inputs, stop) = restore(&merged, (0, 2), false).unwrap();
        assert_eq!((m.begin(&inputs, 2).1, stop), (90, stops[0]));
        let short = PlanState {
            ranks: stops[..1].to_vec(),
            ..state
        };
        assert!(restore(&short, (0, 2), false).is_err());
    }

    /// Restores `state` with its own rows as the stop, for `(rank, world_size)`.
    fn restore(
        state: &PlanState,
        at: (usize, usize),
        lockstep: bool,
    ) -> Result<(Progress, PlanInputs, Stop)> {
        let own = Stop {
            rows: state.rows,
            ..Stop::default()
        };
        Progress::restore(state, own, &INPUTS, at, lockstep)
    }

    #[test]
    fn a_finished_epoch_resumes_at_the_next_one() {
        let mut p = Progress::start(3, 1);
        p.begin(&INPUTS, 1);
        p.consumed(1000);
        p.finish();
        assert_eq!(p.next_epoch(), 4);
        let state = p.state(&INPUTS, 0);
        assert_eq!((state.epoch, state.rows), (4, 0));
        let (mut q, inputs, _) = restore(&state, (0, 8), false).unwrap();
        let (spec, skip) = q.begin(&inputs, 8);
        assert_eq!((spec.epoch, spec.world_size, skip), (4, 8, 0));
    }

    #[test]
    fn a_state_of_other_data_or_settings_is_refused() {
        let mut p = Progress::start(0, 1);
        p.begin(&INPUTS, 1);
        let state = p.state(&INPUTS, 0);
        let other = PlanInputs {
            dataset_rows: 999,
            ..INPUTS
        };
        let e = Progress::restore(&state, Stop::default(), &other, (0, 1), true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid argument `state`: state is for a dataset of 1000 rows, this one has 999"
        );
        let unshuffled = PlanInputs {
            shuffle: false,
            ..INPUTS
        };
        assert!(Progress::restore(&state, Stop::default(), &unshuffled, (0, 1), true).is_err());
        let broken = PlanState {
            window_rows: 0,
            ..state
        };
        assert!(restore(&broken, (0, 1), true).is_err());
    }
}
