//! Rule conditions: `<signal> <operator> <literal>`, the seed's strings.

use std::fmt;
use std::sync::Arc;

use crate::signal::{SignalValue, Signals};

/// The longest condition accepted, in bytes.
pub const MAX_CONDITION_BYTES: usize = 256;
/// The longest signal name accepted, in bytes.
pub const MAX_SIGNAL_NAME_BYTES: usize = 128;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }

    fn ordering(self) -> bool {
        matches!(self, Self::Gt | Self::Ge | Self::Lt | Self::Le)
    }
}

/// The value a condition compares against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// A finite number.
    Number(f64),
    /// `true` or `false`.
    Flag(bool),
}

/// A parsed rule condition: one comparison of a named signal with a
/// literal, such as `workflow_failure_rate > 0.05`, `database_health ==
/// false` or `memory_usage >= 0.8`.
///
/// Numbers compare with `>`, `>=`, `<`, `<=`, `==`, `!=`; flags with `==`
/// and `!=` only. A signal nobody reported, or of the other type, makes
/// the condition *not met* (like a Prometheus series that is absent).
///
/// ```
/// use kailash_monitoring::alert::Condition;
/// use kailash_monitoring::signal::Signals;
///
/// let high = Condition::parse("memory_usage > 0.8").unwrap();
/// let mut signals = Signals::default();
/// assert!(!high.holds(&signals), "no signal: not met");
/// signals.number("memory_usage", 0.93);
/// assert!(high.holds(&signals));
/// assert_eq!(high.to_string(), "memory_usage > 0.8");
///
/// let down = Condition::parse("database_health == false").unwrap();
/// signals.flag("database_health", false);
/// assert!(down.holds(&signals));
///
/// assert!(Condition::parse("memory_usage > high").is_err());
/// assert!(Condition::parse("database_health > false").is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    signal: Arc<str>,
    op: Op,
    literal: Literal,
}

/// Why a condition was refused; `column` is 1-based, in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConditionError {
    /// Where the problem starts.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

fn err(column: usize, message: impl Into<String>) -> ConditionError {
    ConditionError {
        column,
        message: message.into(),
    }
}

