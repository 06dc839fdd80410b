//! Tokens.

use super::error::{ConditionError, ErrorKind};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or keyword (keywords are recognised by the parser).
    Word(String),
    Str(String),
    Int(i64),
    Float(f64),
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ConditionError> {
    let bytes = src.as_bytes();
    let err = |kind, at: usize, msg: String| ConditionError::new(kind, src, at, msg);
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'[' => {
                i += 1;
                Tok::LBracket
            }
            b']' => {
                i += 1;
                Tok::RBracket
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Eq
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Ne
            }
            b'<' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Le
            }
            b'>' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Ge
            }
            b'<' => {
                i += 1;
                Tok::Lt
            }
            b'>' => {
                i += 1;
                Tok::Gt
            }
            b'\'' | b'"' => {
                let quote = b;
                i += 1;
                let mut s = String::new();
                let mut seg = i;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(err(
                                ErrorKind::UnterminatedString,
                                start,
                                "unterminated string".to_owned(),
                            ));
                        }
                        Some(&c) if c == quote => {
                            s.push_str(src.get(seg..i).unwrap_or_default());
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            s.push_str(src.get(seg..i).unwrap_or_default());
                            match bytes.get(i + 1) {
                                Some(&c @ (b'\'' | b'"' | b'\\')) => s.push(char::from(c)),
                                None => {
                                    return Err(err(
                                        ErrorKind::UnterminatedString,
                                        start,
                                        "unterminated string".to_owned(),
                                    ));
                                }
                                Some(_) => {
                                    return Err(err(
                                        ErrorKind::InvalidCharacter,
                                        i,
                                        "invalid escape (only \\', \\\" and \\\\ are allowed)"
                                            .to_owned(),
                                    ));
                                }
                            }
                            i += 2;
                            seg = i;
                        }
                        Some(_) => i += 1,
                    }
                }
                Tok::Str(s)
            }
            b'0'..=b'9' | b'-' => {
                if b == b'-' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return Err(err(
                        ErrorKind::InvalidCharacter,
                        start,
                        "unexpected character `-`".to_owned(),
                    ));
                }
                i += 1;
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let mut float = false;
                if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    float = true;
                    i += 1;
                    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                }
                let text = src.get(start..i).unwrap_or_default();
                if float {
                    match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Tok::Float(f),
                        _ => {
                            return Err(err(
                                ErrorKind::InvalidLiteral,
                                start,
                                format!("invalid number `{text}`"),
                            ));
                        }
                    }
                } else {
                    match text.parse::<i64>() {
                        Ok(n) => Tok::Int(n),
                        Err(_) => {
                            return Err(err(
                                ErrorKind::InvalidLiteral,
                                start,
                                format!("integer `{text}` out of range"),
                            ));
                        }
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                Tok::Word(src.get(start..i).unwrap_or_default().to_owned())
            }
            _ => {
                let c = src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(err(
                    ErrorKind::InvalidCharacter,
                    start,
                    format!("unexpected character `{}`", c.escape_debug()),
                ));
            }
        };
        out.push(Token { tok, start });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
    });
    Ok(out)
}
