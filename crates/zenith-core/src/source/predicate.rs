//! Row filters in disjunctive normal form (an OR of ANDs of `column op value` terms, the form
//! of `pyarrow.parquet.read_table(filters=...)`), and what the statistics of a unit say about
//! them: a unit whose min, max and null count rule out every conjunction is never read.
//! Pruning only ever drops units that cannot hold a matching row; the exact filter is applied
//! to the rows read.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, Scalar, StringArray,
};
use arrow_buffer::BooleanBuffer;
use arrow_ord::cmp;

use super::statistics::{ColumnStatistics, StatValue};
use crate::error::{Error, Result};

/// A comparison of one term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in` a list
    In,
    /// `not in` a list
    NotIn,
}

/// `column op value(s)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The column (a nested leaf as `a.b`).
    pub column: String,
    /// The comparison.
    pub op: Op,
    /// One value, or the list of `in` / `not in`.
    pub values: Vec<StatValue>,
}

/// An OR of ANDs of terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// The conjunctions; a row matches when every term of one of them holds.
    pub any_of: Vec<Vec<Term>>,
}

/// Compares a statistic with a filter value of a compatible kind (integers and floats
/// together); `None` when they cannot be compared.
fn compare(stat: &StatValue, value: &StatValue) -> Option<Ordering> {
    use StatValue::*;
    match (stat, value) {
        (Int(a), Int(b)) => Some(a.cmp(b)),
        (Float(a), Float(b)) => a.partial_cmp(b),
        (Int(a), Float(b)) => (*a as f64).partial_cmp(b),
        (Float(a), Int(b)) => a.partial_cmp(&(*b as f64)),
        (Text(a), Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Bool(a), Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

impl Term {
    /// False only when the statistics prove that no row of the unit satisfies the term.
    fn may_match(&self, stats: Option<&ColumnStatistics>, rows: usize) -> bool {
        let Some(s) = stats else { return true };
        // Every value null: no comparison holds.
        if !s.has_values && s.null_count == Some(rows as u64) {
            return false;
        }
        let (Some(min), Some(max)) = (&s.min, &s.max) else {
            return true;
        };
        let holds = |v: &StatValue, test: &dyn Fn(Ordering, Ordering) -> bool| match (
            compare(min, v),
            compare(max, v),
        ) {
            (Some(lo), Some(hi)) => test(lo, hi),
            _ => true,
        };
        let only =
            |v: &StatValue| holds(v, &|lo, hi| lo == Ordering::Equal && hi == Ordering::Equal);
        let within =
            |v: &StatValue| holds(v, &|lo, hi| lo != Ordering::Greater && hi != Ordering::Less);
        let Some(v) = self.values.first() else {
            return !matches!(self.op, Op::In);
        };
        match self.op {
            Op::Eq => within(v),
            Op::Ne => !only(v),
            Op::Lt => holds(v, &|lo, _| lo == Ordering::Less),
            Op::Le => holds(v, &|lo, _| lo != Ordering::Greater),
            Op::Gt => holds(v, &|_, hi| hi == Ordering::Greater),
            Op::Ge => holds(v, &|_, hi| hi != Ordering::Less),
            Op::In => self.values.iter().any(within),
            // Only a unit holding one single value, which is listed, is ruled out.
            Op::NotIn => !self.values.iter().any(only),
        }
    }
}

impl Predicate {
    /// Parses the JSON form `[[["column", "op", value], ...], ...]` (values: numbers, strings,
    /// booleans, or a list for `in` / `not in`).
    pub fn from_json(text: &str) -> Result<Predicate> {
        let bad = |why: String| Error::invalid("filter", why);
        let parsed: Vec<Vec<(String, String, serde_json::Value)>> = serde_json::from_str(text)
            .map_err(|e| bad(format!("expected [[(column, op, value), ...], ...]: {e}")))?;
        let value = |v: &serde_json::Value| -> Result<StatValue> {
            use serde_json::Value as J;
            Ok(match v {
                J::Bool(b) => StatValue::Bool(*b),
                J::Number(n) => match n.as_i64() {
                    Some(i) => StatValue::Int(i),
                    None => StatValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                J::String(s) => StatValue::Text(s.clone()),
                other => return Err(bad(format!("{other} is not a number, string or boolean"))),
            })
        };
        let any_of = parsed
            .into_iter()
            .map(|all| {
                all.into_iter()
                    .map(|(column, op, v)| {
                        let op = match op.as_str() {
                            "=" | "==" => Op::Eq,
                            "!=" => Op::Ne,
                            "<" => Op::Lt,
                            "<=" => Op::Le,
                            ">" => Op::Gt,
                            ">=" => Op::Ge,
                            "in" => Op::In,
                            "not in" => Op::NotIn,
                            other => {
                                return Err(bad(format!(
                                    "unknown operator {other:?} on {column:?}; expected one of = == != < <= > >= in, not in"
                                )))
                            }
                        };
                        let values = match (&v, op) {
                            (serde_json::Value::Array(list), Op::In | Op::NotIn) => {
                                list.iter().map(value).collect::<Result<Vec<_>>>()?
                            }
                            (_, Op::In | Op::NotIn) => {
                                return Err(bad(format!("{column:?} {op:?} needs a list of values")))
                            }
                            _ => vec![value(&v)?],
                        };
                        Ok(Term { column, op, values })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Predicate { any_of })
    }

    /// Every column the predicate names.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.any_of.iter().flatten().map(|t| t.column.as_str())
    }

    /// False only when the statistics of a unit of `rows` rows prove that no row matches.
    pub fn may_match(&self, stats: &[ColumnStatistics], rows: usize) -> bool {
        self.any_of.iter().any(|all| {
            all.iter()
                .all(|t| t.may_match(stats.iter().find(|s| s.column == t.column), rows))
        })
    }
}

/// The rows of `column` that satisfy `term`, as pyarrow's filter expressions keep them: a null
/// satisfies no comparison and no `in`, and does satisfy `not in` (`~isin`).
fn term_mask(column: &ArrayRef, term: &Term) -> Result<BooleanBuffer> {
    use arrow_schema::DataType as D;
    let bad = |why: String| Error::invalid("filter", format!("{:?}: {why}", term.column));
    let numeric = column.data_type().is_numeric();
    let any_float = term.values.iter().any(|v| matches!(v, StatValue::Float(_)));
    // Integers compared with integers as int64, numbers with a float among them as float64;
    // anything else compares in the column's own type (a date column with "2024-01-31").
    let target = match column.data_type() {
        t if t.is_integer() && !any_float => D::Int64,
        _ if numeric => D::Float64,
        t => t.clone(),
    };
    let column = arrow_cast::cast(column, &target).map_err(|e| bad(e.to_string()))?;
    let scalar = |v: &StatValue| -> Result<ArrayRef> {
        let one: ArrayRef = match v {
            StatValue::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
            StatValue::Int(i) => Arc::new(Int64Array::from(vec![*i])),
            StatValue::Float(f) => Arc::new(Float64Array::from(vec![*f])),
            StatValue::Text(t) => Arc::new(StringArray::from(vec![t.as_str()])),
        };
        let cast = arrow_cast::cast_with_options(
            &one,
            &target,
            &arrow_cast::CastOptions {
                safe: false,
                ..Default::default()
            },
        )
        .map_err(|e| bad(format!("cannot compare a {target} column with {v:?}: {e}")))?;
        Ok(cast)
    };
    let compare = |v: &StatValue, op: Op| -> Result<BooleanBuffer> {
        let right = scalar(v)?;
        let right = Scalar::new(&right);
        let out = match op {
            Op::Eq | Op::In | Op::NotIn => cmp::eq(&column, &right),
            Op::Ne => cmp::neq(&column, &right),
            Op::Lt => cmp::lt(&column, &right),
            Op::Le => cmp::lt_eq(&column, &right),
            Op::Gt => cmp::gt(&column, &right),
            Op::Ge => cmp::gt_eq(&column, &right),
        }
        .map_err(|e| bad(e.to_string()))?;
        // A null result (a null row) keeps nothing.
        Ok(match out.nulls() {
            Some(valid) => out.values() & valid.inner(),
            None => out.values().clone(),
        })
    };
    let rows = column.len();
    match term.op {
        Op::In | Op::NotIn => {
            let mut any = BooleanBuffer::new_unset(rows);
            for v in &term.values {
                any = &any | &compare(v, Op::In)?;
            }
            Ok(if term.op == Op::In { any } else { !&any })
        }
        op => match term.values.first() {
            Some(v) => compare(v, op),
            None => Ok(BooleanBuffer::new_unset(rows)),
        },
    }
}

impl Predicate {
    /// The rows of `batch` the filter keeps. Every column the predicate names must be a
    /// top-level column of the batch.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanBuffer> {
        let rows = batch.num_rows();
        let mut keep = BooleanBuffer::new_unset(rows);
        for all in &self.any_of {
            let mut conj = BooleanBuffer::new_set(rows);
            for term in all {
                let column = batch.column_by_name(&term.column).ok_or_else(|| {
                    Error::invalid(
                        "filter",
                        format!("{:?} is not a column of the rows read", term.column),
                    )
                })?;
                conj = &conj & &term_mask(column, term)?;
            }
            keep = &keep | &conj;
        }
        Ok(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(column: &str, min: i64, max: i64, nulls: u64) -> ColumnStatistics {
        ColumnStatistics {
            column: column.to_string(),
            min: Some(StatValue::Int(min)),
            max: Some(StatValue::Int(max)),
            null_count: Some(nulls),
            has_values: true,
        }
    }

    #[test]
    fn rows_are_kept_as_pyarrow_keeps_them() {
        use arrow_array::Float32Array;
        let batch = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Int64Array::from(vec![Some(1), Some(5), None, Some(9)])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5, 3.5])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])) as ArrayRef,
            ),
        ])
        .unwrap();
        let keep = |json: &str| -> Vec<bool> {
            Predicate::from_json(json)
                .unwrap()
                .evaluate(&batch)
                .unwrap()
                .iter()
                .collect()
        };
        assert_eq!(keep(r#"[[["x", ">=", 5]]]"#), [false, true, false, true]);
        assert_eq!(
            keep(r#"[[["x", "==", 5.5]]]"#),
            [false, false, false, false]
        );
        assert_eq!(keep(r#"[[["x", "!=", 5]]]"#), [true, false, false, true]);
        assert_eq!(
            keep(r#"[[["x", "in", [1, 9]]]]"#),
            [true, false, false, true]
        );
        assert_eq!(
            keep(r#"[[["x", "not in", [1, 9]]]]"#),
            [false, true, true, false]
        );
        assert_eq!(
            keep(r#"[[["f", "<", 2]], [["s", "==", "d"]]]"#),
            [true, true, false, true]
        );
        assert_eq!(
            keep(r#"[[["f", ">", 1], ["s", "in", ["b", "c"]]]]"#),
            [false, true, true, false]
        );
        let err = Predicate::from_json(r#"[[["s", ">", 3]], [["y", "==", 1]]]"#)
            .unwrap()
            .evaluate(&batch)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"y\" is not a column"), "{err}");
    }

    #[test]
    fn statistics_rule_out_units() {
        let p = |json: &str| Predicate::from_json(json).unwrap();
        let unit = [stats("x", 10, 20, 0), stats("y", 5, 5, 0)];
        let cases = [
            (r#"[[["x", ">", 20]]]"#, false),
            (r#"[[["x", ">=", 20]]]"#, true),
            (r#"[[["x", "<", 10]]]"#, false),
            (r#"[[["x", "==", 15.5]]]"#, true),
            (r#"[[["x", "==", 21]]]"#, false),
            (r#"[[["y", "!=", 5]]]"#, false),
            (r#"[[["x", "in", [1, 2, 30]]]]"#, false),
            (r#"[[["x", "in", [1, 12]]]]"#, true),
            (r#"[[["y", "not in", [5]]]]"#, false),
            (r#"[[["x", ">", 20]], [["y", "==", 5]]]"#, true),
            (r#"[[["x", ">", 15], ["y", "<", 5]]]"#, false),
            (r#"[[["z", "==", 1]]]"#, true),
            (r#"[[["x", "==", "a"]]]"#, true),
        ];
        for (json, want) in cases {
            assert_eq!(p(json).may_match(&unit, 100), want, "{json}");
        }
        let all_null = ColumnStatistics {
            column: "x".into(),
            min: None,
            max: None,
            null_count: Some(100),
            has_values: false,
        };
        assert!(!p(r#"[[["x", "==", 1]]]"#).may_match(&[all_null], 100));
        for bad in [
            r#"[[["x", "~", 1]]]"#,
            r#"[[["x", "in", 1]]]"#,
            r#"[["x"]]"#,
            r#"[[["x", "==", null]]]"#,
        ] {
            assert!(Predicate::from_json(bad).is_err(), "{bad}");
        }
    }
}