impl Condition {
    /// Parses `<signal> <op> <literal>`; whitespace around the parts is
    /// free. Signal names are `[A-Za-z_][A-Za-z0-9_.:-]*`.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        if text.len() > MAX_CONDITION_BYTES {
            return Err(err(1, format!("longer than {MAX_CONDITION_BYTES} bytes")));
        }
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        let skip = |at: &mut usize| {
            while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
                *at += 1;
            }
        };
        skip(&mut at);
        let start = at;
        match chars.get(at) {
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {}
            Some(_) => return Err(err(at + 1, "expected a signal name")),
            None => return Err(err(at + 1, "empty condition")),
        }
        while chars
            .get(at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
        {
            at += 1;
        }
        let signal: String = chars[start..at].iter().collect();
        if signal.len() > MAX_SIGNAL_NAME_BYTES {
            return Err(err(
                start + 1,
                format!("signal name longer than {MAX_SIGNAL_NAME_BYTES} bytes"),
            ));
        }
        skip(&mut at);
        let op_at = at;
        let two = (chars.get(at).copied(), chars.get(at + 1).copied());
        let (op, len) = match two {
            (Some('>'), Some('=')) => (Op::Ge, 2),
            (Some('<'), Some('=')) => (Op::Le, 2),
            (Some('='), Some('=')) => (Op::Eq, 2),
            (Some('!'), Some('=')) => (Op::Ne, 2),
            (Some('>'), _) => (Op::Gt, 1),
            (Some('<'), _) => (Op::Lt, 1),
            (Some('='), _) => return Err(err(op_at + 1, "`=` is not an operator: use `==`")),
            (None, _) => return Err(err(op_at + 1, "expected an operator after the signal")),
            _ => {
                return Err(err(
                    op_at + 1,
                    "expected one of `>`, `>=`, `<`, `<=`, `==`, `!=`",
                ));
            }
        };
        at += len;
        skip(&mut at);
        let lit_at = at;
        let mut end = chars.len();
        while end > lit_at && chars[end - 1].is_whitespace() {
            end -= 1;
        }
        let word: String = chars[lit_at..end].iter().collect();
        if word.is_empty() {
            return Err(err(lit_at + 1, "expected a number, `true` or `false`"));
        }
        let literal = match word.as_str() {
            "true" => Literal::Flag(true),
            "false" => Literal::Flag(false),
            _ => {
                let valid = word
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
                match word.parse::<f64>() {
                    Ok(n) if valid && n.is_finite() => Literal::Number(n),
                    _ => {
                        return Err(err(
                            lit_at + 1,
                            format!("`{word}` is not a number, `true` or `false`"),
                        ));
                    }
                }
            }
        };
        if matches!(literal, Literal::Flag(_)) && op.ordering() {
            return Err(err(
                op_at + 1,
                format!(
                    "`{}` compares numbers; a flag takes `==` or `!=`",
                    op.as_str()
                ),
            ));
        }
        Ok(Self {
            signal: signal.into(),
            op,
            literal,
        })
    }

    /// The signal the condition reads.
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// The operator.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The literal compared against.
    pub fn literal(&self) -> Literal {
        self.literal
    }

    /// Whether the condition holds over `signals` (`false` when the signal
    /// is absent or of the other type).
    pub fn holds(&self, signals: &Signals) -> bool {
        match (signals.get(&self.signal), self.literal) {
            (Some(SignalValue::Number(v)), Literal::Number(n)) => match self.op {
                Op::Gt => v > n,
                Op::Ge => v >= n,
                Op::Lt => v < n,
                Op::Le => v <= n,
                Op::Eq => v == n,
                Op::Ne => v != n,
            },
            (Some(SignalValue::Flag(v)), Literal::Flag(b)) => match self.op {
                Op::Eq => v == b,
                Op::Ne => v != b,
                _ => false,
            },
            _ => false,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.signal, self.op.as_str())?;
        match self.literal {
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Flag(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_conditions_parse_and_evaluate() {
        let mut s = Signals::default();
        s.number("workflow_failure_rate", 0.06);
        s.flag("database_health", true);
        s.number("memory_usage", 0.8);
        for (text, holds) in [
            ("workflow_failure_rate > 0.05", true),
            ("workflow_failure_rate>0.05", true),
            ("  workflow_failure_rate <= 0.05  ", false),
            ("database_health == false", false),
            ("database_health != false", true),
            ("memory_usage > 0.8", false),
            ("memory_usage >= 0.8", true),
            ("memory_usage == 8e-1", true),
            ("memory_usage < -1", false),
            ("absent_signal == false", false),
            ("database_health == 1", false),
            ("memory_usage == true", false),
        ] {
            let c = Condition::parse(text).unwrap();
            assert_eq!(c.holds(&s), holds, "{text}");
            // Display round-trips.
            assert_eq!(Condition::parse(&c.to_string()).unwrap(), c);
        }
    }

    #[test]
    fn bad_conditions_name_the_column() {
        for (text, column, needle) in [
            ("", 1, "empty"),
            ("   ", 4, "empty"),
            ("1abc > 2", 1, "signal name"),
            ("memory_usage", 13, "expected an operator"),
            ("memory_usage = 0.8", 14, "use `==`"),
            ("memory_usage ~ 0.8", 14, "expected one of"),
            ("memory_usage >", 15, "expected a number"),
            ("memory_usage > high", 16, "not a number"),
            ("memory_usage > 0.8 and x", 16, "not a number"),
            ("memory_usage > nan", 16, "not a number"),
            ("memory_usage > inf", 16, "not a number"),
            ("memory_usage > 1e999", 16, "not a number"),
            ("database_health > false", 17, "a flag takes"),
        ] {
            let e = Condition::parse(text).unwrap_err();
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
        let long = format!("{} > 1", "a".repeat(MAX_CONDITION_BYTES));
        assert!(Condition::parse(&long).is_err());
        let name = format!("{} > 1", "a".repeat(MAX_SIGNAL_NAME_BYTES + 1));
        assert!(
            Condition::parse(&name)
                .unwrap_err()
                .message
                .contains("signal name")
        );
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in [
            "\u{0}",
            "a\u{301} > 1",
            "é > 1",
            "a >= ",
            "a !",
            "a <=> 1",
            "a > 1 1",
        ] {
            let _ = Condition::parse(text);
        }
    }
}
