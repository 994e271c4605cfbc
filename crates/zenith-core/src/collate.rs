//! Collation: Arrow columns into contiguous row-major tensors. A decoded unit is converted once
//! into the output layout (stacked features become a `[rows, k]` block), so gathering a shuffled
//! batch is one short contiguous copy per row instead of one cache miss per column per row.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, BooleanArray, FixedSizeListArray, PrimitiveArray};
use arrow_schema::{DataType, Field};

use crate::error::{Error, Result};

pub use crate::dtype::DType;

/// Owned, contiguous tensor storage.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum TensorData {
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Runs `$body` with `$v` bound to the inner vector of a [`TensorData`].
#[macro_export]
macro_rules! with_tensor_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::collate::TensorData::Bool($v) => $body,
            $crate::collate::TensorData::I8($v) => $body,
            $crate::collate::TensorData::I16($v) => $body,
            $crate::collate::TensorData::I32($v) => $body,
            $crate::collate::TensorData::I64($v) => $body,
            $crate::collate::TensorData::U8($v) => $body,
            $crate::collate::TensorData::U16($v) => $body,
            $crate::collate::TensorData::U32($v) => $body,
            $crate::collate::TensorData::U64($v) => $body,
            $crate::collate::TensorData::F32($v) => $body,
            $crate::collate::TensorData::F64($v) => $body,
        }
    };
}

impl TensorData {
    fn empty(dtype: DType, capacity: usize) -> TensorData {
        match dtype {
            DType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DType::I8 => TensorData::I8(Vec::with_capacity(capacity)),
            DType::I16 => TensorData::I16(Vec::with_capacity(capacity)),
            DType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DType::U16 => TensorData::U16(Vec::with_capacity(capacity)),
            DType::U32 => TensorData::U32(Vec::with_capacity(capacity)),
            DType::U64 => TensorData::U64(Vec::with_capacity(capacity)),
            DType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::Bool(_) => DType::Bool,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_tensor_data!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the elements.
    pub fn nbytes(&self) -> usize {
        with_tensor_data!(self, v => std::mem::size_of_val(v.as_slice()))
    }
}

/// A row-major tensor: `shape[0]` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Elements, row-major.
    pub data: TensorData,
    /// Dimensions; `[rows]` or `[rows, k]`.
    pub shape: Vec<usize>,
}

impl Tensor {
    /// Converts to an Arrow array: `[rows]` to a primitive array, `[rows, k]` to a fixed-size list.
    pub fn to_arrow(&self) -> ArrayRef {
        let flat: ArrayRef = match &self.data {
            TensorData::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            TensorData::I8(v) => Arc::new(PrimitiveArray::<Int8Type>::from(v.clone())),
            TensorData::I16(v) => Arc::new(PrimitiveArray::<Int16Type>::from(v.clone())),
            TensorData::I32(v) => Arc::new(PrimitiveArray::<Int32Type>::from(v.clone())),
            TensorData::I64(v) => Arc::new(PrimitiveArray::<Int64Type>::from(v.clone())),
            TensorData::U8(v) => Arc::new(PrimitiveArray::<UInt8Type>::from(v.clone())),
            TensorData::U16(v) => Arc::new(PrimitiveArray::<UInt16Type>::from(v.clone())),
            TensorData::U32(v) => Arc::new(PrimitiveArray::<UInt32Type>::from(v.clone())),
            TensorData::U64(v) => Arc::new(PrimitiveArray::<UInt64Type>::from(v.clone())),
            TensorData::F32(v) => Arc::new(PrimitiveArray::<Float32Type>::from(v.clone())),
            TensorData::F64(v) => Arc::new(PrimitiveArray::<Float64Type>::from(v.clone())),
        };
        if self.shape.len() == 1 {
            return flat;
        }
        let width: usize = self.shape[1..].iter().product();
        let field = Arc::new(Field::new("item", flat.data_type().clone(), false));
        Arc::new(FixedSizeListArray::new(field, width as i32, flat, None))
    }
}

/// What one output field is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldSource {
    /// One column; numbers and fixed-size lists of numbers become tensors, the rest stays Arrow.
    Column(String),
    /// Several numeric columns stacked into one `[rows, k]` tensor.
    Stack(Vec<String>),
}

