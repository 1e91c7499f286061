//! Float vs integer accuracy and agreement on a held-out set.

/// Counts over one evaluation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Rows evaluated.
    pub rows: usize,
    /// Rows the float model classifies correctly.
    pub float_correct: usize,
    /// Rows the integer model classifies correctly.
    pub int_correct: usize,
    /// Rows where both models predict the same class.
    pub agree: usize,
}

impl Report {
    /// Compares predictions with labels.
    pub fn new(float_pred: &[u32], int_pred: &[u32], labels: &[u32]) -> Self {
        let rows = labels.len().min(float_pred.len()).min(int_pred.len());
        let hits = |p: &[u32]| p.iter().zip(labels).filter(|(a, b)| a == b).count();
        let agree = float_pred.iter().zip(int_pred).filter(|(a, b)| a == b).count();
        Self { rows, float_correct: hits(float_pred), int_correct: hits(int_pred), agree }
    }

    fn pct(n: usize, d: usize) -> f64 {
        100.0 * n as f64 / d.max(1) as f64
    }

    /// Float accuracy in percent.
    pub fn float_accuracy(&self) -> f64 {
        Self::pct(self.float_correct, self.rows)
    }

    /// Integer accuracy in percent.
    pub fn int_accuracy(&self) -> f64 {
        Self::pct(self.int_correct, self.rows)
    }

    /// Agreement between the two models in percent.
    pub fn agreement(&self) -> f64 {
        Self::pct(self.agree, self.rows)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "float {:.2}% ({}/{}), integer {:.2}% ({}/{}), agreement {:.2}% ({}/{})",
            self.float_accuracy(),
            self.float_correct,
            self.rows,
            self.int_accuracy(),
            self.int_correct,
            self.rows,
            self.agreement(),
            self.agree,
            self.rows
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let r = Report::new(&[0, 1, 2, 3], &[0, 1, 1, 3], &[0, 1, 1, 2]);
        assert_eq!((r.rows, r.float_correct, r.int_correct, r.agree), (4, 2, 3, 3));
        assert_eq!(r.int_accuracy(), 75.0);
    }
}
