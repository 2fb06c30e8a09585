//! What can be wrong with a JSONL line, and where.

use core::fmt;
use std::io;

/// Why one line is not valid for PROTOCOL.md §5. The line and file are
/// added by the reader ([`JsonlError`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("blank line")]
    BlankLine,
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("line is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// Not JSON at all (syntax error, trailing characters, nesting too deep).
    #[error("not JSON: {message} (column {column})")]
    NotJson { message: String, column: usize },
    /// Valid JSON, but not an object.
    #[error("not a JSON object but {0}")]
    NotObject(&'static str),
    /// The same key twice in one object: which value counts is ambiguous.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    #[error("unknown type {0:?}")]
    UnknownType(String),
    /// An output `type` in an event file, or an input `type` in an output
    /// file.
    #[error("type {found:?} is not allowed here: this reader takes {expected}")]
    WrongDirection {
        found: String,
        expected: &'static str,
    },
    #[error("missing field {0:?}")]
    MissingField(Field),
    #[error("field {field:?}: expected {expected}, found {found}")]
    WrongType {
        field: Field,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field {field:?}: expected an integer, found {found}")]
    NotInteger { field: Field, found: String },
    #[error("field {field:?}: integer {found} is outside 0..={max}")]
    IntegerOutOfRange {
        field: Field,
        found: String,
        max: u64,
    },
    #[error("field {field:?}: {reason}: {found:?}")]
    BadDecimal {
        field: Field,
        reason: &'static str,
        found: String,
    },
    #[error("field {field:?}: {reason}: {found:?}")]
    BadSymbol {
        field: Field,
        reason: &'static str,
        found: String,
    },
    #[error("field {field:?}: unknown value {found:?} (expected one of {expected})")]
    UnknownValue {
        field: Field,
        found: String,
        expected: &'static str,
    },
    #[error("fields \"src_stream\" and \"src_seq\" must appear together")]
    PartialSource,
}

/// A field's name, with the position of the list element it is in
/// (`tiers[1].mmr`, `legs[0].qty`; an empty name is the element itself).
#[derive(Clone, PartialEq, Eq)]
pub struct Field {
    pub list: Option<(&'static str, usize)>,
    pub name: &'static str,
}

impl Field {
    pub const fn top(name: &'static str) -> Field {
        Field { list: None, name }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.list {
            Some((list, index)) if self.name.is_empty() => write!(f, "{list}[{index}]"),
            Some((list, index)) => write!(f, "{list}[{index}].{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

impl fmt::Debug for Field {
    /// Quoted like a string, so messages read `missing field "price"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// What stopped a reader: a line that is not valid for the format, or the
/// input itself failing. Displays as `file:line: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct JsonlError {
    file: String,
    line: u64,
    kind: ErrorKind,
}

/// The two ways reading can stop.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The line is not valid for PROTOCOL.md §5.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Reading the input failed.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

impl JsonlError {
    pub(crate) fn new(file: &str, line: u64, kind: ErrorKind) -> JsonlError {
        JsonlError {
            file: file.to_owned(),
            line,
            kind,
        }
    }

    /// The file name the reader was given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line number of the offending line (0: the file could
    /// not be opened).
    pub fn line(&self) -> u64 {
        self.line
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The line was read but is not valid for the format (as opposed to an
    /// I/O failure).
    pub fn is_format(&self) -> bool {
        matches!(self.kind, ErrorKind::Format(_))
    }

    /// The format error, if that is what this is.
    pub fn format_error(&self) -> Option<&FormatError> {
        match &self.kind {
            ErrorKind::Format(e) => Some(e),
            ErrorKind::Io(_) => None,
        }
    }
}