/// One named output field with an optional element type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputField {
    /// Name in the batch.
    pub name: String,
    /// Where its values come from.
    pub source: FieldSource,
    /// Element type; the column's own when `None` (float32 for stacks of mixed types).
    pub dtype: Option<DType>,
}

/// How a field is laid out once planned against a schema.
#[derive(Debug, Clone)]
pub enum FieldPlan {
    /// Tensor of `dtype`, `width` elements per row, from these projected column positions;
    /// `dims` is the per-row shape of nested fixed-size lists (`[H, W, C]`), `None` for flat rows.
    Tensor {
        dtype: DType,
        width: usize,
        columns: Vec<usize>,
        list: bool,
        dims: Option<Vec<usize>>,
    },
    /// Arrow array of this projected column position.
    Arrow { column: usize },
}

/// A field's values for a run of rows, in output layout.
#[derive(Debug, Clone)]
pub enum Block {
    /// Row-major tensor values.
    Tensor(TensorData),
    /// Row-major tensor values that are a decoded column's own buffer: a primitive Arrow array
    /// of the field's dtype without nulls (never boolean), shared instead of copied.
    Values(ArrayRef),
    /// An Arrow column.
    Arrow(ArrayRef),
}

impl Block {
    /// Bytes the block holds (for Arrow blocks, the memory of their buffers).
    pub fn nbytes(&self) -> usize {
        match self {
            Block::Tensor(t) => t.nbytes(),
            Block::Values(a) | Block::Arrow(a) => a.get_array_memory_size(),
        }
    }
}

macro_rules! prim_to_vec {
    ($arr:expr, $t:ty) => {
        $arr.as_primitive::<$t>().values().to_vec()
    };
}

fn cast_array(array: &ArrayRef, dtype: DType, what: &dyn Fn() -> String) -> Result<ArrayRef> {
    if array.null_count() > 0 {
        return Err(Error::invalid(
            "columns",
            format!(
                "{} has {} null values; tensors cannot hold nulls (fill them, or use output=\"arrow\")",
                what(),
                array.null_count()
            ),
        ));
    }
    let target = dtype.arrow();
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    arrow_cast::cast(array, &target)
        .map_err(|e| Error::invalid("dtype", format!("{}: {e}", what())))
}

/// The block of a column in the output dtype: the column's own buffer when it already has that
/// type (decoded images, a label column), otherwise a cast copy.
fn values_block(array: &ArrayRef, dtype: DType, what: &dyn Fn() -> String) -> Result<Block> {
    let cast = cast_array(array, dtype, what)?;
    if dtype != DType::Bool && Arc::ptr_eq(&cast, array) {
        return Ok(Block::Values(cast));
    }
    Ok(Block::Tensor(tensor_data(&cast, dtype)))
}

/// Copies an array already cast to `dtype` (see [`cast_array`]) into tensor values.
fn tensor_data(array: &ArrayRef, dtype: DType) -> TensorData {
    match dtype {
        DType::Bool => TensorData::Bool(
            array
                .as_boolean()
                .iter()
                .map(|v| v.unwrap_or(false))
                .collect(),
        ),
        DType::I8 => TensorData::I8(prim_to_vec!(array, Int8Type)),
        DType::I16 => TensorData::I16(prim_to_vec!(array, Int16Type)),
        DType::I32 => TensorData::I32(prim_to_vec!(array, Int32Type)),
        DType::I64 => TensorData::I64(prim_to_vec!(array, Int64Type)),
        DType::U8 => TensorData::U8(prim_to_vec!(array, UInt8Type)),
        DType::U16 => TensorData::U16(prim_to_vec!(array, UInt16Type)),
        DType::U32 => TensorData::U32(prim_to_vec!(array, UInt32Type)),
        DType::U64 => TensorData::U64(prim_to_vec!(array, UInt64Type)),
        DType::F32 => TensorData::F32(prim_to_vec!(array, Float32Type)),
        DType::F64 => TensorData::F64(prim_to_vec!(array, Float64Type)),
    }
}

/// Rows per block of the transpose: the written rows of a block stay in L1 while every
/// column streams through once.
const TRANSPOSE_ROWS: usize = 128;

