//! `kailash access explain` and `kailash access test`: a config's access
//! policy asked about its own `[[users]]`, once or against a table of
//! cases (like `opa test`), with the gateway's own loader and engine.
//!
//! Both read the config as the gateway does (environment overrides
//! included), compile its `[access]` section, and build each user's
//! principal from `[[users]]` as a login would (subject, tenant, roles,
//! attributes). The input of a case goes through the same bounded reader
//! as `POST /api/access/explain`, so the two accept the same things.

use std::path::Path;

use kailash::access::explain::{ExplainInput, InputError, report};
use kailash::access::permission::Permission;
use kailash::access::spec::AccessSpec;
use kailash::access::{AccessControl, AccessPolicy, Explanation};
use kailash::auth::lockout::normalize_username;
use kailash::auth::users::{StaticUserStore, UserStore};
use kailash::config::{GatewayConfig, locate_access_error};
use kailash::{Principal, TenantId};
use serde_json::{Map, Value};

use crate::Failure;

/// The most cases one file may hold.
const MAX_CASES: usize = 10_000;
/// The largest cases file read, in bytes.
const MAX_CASES_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What `access explain` is asked.
pub(crate) struct ExplainArgs<'a> {
    pub(crate) config: &'a Path,
    pub(crate) user: &'a str,
    pub(crate) permission: &'a str,
    pub(crate) resource: Option<&'a str>,
    pub(crate) time: Option<&'a str>,
    pub(crate) client_ip: Option<&'a str>,
    pub(crate) json: bool,
}

/// The loaded config: its policy (compiled), its spec and its users.
struct Loaded {
    access: AccessControl,
    spec: AccessSpec,
    users: StaticUserStore,
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("cannot start a runtime: {e}")))
}

async fn load(file: &Path) -> Result<Loaded, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::input(format!("cannot read config file {}: {e}", file.display())))?;
    let origin = file.display().to_string();
    let config = GatewayConfig::from_toml_with_env(&text, &origin, std::env::vars())
        .map_err(|e| Failure::input(e.to_string()))?;
    let Some(spec) = config.access.clone() else {
        return Err(Failure::input(format!(
            "{origin}: no [access] section: there is no policy to explain"
        )));
    };
    let policy = AccessPolicy::load(&spec)
        .await
        .map_err(|e| Failure::input(locate_access_error(&text, &origin, &e)))?;
    let users = StaticUserStore::new(config.users.clone())
        .map_err(|e| Failure::input(format!("{origin}: users: {e}")))?;
    Ok(Loaded {
        access: AccessControl::new(policy),
        spec,
        users,
    })
}

impl Loaded {
    /// The principal a login of `username` gives, or `None` for an unknown user.
    async fn principal(&self, username: &str) -> Result<Option<Principal>, Failure> {
        let user = self
            .users
            .find_by_username(&normalize_username(username))
            .await
            .map_err(|e| Failure::input(e.to_string()))?;
        Ok(user.map(|u| u.principal_builder().build()))
    }

    /// Explains `input` (whose `user` is set) for `principal`.
    fn explain(
        &self,
        principal: &Principal,
        input: &ExplainInput,
    ) -> (jiff::Timestamp, Explanation) {
        let mut req = self.access.request(principal, &input.permission, None);
        if let Some(at) = input.time {
            req.now = at;
        }
        req.client_ip = input.client_ip;
        if let Some(resource) = &input.resource {
            req = req.resource(resource);
        }
        (req.now, self.access.explain(&req))
    }
}

/// `kailash access explain`.
pub(crate) fn explain(args: &ExplainArgs<'_>) -> Result<(), Failure> {
    let mut body = Map::new();
    body.insert("user".into(), args.user.into());
    body.insert("permission".into(), args.permission.into());
    if let Some(text) = args.resource {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Failure::input(format!("--resource is not JSON: {e}")))?;
        body.insert("resource".into(), value);
    }
    let mut context = Map::new();
    if let Some(t) = args.time {
        context.insert("time".into(), t.into());
    }
    if let Some(ip) = args.client_ip {
        context.insert("client_ip".into(), ip.into());
    }
    if !context.is_empty() {
        body.insert("context".into(), Value::Object(context));
    }
    let input = ExplainInput::from_json(&Value::Object(body))
        .map_err(|e| Failure::input(option_error(&e)))?;

    let runtime = runtime()?;
    runtime.block_on(async {
        let loaded = load(args.config).await?;
        let Some(principal) = loaded.principal(args.user).await? else {
            return Err(Failure::input(format!(
                "unknown user `{}`: not among the config's [[users]]",
                args.user
            )));
        };
        let (at, explanation) = loaded.explain(&principal, &input);
        if args.json {
            println!(
                "{}",
                report(&principal, &input.permission, at, &explanation)
            );
        } else {
            print!("{}", header(&principal, &input.permission, at));
            print!("{explanation}");
        }
        Ok(())
    })
}

