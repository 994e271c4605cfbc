//! Sequence packing, the first regrouping stage: documents of tokens, in plan order, become
//! fixed-length training sequences.
//!
//! Each row of the token column (`list<int>` of any integer width, or a fixed-size list) is
//! one document; `bos_id` / `eos_id`, when set, are put before / after it. Three modes:
//!
//! - `concat`: the documents are one stream cut every `seq_len` tokens (the GPT pretraining
//!   recipe); a document that does not fit continues at the start of the next sequence.
//! - `pad`: one document per sequence, the rest padding; longer documents are cut and continue
//!   in the next sequences.
//! - `best_fit`: documents are cut into pieces of at most `seq_len` and a buffer of them (about
//!   `buffer` sequences of tokens) is packed by best-fit decreasing: each piece, longest
//!   first, goes into the open sequence with the least room that still holds it. The
//!   sequences of a buffer are emitted in an order drawn from (seed, epoch, buffer start).
//!
//! Every batch holds `input_ids`, `labels`, `position_ids`, `document_ids` and
//! `attention_mask`, all `int64 [B, seq_len]`. `labels[t]` is the token that follows position
//! `t` in its document (already shifted: train with `cross_entropy(logits, labels,
//! ignore_index=-100)`), and `-100` where the next token is another document's or padding.
//! `position_ids` restart at 0 at the start of every document piece, `document_ids` number the
//! pieces of a sequence from 0 (`-1` on padding), so variable-length attention can keep each
//! document to itself.
//!
//! # State
//!
//! The packer's carry-over is recomputed, not stored: the plan's position in the state is the
//! plan position of the first document not wholly delivered (for `best_fit`, the first
//! document of the buffer being emitted), and the section `"pack"` holds how much of it was
//! delivered (`skip`: tokens of that document, or sequences of that buffer; for a buffer also
//! `span`, its rows, and `key`, what seeds its order). Resuming re-reads from that position
//! and drops what was delivered, so the continued epoch has exactly the sequences of an
//! uninterrupted one.
//!
//! Under another world size the states of all ranks are merged: each rank's partly delivered
//! document or buffer becomes a [`Head`] of the plan, a run of rows that one new rank reads
//! whole and continues from `skip` (the document cut there; the buffer laid out again from the
//! same documents and key, its first `skip` sequences dropped). Every token is then delivered
//! once, in sequences that differ from an uninterrupted run only in how the rests are cut.

use std::collections::{BTreeSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::ScalarBuffer;
use arrow_schema::DataType;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::collate::{BatchColumn, Tensor, TensorData};
use crate::error::{Error, Result};
use crate::plan::{Head, Stop};

/// The label of a position that must not be learned from (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// The name of the packer's section in a loader's state.
pub const PACK_STAGE: &str = "pack";

/// The output fields of a packed batch, in order.
pub const PACK_FIELDS: [&str; 5] = [
    "input_ids",
    "labels",
    "position_ids",
    "document_ids",
    "attention_mask",
];

/// How documents are laid into sequences (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackMode {
    /// One stream cut every `seq_len` tokens.
    Concat,
    /// Best-fit decreasing over a buffer of document pieces.
    BestFit,
    /// One document (piece) per sequence, padded.
    Pad,
}

impl PackMode {
    /// The mode's name, as `zenith.text.pack(mode=...)` spells it.
    pub fn name(self) -> &'static str {
        match self {
            PackMode::Concat => "concat",
            PackMode::BestFit => "best_fit",
            PackMode::Pad => "pad",
        }
    }
}

impl FromStr for PackMode {
    type Err = Error;

    /// `"concat"`, `"best_fit"` or `"pad"`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "concat" => Ok(PackMode::Concat),
            "best_fit" => Ok(PackMode::BestFit),
            "pad" => Ok(PackMode::Pad),
            other => Err(Error::invalid(
                "mode",
                format!("{other:?}; expected \"concat\", \"best_fit\" or \"pad\""),
            )),
        }
    }
}

/// Settings of the packer.
#[derive(Debug, Clone, PartialEq)]
pub struct PackConfig {
    /// Tokens per sequence.
    pub seq_len: usize,
    /// The token column (one document per row).
    pub column: String,
    /// How documents are laid into sequences.
    pub mode: PackMode,
    /// Appended to every document when set.
    pub eos_id: Option<i64>,
    /// Put before every document when set.
    pub bos_id: Option<i64>,
    /// The token of padding positions.
    pub pad_id: i64,
    /// `best_fit`: sequences' worth of tokens packed together.
    pub buffer: usize,
    /// The fields each batch holds, a subset of [`PACK_FIELDS`] (all when empty).
    pub fields: Vec<String>,
}

/// Sequences' worth of tokens a `best_fit` buffer holds by default.
pub const DEFAULT_BUFFER: usize = 256;