/// Interleaves `k` columns into a row-major `[rows, k]` buffer, a block of rows at a time.
/// Every element is written exactly once, so the buffer is not zeroed first.
fn interleave<T: Copy>(columns: &[&[T]], rows: usize) -> Vec<T> {
    let k = columns.len();
    assert!(
        columns.iter().all(|c| c.len() >= rows),
        "every column holds `rows` values"
    );
    let mut out: Vec<T> = Vec::with_capacity(rows * k);
    let spare = &mut out.spare_capacity_mut()[..rows * k];
    for start in (0..rows).step_by(TRANSPOSE_ROWS) {
        let end = (start + TRANSPOSE_ROWS).min(rows);
        for (j, col) in columns.iter().enumerate() {
            for (i, v) in col[start..end].iter().enumerate() {
                spare[(start + i) * k + j].write(*v);
            }
        }
    }
    // SAFETY: the loops above wrote every index `i * k + j` for `i < rows`, `j < k`.
    unsafe { out.set_len(rows * k) };
    out
}

macro_rules! stack_variant {
    ($arrays:expr, $rows:expr, $variant:ident, $t:ty) => {{
        let cols: Vec<&[_]> = $arrays
            .iter()
            .map(|a| a.as_primitive::<$t>().values().as_ref())
            .collect();
        TensorData::$variant(interleave(&cols, $rows))
    }};
}

/// Stacks columns already cast to `dtype` into one row-major block.
fn stack(arrays: &[ArrayRef], dtype: DType, rows: usize) -> TensorData {
    match dtype {
        DType::Bool => {
            let cols: Vec<Vec<bool>> = arrays
                .iter()
                .map(|a| a.as_boolean().iter().map(|v| v.unwrap_or(false)).collect())
                .collect();
            let refs: Vec<&[bool]> = cols.iter().map(Vec::as_slice).collect();
            TensorData::Bool(interleave(&refs, rows))
        }
        DType::I8 => stack_variant!(arrays, rows, I8, Int8Type),
        DType::I16 => stack_variant!(arrays, rows, I16, Int16Type),
        DType::I32 => stack_variant!(arrays, rows, I32, Int32Type),
        DType::I64 => stack_variant!(arrays, rows, I64, Int64Type),
        DType::U8 => stack_variant!(arrays, rows, U8, UInt8Type),
        DType::U16 => stack_variant!(arrays, rows, U16, UInt16Type),
        DType::U32 => stack_variant!(arrays, rows, U32, UInt32Type),
        DType::U64 => stack_variant!(arrays, rows, U64, UInt64Type),
        DType::F32 => stack_variant!(arrays, rows, F32, Float32Type),
        DType::F64 => stack_variant!(arrays, rows, F64, Float64Type),
    }
}

/// The element type and per-row shape of a (possibly nested) fixed-size list type.
fn fixed_shape(dt: &DataType) -> Option<(&DataType, Vec<usize>)> {
    let mut dims = Vec::new();
    let mut inner = dt;
    while let DataType::FixedSizeList(item, k) = inner {
        dims.push(usize::try_from(*k).ok()?);
        inner = item.data_type();
    }
    (!dims.is_empty()).then_some((inner, dims))
}

