//! Calibration and evaluation input: CSV (header optional, the target column by name or index)
//! and NumPy `.npy` arrays (little-endian f4/f8/i1/u1/i4/i8, C order, rows along axis 0).

use std::path::Path;

use crate::error::{Error, Result};

/// Which column of a CSV (or of a 2-D `.npy`) holds the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetColumn {
    /// A header name.
    Name(String),
    /// A 0-based column index.
    Index(usize),
}

impl TargetColumn {
    /// A column given on the command line: digits are an index, anything else a name.
    pub fn parse(s: &str) -> Self {
        s.parse().map_or_else(|_| Self::Name(s.to_string()), Self::Index)
    }
}

/// Header names taken as the target when none is given and there is one column too many.
const TARGET_NAMES: [&str; 5] = ["target", "label", "y", "class", "labels"];

/// Rows of float features, with the targets when the file has them.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Row-major features, `rows() × dim`.
    pub features: Vec<f32>,
    /// Features per row.
    pub dim: usize,
    /// The target of every row, as written in the file.
    pub targets: Option<Vec<String>>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.features.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i` (empty if out of range).
    pub fn row(&self, i: usize) -> &[f32] {
        self.features.get(i * self.dim..(i + 1) * self.dim).unwrap_or(&[])
    }

    /// `(min, max)` over all features.
    pub fn range(&self) -> (f32, f32) {
        self.features.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    }
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Input { path: path.display().to_string(), msg: msg.into() }
}

/// Reads `path` (`.npy` by extension, CSV otherwise) for a model of `dim` features per row.
pub fn load(path: &Path, dim: usize, target: Option<&TargetColumn>) -> Result<Table> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (cells, width, header) = if path.extension().is_some_and(|e| e == "npy") {
        let (cells, width) = parse_npy(path, &raw)?;
        (cells.into_iter().map(Cell::Num).collect(), width, None)
    } else {
        let text = String::from_utf8(raw).map_err(|_| bad(path, "not UTF-8"))?;
        parse_csv(path, &text)?
    };
    split_target(path, cells, width, header.as_deref(), dim, target)
}

/// A parsed cell: a number, or text (only allowed in the target column).
enum Cell {
    Num(f64),
    Text(String),
}

fn parse_csv(path: &Path, text: &str) -> Result<(Vec<Cell>, usize, Option<Vec<String>>)> {
    let rows: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let split = |l: &str| l.split(',').map(|f| f.trim().trim_matches('"').to_string()).collect::<Vec<_>>();
    let first = rows.first().map(|(_, l)| split(l)).unwrap_or_default();
    let second = rows.get(1).map(|(_, l)| split(l));
    let is_num = |f: &String| f.parse::<f64>().is_ok();
    // A header: every field is text, or a column is text here and a number on the next line.
    let header = (first.iter().all(|f| !is_num(f))
        || second.as_ref().is_some_and(|s| first.iter().zip(s).any(|(a, b)| !is_num(a) && is_num(b))))
    .then_some(first);
    let lines = rows.into_iter().skip(usize::from(header.is_some()));
    let mut width = header.as_ref().map(Vec::len);
    let mut cells = Vec::new();
    for (n, line) in lines {
        let fields = split(line);
        let w = *width.get_or_insert(fields.len());
        if fields.len() != w {
            return Err(bad(path, format!("line {}: {} columns, expected {w}", n + 1, fields.len())));
        }
        cells.extend(fields.into_iter().map(|f| f.parse::<f64>().map_or(Cell::Text(f), Cell::Num)));
    }
    let width = width.ok_or_else(|| bad(path, "no rows"))?;
    Ok((cells, width, header))
}

fn split_target(
    path: &Path,
    cells: Vec<Cell>,
    width: usize,
    header: Option<&[String]>,
    dim: usize,
    target: Option<&TargetColumn>,
) -> Result<Table> {
    let col = match target {
        Some(TargetColumn::Index(i)) if *i < width => Some(*i),
        Some(TargetColumn::Index(i)) => {
            return Err(bad(path, format!("target column {i} but the file has {width} columns")));
        }
        // A named target absent from a file with exactly the features is fine (calibration rows).
        Some(TargetColumn::Name(name)) => match header.and_then(|h| h.iter().position(|c| c == name)) {
            Some(i) => Some(i),
            None if width == dim => None,
            None => {
                let cols = header.map_or_else(|| "no header".to_string(), |h| format!("columns are {}", h.join(",")));
                return Err(bad(path, format!("no column named {name:?} ({cols})")));
            }
        },
        None if width == dim => None,
        None if width == dim + 1 => Some(
            header
                .and_then(|h| h.iter().position(|c| TARGET_NAMES.contains(&c.to_ascii_lowercase().as_str())))
                .unwrap_or(dim),
        ),
        None => {
            return Err(bad(
                path,
                format!("{width} columns per row, but the model takes {dim} features (plus an optional target)"),
            ));
        }
    };
    let features_per_row = width - usize::from(col.is_some());
    if features_per_row != dim {
        return Err(bad(path, format!("{features_per_row} feature columns, but the model takes {dim}")));
    }
    let mut t = Table { features: Vec::with_capacity(cells.len()), dim, targets: col.map(|_| Vec::new()) };
    for (i, cell) in cells.into_iter().enumerate() {
        let (row, c) = (i / width, i % width);
        if Some(c) == col {
            let s = match cell {
                Cell::Num(v) => format_num(v),
                Cell::Text(s) => s,
            };
            if let Some(ts) = t.targets.as_mut() {
                ts.push(s);
            }
            continue;
        }
        match cell {
            Cell::Num(v) if v.is_finite() => t.features.push(v as f32),
            Cell::Num(v) => return Err(bad(path, format!("row {}: feature {v} is not finite", row + 1))),
            Cell::Text(s) => {
                return Err(bad(path, format!("row {}, column {}: {s:?} is not a number", row + 1, c + 1)));
            }
        }
    }
    if t.rows() == 0 {
        return Err(bad(path, "no rows"));
    }
    Ok(t)
}

/// A number as a target string: integers without a fraction, so `3.0` and `3` compare equal.
pub fn format_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// Parses a `.npy` file: `(values, values per row)`.
fn parse_npy(path: &Path, raw: &[u8]) -> Result<(Vec<f64>, usize)> {
    if raw.get(..6) != Some(b"\x93NUMPY".as_slice()) {
        return Err(bad(path, "not a .npy file (bad magic)"));
    }
    let major = raw.get(6).copied().unwrap_or(0);
    let (hlen, start) = match major {
        1 => (raw.get(8..10).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize), 10),
        2 | 3 => (raw.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize), 12),
        v => return Err(bad(path, format!(".npy version {v} is not supported"))),
    };
    let hlen = hlen.ok_or_else(|| bad(path, "truncated .npy header"))?;
    let header = raw.get(start..start + hlen).ok_or_else(|| bad(path, "truncated .npy header"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(if let Some(r) = rest.strip_prefix('(') {
            r[..r.find(')')?].to_string()
        } else {
            rest.split(',').next()?.trim().trim_matches('\'').to_string()
        })
    };
    let descr = field("descr").ok_or_else(|| bad(path, ".npy header has no descr"))?;
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad(path, "Fortran-ordered .npy arrays are not supported; save with C order"));
    }
    let shape: Vec<usize> = field("shape")
        .ok_or_else(|| bad(path, ".npy header has no shape"))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(path, format!("bad .npy dimension {s:?}"))))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let width = if shape.len() <= 1 { 1 } else { shape[1..].iter().product() };
    let data = &raw[start + hlen..];
    let (size, read): (usize, fn(&[u8]) -> f64) = match descr.as_str() {
        "<f4" => (4, |b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "<f8" => (8, |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
        "|i1" => (1, |b| f64::from(b[0] as i8)),
        "|u1" => (1, |b| f64::from(b[0])),
        "<i4" => (4, |b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "<i8" => (8, |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64),
        d => {
            return Err(bad(
                path,
                format!(".npy dtype {d} is not supported (use float32, float64, int8, uint8, int32 or int64)"),
            ));
        }
    };
    if data.len() != n * size {
        return Err(bad(path, format!(".npy data has {} bytes, shape {shape:?} needs {}", data.len(), n * size)));
    }
    Ok((data.chunks_exact(size).map(read).collect(), width))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fixpoint-onnx-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn csv_with_and_without_header() {
        let p = tmp("a.csv", b"a,b,target\n1,2,0\n3,4.5,1\n");
        let t = load(&p, 2, None).unwrap();
        assert_eq!((t.rows(), t.features.clone()), (2, vec![1.0, 2.0, 3.0, 4.5]));
        assert_eq!(t.targets.unwrap(), vec!["0", "1"]);
        let t = load(&p, 2, Some(&TargetColumn::Name("a".into()))).unwrap();
        assert_eq!(t.features, vec![2.0, 0.0, 4.5, 1.0]);
        let p = tmp("b.csv", b"1,2\n3,4\n");
        assert!(load(&p, 2, None).unwrap().targets.is_none());
        let t = load(&p, 1, Some(&TargetColumn::Index(0))).unwrap();
        assert_eq!((t.features, t.targets.unwrap()), (vec![2.0, 4.0], vec!["1".to_string(), "3".to_string()]));
    }

    #[test]
    fn csv_mismatches_are_typed_errors() {
        let p = tmp("c.csv", b"1,2,3\n4,5\n");
        assert!(matches!(load(&p, 2, None), Err(Error::Input { .. })));
        let p = tmp("d.csv", b"1,2,3,4\n");
        assert!(matches!(load(&p, 2, None), Err(Error::Input { .. })));
        assert!(matches!(load(&p, 3, Some(&TargetColumn::Name("t".into()))), Err(Error::Input { .. })));
        assert!(load(&p, 4, Some(&TargetColumn::Name("t".into()))).unwrap().targets.is_none());
        assert!(matches!(load(&p, 3, Some(&TargetColumn::Index(9))), Err(Error::Input { .. })));
        let p = tmp("e.csv", b"1,x,3\n");
        assert!(matches!(load(&p, 3, None), Err(Error::Input { .. })));
    }

    #[test]
    fn npy_float32_and_int64() {
        let mut f = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let h = format!("{h:<117}\n");
        f.extend((h.len() as u16).to_le_bytes());
        f.extend(h.as_bytes());
        for v in [1f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            f.extend(v.to_le_bytes());
        }
        let p = tmp("x.npy", &f);
        let t = load(&p, 3, None).unwrap();
        assert_eq!((t.rows(), t.row(1).to_vec()), (2, vec![4.0, 5.0, 6.5]));
        assert!(matches!(load(&p, 4, None), Err(Error::Input { .. })));
        let t = load(&p, 2, Some(&TargetColumn::Index(2))).unwrap();
        assert_eq!(t.targets.unwrap(), vec!["3", "6.5"]);
    }
}