impl PackConfig {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        if self.seq_len < 2 {
            return Err(Error::invalid("seq_len", "must be at least 2"));
        }
        if self.buffer == 0 {
            return Err(Error::invalid("buffer", "must be at least 1 sequence"));
        }
        for f in &self.fields {
            if !PACK_FIELDS.contains(&f.as_str()) {
                return Err(Error::invalid(
                    "fields",
                    format!("{f:?} is not a packed field; expected some of {PACK_FIELDS:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Which of [`PACK_FIELDS`] the batches hold.
    pub fn wanted(&self) -> [bool; 5] {
        PACK_FIELDS.map(|f| self.fields.is_empty() || self.fields.iter().any(|g| g == f))
    }

    /// The names of the fields the batches hold, in order.
    pub fn field_names(&self) -> Vec<String> {
        PACK_FIELDS
            .iter()
            .zip(self.wanted())
            .filter(|(_, w)| *w)
            .map(|(f, _)| f.to_string())
            .collect()
    }

    /// Checks that `data_type` (of the token column) holds token ids.
    pub fn check_column(&self, data_type: &DataType) -> Result<()> {
        let inner = match data_type {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                f.data_type()
            }
            _ => data_type,
        };
        let integer = matches!(
            inner,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
        );
        if inner == data_type || !integer {
            return Err(Error::invalid(
                "tokens",
                format!(
                    "column {:?} is {data_type}; packing needs a list of integer token ids per row (list<int32>, list<uint16>, ...)",
                    self.column
                ),
            ));
        }
        Ok(())
    }
}

/// The packer's section of a loader's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackState {
    /// The mode the state was written under.
    pub mode: PackMode,
    /// The sequence length it was written under.
    pub seq_len: usize,
    /// Delivered tokens of the first document not wholly delivered (`concat`, `pad`), or
    /// delivered sequences of the buffer being emitted (`best_fit`).
    pub skip: u64,
    /// Rows the partly delivered document or buffer spans (from the plan's position).
    #[serde(default)]
    pub span: u64,
    /// The seed key of the buffer being emitted (`best_fit`).
    #[serde(default)]
    pub key: u64,
}

impl PackState {
    /// Reads the section.
    pub fn read(value: &serde_json::Value) -> Result<PackState> {
        serde_json::from_value(value.clone())
            .map_err(|e| Error::invalid("state", format!("section \"pack\": {e}")))
    }

    /// Reads the section, refusing one written under another mode or length.
    pub fn from_section(value: &serde_json::Value, config: &PackConfig) -> Result<PackState> {
        let state = PackState::read(value)?;
        if state.mode != config.mode || state.seq_len != config.seq_len {
            return Err(Error::invalid(
                "state",
                format!(
                    "the state was saved packing {:?} sequences of {} tokens; this loader packs {:?} sequences of {}",
                    state.mode.name(), state.seq_len, config.mode.name(), config.seq_len
                ),
            ));
        }
        Ok(state)
    }

    /// The stop of a rank that consumed `rows` planned rows with this carry.
    pub fn stop(&self, rows: usize) -> Stop {
        Stop {
            rows,
            skip: self.skip,
            span: self.span as usize,
            key: self.key,
        }
    }
}

/// One document: its plan position in the epoch and its tokens, a slice of its read batch's
/// (converted) token buffer with BOS/EOS around it, so that reading copies no token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Doc {
    pub(crate) position: u64,
    values: Values,
    bos: Option<i64>,
    eos: Option<i64>,
    /// Tokens (BOS included) delivered before this epoch's run reached it: the document
    /// reads from here.
    start: usize,
    /// `best_fit`: the first document of a buffer another rank had begun, which is laid out
    /// again as it was (its rows, its key) and continued after its first `skip` sequences.
    group: Option<Head>,
}

impl Doc {
    /// A document of `values` with the configured BOS/EOS.
    pub(crate) fn new(position: u64, values: Values, config: &PackConfig) -> Doc {
        Doc {
            position,
            values,
            bos: config.bos_id,
            eos: config.eos_id,
            start: 0,
            group: None,
        }
    }

    /// Tokens left from `start`, BOS and EOS included.
    pub(crate) fn len(&self) -> usize {
        let whole =
            self.values.len() + usize::from(self.bos.is_some()) + usize::from(self.eos.is_some());
        whole - self.start
    }

    /// Drops the first `tokens` tokens (counted from the document's start); false when
    /// nothing is left.
    fn cut(&mut self, tokens: usize) -> bool {
        let whole = self.len() + self.start;
        self.start = tokens.max(self.start).min(whole);
        self.start < whole
    }

    /// Token `i` from `start` (BOS and EOS included), if there is one.
    fn get(&self, i: usize) -> Option<i64> {
        let i = i + self.start;
        let head = usize::from(self.bos.is_some());
        if i < head {
            return self.bos;
        }
        match self.values.get(i - head) {
            Some(v) => Some(v),
            None if i - head == self.values.len() => self.eos,
            None => None,
        }
    }

    /// Appends tokens `from..to` from `start` (BOS and EOS included) to `out`.
    fn extend(&self, from: usize, to: usize, out: &mut Vec<i64>) {
        if from >= to {
            return;
        }
        let (from, to) = (from + self.start, to + self.start);
        let head = usize::from(self.bos.is_some());
        let n = self.values.len();
        if from < head {
            out.extend(self.bos);
        }
        let (a, b) = (from.max(head) - head, (to - head).min(n));
        if a < b {
            self.values.extend(a, b, out);
        }
        if to > head + n {
            out.extend(self.eos);
        }
    }
}

/// Token ids as the file holds them: the widths token files use are kept (a document is a
/// slice of its batch's buffer, widened to `i64` as it is copied into a sequence), the others
/// cast to `i64` once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    I64(ScalarBuffer<i64>),
    I32(ScalarBuffer<i32>),
    U32(ScalarBuffer<u32>),
    U16(ScalarBuffer<u16>),
}

/// Runs `$body` with `$v` bound to the buffer of any width.
macro_rules! with_values {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Values::I64($v) => $body,
            Values::I32($v) => $body,
            Values::U32($v) => $body,
            Values::U16($v) => $body,
        }
    };
}