/// Plans output fields against the projected schema (columns in `names` order).
pub fn plan_fields(
    fields: &[OutputField],
    names: &[String],
    schema: &arrow_schema::Schema,
    arrow_output: bool,
) -> Result<Vec<FieldPlan>> {
    let pos = |c: &String| {
        names.iter().position(|n| n == c).ok_or_else(|| {
            Error::invalid(
                "columns",
                format!("column {c:?} is not among the projected columns {names:?}"),
            )
        })
    };
    fields
        .iter()
        .map(|f| match &f.source {
            FieldSource::Column(c) => {
                let i = pos(c)?;
                let dt = schema.field(i).data_type();
                if arrow_output {
                    return Ok(FieldPlan::Arrow { column: i });
                }
                if let Some(own) = DType::of_arrow(dt) {
                    return Ok(FieldPlan::Tensor { dtype: f.dtype.unwrap_or(own), width: 1, columns: vec![i], list: false, dims: None });
                }
                if let Some((inner, dims)) = fixed_shape(dt) {
                    if let Some(own) = DType::of_arrow(inner) {
                        let width = dims.iter().product();
                        let dims = (dims.len() > 1).then_some(dims);
                        return Ok(FieldPlan::Tensor { dtype: f.dtype.unwrap_or(own), width, columns: vec![i], list: true, dims });
                    }
                }
                if f.dtype.is_some() {
                    return Err(Error::invalid("columns", format!("column {c:?} of type {dt} cannot become a tensor")));
                }
                Ok(FieldPlan::Arrow { column: i })
            }
            FieldSource::Stack(cols) => {
                if arrow_output {
                    return Err(Error::invalid("columns", "stacked columns need output=\"numpy\" or \"torch\", not \"arrow\""));
                }
                if cols.is_empty() {
                    return Err(Error::invalid("columns", format!("field {:?} stacks no columns", f.name)));
                }
                let mut own = Vec::new();
                for c in cols {
                    let dt = schema.field(pos(c)?).data_type();
                    own.push(DType::of_arrow(dt).ok_or_else(|| {
                        Error::invalid("columns", format!("column {c:?} of type {dt} cannot be stacked into {:?}: only numeric columns stack", f.name))
                    })?);
                }
                let dtype = f.dtype.unwrap_or_else(|| if own.iter().all(|d| *d == own[0]) { own[0] } else { DType::F32 });
                Ok(FieldPlan::Tensor { dtype, width: cols.len(), columns: cols.iter().map(pos).collect::<Result<Vec<_>>>()?, list: false, dims: None })
            }
        })
        .collect()
}

