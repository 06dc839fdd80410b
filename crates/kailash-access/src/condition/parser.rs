//! Recursive-descent parser with bounded depth.

use super::ast::{CmpOp, Expr, Lit, Operand};
use super::error::{ConditionError, ErrorKind};
use super::lexer::{Tok, Token, lex};
use super::{MAX_DEPTH, MAX_SOURCE_LEN};

pub(crate) fn parse(src: &str) -> Result<Expr, ConditionError> {
    if src.len() > MAX_SOURCE_LEN {
        return Err(ConditionError::new(
            ErrorKind::TooLong,
            src,
            MAX_SOURCE_LEN,
            format!(
                "condition is {} bytes long; the limit is {MAX_SOURCE_LEN}",
                src.len()
            ),
        ));
    }
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = p.or_expr()?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("end of condition"));
    }
    Ok(expr)
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn is_kw(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

const KEYWORDS: [&str; 7] = ["AND", "OR", "NOT", "IN", "CIDR", "TRUE", "FALSE"];

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(_) => "a string".to_owned(),
        Tok::Int(_) | Tok::Float(_) => "a number".to_owned(),
        Tok::Dot => "`.`".to_owned(),
        Tok::Comma => "`,`".to_owned(),
        Tok::LParen => "`(`".to_owned(),
        Tok::RParen => "`)`".to_owned(),
        Tok::LBracket => "`[`".to_owned(),
        Tok::RBracket => "`]`".to_owned(),
        Tok::Eq => "`==`".to_owned(),
        Tok::Ne => "`!=`".to_owned(),
        Tok::Lt => "`<`".to_owned(),
        Tok::Le => "`<=`".to_owned(),
        Tok::Gt => "`>`".to_owned(),
        Tok::Ge => "`>=`".to_owned(),
        Tok::Eof => "end of condition".to_owned(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.src.len(), |t| t.start)
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn unexpected(&self, expected: &str) -> ConditionError {
        ConditionError::new(
            ErrorKind::UnexpectedToken,
            self.src,
            self.offset(),
            format!("expected {expected}, found {}", describe(self.peek())),
        )
    }

    fn enter(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ConditionError::new(
                ErrorKind::TooDeep,
                self.src,
                self.offset(),
                format!("condition nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and_expr()?];
        while is_kw(self.peek(), "OR") {
            self.bump();
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.not_expr()?];
        while is_kw(self.peek(), "AND") {
            self.bump();
            items.push(self.not_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn not_expr(&mut self) -> Result<Expr, ConditionError> {
        if is_kw(self.peek(), "NOT") {
            self.bump();
            self.enter()?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ConditionError> {
        if self.peek() == &Tok::LParen {
            self.bump();
            self.enter()?;
            let inner = self.or_expr()?;
            if self.peek() != &Tok::RParen {
                return Err(self.unexpected("`)`"));
            }
            self.bump();
            self.depth -= 1;
            return Ok(inner);
        }
        let lhs = self.operand()?;
        let at = self.offset();
        let op = match self.peek() {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            t if is_kw(t, "IN") => CmpOp::In,
            _ => return Ok(Expr::Truthy(lhs)),
        };
        self.bump();
        let op = if op == CmpOp::In && is_kw(self.peek(), "CIDR") {
            self.bump();
            CmpOp::InCidr
        } else {
            op
        };
        let rhs = self.operand()?;
        if op == CmpOp::InCidr
            && !matches!(
                rhs,
                Operand::Lit {
                    lit: Lit::Str(_) | Lit::List(_),
                    ..
                }
            )
        {
            return Err(ConditionError::new(
                ErrorKind::UnexpectedToken,
                self.src,
                rhs.at(),
                "`IN CIDR` takes a string literal or a list of string literals".to_owned(),
            ));
        }
        Ok(Expr::Cmp { op, lhs, rhs, at })
    }

    fn operand(&mut self) -> Result<Operand, ConditionError> {
        let at = self.offset();
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(Operand::Lit {
                    lit: Lit::Str(s),
                    at,
                })
            }
            Tok::Int(n) => {
                self.bump();
                Ok(Operand::Lit {
                    lit: Lit::Int(n),
                    at,
                })
            }
            Tok::Float(f) => {
                self.bump();
                Ok(Operand::Lit {
                    lit: Lit::Float(f),
                    at,
                })
            }
            Tok::LBracket => {
                self.bump();
                let mut items = Vec::new();
                if self.peek() != &Tok::RBracket {
                    loop {
                        let item_at = self.offset();
                        match self.bump() {
                            Tok::Str(s) => items.push((s, item_at)),
                            _ => {
                                self.pos = self.pos.saturating_sub(1);
                                return Err(
                                    self.unexpected("a string literal (lists hold strings)")
                                );
                            }
                        }
                        match self.peek() {
                            Tok::Comma => {
                                self.bump();
                            }
                            Tok::RBracket => break,
                            _ => return Err(self.unexpected("`,` or `]`")),
                        }
                    }
                }
                self.bump();
                Ok(Operand::Lit {
                    lit: Lit::List(items),
                    at,
                })
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") => {
                self.bump();
                Ok(Operand::Lit {
                    lit: Lit::Bool(w.eq_ignore_ascii_case("true")),
                    at,
                })
            }
            Tok::Word(w) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                self.bump();
                let mut segments = vec![w];
                while self.peek() == &Tok::Dot {
                    self.bump();
                    match self.bump() {
                        Tok::Word(seg) => segments.push(seg),
                        _ => {
                            self.pos = self.pos.saturating_sub(1);
                            return Err(self.unexpected("an attribute name after `.`"));
                        }
                    }
                }
                Ok(Operand::Path { segments, at })
            }
            _ => Err(self.unexpected("an attribute path or a literal")),
        }
    }
}
