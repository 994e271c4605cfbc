//! The job-spec Validator: a whole `JobSpec` built from the input (`JobSpec::validate`), the
//! memory-string parser on its own, and the number rules on unbounded values. Every answer must
//! be `Ok` or a `ValidationError`; an accepted memory string must also be a byte count the
//! store can hold (1 ..= `MAX_MEMORY_BYTES`), as the parser documents.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use zenith_jobs::validation::{self, MAX_MEMORY_BYTES};
use zenith_jobs::{Backend, JobKind, JobSpec};

fn spec(u: &mut Unstructured<'_>) -> Result<JobSpec> {
    Ok(JobSpec {
        name: u.arbitrary()?,
        kind: if u.arbitrary()? {
            JobKind::Command
        } else {
            JobKind::Function
        },
        argv: u.arbitrary()?,
        cwd: u.arbitrary()?,
        env: u.arbitrary()?,
        gpus: u.arbitrary()?,
        memory: u.arbitrary()?,
        cpus: u.arbitrary()?,
        priority: u.arbitrary()?,
        backend: if u.arbitrary()? {
            Backend::Local
        } else {
            Backend::Slurm
        },
    })
}

fuzz_target!(|data: &[u8]| {
    // The memory string comes first and whole (up to the first NUL) so that the dictionary-free
    // fuzzer can grow "1.5GiB"-like strings byte by byte.
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(text) = std::str::from_utf8(text) {
        if let Ok(bytes) = validation::parse_memory(text) {
            assert!(
                (1..=MAX_MEMORY_BYTES).contains(&bytes),
                "parse_memory({text:?}) accepted {bytes} bytes"
            );
        }
    }
    let mut u = Unstructured::new(rest);
    if let Ok(spec) = spec(&mut u) {
        let _ = spec.validate();
    }
    if let Ok(value) = u.arbitrary::<i64>() {
        let _ = validation::validate_gpus(value);
        let _ = validation::validate_cpus(value);
        let _ = validation::validate_priority(value);
        let _ = validation::validate_memory_bytes(value);
    }
});
