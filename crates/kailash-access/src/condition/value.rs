//! The evaluation context and run-time values.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kailash_core::context::RequestContext;
use kailash_core::{AttributeValue, Principal};

use super::ast::CmpOp;

/// The resource's attributes (`data.*`), supplied by the route or handler.
pub type Attributes = BTreeMap<String, AttributeValue>;

/// Everything a condition can read, for one request.
///
/// `user.*` comes only from the verified [`Principal`]; there is no way to
/// put request input there. `data.*` is the route's resource map,
/// `current_time.*` is the timestamp seen in the given time zone and
/// `request.client_ip` comes from [`RequestContext`] (absent with
/// [`Context::new`], which makes any condition reading it deny).
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) data: &'a Attributes,
    now: Timestamp,
    tz: TimeZone,
    /// `current_time.*`, computed on first use: most conditions never read it.
    time: OnceCell<[i64; 6]>,
    pub(crate) client_ip: Option<IpAddr>,
}

impl<'a> Context<'a> {
    /// A context at `now` as seen in `tz`, without a client IP.
    pub fn new(
        principal: &'a Principal,
        data: &'a Attributes,
        now: Timestamp,
        tz: &TimeZone,
    ) -> Self {
        Self {
            principal,
            data,
            now,
            tz: tz.clone(),
            time: OnceCell::new(),
            client_ip: None,
        }
    }

    pub(crate) fn time_field(&self, i: usize) -> Option<i64> {
        let fields = self.time.get_or_init(|| {
            let z = self.tz.to_datetime(self.now);
            [
                i64::from(z.hour()),
                i64::from(z.minute()),
                i64::from(z.weekday().to_monday_zero_offset()),
                i64::from(z.day()),
                i64::from(z.month()),
                i64::from(z.year()),
            ]
        });
        fields.get(i).copied()
    }

    /// A context for a request: the time is when it was received (seen in
    /// `tz`) and `request.client_ip` is its resolved client IP.
    pub fn for_request(
        principal: &'a Principal,
        data: &'a Attributes,
        request: &RequestContext,
        tz: &TimeZone,
    ) -> Self {
        let mut ctx = Self::new(principal, data, request.received_at(), tz);
        ctx.client_ip = Some(request.client_ip());
        ctx
    }
}

/// `current_time` fields, in the order of `Context::time`.
pub(crate) const TIME_FIELDS: [&str; 6] = ["hour", "minute", "weekday", "day", "month", "year"];

/// Where an attribute comes from, resolved at load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttrKind {
    User { head: String, rest: Vec<String> },
    Subject,
    Tenant,
    Roles,
    Data { head: String, rest: Vec<String> },
    Time(usize),
    ClientIp,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attr {
    pub(crate) kind: AttrKind,
    /// The full dotted path, for deny reasons.
    pub(crate) name: String,
    /// Declared as `ip`: a string value is parsed as an address.
    pub(crate) parse_ip: bool,
}

/// A literal after type checking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Class(u8),
    Ip(IpAddr),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    Const(Const),
    Attr(Attr),
}

/// A borrowed run-time value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'c> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'c str),
    Class(u8),
    Ip(IpAddr),
    Strs(&'c [String]),
    List(&'c [AttributeValue]),
    Map,
}

impl Val<'_> {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Bool(_) => "bool",
            Val::Int(_) | Val::Float(_) => "number",
            Val::Str(_) => "string",
            Val::Class(_) => "classification",
            Val::Ip(_) => "ip",
            Val::Strs(_) | Val::List(_) => "list",
            Val::Map => "map",
        }
    }
}

pub(crate) const LABELS: [&str; 4] = ["public", "internal", "confidential", "secret"];

pub(crate) fn label_rank(s: &str) -> Option<u8> {
    LABELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(s))
        .and_then(|i| u8::try_from(i).ok())
}

fn from_attribute(v: &AttributeValue) -> Val<'_> {
    match v {
        AttributeValue::Bool(b) => Val::Bool(*b),
        AttributeValue::Int(n) => Val::Int(*n),
        AttributeValue::Float(f) => Val::Float(*f),
        AttributeValue::String(s) => Val::Str(s),
        AttributeValue::List(l) => Val::List(l),
        AttributeValue::Map(_) => Val::Map,
    }
}

fn walk<'c>(
    map: &'c BTreeMap<String, AttributeValue>,
    head: &str,
    rest: &[String],
) -> Option<&'c AttributeValue> {
    rest.iter().try_fold(map.get(head)?, |v, seg| match v {
        AttributeValue::Map(m) => m.get(seg),
        _ => None,
    })
}

