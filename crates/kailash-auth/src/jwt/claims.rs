//! Token claims and their conversion into a [`Principal`].

use std::collections::BTreeMap;
use std::fmt;

use kailash_core::{AttributeValue, Principal, TenantId};
use serde_json::{Map, Value};

use super::error::VerifyError;

/// The claims of a kailash token: the registered claims plus `tid` (tenant),
/// `roles`, `attrs` and `sid` (server-side session).
#[derive(Clone, PartialEq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject (stable user id).
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: Option<i64>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: Option<i64>,
    /// Token id.
    pub jti: Option<String>,
    /// Tenant.
    pub tid: Option<TenantId>,
    /// Roles.
    pub roles: Vec<String>,
    /// Attributes.
    pub attrs: BTreeMap<String, AttributeValue>,
    /// Session id.
    pub sid: Option<String>,
}

impl fmt::Debug for Claims {
    // jti and sid are bearer-adjacent; keep them out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .field("iat", &self.iat)
            .field("tid", &self.tid)
            .field("roles", &self.roles)
            .field("attrs", &self.attrs)
            .field("sid", &self.sid.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl Claims {
    /// Claims for `sub` issued by `iss` for `aud`, valid from `iat` until `exp`
    /// (seconds since the Unix epoch).
    pub fn new(
        iss: impl Into<String>,
        sub: impl Into<String>,
        aud: impl Into<String>,
        iat: i64,
        exp: i64,
    ) -> Self {
        Self {
            iss: iss.into(),
            sub: sub.into(),
            aud: vec![aud.into()],
            exp,
            nbf: None,
            iat: Some(iat),
            jti: None,
            tid: None,
            roles: Vec::new(),
            attrs: BTreeMap::new(),
            sid: None,
        }
    }

    /// The principal these claims describe.
    pub fn to_principal(&self) -> Principal {
        let mut b = Principal::builder(self.sub.clone()).roles(self.roles.iter().cloned());
        if let Some(t) = &self.tid {
            b = b.tenant(t.clone());
        }
        for (k, v) in &self.attrs {
            b = b.attribute(k.clone(), v.clone());
        }
        if let Some(s) = &self.sid {
            b = b.session_id(s.clone());
        }
        if let Some(j) = &self.jti {
            b = b.token_id(j.clone());
        }
        if let Ok(at) = jiff::Timestamp::from_second(self.exp) {
            b = b.expires_at(at);
        }
        b.build()
    }

    /// The claims as a JSON object (what [`KeySet::issue`](super::KeySet::issue) signs).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("iss".into(), self.iss.clone().into());
        m.insert("sub".into(), self.sub.clone().into());
        m.insert(
            "aud".into(),
            match self.aud.as_slice() {
                [one] => one.clone().into(),
                many => many.to_vec().into(),
            },
        );
        m.insert("exp".into(), self.exp.into());
        if let Some(v) = self.nbf {
            m.insert("nbf".into(), v.into());
        }
        if let Some(v) = self.iat {
            m.insert("iat".into(), v.into());
        }
        if let Some(v) = &self.jti {
            m.insert("jti".into(), v.clone().into());
        }
        if let Some(v) = &self.tid {
            m.insert("tid".into(), v.as_str().into());
        }
        if !self.roles.is_empty() {
            m.insert("roles".into(), self.roles.clone().into());
        }
        if !self.attrs.is_empty() {
            m.insert(
                "attrs".into(),
                serde_json::to_value(&self.attrs).unwrap_or(Value::Null),
            );
        }
        if let Some(v) = &self.sid {
            m.insert("sid".into(), v.clone().into());
        }
        Value::Object(m)
    }

    /// Parses a claims object strictly: types are checked (a string `exp` is
    /// refused), `exp`, `iss`, `aud` and `sub` are required. Time, issuer and
    /// audience values are checked by the verifier, not here.
    pub(crate) fn from_json(m: &Map<String, Value>) -> Result<Self, VerifyError> {
        let exp = num(m, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
        let iss = string(m, "iss")?.ok_or(VerifyError::MissingClaim("iss"))?;
        let aud = match m.get("aud") {
            None => return Err(VerifyError::MissingClaim("aud")),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(VerifyError::InvalidClaim("aud"))?,
            Some(_) => return Err(VerifyError::InvalidClaim("aud")),
        };
        let sub = string(m, "sub")?.ok_or(VerifyError::MissingClaim("sub"))?;
        let tid = match string(m, "tid")? {
            None => None,
            Some(t) => Some(TenantId::new(&t).map_err(|_| VerifyError::InvalidTenant)?),
        };
        let roles = match m.get("roles") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(VerifyError::InvalidClaim("roles"))?,
            Some(_) => return Err(VerifyError::InvalidClaim("roles")),
        };
        let attrs = match m.get("attrs") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v @ Value::Object(_)) => {
                serde_json::from_value(v.clone()).map_err(|_| VerifyError::InvalidClaim("attrs"))?
            }
            Some(_) => return Err(VerifyError::InvalidClaim("attrs")),
        };
        Ok(Self {
            iss,
            sub,
            aud,
            exp,
            nbf: num(m, "nbf")?,
            iat: num(m, "iat")?,
            jti: string(m, "jti")?,
            tid,
            roles,
            attrs,
            sid: string(m, "sid")?,
        })
    }
}

fn num(m: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, VerifyError> {
    match m.get(name) {
        None => Ok(None),
        // NumericDate may be fractional; whole seconds are enough.
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.trunc() as i64)
            })
            .map(Some)
            .ok_or(VerifyError::InvalidClaim(name)),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

fn string(m: &Map<String, Value>, name: &'static str) -> Result<Option<String>, VerifyError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}