// `i64::from` widens every width but the `i64` one, where it is the identity.
#[allow(clippy::useless_conversion)]
impl Values {
    fn len(&self) -> usize {
        with_values!(self, v => v.len())
    }

    fn get(&self, i: usize) -> Option<i64> {
        with_values!(self, v => v.get(i).map(|&t| i64::from(t)))
    }

    /// Appends tokens `a..b`, widened.
    fn extend(&self, a: usize, b: usize, out: &mut Vec<i64>) {
        with_values!(self, v => out.extend(v[a..b].iter().map(|&t| i64::from(t))))
    }

    fn slice(&self, offset: usize, len: usize) -> Values {
        match self {
            Values::I64(v) => Values::I64(v.slice(offset, len)),
            Values::I32(v) => Values::I32(v.slice(offset, len)),
            Values::U32(v) => Values::U32(v.slice(offset, len)),
            Values::U16(v) => Values::U16(v.slice(offset, len)),
        }
    }
}

impl From<Vec<i64>> for Values {
    fn from(v: Vec<i64>) -> Values {
        Values::I64(v.into())
    }
}

/// The token values of a list column's child as one buffer.
fn values_of(values: &ArrayRef, config: &PackConfig) -> Result<Values> {
    use arrow_array::types::{Int32Type, Int64Type, UInt16Type, UInt32Type};
    if values.null_count() > 0 {
        return Err(Error::invalid(
            "tokens",
            format!("column {:?} holds a null token id", config.column),
        ));
    }
    Ok(match values.data_type() {
        DataType::Int64 => Values::I64(values.as_primitive::<Int64Type>().values().clone()),
        DataType::Int32 => Values::I32(values.as_primitive::<Int32Type>().values().clone()),
        DataType::UInt32 => Values::U32(values.as_primitive::<UInt32Type>().values().clone()),
        DataType::UInt16 => Values::U16(values.as_primitive::<UInt16Type>().values().clone()),
        _ => {
            let cast = arrow_cast::cast(values, &DataType::Int64).map_err(|e| {
                Error::invalid("tokens", format!("column {:?}: {e}", config.column))
            })?;
            if cast.null_count() > 0 {
                return Err(Error::invalid(
                    "tokens",
                    format!(
                        "column {:?} holds a token id out of the int64 range",
                        config.column
                    ),
                ));
            }
            Values::I64(cast.as_primitive::<Int64Type>().values().clone())
        }
    })
}

/// Reads the documents of one batch of the token column. Row `i` is at plan position
/// `positions(i)`; null rows are no document.
pub(crate) fn docs_of(
    column: &BatchColumn,
    config: &PackConfig,
    positions: &dyn Fn(usize) -> u64,
) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    match column {
        BatchColumn::Tensor(t) if t.shape.len() == 2 => {
            let width = t.shape[1];
            let values: ArrayRef = t.to_arrow();
            let flat = values
                .as_fixed_size_list_opt()
                .map(|l| l.values().clone())
                .unwrap_or(values);
            let values = values_of(&flat, config)?;
            for i in 0..t.shape[0] {
                docs.push(Doc::new(
                    positions(i),
                    values.slice(i * width, width),
                    config,
                ));
            }
        }
        BatchColumn::Arrow(a) => {
            let (offsets, values): (Vec<usize>, ArrayRef) = match a.data_type() {
                DataType::List(_) => {
                    let l = a.as_list::<i32>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                    )
                }
                DataType::LargeList(_) => {
                    let l = a.as_list::<i64>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                    )
                }
                other => {
                    return Err(Error::invalid(
                        "tokens",
                        format!(
                            "column {:?} is {other}, not a list of tokens",
                            config.column
                        ),
                    ))
                }
            };
            // Only the values the rows use (a sliced list keeps its parent's values).
            let (lo, hi) = (offsets[0], offsets[offsets.len() - 1]);
            let values = values_of(&values.slice(lo, hi - lo), config)?;
            for i in 0..a.len() {
                if a.is_null(i) {
                    continue;
                }
                let (from, to) = (offsets[i] - lo, offsets[i + 1] - lo);
                docs.push(Doc::new(
                    positions(i),
                    values.slice(from, to - from),
                    config,
                ));
            }
        }
        BatchColumn::Tensor(_) => {
            return Err(Error::invalid(
                "tokens",
                format!(
                    "column {:?} holds one number per row, not a list of tokens",
                    config.column
                ),
            ))
        }
    }
    Ok(docs)
}