impl Attr {
    pub(crate) fn get<'c>(&self, ctx: &'c Context<'_>) -> Result<Val<'c>, String> {
        let found = match &self.kind {
            AttrKind::User { head, rest } => {
                walk(ctx.principal.attributes(), head, rest).map(from_attribute)
            }
            AttrKind::Data { head, rest } => walk(ctx.data, head, rest).map(from_attribute),
            AttrKind::Subject => Some(Val::Str(ctx.principal.subject())),
            AttrKind::Tenant => ctx.principal.tenant().map(|t| Val::Str(t.as_str())),
            AttrKind::Roles => Some(Val::Strs(ctx.principal.roles())),
            AttrKind::Time(i) => ctx.time_field(*i).map(Val::Int),
            AttrKind::ClientIp => ctx.client_ip.map(Val::Ip),
        };
        match found {
            Some(Val::Str(s)) if self.parse_ip => s
                .parse::<IpAddr>()
                .map(Val::Ip)
                .map_err(|_| format!("attribute `{}` is not an IP address", self.name)),
            Some(v) => Ok(v),
            None => Err(format!("missing attribute `{}`", self.name)),
        }
    }
}

impl Term {
    pub(crate) fn get<'c>(&'c self, ctx: &'c Context<'_>) -> Result<Val<'c>, String> {
        match self {
            Term::Attr(a) => a.get(ctx),
            Term::Const(c) => Ok(match c {
                Const::Bool(b) => Val::Bool(*b),
                Const::Int(n) => Val::Int(*n),
                Const::Float(f) => Val::Float(*f),
                Const::Str(s) => Val::Str(s),
                Const::Class(r) => Val::Class(*r),
                Const::Ip(ip) => Val::Ip(*ip),
                Const::List(l) => Val::Strs(l),
            }),
        }
    }
}

/// How a comparison treats its operands, decided at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Natural,
    Classification,
}

pub(crate) fn rank(v: Val<'_>, loc: &str) -> Result<u8, String> {
    match v {
        Val::Class(r) => Ok(r),
        Val::Str(s) => {
            label_rank(s).ok_or_else(|| format!("at {loc}: `{s}` is not a classification label"))
        }
        other => Err(format!(
            "at {loc}: expected a classification, found {}",
            other.type_name()
        )),
    }
}

pub(crate) fn apply_order(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::In | CmpOp::InCidr => false,
    }
}

pub(crate) fn num_cmp(a: Val<'_>, b: Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Int(x), Val::Float(y)) => (x as f64).partial_cmp(&y),
        (Val::Float(x), Val::Int(y)) => x.partial_cmp(&(y as f64)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(&y),
        _ => None,
    }
}

fn mismatch(loc: &str, op: CmpOp, a: Val<'_>, b: Val<'_>) -> String {
    format!(
        "at {loc}: type mismatch: {} {} {}",
        a.type_name(),
        op.symbol(),
        b.type_name()
    )
}

/// The reference semantics of `==`, `!=`, ordering and `IN`.
pub(crate) fn compare(
    op: CmpOp,
    mode: Mode,
    a: Val<'_>,
    b: Val<'_>,
    loc: &str,
) -> Result<bool, String> {
    if mode == Mode::Classification && op != CmpOp::In {
        let (x, y) = (rank(a, loc)?, rank(b, loc)?);
        return Ok(apply_order(op, x.cmp(&y)));
    }
    match op {
        CmpOp::Eq | CmpOp::Ne => {
            let eq = match (a, b) {
                (Val::Str(x), Val::Str(y)) => x == y,
                (Val::Bool(x), Val::Bool(y)) => x == y,
                (Val::Ip(x), Val::Ip(y)) => x == y,
                (Val::Class(x), Val::Class(y)) => x == y,
                _ => match num_cmp(a, b) {
                    Some(o) => o == Ordering::Equal,
                    None if matches!(a, Val::Int(_) | Val::Float(_))
                        && matches!(b, Val::Int(_) | Val::Float(_)) =>
                    {
                        return Err(format!("at {loc}: comparison with NaN"));
                    }
                    None => return Err(mismatch(loc, op, a, b)),
                },
            };
            Ok(eq == (op == CmpOp::Eq))
        }
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => match num_cmp(a, b) {
            Some(o) => Ok(apply_order(op, o)),
            None => Err(mismatch(loc, op, a, b)),
        },
        CmpOp::In => {
            let needle = match a {
                Val::Class(r) => LABELS.get(usize::from(r)).copied(),
                Val::Str(s) => Some(s),
                _ => None,
            };
            match (needle, b) {
                (Some(s), Val::Strs(list)) => Ok(list.iter().any(|e| e == s)),
                (Some(s), Val::List(list)) => Ok(list.iter().any(|e| e.as_str() == Some(s))),
                (None, Val::List(list)) if matches!(a, Val::Int(_) | Val::Float(_)) => Ok(list
                    .iter()
                    .any(|e| num_cmp(a, from_attribute(e)) == Some(Ordering::Equal))),
                _ => Err(mismatch(loc, op, a, b)),
            }
        }
        CmpOp::InCidr => Err(mismatch(loc, op, a, b)),
    }
}

pub(crate) fn truthy(v: Val<'_>, loc: &str) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(b),
        other => Err(format!(
            "at {loc}: expected a bool, found {}",
            other.type_name()
        )),
    }
}