/// Converts a decoded batch (projected columns) into one block per field.
pub fn to_blocks(
    batch: &arrow_array::RecordBatch,
    plans: &[FieldPlan],
    location: &dyn Fn() -> String,
) -> Result<Vec<Block>> {
    let rows = batch.num_rows();
    plans
        .iter()
        .map(|p| match p {
            FieldPlan::Arrow { column } => Ok(Block::Arrow(batch.column(*column).clone())),
            FieldPlan::Tensor {
                dtype,
                columns,
                list: true,
                width,
                ..
            } => {
                let col = batch.column(columns[0]);
                let name = batch.schema().field(columns[0]).name().clone();
                let what = || format!("{}: column {name:?}", location());
                if col.null_count() > 0 {
                    return Err(Error::invalid(
                        "columns",
                        format!("{} has null lists; tensors cannot hold nulls", what()),
                    ));
                }
                // Nested lists (`[H][W][C]`) flatten to their innermost values, row-major.
                let mut values = col.clone();
                while let DataType::FixedSizeList(..) = values.data_type() {
                    values = values.as_fixed_size_list().values().clone();
                }
                let values = values.slice(0, rows * width);
                values_block(&values, *dtype, &what)
            }
            FieldPlan::Tensor { dtype, columns, .. } => {
                let what = |c: usize| {
                    let name = batch.schema().field(c).name().clone();
                    move || format!("{}: column {name:?}", location())
                };
                if let [c] = columns.as_slice() {
                    return values_block(batch.column(*c), *dtype, &what(*c));
                }
                let arrays = columns
                    .iter()
                    .map(|&c| cast_array(batch.column(c), *dtype, &what(c)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Block::Tensor(stack(&arrays, *dtype, rows)))
            }
        })
        .collect()
}

/// The values of a [`Block::Values`] array of Arrow type `T`.
fn shared_values<T: ArrowPrimitiveType>(array: &ArrayRef) -> Option<&[T::Native]> {
    array.as_primitive_opt::<T>().map(|p| p.values().as_ref())
}

/// Boolean tensors are never shared (Arrow packs booleans into bits).
fn no_shared_values(_: &ArrayRef) -> Option<&[bool]> {
    None
}

/// A (slice, row) position inside a window.
pub type Pick = (u32, u32);

/// The blocks of one window (indexed by slice) and the picks to take from them.
pub type Chunk<'a> = (Vec<&'a Block>, &'a [Pick]);

/// How many picks ahead [`gather_rows`] prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Appends row `r` (of `w` values) of `sources[s]` to `out` for every pick `(s, r)`. Shuffled
/// picks jump across a window larger than the caches, so the rows a few picks ahead are
/// prefetched while the current one is copied.
fn gather_rows<T: Copy>(out: &mut Vec<T>, sources: &[&[T]], picks: &[Pick], w: usize) {
    let row = |&(s, r): &Pick| {
        let start = r as usize * w;
        &sources[s as usize][start..start + w]
    };
    for (i, pick) in picks.iter().enumerate() {
        if let Some(ahead) = picks.get(i + PREFETCH_AHEAD) {
            prefetch(row(ahead));
        }
        if w == 1 {
            out.push(row(pick)[0]);
        } else {
            out.extend_from_slice(row(pick));
        }
    }
}

/// Asks the CPU to start loading the first cache lines of `values` (a hint: no effect on
/// results, and nothing on other architectures). Long rows (images) need only their start:
/// the hardware prefetcher follows a sequential copy.
#[inline(always)]
fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        const MAX_LINES: usize = 4;
        let start = values.as_ptr() as usize;
        let bytes = std::mem::size_of_val(values).max(1);
        let first = start & !(LINE - 1);
        let last = (start + bytes - 1).min(first + (MAX_LINES - 1) * LINE);
        let mut line = first;
        while line <= last {
            // SAFETY: a prefetch is a hint that never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            line += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// Gathers rows into one output column. Each chunk is (blocks of one window indexed by
/// slice, (slice, row) picks); the output has the picks of all chunks in order.
pub fn gather_chunks(plan: &FieldPlan, chunks: &[Chunk<'_>]) -> Result<BatchColumn> {
    let total: usize = chunks.iter().map(|c| c.1.len()).sum();
    match plan {
        FieldPlan::Tensor {
            dtype, width, dims, ..
        } => {
            let w = *width;
            let mut out = TensorData::empty(*dtype, total * w);
            macro_rules! fill {
                (@with $variant:ident, $out:expr, $shared:expr) => {{
                    let shared = $shared;
                    for (blocks, picks) in chunks {
                        // Slices of the blocks this chunk's picks can name (indexed by slice);
                        // blocks no pick names may be empty placeholders.
                        let sources: Vec<&[_]> = blocks
                            .iter()
                            .map(|block| match block {
                                Block::Tensor(TensorData::$variant(src)) => &src[..],
                                Block::Values(a) => shared(a)
                                    .expect("shared values have the field's dtype"),
                                _ => &[],
                            })
                            .collect();
                        gather_rows($out, &sources, picks, w);
                    }
                }};
                ($variant:ident, $out:expr) => {
                    fill!(@with $variant, $out, no_shared_values)
                };
                ($variant:ident, $out:expr, $arrow:ty) => {
                    fill!(@with $variant, $out, shared_values::<$arrow>)
                };
            }
            match &mut out {
                TensorData::Bool(o) => fill!(Bool, o),
                TensorData::I8(o) => fill!(I8, o, Int8Type),
                TensorData::I16(o) => fill!(I16, o, Int16Type),
                TensorData::I32(o) => fill!(I32, o, Int32Type),
                TensorData::I64(o) => fill!(I64, o, Int64Type),
                TensorData::U8(o) => fill!(U8, o, UInt8Type),
                TensorData::U16(o) => fill!(U16, o, UInt16Type),
                TensorData::U32(o) => fill!(U32, o, UInt32Type),
                TensorData::U64(o) => fill!(U64, o, UInt64Type),
                TensorData::F32(o) => fill!(F32, o, Float32Type),
                TensorData::F64(o) => fill!(F64, o, Float64Type),
            }
            let mut shape = vec![total];
            match dims {
                Some(dims) => shape.extend_from_slice(dims),
                None if w > 1 => shape.push(w),
                None => {}
            }
            Ok(BatchColumn::Tensor(Tensor { data: out, shape }))
        }
        FieldPlan::Arrow { .. } => {
            // One interleave over every block the picks touch: a shuffled batch draws single
            // rows from many blocks, where a take per run plus a concat allocates per pick.
            let mut sources: Vec<&dyn Array> = Vec::new();
            let mut indices: Vec<(usize, usize)> = Vec::with_capacity(total);
            for (blocks, picks) in chunks {
                let mut slot: Vec<Option<usize>> = vec![None; blocks.len()];
                for &(b, r) in picks.iter() {
                    let source = match slot[b as usize] {
                        Some(s) => s,
                        None => {
                            let Block::Arrow(src) = blocks[b as usize] else {
                                unreachable!("block layout follows the plan")
                            };
                            sources.push(src.as_ref());
                            slot[b as usize] = Some(sources.len() - 1);
                            sources.len() - 1
                        }
                    };
                    indices.push((source, r as usize));
                }
            }
            let array = if sources.is_empty() {
                arrow_array::new_empty_array(&DataType::Null)
            } else {
                arrow_select::interleave::interleave(&sources, &indices)
                    .map_err(|e| Error::invalid("columns", e))?
            };
            Ok(BatchColumn::Arrow(array))
        }
    }
}

/// One column of an output batch.
#[derive(Debug, Clone)]
pub enum BatchColumn {
    /// A contiguous tensor.
    Tensor(Tensor),
    /// An Arrow array (strings, binary, nested, or `output="arrow"`).
    Arrow(ArrayRef),
}

impl BatchColumn {
    /// Bytes held by the column.
    pub fn nbytes(&self) -> usize {
        match self {
            BatchColumn::Tensor(t) => t.data.nbytes(),
            BatchColumn::Arrow(a) => a.get_array_memory_size(),
        }
    }

    /// As an Arrow array.
    pub fn to_arrow(&self) -> ArrayRef {
        match self {
            BatchColumn::Tensor(t) => t.to_arrow(),
            BatchColumn::Arrow(a) => a.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    #[test]
    fn gathers_shuffled_rows_across_blocks_in_pick_order() {
        // Two windows; the first names slices 0 and 2 (slice 1 is a placeholder no pick names).
        let a = Block::Tensor(TensorData::F32((0..30).map(|v| v as f32).collect()));
        let b = Block::Tensor(TensorData::F32((100..130).map(|v| v as f32).collect()));
        let empty = Block::Tensor(TensorData::F32(Vec::new()));
        let c = Block::Tensor(TensorData::F32((200..212).map(|v| v as f32).collect()));
        // More picks than the prefetch distance, jumping between blocks.
        let picks1: Vec<Pick> = vec![
            (2, 9),
            (0, 0),
            (2, 3),
            (0, 7),
            (0, 9),
            (2, 0),
            (0, 4),
            (2, 5),
            (0, 1),
            (2, 8),
            (0, 2),
        ];
        let picks2: Vec<Pick> = vec![(0, 3), (0, 0)];
        let chunks: Vec<Chunk<'_>> = vec![(vec![&a, &empty, &b], &picks1), (vec![&c], &picks2)];
        let plan = FieldPlan::Tensor {
            dtype: DType::F32,
            width: 3,
            columns: vec![0, 1, 2],
            list: false,
            dims: None,
        };
        let BatchColumn::Tensor(t) = gather_chunks(&plan, &chunks).unwrap() else {
            panic!("tensor")
        };
        assert_eq!(t.shape, vec![13, 3]);
        let row = |base: usize, r: usize| (0..3).map(move |j| (base + r * 3 + j) as f32);
        let expected: Vec<f32> = [
            (100, 9),
            (0, 0),
            (100, 3),
            (0, 7),
            (0, 9),
            (100, 0),
            (0, 4),
            (100, 5),
            (0, 1),
            (100, 8),
            (0, 2),
            (200, 3),
            (200, 0),
        ]
        .into_iter()
        .flat_map(|(base, r)| row(base, r))
        .collect();
        let TensorData::F32(values) = t.data else {
            panic!("f32")
        };
        assert_eq!(values, expected);
    }

    #[test]
    fn gathers_single_values_from_shared_arrow_buffers() {
        let shared = Block::Values(Arc::new(Int64Array::from_iter_values(10..20)) as ArrayRef);
        let own = Block::Tensor(TensorData::I64(vec![-1, -2, -3]));
        let picks: Vec<Pick> = vec![(1, 2), (0, 9), (0, 0), (1, 0), (0, 5)];
        let chunks: Vec<Chunk<'_>> = vec![(vec![&shared, &own], &picks)];
        let plan = FieldPlan::Tensor {
            dtype: DType::I64,
            width: 1,
            columns: vec![0],
            list: false,
            dims: None,
        };
        let BatchColumn::Tensor(t) = gather_chunks(&plan, &chunks).unwrap() else {
            panic!("tensor")
        };
        assert_eq!(t.shape, vec![5]);
        let TensorData::I64(values) = t.data else {
            panic!("i64")
        };
        assert_eq!(values, vec![-3, 19, 10, -1, 15]);
    }
}