/// The columns of one packed batch being filled, sequence by sequence.
pub(crate) struct PackedBatch {
    seq_len: usize,
    /// Sequences finished.
    pub(crate) rows: usize,
    /// Tokens of the sequence being filled.
    fill: usize,
    /// Pieces in the sequence being filled.
    pieces: i64,
    input: Vec<i64>,
    labels: Vec<i64>,
    positions: Vec<i64>,
    documents: Vec<i64>,
    mask: Vec<i64>,
    /// Which of [`PACK_FIELDS`] are filled.
    wanted: [bool; 5],
    /// Padding positions.
    pub(crate) padding: usize,
}

impl PackedBatch {
    pub(crate) fn new(batch_size: usize, seq_len: usize, wanted: [bool; 5]) -> PackedBatch {
        let n = |i: usize| if wanted[i] { batch_size * seq_len } else { 0 };
        PackedBatch {
            seq_len,
            rows: 0,
            fill: 0,
            pieces: 0,
            input: Vec::with_capacity(n(0)),
            labels: Vec::with_capacity(n(1)),
            positions: Vec::with_capacity(n(2)),
            documents: Vec::with_capacity(n(3)),
            mask: Vec::with_capacity(n(4)),
            wanted,
            padding: 0,
        }
    }

    /// Room left in the sequence being filled.
    fn room(&self) -> usize {
        self.seq_len - self.fill
    }

    /// Appends tokens `from..to` of `doc` to the sequence being filled as one piece.
    fn piece(&mut self, doc: &Doc, from: usize, to: usize) {
        debug_assert!(to - from <= self.room() && from < to);
        let [input, labels, positions, documents, mask] = self.wanted;
        if input {
            doc.extend(from, to, &mut self.input);
        }
        if labels {
            doc.extend(from + 1, to, &mut self.labels);
            self.labels.push(doc.get(to).unwrap_or(IGNORE_INDEX));
        }
        if positions {
            self.positions.extend(0..(to - from) as i64);
        }
        if documents {
            self.documents
                .extend(std::iter::repeat_n(self.pieces, to - from));
        }
        if mask {
            self.mask.extend(std::iter::repeat_n(1, to - from));
        }
        self.fill += to - from;
        self.pieces += 1;
    }

    /// Pads the sequence being filled to its length and starts the next one.
    fn finish_sequence(&mut self, pad_id: i64) {
        let n = self.room();
        let [input, labels, positions, documents, mask] = self.wanted;
        if input {
            self.input.extend(std::iter::repeat_n(pad_id, n));
        }
        if labels {
            self.labels.extend(std::iter::repeat_n(IGNORE_INDEX, n));
        }
        if positions {
            // Padding is one run of positions, so that `cu_seqlens` makes it one segment.
            self.positions.extend(0..n as i64);
        }
        if documents {
            self.documents.extend(std::iter::repeat_n(-1, n));
        }
        if mask {
            self.mask.extend(std::iter::repeat_n(0, n));
        }
        self.padding += n;
        self.rows += 1;
        self.fill = 0;
        self.pieces = 0;
    }

    /// The batch's columns, named as [`PACK_FIELDS`] (the wanted ones).
    pub(crate) fn columns(self) -> Vec<(String, BatchColumn)> {
        let shape = vec![self.rows, self.seq_len];
        let wanted = self.wanted;
        [
            self.input,
            self.labels,
            self.positions,
            self.documents,
            self.mask,
        ]
        .into_iter()
        .zip(PACK_FIELDS)
        .zip(wanted)
        .filter(|(_, w)| *w)
        .map(|((v, name), _)| {
            (
                name.to_string(),
                BatchColumn::Tensor(Tensor {
                    data: TensorData::I64(v),
                    shape: shape.clone(),
                }),
            )
        })
        .collect()
    }
}

/// A piece of a buffered document: (document in the buffer, first token, end).
type Piece = (u32, u32, u32);

