//! Matrices and vectors: `\begin{pmatrix} ... \end{pmatrix}` and its kin (`bmatrix`, `Bmatrix`,
//! `vmatrix`, `Vmatrix`, `matrix`, `array`), read into rows of entry strings so that entries
//! compare mathematically (`\frac{1}{5}`, `1/5` and `0.2` are one entry).

use alloc::string::String;
use alloc::vec::Vec;

use super::extract::brace_group;

/// The environments read as matrices, and whether they are determinants (`vmatrix`).
const ENVIRONMENTS: &[(&str, bool)] = &[
    ("pmatrix", false),
    ("bmatrix", false),
    ("Bmatrix", false),
    ("smallmatrix", false),
    ("matrix", false),
    ("array", false),
    ("vmatrix", true),
    ("Vmatrix", true),
];

/// A matrix: determinant bars or not, and its rows of entries (LaTeX text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// Written with bars (`vmatrix`, `Vmatrix`): a determinant, not a matrix.
    pub bars: bool,
    /// Rows of entries.
    pub rows: Vec<Vec<String>>,
}

impl Matrix {
    /// The entries of a single row or column, in order; `None` for a wider matrix.
    pub fn vector(&self) -> Option<Vec<&str>> {
        if self.rows.len() == 1 {
            return self.rows.first().map(|r| r.iter().map(String::as_str).collect());
        }
        self.rows
            .iter()
            .map(|r| match r.as_slice() {
                [one] => Some(one.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Strips `\left(`/`\right)`-style outer brackets written around an environment.
fn strip_outer(s: &str) -> &str {
    let t = s.trim();
    for (open, close) in [("\\left(", "\\right)"), ("\\left[", "\\right]"), ("(", ")"), ("[", "]")] {
        if let Some(inner) = t.strip_prefix(open).and_then(|r| r.strip_suffix(close))
            && inner.trim_start().starts_with("\\begin")
        {
            return inner.trim();
        }
    }
    t
}

/// Reads a whole answer that is one matrix environment; `None` for anything else.
pub fn parse_matrix(answer: &str) -> Option<Matrix> {
    let s = strip_outer(answer);
    let rest = s.strip_prefix("\\begin")?.trim_start();
    let env = brace_group(rest, 0)?;
    let &(_, bars) = ENVIRONMENTS.iter().find(|(name, _)| *name == env)?;
    let mut body = rest.get(env.len() + 2..)?;
    if env == "array" {
        let spec = brace_group(body.trim_start(), 0)?;
        body = body.trim_start().get(spec.len() + 2..)?;
    }
    let end = alloc::format!("\\end{{{env}}}");
    let body = body.trim_end().strip_suffix(end.as_str())?;
    if body.contains("\\begin") {
        return None;
    }
    let mut rows: Vec<Vec<String>> = body
        .split("\\\\")
        .map(|row| row.split('&').map(|e| String::from(e.trim())).collect::<Vec<_>>())
        .collect();
    while rows.last().is_some_and(|r| r.iter().all(String::is_empty)) {
        rows.pop();
    }
    let width = rows.first()?.len();
    let well_formed = rows.iter().all(|r| r.len() == width && r.iter().all(|e| !e.is_empty()));
    well_formed.then_some(Matrix { bars, rows })
}

/// True if two matrices have the same kind and shape and `entry_equal` holds entry by entry.
pub fn matrices_equal(a: &Matrix, b: &Matrix, mut entry_equal: impl FnMut(&str, &str) -> bool) -> bool {
    a.bars == b.bars
        && a.rows.len() == b.rows.len()
        && a.rows
            .iter()
            .zip(&b.rows)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(e, f)| entry_equal(e, f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environments() {
        let m = parse_matrix("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}").unwrap();
        assert_eq!(m.rows.len(), 3);
        assert_eq!(m.vector(), Some(alloc::vec!["-1/3", "2/3", "5/3"]));
        let m = parse_matrix("\\begin{bmatrix} 1 & 0 \\\\ 0 & 1 \\\\ \\end{bmatrix}").unwrap();
        assert_eq!(m.rows, alloc::vec![alloc::vec!["1", "0"], alloc::vec!["0", "1"]]);
        assert_eq!(m.vector(), None);
        assert!(parse_matrix("\\begin{vmatrix} 1 & 2 \\\\ 3 & 4 \\end{vmatrix}").unwrap().bars);
        assert!(parse_matrix("\\left(\\begin{matrix} 1 \\\\ 2 \\end{matrix}\\right)").is_some());
        assert!(parse_matrix("\\begin{array}{cc} 1 & 2 \\end{array}").is_some());
    }

    #[test]
    fn malformed_is_none() {
        assert!(parse_matrix("\\begin{pmatrix} 1 & 2 \\\\ 3 \\end{pmatrix}").is_none());
        assert!(parse_matrix("\\begin{pmatrix} 1 \\end{bmatrix}").is_none());
        assert!(parse_matrix("\\begin{align} 1 \\end{align}").is_none());
        assert!(parse_matrix("(1, 2)").is_none());
    }
}