/// An input error in terms of the command's options.
fn option_error(e: &InputError) -> String {
    let option = match e.field.as_str() {
        "user" => "--user".to_owned(),
        "permission" => "--permission".to_owned(),
        "context.time" => "--time".to_owned(),
        "context.client_ip" => "--client-ip".to_owned(),
        f if f == "resource" || f.starts_with("resource.") || f.starts_with("resource[") => {
            format!("--resource (at `{f}`)")
        }
        f => format!("`{f}`"),
    };
    format!("{option}: {}", e.message)
}

fn header(principal: &Principal, permission: &Permission, at: jiff::Timestamp) -> String {
    let tenant = principal.tenant().map_or("none", TenantId::as_str);
    let roles = if principal.roles().is_empty() {
        "none".to_owned()
    } else {
        principal.roles().join(", ")
    };
    format!(
        "user `{}` (tenant {tenant}; roles {roles})\npermission `{permission}` at {at}\n",
        principal.subject()
    )
}

/// One case of a test file, read and checked.
struct Case {
    index: usize,
    name: String,
    user: String,
    input: ExplainInput,
    expect_allow: bool,
    reason: Option<String>,
}

impl Case {
    fn label(&self) -> String {
        format!("case {} (`{}`)", self.index, self.name)
    }
}

/// The keys of a case, and of the file's top level.
const CASE_KEYS: [&str; 8] = [
    "name",
    "user",
    "permission",
    "resource",
    "time",
    "client_ip",
    "expect",
    "reason",
];

fn cases(text: &str, origin: &str) -> Result<Vec<Case>, Failure> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| Failure::input(format!("{origin}: not a valid TOML file: {e}")))?;
    for key in table.keys() {
        if key != "case" && key != "time" {
            return Err(Failure::input(format!(
                "{origin}: unknown top-level key `{key}` (expected `time` and [[case]] tables)"
            )));
        }
    }
    let default_time = match table.get("time") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(toml::Value::Datetime(d)) => Some(d.to_string()),
        Some(_) => {
            return Err(Failure::input(format!(
                "{origin}: `time` must be an RFC 3339 timestamp"
            )));
        }
    };
    let list = match table.get("case") {
        Some(toml::Value::Array(list)) => list,
        Some(_) => {
            return Err(Failure::input(format!(
                "{origin}: `case` must be an array of tables ([[case]])"
            )));
        }
        None => return Err(Failure::input(format!("{origin}: no [[case]] in the file"))),
    };
    if list.len() > MAX_CASES {
        return Err(Failure::input(format!(
            "{origin}: more than {MAX_CASES} cases"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let index = i + 1;
        out.push(case(origin, index, item, default_time.as_deref())?);
    }
    Ok(out)
}

fn case(
    origin: &str,
    index: usize,
    item: &toml::Value,
    default_time: Option<&str>,
) -> Result<Case, Failure> {
    let toml::Value::Table(t) = item else {
        return Err(Failure::input(format!(
            "{origin}: case {index}: not a table"
        )));
    };
    let name = match t.get("name") {
        Some(toml::Value::String(s)) if s.len() <= 200 => s.clone(),
        Some(_) => {
            return Err(Failure::input(format!(
                "{origin}: case {index}: `name` must be a string of at most 200 bytes"
            )));
        }
        None => format!("#{index}"),
    };
    let fail =
        |message: String| Failure::input(format!("{origin}: case {index} (`{name}`): {message}"));
    for key in t.keys() {
        if !CASE_KEYS.contains(&key.as_str()) {
            return Err(fail(format!(
                "unknown key `{key}` (expected one of {})",
                CASE_KEYS.join(", ")
            )));
        }
    }
    let expect_allow = match t.get("expect").and_then(toml::Value::as_str) {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(fail("`expect` must be \"allow\" or \"deny\"".into())),
    };
    let reason = match t.get("reason") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(fail("`reason` must be a string".into())),
    };
    let user = match t.get("user") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => return Err(fail("`user` (a username of the config) is required".into())),
    };
    // The same reader, bounds and field names as POST /api/access/explain.
    let as_json = |key: &str| -> Result<Option<Value>, Failure> { Ok(t.get(key).map(to_json)) };
    let mut body = Map::new();
    body.insert("user".into(), user.clone().into());
    if let Some(p) = as_json("permission")? {
        body.insert("permission".into(), p);
    }
    if let Some(r) = as_json("resource")? {
        body.insert("resource".into(), r);
    }
    let mut context = Map::new();
    match as_json("time")? {
        Some(v) => {
            context.insert("time".into(), v);
        }
        None => {
            if let Some(d) = default_time {
                context.insert("time".into(), d.into());
            }
        }
    }
    if let Some(ip) = as_json("client_ip")? {
        context.insert("client_ip".into(), ip);
    }
    if !context.is_empty() {
        body.insert("context".into(), Value::Object(context));
    }
    let input = ExplainInput::from_json(&Value::Object(body)).map_err(|e| {
        let key = match e.field.as_str() {
            "context.time" => "time",
            "context.client_ip" => "client_ip",
            f => f,
        };
        fail(format!("`{key}`: {}", e.message))
    })?;
    Ok(Case {
        index,
        name,
        user,
        input,
        expect_allow,
        reason,
    })
}