/// The sequences of one `best_fit` buffer, each a list of pieces, in emission order.
fn best_fit(docs: &[Doc], seq_len: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<Piece>> {
    let mut pieces: Vec<Piece> = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let n = doc.len();
        let mut from = 0;
        while from < n {
            let to = (from + seq_len).min(n);
            pieces.push((d as u32, from as u32, to as u32));
            from = to;
        }
    }
    // Longest first; equal lengths in document order (a stable sort).
    pieces.sort_by_key(|&(_, a, b)| std::cmp::Reverse(b - a));
    let mut bins: Vec<Vec<Piece>> = Vec::new();
    // Open sequences by (room left, index): the least room that holds a piece is a range query.
    let mut open: BTreeSet<(usize, usize)> = BTreeSet::new();
    for piece in pieces {
        let len = (piece.2 - piece.1) as usize;
        let found = open.range((len, 0)..).next().copied();
        match found {
            Some((room, i)) => {
                open.remove(&(room, i));
                bins[i].push(piece);
                if room > len {
                    open.insert((room - len, i));
                }
            }
            None => {
                bins.push(vec![piece]);
                if seq_len > len {
                    open.insert((seq_len - len, bins.len() - 1));
                }
            }
        }
    }
    for bin in &mut bins {
        bin.sort_unstable();
    }
    bins.shuffle(rng);
    bins
}

/// What the packer does next with its documents.
pub(crate) struct Packer {
    config: Arc<PackConfig>,
    seed: u64,
    epoch: u64,
    /// Documents read and not yet wholly delivered (`concat`, `pad`) or not yet buffered.
    pending: VecDeque<Doc>,
    /// Tokens of `pending[0]` already delivered in this run (`concat`, `pad`).
    offset: usize,
    /// Tokens of the pending documents.
    pending_len: usize,
    /// Pending documents that open a group (see [`Doc`]).
    pending_groups: usize,
    /// The plan position after the last document read.
    next_position: u64,
    /// `best_fit`: the buffer being emitted, its sequences and how many were emitted.
    buffer: Vec<Doc>,
    bins: Vec<Vec<Piece>>,
    next_bin: usize,
    /// Position of the buffer's first document, one past its last, and its seed key.
    buffer_start: u64,
    buffer_end: u64,
    buffer_key: u64,
    /// From a restored state: the position to continue at and what was delivered there.
    resume: Option<(u64, u64)>,
    /// Runs other ranks had partly delivered (a resume under another world size), by
    /// position; the passed ones are dropped.
    heads: VecDeque<Head>,
}

impl Packer {
    /// A packer starting at plan position `start`; `skip` is the state's section there and
    /// `heads` the plan's partly delivered runs.
    pub(crate) fn new(
        config: Arc<PackConfig>,
        seed: u64,
        epoch: u64,
        start: u64,
        skip: u64,
        heads: Vec<Head>,
    ) -> Packer {
        Packer {
            config,
            seed,
            epoch,
            pending: VecDeque::new(),
            offset: 0,
            pending_len: 0,
            pending_groups: 0,
            next_position: start,
            buffer: Vec::new(),
            bins: Vec::new(),
            next_bin: 0,
            buffer_start: start,
            buffer_end: start,
            buffer_key: start,
            resume: (skip > 0).then_some((start, skip)),
            heads: heads.into_iter().collect(),
        }
    }

    /// The run of other ranks that `position` starts in, if any (taken: the first document
    /// of a run carries it).
    fn head_at(&mut self, position: u64) -> Option<Head> {
        while let Some(h) = self.heads.front() {
            let (at, end) = (h.at as u64, (h.at + h.rows) as u64);
            if end <= position {
                self.heads.pop_front();
            } else if at <= position {
                return self.heads.pop_front();
            } else {
                break;
            }
        }
        None
    }

    /// Takes the documents of one read batch; `positions` planned positions were consumed.
    pub(crate) fn push(&mut self, docs: Vec<Doc>, positions: usize) {
        self.next_position += positions as u64;
        for mut doc in docs {
            if doc.len() == 0 {
                continue;
            }
            let head = self.head_at(doc.position);
            if self.config.mode == PackMode::BestFit {
                doc.group = head;
                self.pending_groups += usize::from(head.is_some());
            } else {
                let delivered = self.delivered(doc.position, head.map_or(0, |h| h.skip));
                if !doc.cut(delivered as usize) {
                    continue;
                }
            }
            self.pending_len += doc.len();
            self.pending.push_back(doc);
        }
    }

    /// What was delivered of the document (tokens) or buffer (sequences) at `position`:
    /// `by_others` by another rank (a head), or what the state this run resumes from says;
    /// both count from its start.
    fn delivered(&mut self, position: u64, by_others: u64) -> u64 {
        match self.resume {
            Some((at, skip)) if at == position => {
                self.resume = None;
                by_others.max(skip)
            }
            _ => by_others,
        }
    }

    /// Tokens read and waiting (what a streaming mode can still lay out).
    fn pending_tokens(&self) -> usize {
        self.pending_len - self.offset
    }

