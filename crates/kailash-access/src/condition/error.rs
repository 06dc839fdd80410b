//! Load-time errors.

use std::fmt;

/// What went wrong while loading a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source is longer than [`MAX_SOURCE_LEN`](super::MAX_SOURCE_LEN) bytes.
    TooLong,
    /// Parentheses, `NOT` or lists nest deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
    /// A string literal has no closing quote.
    UnterminatedString,
    /// A character that starts no token, or a bad escape sequence.
    InvalidCharacter,
    /// A token that the grammar does not allow here (or a missing one).
    UnexpectedToken,
    /// A literal that cannot be represented: an integer overflow, a bad
    /// CIDR, an unknown classification label, a bad IP address.
    InvalidLiteral,
    /// An attribute path whose root is not `user`, `data`, `current_time`
    /// or `request`.
    UnknownRoot,
    /// An attribute that the schema does not declare (and whose root is not
    /// open to undeclared attributes).
    UnknownAttribute,
    /// The operand types do not fit the operator (`string >= number`).
    TypeMismatch,
    /// An ordering comparison (`< <= > >=`) on a type with no order.
    NotOrderable,
}

/// A condition failed to load: what, where (byte offset, 1-based line and
/// column in characters) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    kind: ErrorKind,
    offset: usize,
    line: usize,
    column: usize,
    message: String,
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in source.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

impl ConditionError {
    pub(crate) fn new(kind: ErrorKind, source: &str, offset: usize, message: String) -> Self {
        let offset = offset.min(source.len());
        let (line, column) = line_col(source, offset);
        Self {
            kind,
            offset,
            line,
            column,
            message,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Byte offset into the source.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The human-readable message (without the position).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} (byte {}): {}",
            self.line, self.column, self.offset, self.message
        )
    }
}

impl std::error::Error for ConditionError {}
