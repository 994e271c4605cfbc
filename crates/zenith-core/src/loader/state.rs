//! A loader's resume state: a version, the plan's section and one section per stateful stage.
//! Each stage writes and reads its own section, so a stage added to the chain adds a section
//! without touching the others; the document stays small (numbers, not data) and JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::PlanState;

/// The state format this build writes; it reads this one and version 1 (the plan's fields at
/// the top level, from builds before stages had sections).
pub const STATE_VERSION: u32 = 2;

/// Resume state of a loader: JSON-serialisable, independent of thread count.
///
/// ```json
/// {"version": 2,
///  "plan": {"epoch": 0, "seed": 0, "shuffle": true, "rows": 640, ...},
///  "stages": {}}
/// ```
/// `stages` maps a stage's name to the state it needs to continue exactly (see
/// [`crate::stage`]); stages without state have no entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StateDocument")]
pub struct LoaderState {
    /// Format version ([`STATE_VERSION`] when written by this build).
    pub version: u32,
    /// Where the plan is: epoch, rows consumed, world sizes.
    pub plan: PlanState,
    /// Sections of stateful stages, by stage name.
    pub stages: BTreeMap<String, serde_json::Value>,
}

/// Any state document this build reads.
#[derive(Deserialize)]
#[serde(untagged)]
enum StateDocument {
    Sections {
        version: u32,
        plan: PlanState,
        #[serde(default)]
        stages: BTreeMap<String, serde_json::Value>,
    },
    Flat {
        version: u32,
        #[serde(flatten)]
        plan: PlanState,
    },
}

impl TryFrom<StateDocument> for LoaderState {
    type Error = Error;

    fn try_from(doc: StateDocument) -> Result<Self> {
        let (version, plan, stages) = match doc {
            StateDocument::Sections {
                version: STATE_VERSION,
                plan,
                stages,
            } => (STATE_VERSION, plan, stages),
            StateDocument::Flat { version: 1, plan } => (1, plan, BTreeMap::new()),
            StateDocument::Sections { version, .. } | StateDocument::Flat { version, .. } => {
                return Err(Error::invalid(
                    "state",
                    format!("unknown state version {version}"),
                ))
            }
        };
        Ok(LoaderState {
            version,
            plan,
            stages,
        })
    }
}

impl LoaderState {
    /// A state of the current version.
    pub fn new(plan: PlanState, stages: BTreeMap<String, serde_json::Value>) -> Self {
        LoaderState {
            version: STATE_VERSION,
            plan,
            stages,
        }
    }

    /// Checks that every section belongs to a stage of this loader (`names`), so a state is
    /// never half applied to a loader built with other stages.
    pub fn check_stages<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let names: Vec<&str> = names.into_iter().collect();
        for key in self.stages.keys() {
            if !names.contains(&key.as_str()) {
                return Err(Error::invalid(
                    "state",
                    format!(
                        "the state has a section for stage {key:?}, which this loader does not have (its stages: {names:?})"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> PlanState {
        PlanState {
            epoch: 2,
            seed: 5,
            shuffle: true,
            epoch_world_size: 1,
            resumes: vec![crate::plan::Resume::Lockstep(2, 64)],
            world_size: 1,
            rank: 0,
            rows: 128,
            ranks: Vec::new(),
            dataset_rows: 4096,
            window_rows: 1024,
            first_window_rows: 256,
        }
    }

    #[test]
    fn round_trips_as_json_with_sections() {
        let state = LoaderState::new(plan(), BTreeMap::new());
        let text = serde_json::to_string(&state).unwrap();
        assert!(
            text.starts_with(r#"{"version":2,"plan":{"epoch":2,"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<LoaderState>(&text).unwrap(), state);
    }

    #[test]
    fn reads_the_flat_version_1_document() {
        let v1 = r#"{"version":1,"epoch":2,"seed":5,"shuffle":true,"epoch_world_size":1,
            "resumes":[[2,64]],"world_size":1,"rows":128,"dataset_rows":4096,
            "window_rows":1024,"first_window_rows":256}"#;
        let state: LoaderState = serde_json::from_str(v1).unwrap();
        assert_eq!((state.version, &state.plan), (1, &plan()));
        assert!(state.stages.is_empty());
    }

    #[test]
    fn refuses_unknown_versions_and_foreign_sections() {
        let text = r#"{"version":9,"plan":{"epoch":2,"seed":5,"shuffle":true,"epoch_world_size":1,
            "resumes":[],"world_size":1,"rows":0,"dataset_rows":1,"window_rows":1,"first_window_rows":1}}"#;
        let e = serde_json::from_str::<LoaderState>(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown state version 9"), "{e}");
        let mut stages = BTreeMap::new();
        stages.insert("pack".to_string(), serde_json::json!({"carry": 3}));
        let state = LoaderState::new(plan(), stages);
        assert!(state.check_stages(["pack"]).is_ok());
        let e = state.check_stages(["image"]).unwrap_err().to_string();
        assert!(e.contains("section for stage \"pack\""), "{e}");
    }
}