    /// True when [`Packer::sequence`] can lay out a sequence without more documents (or,
    /// with `last`, once no more come). `best_fit` packs its next buffer here when it can.
    pub(crate) fn ready(&mut self, last: bool) -> bool {
        match self.config.mode {
            PackMode::Concat => {
                let t = self.pending_tokens();
                t >= self.config.seq_len || (last && t > 0)
            }
            PackMode::Pad => !self.pending.is_empty(),
            PackMode::BestFit => loop {
                if self.next_bin < self.bins.len() {
                    return true;
                }
                let can_fill = match self.pending.front() {
                    None => false,
                    // A group is laid out once all of its rows are read.
                    Some(Doc { group: Some(g), .. }) => {
                        last || self.next_position >= (g.at + g.rows) as u64
                    }
                    // A buffer ends where a group starts.
                    Some(_) => {
                        last || self.pending_groups > 0
                            || self.pending_tokens() >= self.config.seq_len * self.config.buffer
                    }
                };
                if !can_fill {
                    return false;
                }
                // (A group of which every sequence was delivered leaves none: go on.)
                self.fill_buffer();
            },
        }
    }

    /// Lays out one sequence into `out`; call only when [`Packer::ready`].
    pub(crate) fn sequence(&mut self, out: &mut PackedBatch) {
        let pad = self.config.pad_id;
        match self.config.mode {
            PackMode::Concat => {
                while out.room() > 0 {
                    let Some(doc) = self.pending.front() else {
                        break;
                    };
                    let to = (self.offset + out.room()).min(doc.len());
                    out.piece(doc, self.offset, to);
                    self.offset = to;
                    if to == doc.len() {
                        self.pending_len -= to;
                        self.pending.pop_front();
                        self.offset = 0;
                    }
                }
                out.finish_sequence(pad);
            }
            PackMode::Pad => {
                if let Some(doc) = self.pending.front() {
                    let to = (self.offset + out.room()).min(doc.len());
                    out.piece(doc, self.offset, to);
                    self.offset = to;
                    if to == doc.len() {
                        self.pending_len -= to;
                        self.pending.pop_front();
                        self.offset = 0;
                    }
                }
                out.finish_sequence(pad);
            }
            PackMode::BestFit => {
                if let Some(bin) = self.bins.get(self.next_bin) {
                    for &(d, from, to) in bin {
                        out.piece(&self.buffer[d as usize], from as usize, to as usize);
                    }
                    self.next_bin += 1;
                }
                out.finish_sequence(pad);
                if self.next_bin >= self.bins.len() {
                    // The buffer is spent: the next state restarts at the next buffer.
                    self.clear_buffer();
                }
            }
        }
    }

    fn clear_buffer(&mut self) {
        self.buffer.clear();
        self.bins.clear();
        self.next_bin = 0;
        self.buffer_start = self.front_position();
    }

    /// The position of the first pending document, or the next to be read.
    fn front_position(&self) -> u64 {
        self.pending
            .front()
            .map_or(self.next_position, |d| d.position)
    }

    /// `best_fit`: takes the next buffer from the pending documents and packs it: a group
    /// as it was, otherwise about `buffer` sequences of tokens, up to the next group.
    fn fill_buffer(&mut self) {
        let target = self.config.seq_len * self.config.buffer;
        self.buffer.clear();
        self.buffer_start = self.front_position();
        let group = self.pending.front().and_then(|d| d.group);
        let end = group.map(|g| (g.at + g.rows) as u64);
        let mut tokens = 0;
        while let Some(doc) = self.pending.pop_front() {
            let take = match end {
                Some(end) => doc.position < end && (doc.group.is_none() || tokens == 0),
                None => tokens < target && doc.group.is_none(),
            };
            if !take {
                self.pending.push_front(doc);
                break;
            }
            tokens += doc.len();
            self.pending_len -= doc.len();
            self.buffer.push(doc);
        }
        if group.is_some() {
            self.pending_groups -= 1;
        }
        let last = self.buffer.last().map_or(self.buffer_start, |d| d.position);
        self.buffer_end = end.unwrap_or(last + 1);
        self.buffer_key = group.map_or(self.buffer_start, |g| g.key);
        let mut rng = ChaCha8Rng::seed_from_u64(crate::plan::mix(&[
            self.seed,
            self.epoch,
            self.buffer_key,
            0x7061_636b,
        ]));
        self.bins = best_fit(&self.buffer, self.config.seq_len, &mut rng);
        let delivered = self.delivered(self.buffer_start, group.map_or(0, |g| g.skip));
        self.next_bin = (delivered as usize).min(self.bins.len());
        if self.next_bin >= self.bins.len() {
            self.clear_buffer();
        }
    }