/// A TOML value as JSON, a date-time as its RFC 3339 text.
fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// `kailash access test`: 0 when every case matches, 1 on a mismatch,
/// 2 when the config or the file cannot be used.
pub(crate) fn test(config: &Path, file: &Path) -> Result<(), Failure> {
    let origin = file.display().to_string();
    let size = std::fs::metadata(file)
        .map_err(|e| Failure::input(format!("cannot read cases file {origin}: {e}")))?
        .len();
    if size > MAX_CASES_FILE_BYTES {
        return Err(Failure::input(format!(
            "{origin}: larger than {MAX_CASES_FILE_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::input(format!("cannot read cases file {origin}: {e}")))?;
    let cases = cases(&text, &origin)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let loaded = load(config).await?;
        // Check every case before running any, so a typo never hides
        // behind a result.
        let mut principals = Vec::with_capacity(cases.len());
        for c in &cases {
            let Some(p) = loaded.principal(&c.user).await? else {
                return Err(Failure::input(format!(
                    "{origin}: {}: unknown user `{}`: not among the config's [[users]]",
                    c.label(),
                    c.user
                )));
            };
            if !loaded.spec.references(&c.input.permission) {
                return Err(Failure::input(format!(
                    "{origin}: {}: unknown permission `{}`: no role or policy of the config mentions it",
                    c.label(),
                    c.input.permission
                )));
            }
            principals.push(p);
        }
        let mut failed = 0usize;
        for (c, principal) in cases.iter().zip(&principals) {
            let (_, explanation) = loaded.explain(principal, &c.input);
            let d = &explanation.decision;
            let verdict = if d.allowed { "allow" } else { "deny" };
            let expected = if c.expect_allow { "allow" } else { "deny" };
            let reason_ok = c.reason.as_ref().is_none_or(|r| *r == d.rule);
            if d.allowed == c.expect_allow && reason_ok {
                println!("ok    {}: {verdict} ({})", c.label(), d.rule);
            } else {
                failed += 1;
                if d.allowed == c.expect_allow {
                    println!(
                        "FAIL  {}: {verdict} as expected, but the reason is `{}`, expected `{}`",
                        c.label(),
                        d.rule,
                        c.reason.as_deref().unwrap_or_default()
                    );
                } else {
                    println!(
                        "FAIL  {}: expected {expected}, got {verdict}",
                        c.label()
                    );
                }
                for line in explanation.to_string().lines() {
                    println!("      {line}");
                }
            }
        }
        let total = cases.len();
        println!(
            "{}: {} passed, {failed} failed, {total} total",
            origin,
            total - failed
        );
        if failed > 0 {
            Err(Failure::refused(format!("{failed} of {total} cases did not match")))
        } else {
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_names_itself_in_every_error() {
        let text =
            "[[case]]\nname = \"x\"\nuser = \"bob\"\npermission = \"report\"\nexpect = \"allow\"\n";
        let err = cases(text, "f.toml").err().unwrap();
        assert_eq!(err.code, 2);
        assert!(
            err.message.contains("case 1 (`x`): `permission`"),
            "{}",
            err.message
        );

        let text = "[[case]]\nuser = \"bob\"\npermission = \"report:view\"\nexpect = \"maybe\"\n";
        let err = cases(text, "f.toml").err().unwrap();
        assert!(err.message.contains("case 1 (`#1`)"), "{}", err.message);

        let text = "[[case]]\nuser = \"bob\"\npermission = \"report:view\"\nexpect = \"allow\"\nresourse = {}\n";
        let err = cases(text, "f.toml").err().unwrap();
        assert!(
            err.message.contains("unknown key `resourse`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_file_time_is_the_default_and_a_case_overrides_it() {
        let text = "time = 2026-12-07T10:00:00Z\n[[case]]\nuser = \"a\"\npermission = \"p:q\"\nexpect = \"deny\"\n[[case]]\nuser = \"a\"\npermission = \"p:q\"\nexpect = \"deny\"\ntime = \"2026-12-05T10:00:00Z\"\n";
        let cases = cases(text, "f.toml").unwrap();
        assert_eq!(
            cases[0].input.time.unwrap().to_string(),
            "2026-12-07T10:00:00Z"
        );
        assert_eq!(
            cases[1].input.time.unwrap().to_string(),
            "2026-12-05T10:00:00Z"
        );
    }
}
