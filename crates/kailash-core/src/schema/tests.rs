#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Node {
    #[schema(min_length = 1, max_length = 8, pattern = "^[a-z][a-z0-9_]*$")]
    id: String,
    kind: Kind,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Transform,
    HttpRequest,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Workflow {
    #[schema(min_length = 1, max_length = 16)]
    name: String,
    #[schema(min_items = 1, max_items = 3)]
    nodes: Vec<Node>,
    #[schema(minimum = 1, maximum = 60)]
    timeout: Option<u32>,
    #[serde(default)]
    #[schema(max_length = 4)]
    note: Option<String>,
}

fn pointers(r: Result<(), Vec<Violation>>) -> Vec<String> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.pointer)
        .collect()
}

#[test]
fn a_derived_schema_compiles_and_is_enforced_exactly() {
    let v = body_validator::<Workflow>().unwrap();
    let mut ok =
        json!({"name": "w", "nodes": [{"id": "a1", "kind": "http_request"}], "timeout": 5});
    v.validate(&mut ok).unwrap();
    let w: Workflow = serde_json::from_value(ok).unwrap();
    assert_eq!(w.nodes.len(), 1);

    // The issue's example: empty strings the old schema allowed.
    let mut bad = json!({"name": "", "nodes": [{"id": "", "kind": ""}]});
    assert_eq!(
        pointers(v.validate(&mut bad)),
        ["/name", "/nodes/0/id", "/nodes/0/id", "/nodes/0/kind"]
    );
    let mut bad = json!({"name": "w", "nodes": [], "extra": 1, "timeout": 61});
    assert_eq!(
        pointers(v.validate(&mut bad)),
        ["/extra", "/nodes", "/timeout"]
    );
    let mut bad = json!({"nodes": [{"id": "A", "kind": "transform", "x": true}]});
    assert_eq!(
        pointers(v.validate(&mut bad)),
        ["/name", "/nodes/0/id", "/nodes/0/x"]
    );
    // null where the Option allows it; not where it does not.
    let mut ok = json!({"name": "w", "nodes": [{"id": "a", "kind": "transform"}], "timeout": null});
    v.validate(&mut ok).unwrap();
    let mut bad = json!({"name": null, "nodes": [{"id": "a", "kind": "transform"}]});
    assert_eq!(pointers(v.validate(&mut bad)), ["/name"]);
}

#[test]
fn messages_never_quote_the_value() {
    let v = body_validator::<Workflow>().unwrap();
    let secret = "hunter2-is-my-password";
    let mut bad = json!({"name": secret, "nodes": [{"id": secret, "kind": secret}]});
    let violations = v.validate(&mut bad).unwrap_err();
    assert!(violations.len() >= 3);
    let text = String::from_utf8(invalid(Location::Body, &violations).to_json().to_vec()).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn lengths_count_code_points_and_integers_may_be_written_as_floats() {
    let v = body_validator::<Workflow>().unwrap();
    // 16 code points, 48 bytes.
    let name: String = "語".repeat(16);
    let mut ok = json!({"name": name, "nodes": [{"id": "a", "kind": "transform"}], "timeout": 5.0});
    v.validate(&mut ok).unwrap();
    assert_eq!(ok["timeout"], json!(5));
    let w: Workflow = serde_json::from_value(ok).unwrap();
    assert_eq!(w.timeout, Some(5));
    let mut bad = json!({"name": "w", "nodes": [{"id": "a", "kind": "transform"}], "timeout": 5.5});
    assert_eq!(pointers(v.validate(&mut bad)), ["/timeout"]);
}

#[test]
fn violations_are_bounded() {
    let v = Validator::compile(
        &json!({"type": "array", "items": {"type": "string"}}),
        &Map::new(),
    )
    .unwrap();
    let mut many = Value::Array((0..1000).map(Value::from).collect());
    assert_eq!(v.validate(&mut many).unwrap_err().len(), MAX_VIOLATIONS);
}

#[test]
fn a_keyword_the_validator_does_not_enforce_is_refused() {
    for schema in [
        json!({"type": "string", "dependentRequired": {}}),
        json!({"type": "object", "patternProperties": {"^a": {}}}),
        json!({"prefixItems": [{"type": "string"}]}),
        json!({"$ref": "#/components/schemas/Missing"}),
        json!({"$ref": "https://example.com/x"}),
        json!({"type": "strnig"}),
        json!({"type": "integer", "minimum": 0}),
        json!({"type": ["integer", "null"], "maximum": 5}),
        json!({"type": "string", "pattern": "^\\d+$"}),
        json!({"type": "string", "pattern": "^a.b$"}),
    ] {
        assert!(
            Validator::compile(&schema, &Map::new()).is_err(),
            "{schema}"
        );
    }
    // A response type's schema is not compiled unless referenced.
    let components: Map<String, Value> =
        serde_json::from_value(json!({"Unbounded": {"type": "integer"}})).unwrap();
    Validator::compile(
        &json!({"type": "string", "pattern": "^[0-9.]+$"}),
        &components,
    )
    .unwrap();
    // Annotations are fine.
    Validator::compile(
        &json!({"type": "string", "format": "uuid", "description": "d", "example": "x"}),
        &Map::new(),
    )
    .unwrap();
}

#[test]
fn one_of_any_of_enum_and_references() {
    let components: Map<String, Value> = serde_json::from_value(json!({
        "A": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}}, "additionalProperties": false},
        "B": {"type": "object", "required": ["b"], "properties": {"b": {"type": "string", "enum": ["x", "y"]}}, "additionalProperties": false}
    })).unwrap();
    let v = Validator::compile(
        &json!({"oneOf": [{"$ref": "#/components/schemas/A"}, {"$ref": "#/components/schemas/B"}]}),
        &components,
    )
    .unwrap();
    v.validate(&mut json!({"a": 1})).unwrap();
    v.validate(&mut json!({"b": "y"})).unwrap();
    assert_eq!(pointers(v.validate(&mut json!({"b": "z"}))), [""]);
    assert_eq!(pointers(v.validate(&mut json!({"a": 1, "b": "x"}))), [""]);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Page {
    /// How many.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Whose.
    #[param(max_length = 8)]
    user: Option<String>,
}

