//! The local executor's decision: which queued jobs start now, and on which GPU ids.
//!
//! Policy: queued jobs are considered highest priority first, then oldest (lowest id) first. A job
//! starts when the free GPUs, memory and CPUs cover its request; GPU ids are the lowest free ones and
//! each id belongs to one job at a time. A job that does not fit yet *reserves* its whole request out
//! of what is free, so later jobs only start on what is left beyond every reservation: small jobs may
//! run past a big one but can never delay it (no starvation). A job that asks for more than the whole
//! machine can never start and is reported as unsatisfiable.

use std::collections::BTreeSet;

/// What the machine has in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Number of GPUs; their ids are `0..gpus`.
    pub gpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// CPUs.
    pub cpus: u32,
}

/// Resources held by a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// GPU ids given to the job.
    pub gpu_ids: Vec<u32>,
    /// Memory in bytes (0 when the job did not ask for memory).
    pub memory: u64,
    /// CPUs.
    pub cpus: u32,
}

/// A queued job's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Job id (older jobs have lower ids).
    pub id: i64,
    /// Priority, higher first.
    pub priority: i32,
    /// GPUs wanted.
    pub gpus: u32,
    /// Memory wanted in bytes (0: not accounted).
    pub memory: u64,
    /// CPUs wanted.
    pub cpus: u32,
}

/// One outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start job `id` now on these GPU ids (empty for CPU-only jobs).
    Start {
        /// Job id.
        id: i64,
        /// GPU ids, ascending.
        gpu_ids: Vec<u32>,
    },
    /// Job `id` asks for more than the whole machine has; it can never start here.
    Unsatisfiable {
        /// Job id.
        id: i64,
        /// Which resource, in words.
        reason: String,
    },
}

/// Incremental form of [`plan`]: offer queued requests in priority order with [`Planner::consider`]
/// and stop once [`Planner::is_full`] says no further request can start, without reading the rest of
/// a long queue.
#[derive(Debug, Clone)]
pub struct Planner {
    capacity: Capacity,
    free_gpus: BTreeSet<u32>,
    free_memory: u64,
    free_cpus: u32,
    /// GPUs reserved by jobs that could not start yet; only ids beyond these are handed out.
    reserved_gpus: u32,
}

impl Planner {
    /// A planner for a machine of `capacity` where `running` jobs hold their allocations. GPU ids in
    /// `running` outside `0..capacity.gpus` are ignored.
    pub fn new(capacity: &Capacity, running: &[Allocation]) -> Self {
        let mut planner = Self {
            capacity: *capacity,
            free_gpus: (0..capacity.gpus).collect(),
            free_memory: capacity.memory,
            free_cpus: capacity.cpus,
            reserved_gpus: 0,
        };
        for alloc in running {
            for id in &alloc.gpu_ids {
                planner.free_gpus.remove(id);
            }
            planner.free_memory = planner.free_memory.saturating_sub(alloc.memory);
            planner.free_cpus = planner.free_cpus.saturating_sub(alloc.cpus);
        }
        planner
    }

    /// True when no request can start any more: every job needs at least one CPU and none is left
    /// beyond what is used or reserved.
    pub fn is_full(&self) -> bool {
        self.free_cpus == 0
    }

    /// Decides on the next request in priority order: start it, report it unsatisfiable, or (None)
    /// let it wait, reserving its request so that later requests cannot delay it.
    pub fn consider(&mut self, req: &Request) -> Option<Decision> {
        if let Some(reason) = never_fits(&self.capacity, req) {
            return Some(Decision::Unsatisfiable { id: req.id, reason });
        }
        let usable_gpus = (self.free_gpus.len() as u32).saturating_sub(self.reserved_gpus);
        if req.gpus <= usable_gpus && req.memory <= self.free_memory && req.cpus <= self.free_cpus {
            let gpu_ids: Vec<u32> = self
                .free_gpus
                .iter()
                .take(req.gpus as usize)
                .copied()
                .collect();
            for id in &gpu_ids {
                self.free_gpus.remove(id);
            }
            self.free_memory -= req.memory;
            self.free_cpus -= req.cpus;
            Some(Decision::Start {
                id: req.id,
                gpu_ids,
            })
        } else {
            self.reserved_gpus = self.reserved_gpus.saturating_add(req.gpus);
            self.free_memory = self.free_memory.saturating_sub(req.memory);
            self.free_cpus = self.free_cpus.saturating_sub(req.cpus);
            None
        }
    }
}

