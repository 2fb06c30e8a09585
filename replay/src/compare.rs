//! Outputs compared as values: decimals by value ("1.50" is "1.5"), every
//! field, in order.

use core::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use engine::Output;

use crate::jsonl::{output_line, ErrorKind, JsonlError, OutputReader};

/// The first difference between expected and actual outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputDiff {
    /// Position (0-based) of the first output that differs.
    pub index: usize,
    /// The expected output there (`None`: more outputs than expected).
    pub expected: Option<Output>,
    /// The actual output there (`None`: fewer outputs than expected).
    pub actual: Option<Output>,
    pub expected_count: usize,
    pub actual_count: usize,
}

impl fmt::Display for OutputDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |output: &Option<Output>| match output {
            Some(o) => output_line(o, None).trim_end().to_owned(),
            None => "(nothing)".to_owned(),
        };
        write!(
            f,
            "outputs differ at #{} ({} expected, {} produced)\n  expected: {}\n    actual: {}",
            self.index + 1,
            self.expected_count,
            self.actual_count,
            line(&self.expected),
            line(&self.actual),
        )
    }
}

impl std::error::Error for OutputDiff {}

/// Compares outputs in order, as values.
///
/// # Errors
/// The first difference.
pub fn compare_outputs(expected: &[Output], actual: &[Output]) -> Result<(), Box<OutputDiff>> {
    let count = expected.len().max(actual.len());
    match (0..count).find(|&i| expected.get(i) != actual.get(i)) {
        None => Ok(()),
        Some(index) => Err(Box::new(OutputDiff {
            index,
            expected: expected.get(index).cloned(),
            actual: actual.get(index).cloned(),
            expected_count: expected.len(),
            actual_count: actual.len(),
        })),
    }
}

/// Reads every engine output of a JSONL output file.
///
/// # Errors
/// The file cannot be opened or read, or a line is not valid.
pub fn read_outputs(path: &Path) -> Result<Vec<Output>, JsonlError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| JsonlError::new(&name, 0, ErrorKind::Io(e)))?;
    OutputReader::new(BufReader::new(file), name).collect()
}

/// Reads every engine output of JSONL text (tests).
///
/// # Errors
/// A line is not valid.
pub fn parse_outputs(text: &str, name: &str) -> Result<Vec<Output>, JsonlError> {
    OutputReader::new(text.as_bytes(), name).collect()
}