#[cfg(feature = "axum")]
mod over_http {
    use ::http::{Request, StatusCode};
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;
    use crate::schema::{ValidJson, ValidPath, ValidQuery};

    #[derive(Debug, Deserialize, IntoParams)]
    #[into_params(parameter_in = Path)]
    struct Id {
        /// The id.
        #[param(min_length = 2, max_length = 4)]
        id: String,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/w",
                post(|ValidJson(w): ValidJson<Workflow>| async move { w.name }),
            )
            .route(
                "/page",
                get(|ValidQuery(p): ValidQuery<Page>| async move {
                    format!("{:?} {:?}", p.limit, p.user)
                }),
            )
            .route(
                "/items/{id}",
                get(|ValidPath(p): ValidPath<Id>| async move { p.id }),
            )
            .layer(DefaultBodyLimit::max(256))
    }

    async fn call(req: Request<Body>) -> (StatusCode, Value) {
        let res = app().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    fn post_json(ct: &str, body: &str) -> Request<Body> {
        Request::post("/w")
            .header("content-type", ct)
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn bodies_are_refused_with_the_right_status_and_pointer() {
        let good = r#"{"name":"w","nodes":[{"id":"a","kind":"transform"}]}"#;
        let (s, v) = call(post_json("application/json; charset=utf-8", good)).await;
        assert_eq!((s, v), (StatusCode::OK, json!("w")));
        let (s, _) = call(post_json("application/merge-patch+json", good)).await;
        assert_eq!(s, StatusCode::OK);

        let (s, v) = call(post_json("text/plain", good)).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
        let (s, v) = call(post_json("application/json", "{\"name\":")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let (s, v) = call(post_json("application/json", &"x".repeat(300))).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

        let (s, v) = call(post_json(
            "application/json",
            r#"{"name":"","nodes":[{"id":"","type":""}]}"#,
        ))
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["type"], "urn:kailash:problem:invalid-request");
        let errors: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert_eq!(
            errors,
            // minLength and pattern both fail for the empty id.
            [
                "/name",
                "/nodes/0/kind",
                "/nodes/0/id",
                "/nodes/0/id",
                "/nodes/0/type"
            ]
        );
        assert_eq!(v["errors"][0]["in"], "body");
    }

    #[tokio::test]
    async fn query_and_path_parameters_are_typed_and_checked() {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        let (s, v) = call(get("/page?limit=10&user=ann&other=1")).await;
        assert_eq!((s, v), (StatusCode::OK, json!("Some(10) Some(\"ann\")")));
        let (s, v) = call(get("/page")).await;
        assert_eq!((s, v), (StatusCode::OK, json!("None None")));
        for (uri, pointer) in [
            ("/page?limit=0", "/limit"),
            ("/page?limit=ten", "/limit"),
            ("/page?limit=1.5", "/limit"),
            ("/page?user=abcdefghi", "/user"),
        ] {
            let (s, v) = call(get(uri)).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {v}");
            assert_eq!(v["errors"][0]["pointer"], pointer, "{uri}");
            assert_eq!(v["errors"][0]["in"], "query", "{uri}");
        }
        let (s, _) = call(get("/page?limit=1&limit=2")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        let (s, v) = call(get("/items/ab%2F")).await;
        assert_eq!((s, v), (StatusCode::OK, json!("ab/")));
        let (s, v) = call(get("/items/abcde")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["errors"][0]["in"], "path");
        assert_eq!(v["errors"][0]["pointer"], "/id");
    }
}

#[test]
fn the_tenant_id_schema_accepts_exactly_what_tenant_id_new_accepts() {
    let v = body_validator::<crate::TenantId>().unwrap();
    let long = "a".repeat(crate::tenant::MAX_TENANT_ID_LEN);
    let too_long = "a".repeat(crate::tenant::MAX_TENANT_ID_LEN + 1);
    for id in [
        "acme",
        "a",
        "a-b_c9",
        "9lives",
        "",
        "-a",
        "_a",
        "A",
        "a b",
        "acme\n",
        "é",
        "a/b",
        long.as_str(),
        too_long.as_str(),
    ] {
        let schema_ok = v.validate(&mut json!(id)).is_ok();
        assert_eq!(schema_ok, crate::TenantId::new(id).is_ok(), "{id:?}");
    }
}
