//! The corpus: the King James Version's first six books (public domain, data/README.md), one
//! verse per line, split by position into three disjoint slices so that neither calibration nor
//! evaluation text is ever trained on: the first 87 % trains, the next 5 % calibrates, the last
//! 8 % is held out for the report. Each cut is moved to the next line start.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Percent of the corpus (from its start) used for training.
pub const TRAIN_PERCENT: usize = 87;
/// Percent following the training slice used for calibration.
pub const CALIBRATION_PERCENT: usize = 5;

/// The committed corpus file, relative to the crate root.
pub fn default_path() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("data/kjv-pentateuch-joshua.txt")
}

/// The corpus split into training, calibration and held-out bytes.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Training bytes.
    pub train: Vec<u8>,
    /// Calibration bytes (never trained on).
    pub calibration: Vec<u8>,
    /// Held-out bytes for evaluation (never trained or calibrated on).
    pub held_out: Vec<u8>,
}

/// The first line start at or after `at`.
fn line_start(text: &[u8], at: usize) -> usize {
    text.get(at..).and_then(|t| t.iter().position(|&b| b == b'\n')).map_or(text.len(), |p| at + p + 1)
}

impl Corpus {
    /// Reads and splits the corpus at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::split(text, path)
    }

    /// Splits `text` (read from `path`, named in errors).
    pub fn split(text: Vec<u8>, path: &Path) -> Result<Self> {
        let n = text.len();
        let a = line_start(&text, n * TRAIN_PERCENT / 100);
        let b = line_start(&text, n * (TRAIN_PERCENT + CALIBRATION_PERCENT) / 100);
        if a == 0 || b <= a || b >= n {
            return Err(Error::Data { path: path.display().to_string(), msg: "too short to split".into() });
        }
        Ok(Self { train: text[..a].to_vec(), calibration: text[a..b].to_vec(), held_out: text[b..].to_vec() })
    }
}

/// Up to `count` non-overlapping windows of `len` bytes from the start of `text`.
pub fn windows(text: &[u8], len: usize, count: usize) -> Vec<&[u8]> {
    text.chunks_exact(len.max(1)).take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_disjoint_and_cover_the_text() {
        let text: Vec<u8> = (0..1000).flat_map(|i| format!("verse {i}\n").into_bytes()).collect();
        let c = Corpus::split(text.clone(), Path::new("t")).unwrap();
        assert_eq!([c.train.clone(), c.calibration.clone(), c.held_out.clone()].concat(), text);
        for s in [&c.train, &c.calibration] {
            assert_eq!(s.last(), Some(&b'\n'));
        }
        assert!(c.held_out.len() * 100 / text.len() >= 7);
    }
}