    /// Where a state taken now restarts: the plan position to re-read from and what was
    /// delivered there (see [`PackState`]).
    pub(crate) fn carry(&self) -> Stop {
        let front = self.pending.front();
        let (at, skip, span, key) = match self.config.mode {
            PackMode::BestFit if !self.bins.is_empty() => (
                self.buffer_start,
                self.next_bin as u64,
                self.buffer_end - self.buffer_start,
                self.buffer_key,
            ),
            PackMode::BestFit => (self.front_position(), 0, 0, 0),
            _ => match front {
                Some(d) if d.start + self.offset > 0 => {
                    (d.position, (d.start + self.offset) as u64, 1, 0)
                }
                _ => (self.front_position(), 0, 0, 0),
            },
        };
        Stop {
            rows: at as usize,
            skip,
            span: span as usize,
            key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: PackMode, seq_len: usize) -> Arc<PackConfig> {
        Arc::new(PackConfig {
            seq_len,
            column: "ids".into(),
            mode,
            eos_id: Some(0),
            bos_id: None,
            pad_id: -1,
            buffer: 4,
            fields: Vec::new(),
        })
    }

    fn docs(lengths: &[usize]) -> Vec<Doc> {
        let mut next = 1;
        lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let values: Vec<i64> = (next..next + n as i64 - 1).collect();
                next += n as i64;
                Doc::new(i as u64, values.into(), &config(PackMode::Concat, 2))
            })
            .collect()
    }

    /// Packs the next batch of up to `batch` sequences; returns its columns.
    fn pack_one(packer: &mut Packer, batch: usize, seq_len: usize) -> Vec<Vec<i64>> {
        let mut b = PackedBatch::new(batch, seq_len, [true; 5]);
        while b.rows < batch && packer.ready(true) {
            packer.sequence(&mut b);
        }
        b.columns()
            .into_iter()
            .map(|(_, c)| match c {
                BatchColumn::Tensor(Tensor {
                    data: TensorData::I64(v),
                    ..
                }) => v,
                _ => unreachable!(),
            })
            .collect()
    }

    /// Packs every document, `batch` sequences per batch; returns the batches' columns.
    fn pack_all(packer: &mut Packer, batch: usize, seq_len: usize) -> Vec<Vec<Vec<i64>>> {
        let mut out = Vec::new();
        while packer.ready(true) {
            out.push(pack_one(packer, batch, seq_len));
        }
        out
    }

    #[test]
    fn a_document_reads_its_bos_values_and_eos_as_one_run() {
        let cfg = PackConfig {
            bos_id: Some(7),
            ..(*config(PackMode::Concat, 4)).clone()
        };
        let doc = Doc::new(0, vec![1i64, 2, 3].into(), &cfg);
        assert_eq!(doc.len(), 5);
        let run = |a, b| {
            let mut v = Vec::new();
            doc.extend(a, b, &mut v);
            v
        };
        assert_eq!(run(0, 5), [7, 1, 2, 3, 0]);
        assert_eq!(run(1, 4), [1, 2, 3]);
        assert_eq!(run(3, 5), [3, 0]);
        assert_eq!(run(4, 4), Vec::<i64>::new());
        assert_eq!(
            (doc.get(0), doc.get(4), doc.get(5)),
            (Some(7), Some(0), None)
        );
    }

    #[test]
    fn concat_cuts_the_stream_and_labels_the_next_token_of_the_same_document() {
        let mut p = Packer::new(config(PackMode::Concat, 4), 0, 0, 0, 0, vec![]);
        // Documents [1, 2, 0] and [4, 5, 6, 7, 0].
        p.push(docs(&[3, 5]), 2);
        let batches = pack_all(&mut p, 2, 4);
        assert_eq!(batches.len(), 1);
        let [input, labels, positions, documents, mask] = &batches[0][..] else {
            panic!()
        };
        assert_eq!(input, &[1, 2, 0, 4, 5, 6, 7, 0]);
        assert_eq!(labels, &[2, 0, -100, 5, 6, 7, 0, -100]);
        assert_eq!(positions, &[0, 1, 2, 0, 0, 1, 2, 3]);
        assert_eq!(documents, &[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(mask, &[1; 8]);
    }

    #[test]
    fn pad_puts_one_document_per_sequence_and_cuts_long_ones() {
        let mut p = Packer::new(config(PackMode::Pad, 4), 0, 0, 0, 0, vec![]);
        p.push(docs(&[2, 6]), 2);
        let batches = pack_all(&mut p, 3, 4);
        let [input, labels, _, documents, mask] = &batches[0][..] else {
            panic!()
        };
        assert_eq!(input, &[1, 0, -1, -1, 3, 4, 5, 6, 7, 0, -1, -1]);
        assert_eq!(
            labels,
            &[0, -100, -100, -100, 4, 5, 6, 7, 0, -100, -100, -100]
        );
        assert_eq!(documents, &[0, 0, -1, -1, 0, 0, 0, 0, 0, 0, -1, -1]);
        assert_eq!(mask, &[1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn best_fit_fills_the_tightest_room_and_keeps_every_token_once() {
        let lengths = [5, 3, 2, 7, 1, 4, 6, 2, 8, 3];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let bins = best_fit(&docs(&lengths), 8, &mut rng);
        let mut seen: Vec<(u32, u32, u32)> = bins.iter().flatten().copied().collect();
        seen.sort_unstable();
        let expected: Vec<(u32, u32, u32)> = lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as u32, 0, n as u32))
            .collect();
        assert_eq!(seen, expected);
        for bin in &bins {
            assert!(bin.iter().map(|p| p.2 - p.1).sum::<u32>() <= 8);
        }
        // 41 tokens in sequences of 8: best-fit decreasing needs the minimum, six.
        assert_eq!(bins.len(), 6);
    }

    #[test]
    fn a_restart_from_the_carry_gives_the_rest_of_the_same_sequences() {
        let lengths = [9, 3, 14, 2, 7, 1, 5, 11, 4, 6, 3, 8, 2, 13];
        for mode in [PackMode::Concat, PackMode::Pad, PackMode::BestFit] {
            let cfg = config(mode, 6);
            let mut whole = Packer::new(cfg.clone(), 3, 1, 0, 0, vec![]);
            whole.push(docs(&lengths), lengths.len());
            let all = pack_all(&mut whole, 2, 6);
            // Stop after each batch, restart from the carry, and compare the rest.
            let mut p = Packer::new(cfg.clone(), 3, 1, 0, 0, vec![]);
            p.push(docs(&lengths), lengths.len());
            for stop in 1..all.len() {
                pack_one(&mut p, 2, 6);
                let carry = p.carry();
                let at = carry.rows as u64;
                let mut q = Packer::new(cfg.clone(), 3, 1, at, carry.skip, vec![]);
                let rest: Vec<Doc> = docs(&lengths)
                    .into_iter()
                    .filter(|d| d.position >= at)
                    .collect();
                let n = rest.len();
                q.push(rest, n);
                assert_eq!(pack_all(&mut q, 2, 6), all[stop..], "{mode:?} stop {stop}");
            }
        }
    }

    /// Every (document, token index) a run of batches delivers, from the input ids (the
    /// test documents number their tokens 1.. across documents, EOS is 0).
    fn tokens_of(batches: &[Vec<Vec<i64>>]) -> Vec<i64> {
        let mut t: Vec<i64> = batches
            .iter()
            .flat_map(|b| b[0].iter().copied())
            .filter(|&v| v > 0)
            .collect();
        t.sort_unstable();
        t
    }

    #[test]
    fn a_run_begun_by_another_rank_is_continued_from_its_skip() {
        let lengths = [9, 3, 14, 2, 7, 1, 5, 11, 4, 6, 3, 8, 2, 13];
        let all: Vec<i64> = (1..=lengths.iter().sum::<usize>() as i64)
            .filter(|v| {
                // EOS positions hold no token id.
                let mut end = 0;
                !lengths.iter().any(|&n| {
                    end += n as i64;
                    *v == end
                })
            })
            .collect();
        for mode in [PackMode::Concat, PackMode::Pad, PackMode::BestFit] {
            let cfg = config(mode, 6);
            let mut whole = Packer::new(cfg.clone(), 3, 1, 0, 0, vec![]);
            whole.push(docs(&lengths), lengths.len());
            let batches = pack_all(&mut whole, 2, 6);
            for stop in 1..batches.len() {
                // One rank delivers `stop` batches; another, reading the rest with the
                // partly delivered run as a head among other rows, delivers the rest.
                let mut p = Packer::new(cfg.clone(), 3, 1, 0, 0, vec![]);
                p.push(docs(&lengths), lengths.len());
                let first: Vec<_> = (0..stop).map(|_| pack_one(&mut p, 2, 6)).collect();
                let c = p.carry();
                let at = c.rows as u64;
                let heads = (c.skip > 0).then_some(Head {
                    at: c.rows,
                    rows: c.span,
                    skip: c.skip,
                    key: c.key,
                });
                let mut q = Packer::new(cfg.clone(), 3, 1, 0, 0, heads.into_iter().collect());
                let rest: Vec<Doc> = docs(&lengths)
                    .into_iter()
                    .filter(|d| d.position >= at)
                    .collect();
                // Positions before the run hold nothing for this rank.
                q.push(Vec::new(), at as usize);
                let n = rest.len();
                q.push(rest, n);
                let second = pack_all(&mut q, 2, 6);
                let mut got = tokens_of(&first);
                got.extend(tokens_of(&second));
                got.sort_unstable();
                assert_eq!(got, all, "{mode:?} stop {stop}");
                if mode == PackMode::BestFit && c.skip > 0 {
                    // The buffer is laid out again as it was: its next sequence comes first.
                    let mut again = Packer::new(cfg.clone(), 3, 1, at, c.skip, vec![]);
                    let rest: Vec<Doc> = docs(&lengths)
                        .into_iter()
                        .filter(|d| d.position >= at)
                        .collect();
                    let n = rest.len();
                    again.push(rest, n);
                    assert_eq!(pack_all(&mut again, 2, 6)[0][0][..6], second[0][0][..6]);
                }
            }
        }
    }
}
