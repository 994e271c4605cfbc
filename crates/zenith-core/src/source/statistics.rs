//! Column statistics of Parquet footers (min, max, null count per column), as the format
//! reader finds them and as `zenith.info` merges them over a dataset. They live with the
//! readers, which produce them; the whole-dataset reads module re-exports them.

/// A statistic from a Parquet footer.
#[derive(Debug, Clone, PartialEq, PartialOrd, serde::Serialize)]
pub enum StatValue {
    /// A boolean column.
    Bool(bool),
    /// An integer column (int32/int64 without a date, time or decimal type).
    Int(i64),
    /// A float or double column.
    Float(f64),
    /// A string column.
    Text(String),
}

/// Min, max and null count of one column over every row group of a dataset, from the Parquet
/// footers. Each is `None` when a row group does not record it (or, for min and max, when the
/// column's type has no plain order here: dates, timestamps, decimals, binary).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnStatistics {
    /// The column's path (`a` or `a.b` for a nested leaf).
    pub column: String,
    /// Smallest value.
    pub min: Option<StatValue>,
    /// Largest value.
    pub max: Option<StatValue>,
    /// Null values.
    pub null_count: Option<u64>,
    /// False when every value is null: min and max are then `None` without making a merged
    /// range unknown.
    pub has_values: bool,
}

/// How one column is stored, from footers: its codecs and its bytes before and after them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnStorage {
    /// The column's path (`a` or `a.b` for a nested leaf).
    pub column: String,
    /// The codecs of its chunks, each once, in first-seen order (`"SNAPPY"`, `"ZSTD(3)"`, ...).
    pub compression: Vec<String>,
    /// Bytes of its chunks as stored.
    pub compressed_bytes: u64,
    /// Bytes of its chunks' pages before compression (encoded, not yet decoded into arrays).
    pub uncompressed_bytes: u64,
}

impl ColumnStorage {
    /// Adds the chunks of the same column from other row groups or files.
    pub fn merge(&mut self, other: &ColumnStorage) {
        for c in &other.compression {
            if !self.compression.contains(c) {
                self.compression.push(c.clone());
            }
        }
        self.compressed_bytes += other.compressed_bytes;
        self.uncompressed_bytes += other.uncompressed_bytes;
    }
}

impl ColumnStatistics {
    /// Combines the statistics of the same column from two sets of row groups.
    pub fn merge(&mut self, other: &ColumnStatistics) {
        self.null_count = self.null_count.zip(other.null_count).map(|(a, b)| a + b);
        if !other.has_values {
            return;
        }
        if !self.has_values {
            self.min = other.min.clone();
            self.max = other.max.clone();
            self.has_values = true;
            return;
        }
        let pick = |a: &Option<StatValue>, b: &Option<StatValue>, smaller: bool| match (a, b) {
            (Some(x), Some(y)) => match x.partial_cmp(y) {
                Some(std::cmp::Ordering::Greater) if smaller => Some(y.clone()),
                Some(std::cmp::Ordering::Less) if !smaller => Some(y.clone()),
                Some(_) => Some(x.clone()),
                None => None,
            },
            _ => None,
        };
        self.min = pick(&self.min, &other.min, true);
        self.max = pick(&self.max, &other.max, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(min: i64, max: i64, nulls: Option<u64>) -> ColumnStatistics {
        ColumnStatistics {
            column: "a".into(),
            min: Some(StatValue::Int(min)),
            max: Some(StatValue::Int(max)),
            null_count: nulls,
            has_values: true,
        }
    }

    #[test]
    fn merge_widens_the_range_and_adds_nulls() {
        let mut a = stats(3, 9, Some(2));
        a.merge(&stats(-1, 4, Some(5)));
        assert_eq!(a.min, Some(StatValue::Int(-1)));
        assert_eq!(a.max, Some(StatValue::Int(9)));
        assert_eq!(a.null_count, Some(7));
        a.merge(&stats(0, 1, None));
        assert_eq!(a.null_count, None);
        assert_eq!(
            (a.min.clone(), a.max.clone()),
            (Some(StatValue::Int(-1)), Some(StatValue::Int(9)))
        );
    }

    #[test]
    fn merge_skips_all_null_sides_and_drops_unknown_ends() {
        let all_null = ColumnStatistics {
            column: "a".into(),
            min: None,
            max: None,
            null_count: Some(4),
            has_values: false,
        };
        let mut a = all_null.clone();
        a.merge(&stats(2, 5, Some(0)));
        assert!(a.has_values);
        assert_eq!(
            (a.min.clone(), a.max.clone()),
            (Some(StatValue::Int(2)), Some(StatValue::Int(5)))
        );
        assert_eq!(a.null_count, Some(4));
        a.merge(&all_null);
        assert_eq!(a.max, Some(StatValue::Int(5)));
        assert_eq!(a.null_count, Some(8));
        let mut unknown = stats(0, 0, Some(0));
        unknown.max = None;
        a.merge(&unknown);
        assert_eq!(a.min, Some(StatValue::Int(0)));
        assert_eq!(a.max, None);
        // A NaN has no order: that end becomes unknown, the other stays.
        let float = |min: f64, max: f64| ColumnStatistics {
            min: Some(StatValue::Float(min)),
            max: Some(StatValue::Float(max)),
            ..stats(0, 0, Some(0))
        };
        let mut f = float(1.0, 2.0);
        f.merge(&float(f64::NAN, 3.0));
        assert_eq!(f.min, None);
        assert_eq!(f.max, Some(StatValue::Float(3.0)));
    }
}
