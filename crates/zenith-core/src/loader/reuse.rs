//! Decoded data kept across epochs. When a dataset in its output layout fits the budget, the
//! blocks of every unit decoded in the first epoch are kept, and later epochs only permute and
//! gather: no read, no decode, no transpose. The plan (order, rank split, shuffle, resume) is
//! untouched: the same units are asked for, they are only found decoded.
//!
//! Kept blocks are whole units, so a unit that a window boundary cuts into two slices is one
//! entry. The budget is never exceeded: an insert that would pass it drops every entry and
//! turns reuse off for the loader's life (the dataset then streams as if reuse were off).
//! Loaders with per-sample stages never reuse: their output differs per epoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::collate::Block;
use crate::dataset::UnitRef;

/// Fraction of the memory available when a loader opens that reuse may take by default.
const DEFAULT_SHARE_OF_AVAILABLE: usize = 4;
/// Budget when the available memory cannot be read.
const FALLBACK_BUDGET: usize = 1 << 30;

/// The default reuse budget in bytes: `ZENITH_REUSE_BYTES` when set, else a quarter of the
/// memory available now (`MemAvailable` of `/proc/meminfo`), else 1 GiB.
pub fn default_reuse_budget() -> usize {
    if let Some(bytes) = std::env::var("ZENITH_REUSE_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return bytes;
    }
    available_memory().map_or(FALLBACK_BUDGET, |a| a / DEFAULT_SHARE_OF_AVAILABLE)
}

/// The default budget of one of `world_size` ranks: the machine's default budget shared by the
/// ranks on this machine (`LOCAL_WORLD_SIZE`, as torchrun sets it, else all `world_size`
/// ranks). Each rank may come to hold every unit (the rank split changes per epoch), so ranks
/// sharing a machine must share its budget.
pub fn default_reuse_budget_for(world_size: usize) -> usize {
    let local = std::env::var("LOCAL_WORLD_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(world_size)
        .max(1);
    default_reuse_budget() / local
}

/// `MemAvailable` in bytes, where the system says.
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[derive(Default)]
struct Kept {
    units: HashMap<(usize, usize), Arc<Vec<Block>>>,
    bytes: usize,
    /// Off for good once an insert would have passed the budget.
    off: bool,
}

/// The decoded units a loader keeps, under a byte budget.
pub(crate) struct DecodedUnits {
    budget: usize,
    kept: Mutex<Kept>,
}

impl DecodedUnits {
    /// Keeps up to `budget` bytes; `None` budget (or 0) keeps nothing.
    pub(crate) fn new(budget: usize) -> DecodedUnits {
        DecodedUnits {
            budget,
            kept: Mutex::new(Kept {
                off: budget == 0,
                ..Kept::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while units are kept (or may still be).
    pub(crate) fn active(&self) -> bool {
        !self.lock().off
    }

    /// The kept blocks of `unit`, if any.
    pub(crate) fn get(&self, unit: UnitRef) -> Option<Arc<Vec<Block>>> {
        self.lock().units.get(&(unit.file, unit.unit)).cloned()
    }

    /// Keeps the blocks of `unit` unless that would pass the budget, which turns reuse off.
    pub(crate) fn insert(&self, unit: UnitRef, blocks: &Arc<Vec<Block>>) {
        let bytes: usize = blocks.iter().map(Block::nbytes).sum();
        let mut kept = self.lock();
        if kept.off || kept.units.contains_key(&(unit.file, unit.unit)) {
            return;
        }
        if kept.bytes.saturating_add(bytes) > self.budget {
            tracing::info!(
                budget = self.budget,
                "decoded data does not fit the reuse budget; later epochs decode again"
            );
            *kept = Kept {
                off: true,
                ..Kept::default()
            };
            return;
        }
        kept.bytes += bytes;
        kept.units.insert((unit.file, unit.unit), blocks.clone());
    }

    /// (units kept, bytes kept).
    pub(crate) fn usage(&self) -> (usize, usize) {
        let kept = self.lock();
        (kept.units.len(), kept.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collate::TensorData;

    fn unit(i: usize) -> UnitRef {
        UnitRef {
            file: 0,
            unit: i,
            rows: 4,
        }
    }

    fn blocks(floats: usize) -> Arc<Vec<Block>> {
        Arc::new(vec![Block::Tensor(TensorData::F32(vec![0.5; floats]))])
    }

    #[test]
    fn keeps_units_until_the_budget_would_pass_then_turns_off() {
        let reuse = DecodedUnits::new(100);
        reuse.insert(unit(0), &blocks(10)); // 40 bytes
        reuse.insert(unit(1), &blocks(10));
        assert_eq!(reuse.usage(), (2, 80));
        assert!(reuse.get(unit(1)).is_some());
        reuse.insert(unit(1), &blocks(10)); // already kept: no change
        assert_eq!(reuse.usage(), (2, 80));
        reuse.insert(unit(2), &blocks(10)); // 120 > 100: everything goes
        assert_eq!(reuse.usage(), (0, 0));
        assert!(!reuse.active());
        reuse.insert(unit(3), &blocks(1));
        assert!(reuse.get(unit(0)).is_none() && reuse.get(unit(3)).is_none());
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let reuse = DecodedUnits::new(0);
        assert!(!reuse.active());
        reuse.insert(unit(0), &blocks(1));
        assert_eq!(reuse.usage(), (0, 0));
    }

    #[test]
    fn ranks_on_one_machine_share_the_default_budget() {
        if std::env::var_os("LOCAL_WORLD_SIZE").is_none()
            && std::env::var_os("ZENITH_REUSE_BYTES").is_none()
        {
            let one = default_reuse_budget_for(1) as f64;
            let eight = default_reuse_budget_for(8) as f64;
            // MemAvailable moves between reads: within 10% of an eighth.
            assert!((eight * 8.0 / one - 1.0).abs() < 0.1, "{one} {eight}");
        }
    }

    #[test]
    fn the_default_budget_is_a_share_of_available_memory_or_the_environment() {
        let available = available_memory().expect("/proc/meminfo on Linux");
        assert!(available > 0);
        if std::env::var_os("ZENITH_REUSE_BYTES").is_none() {
            // MemAvailable moves between two reads; a quarter of it stays near a quarter.
            let budget = default_reuse_budget();
            assert!(
                budget <= available / 2 && budget >= available / 8,
                "{budget} of {available}"
            );
        }
    }
}