/// Decides which of `queued` start now, given the machine's `capacity` and the `running` allocations.
///
/// `queued` may be in any order; it is considered by priority (descending) then id (ascending).
/// Every request is examined, so every unsatisfiable one is reported.
pub fn plan(capacity: &Capacity, running: &[Allocation], queued: &[Request]) -> Vec<Decision> {
    let mut planner = Planner::new(capacity, running);
    let mut order: Vec<&Request> = queued.iter().collect();
    order.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.id));
    order
        .into_iter()
        .filter_map(|r| planner.consider(r))
        .collect()
}

fn never_fits(capacity: &Capacity, req: &Request) -> Option<String> {
    if req.gpus > capacity.gpus {
        Some(format!(
            "requests {} GPUs but this machine has {}",
            req.gpus, capacity.gpus
        ))
    } else if req.memory > capacity.memory {
        Some(format!(
            "requests {} bytes of memory but this machine has {}",
            req.memory, capacity.memory
        ))
    } else if req.cpus > capacity.cpus {
        Some(format!(
            "requests {} CPUs but this machine has {}",
            req.cpus, capacity.cpus
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GB: u64 = 1 << 30;

    fn cap(gpus: u32, memory: u64, cpus: u32) -> Capacity {
        Capacity { gpus, memory, cpus }
    }

    fn req(id: i64, priority: i32, gpus: u32, memory: u64, cpus: u32) -> Request {
        Request {
            id,
            priority,
            gpus,
            memory,
            cpus,
        }
    }

    fn started(decisions: &[Decision]) -> Vec<(i64, Vec<u32>)> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start { id, gpu_ids } => Some((*id, gpu_ids.clone())),
                Decision::Unsatisfiable { .. } => None,
            })
            .collect()
    }

    #[test]
    fn four_two_gpu_jobs_on_four_gpus_start_two_at_a_time() {
        let queued: Vec<Request> = (1..=4).map(|id| req(id, 0, 2, 0, 1)).collect();
        let d = plan(&cap(4, 64 * GB, 16), &[], &queued);
        assert_eq!(started(&d), vec![(1, vec![0, 1]), (2, vec![2, 3])]);

        let running = [Allocation {
            gpu_ids: vec![2, 3],
            memory: 0,
            cpus: 1,
        }];
        let d = plan(&cap(4, 64 * GB, 16), &running, &queued[2..]);
        assert_eq!(started(&d), vec![(3, vec![0, 1])]);
    }

    #[test]
    fn priority_then_age() {
        let queued = [
            req(1, 0, 1, 0, 1),
            req(2, 5, 1, 0, 1),
            req(3, 5, 1, 0, 1),
            req(4, -3, 1, 0, 1),
        ];
        let d = plan(&cap(2, GB, 8), &[], &queued);
        assert_eq!(started(&d), vec![(2, vec![0]), (3, vec![1])]);
    }

    #[test]
    fn blocked_job_reserves_and_is_not_starved() {
        // Job 1 wants all 4 GPUs while 2 are busy; job 2 (1 GPU) must not take a GPU it needs,
        // but job 3 (CPU only) may run beside it.
        let running = [Allocation {
            gpu_ids: vec![0, 1],
            memory: 0,
            cpus: 1,
        }];
        let queued = [req(1, 0, 4, 0, 1), req(2, 0, 1, 0, 1), req(3, 0, 0, 0, 1)];
        let d = plan(&cap(4, GB, 4), &running, &queued);
        assert_eq!(started(&d), vec![(3, vec![])]);
    }

    #[test]
    fn memory_and_cpus_are_accounted() {
        let queued = [
            req(1, 0, 0, 6 * GB, 1),
            req(2, 0, 0, 6 * GB, 1),
            req(3, 0, 0, 0, 1),
        ];
        let d = plan(&cap(0, 10 * GB, 2), &[], &queued);
        // Job 2 does not fit in the 4 GB left and reserves them; job 3 needs no memory but the CPU
        // job 2 reserved: 2 CPUs - 1 (job 1) - 1 (reserved) = 0.
        assert_eq!(started(&d), vec![(1, vec![])]);

        let d = plan(&cap(0, 10 * GB, 3), &[], &queued);
        assert_eq!(started(&d), vec![(1, vec![]), (3, vec![])]);
    }

    #[test]
    fn unsatisfiable_requests_are_reported() {
        let queued = [
            req(1, 0, 8, 0, 1),
            req(2, 0, 0, 2 * GB, 1),
            req(3, 0, 0, 0, 9),
            req(4, 0, 1, 0, 1),
        ];
        let d = plan(&cap(4, GB, 8), &[], &queued);
        assert_eq!(
            d,
            vec![
                Decision::Unsatisfiable {
                    id: 1,
                    reason: "requests 8 GPUs but this machine has 4".into()
                },
                Decision::Unsatisfiable {
                    id: 2,
                    reason: format!(
                        "requests {} bytes of memory but this machine has {}",
                        2 * GB,
                        GB
                    ),
                },
                Decision::Unsatisfiable {
                    id: 3,
                    reason: "requests 9 CPUs but this machine has 8".into()
                },
                Decision::Start {
                    id: 4,
                    gpu_ids: vec![0]
                },
            ]
        );
    }

    #[test]
    fn planner_is_full_when_cpus_run_out() {
        let mut p = Planner::new(
            &cap(4, GB, 2),
            &[Allocation {
                gpu_ids: vec![0],
                memory: 0,
                cpus: 1,
            }],
        );
        assert!(!p.is_full());
        assert_eq!(
            p.consider(&req(1, 0, 1, 0, 1)),
            Some(Decision::Start {
                id: 1,
                gpu_ids: vec![1]
            })
        );
        assert!(p.is_full());
        assert_eq!(p.consider(&req(2, 0, 0, 0, 1)), None);
    }

    #[test]
    fn stale_gpu_ids_beyond_capacity_are_ignored() {
        let running = [Allocation {
            gpu_ids: vec![7],
            memory: 0,
            cpus: 1,
        }];
        let d = plan(&cap(2, GB, 4), &running, &[req(1, 0, 2, 0, 1)]);
        assert_eq!(started(&d), vec![(1, vec![0, 1])]);
    }

    proptest! {
        /// Whatever the queue, started jobs never share a GPU id with each other or a running job,
        /// and never exceed the machine.
        #[test]
        fn never_double_books(
            gpus in 0u32..9,
            busy in proptest::collection::vec(0u32..9, 0..4),
            reqs in proptest::collection::vec((-3i32..3, 0u32..5, 0u64..4, 1u32..3), 0..12),
        ) {
            let capacity = cap(gpus, 8, 6);
            let busy: BTreeSet<u32> = busy.into_iter().filter(|g| *g < gpus).collect();
            let running = [Allocation { gpu_ids: busy.iter().copied().collect(), memory: 1, cpus: 1 }];
            let queued: Vec<Request> = reqs
                .iter()
                .enumerate()
                .map(|(i, (p, g, m, c))| req(i as i64, *p, *g, *m, *c))
                .collect();
            let mut used = busy.clone();
            let (mut mem, mut cpus) = (1u64, 1u32);
            for (id, ids) in started(&plan(&capacity, &running, &queued)) {
                let r = queued[id as usize];
                prop_assert_eq!(ids.len() as u32, r.gpus);
                for g in ids {
                    prop_assert!(g < gpus);
                    prop_assert!(used.insert(g), "GPU {} handed out twice", g);
                }
                mem += r.memory;
                cpus += r.cpus;
            }
            prop_assert!(mem <= 8 && cpus <= 6);
        }
    }
}
