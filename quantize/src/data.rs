//! The public data sets committed under `quantize/data/` (sources and licences in its README):
//! loading and a seeded train/test split.

use std::io::Read;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// A labelled data set held as f32 rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major features, `len() × dim`.
    pub features: Vec<f32>,
    /// One class index per row.
    pub labels: Vec<u32>,
    /// Features per row.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Row `i`'s features (empty if out of range).
    pub fn row(&self, i: usize) -> &[f32] {
        self.features.get(i * self.dim..(i + 1) * self.dim).unwrap_or(&[])
    }

    /// The rows at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            features: idx.iter().flat_map(|&i| self.row(i).iter().copied()).collect(),
            labels: idx.iter().filter_map(|&i| self.labels.get(i).copied()).collect(),
            dim: self.dim,
            classes: self.classes,
        }
    }

    /// A seeded shuffle split: `(train, test)` with `test_percent`% of rows in the test set.
    pub fn split(&self, test_percent: usize, seed: u64) -> (Dataset, Dataset) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n_test = self.len() * test_percent.min(100) / 100;
        let (test, train) = idx.split_at(n_test);
        (self.subset(train), self.subset(test))
    }
}

/// The directory holding the committed data sets.
pub fn data_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("data")
}

fn bad(path: &Path, line: usize, msg: impl std::fmt::Display) -> Error {
    Error::Data { path: path.display().to_string(), msg: format!("line {line}: {msg}") }
}

fn read_text(path: &Path) -> Result<String> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut s).map_err(|e| Error::io(path, e))?;
        Ok(s)
    } else {
        String::from_utf8(raw).map_err(|_| Error::Data { path: path.display().to_string(), msg: "not UTF-8".into() })
    }
}

/// Parses CSV rows of `dim` features and a trailing integer label below `classes`.
fn parse_rows(path: &Path, text: &str, skip: usize, dim: usize, classes: usize) -> Result<Dataset> {
    let mut ds = Dataset { features: Vec::new(), labels: Vec::new(), dim, classes };
    for (n, line) in text.lines().enumerate().skip(skip).filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != dim + 1 {
            return Err(bad(path, n + 1, format!("{} fields, expected {}", fields.len(), dim + 1)));
        }
        for f in &fields[..dim] {
            let v: f32 = f.parse().map_err(|_| bad(path, n + 1, format!("feature {f:?} is not a number")))?;
            if !v.is_finite() {
                return Err(bad(path, n + 1, "non-finite feature"));
            }
            ds.features.push(v);
        }
        let label: u32 = fields[dim].parse().map_err(|_| bad(path, n + 1, "label is not an integer"))?;
        if label as usize >= classes {
            return Err(bad(path, n + 1, format!("label {label} outside 0..{classes}")));
        }
        ds.labels.push(label);
    }
    Ok(ds)
}

/// The UCI optical digits as shipped by scikit-learn: 1,797 images of 8×8 pixels valued 0..=16.
pub fn load_digits(path: &Path) -> Result<Dataset> {
    let ds = parse_rows(path, &read_text(path)?, 0, 64, 10)?;
    if let Some(v) = ds.features.iter().find(|&&v| !(0.0..=16.0).contains(&v) || v.fract() != 0.0) {
        return Err(Error::Data {
            path: path.display().to_string(),
            msg: format!("pixel {v} is not an integer in 0..=16"),
        });
    }
    Ok(ds)
}

/// The Wisconsin diagnostic breast cancer table: 569 rows, 30 features, 0 = malignant, 1 = benign.
pub fn load_cancer(path: &Path) -> Result<Dataset> {
    let text = read_text(path)?;
    let header = text.lines().next().unwrap_or_default();
    if !header.starts_with("569,30,") {
        return Err(bad(path, 1, format!("unexpected header {header:?}")));
    }
    parse_rows(path, &text, 1, 30, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_data_sets_load() {
        let d = load_digits(&data_dir().join("digits.csv.gz")).unwrap();
        assert_eq!((d.len(), d.dim), (1797, 64));
        let c = load_cancer(&data_dir().join("breast_cancer.csv")).unwrap();
        assert_eq!((c.len(), c.dim), (569, 30));
        // 212 malignant, 357 benign, as documented for this data set.
        assert_eq!(c.labels.iter().filter(|&&l| l == 0).count(), 212);
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let d = load_digits(&data_dir().join("digits.csv.gz")).unwrap();
        let (a, b) = d.split(20, 1);
        assert_eq!((a.len(), b.len()), (1438, 359));
        assert_eq!(d.split(20, 1), (a.clone(), b.clone()));
        assert_ne!(d.split(20, 2).1, b);
    }

    #[test]
    fn malformed_rows_are_errors() {
        let p = Path::new("x.csv");
        assert!(parse_rows(p, "1,2,3\n", 0, 3, 2).is_err());
        assert!(parse_rows(p, "1,2,x,0\n", 0, 3, 2).is_err());
        assert!(parse_rows(p, "1,2,3,5\n", 0, 3, 2).is_err());
        assert!(parse_rows(p, "1,2,inf,1\n", 0, 3, 2).is_err());
        assert_eq!(parse_rows(p, "1,2,3,1\n\n", 0, 3, 2).unwrap().len(), 1);
    }
}
