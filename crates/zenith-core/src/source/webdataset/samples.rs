//! Grouping scanned members into samples (consecutive members with the same key), one member
//! slot per sample and field, and cutting the samples into work units by payload size.

use std::collections::BTreeMap;

use super::scan::{Member, RawMember, Scan};

/// Samples of a shard: keys and, per sample and field, the member holding it.
#[derive(Debug)]
pub(super) struct SampleIndex {
    /// Field names, sorted (the column order after `__key__`).
    pub(super) fields: Vec<String>,
    /// The key of each sample.
    pub(super) keys: Vec<String>,
    /// Header offset of each sample's first member.
    pub(super) offsets: Vec<u64>,
    /// `keys.len() * fields.len()` entries, sample-major.
    members: Vec<Option<Member>>,
    /// Payload bytes of each sample.
    pub(super) sizes: Vec<u64>,
    /// Structural defects: sample index → (byte offset, message).
    pub(super) defects: BTreeMap<usize, (u64, String)>,
}

impl SampleIndex {
    /// Groups scanned members into samples; `keep` filters fields.
    pub(super) fn build(scan: &Scan, keep: Option<&[String]>) -> SampleIndex {
        let mut index = SampleIndex {
            fields: field_names(scan, keep),
            keys: Vec::new(),
            offsets: Vec::new(),
            members: Vec::new(),
            sizes: Vec::new(),
            defects: BTreeMap::new(),
        };
        for raw in &scan.members {
            index.add(raw);
        }
        // The walk stopped inside the last sample it saw: that sample is the defective one.
        if let Some((offset, message)) = &scan.error {
            if let Some(last) = index.keys.len().checked_sub(1) {
                index.defects.insert(last, (*offset, message.clone()));
            }
        }
        index
    }

    /// Adds a member to the current sample, or starts a new sample when its key changes.
    fn add(&mut self, raw: &RawMember) {
        let nf = self.fields.len();
        if self.keys.last() != Some(&raw.key) {
            self.keys.push(raw.key.clone());
            self.offsets.push(raw.member.header);
            self.sizes.push(0);
            self.members.extend(std::iter::repeat_n(None, nf));
        }
        let sample = self.keys.len() - 1;
        let Ok(f) = self.fields.binary_search(&raw.field) else {
            return;
        };
        let slot = &mut self.members[sample * nf + f];
        if slot.is_some() {
            self.defects.entry(sample).or_insert_with(|| {
                (
                    raw.member.header,
                    format!("sample {:?} holds field {:?} twice", raw.key, raw.field),
                )
            });
        }
        *slot = Some(raw.member);
        self.sizes[sample] += raw.member.size;
    }

    /// Samples in the shard.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The member holding `field` of `sample`, if the sample has it.
    pub(super) fn member(&self, sample: usize, field: usize) -> Option<Member> {
        self.members[sample * self.fields.len() + field]
    }

    /// Consecutive sample ranges of about `unit_bytes` payload and at most `max_samples`
    /// samples (at least one sample each).
    pub(super) fn unit_bounds(&self, unit_bytes: usize, max_samples: usize) -> Vec<usize> {
        let mut bounds = vec![0];
        let (mut bytes, mut count) = (0u64, 0usize);
        for (i, &size) in self.sizes.iter().enumerate() {
            bytes += size;
            count += 1;
            if bytes >= unit_bytes as u64 || count >= max_samples {
                bounds.push(i + 1);
                (bytes, count) = (0, 0);
            }
        }
        if count > 0 {
            bounds.push(self.sizes.len());
        }
        bounds
    }
}

/// The distinct fields of the scanned members that `keep` keeps (all when `None`), sorted.
fn field_names(scan: &Scan, keep: Option<&[String]>) -> Vec<String> {
    let kept = |f: &str| keep.is_none_or(|k| k.iter().any(|x| x == f));
    let mut fields: Vec<String> = scan
        .members
        .iter()
        .map(|m| m.field.clone())
        .filter(|f| kept(f))
        .collect();
    fields.sort();
    fields.dedup();
    fields
}
