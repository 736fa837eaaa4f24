//! Checks the control API's answers against its OpenAPI description
//! (`html/openapi.yaml`).
//!
//! [`Spec::check`] takes one answer (method, path template, status, content
//! type, body) and says whether the description allows it: the status is
//! documented for the operation (or a `4XX`-style range, or `default`), the
//! content type is one of the documented media types (parameters such as
//! `charset` ignored; `text/*` and `*/*` ranges match), and a JSON body parses
//! and fits the schema. Errors name the JSON pointer of each mismatch, e.g.
//! `/streams/0/readers/hls: expected integer, got "2"`.
//!
//! Bodies are validated by the `jsonschema` crate (JSON Schema 2020-12)
//! against the description's schemas, with the whole of
//! `components/schemas` beside each schema so that local `$ref`s resolve.
//! OpenAPI 3.0's `nullable: true` has no JSON Schema equivalent; it becomes
//! `{if: {type: null}, else: <the schema without nullable>}`: a null value
//! passes whatever the other keywords say (so `{type: object, nullable:
//! true, allOf: [$ref]}` means "that or null"), anything else is checked in
//! full. `integer` takes any whole number (`2.0` included), and every
//! keyword the crate knows is checked (`pattern`, `minimum`, ...); `format`
//! is an annotation only.
//!
//! A method the description does not list for a path may only answer `405`,
//! checked against `components/responses/MethodNotAllowed`.

use std::fmt::Write as _;
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use serde_json::{Map, Value};

/// Operation keys of a path item, in the order [`Spec::operations`] lists them.
const METHODS: [&str; 8] = [
    "get", "put", "post", "patch", "delete", "head", "options", "trace",
];
/// The keywords of an OpenAPI 3.0 schema object (`x-…` extensions aside).
const SCHEMA_KEYWORDS: &str = "title multipleOf maximum exclusiveMaximum minimum \
    exclusiveMinimum maxLength minLength pattern maxItems minItems uniqueItems maxProperties \
    minProperties required enum type allOf oneOf anyOf not items properties additionalProperties \
    description format default nullable discriminator readOnly writeOnly xml externalDocs \
    example deprecated";
/// `$ref` hops before giving up (a cycle of bare references).
const MAX_REF_HOPS: usize = 32;
/// Mismatches reported per answer; the rest are counted.
const MAX_ERRORS: usize = 20;

/// A parsed OpenAPI 3.0 description.
pub struct Spec {
    doc: Value,
    /// `components/schemas` as JSON Schema (see [`json_schema`]).
    schemas: Value,
}

impl Spec {
    /// Read and parse the description at `path`. Panics with the file name
    /// and the reason when it cannot be read, is not YAML, or is not an
    /// OpenAPI 3.0 document with `paths`.
    pub fn load(path: impl AsRef<Path>) -> Spec {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "cannot read the OpenAPI description {}: {e}",
                path.display()
            )
        });
        Spec::parse(&text)
            .unwrap_or_else(|e| panic!("bad OpenAPI description {}: {e}", path.display()))
    }

    /// Parse a description from YAML (or JSON) text.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let doc: Value =
            serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        match doc.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0.") => {}
            Some(v) => return Err(format!("`openapi: {v}`: only 3.0.x is understood")),
            None => return Err("no `openapi` version string at the top".into()),
        }
        if !doc.get("paths").is_some_and(Value::is_object) {
            return Err("no `paths` object".into());
        }
        let schemas = json_schema(
            doc.pointer("/components/schemas")
                .unwrap_or(&Value::Object(Map::new())),
        );
        Ok(Spec { doc, schemas })
    }

    /// Every documented operation as (`GET`, `/v1/streams/{path}`), sorted by
    /// path template, then get, put, post, patch, delete, head, options, trace.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (template, item) in self.paths() {
            let Ok(item) = self.resolve(item) else {
                continue;
            };
            for m in METHODS {
                if item.get(m).is_some() {
                    ops.push((m.to_ascii_uppercase(), template.clone()));
                }
            }
        }
        ops
    }

    /// Whether the description allows this answer to `method template`.
    /// `content_type` is the `Content-Type` header as sent (None when
    /// absent). The error lists every mismatch found, one per line.
    pub fn check(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let what = format!("{} {template} → {status}", method.to_ascii_uppercase());
        let response = self
            .response(method, template, status)
            .map_err(|e| format!("{what}: {e}"))?;
        self.check_body(response, content_type, body)
            .map_err(|e| format!("{what} does not match the description:\n{e}"))
    }

    /// Whether `value` fits the schema `components/schemas/<name>` (for
    /// request bodies, or values picked out of a larger answer).
    pub fn check_value(&self, name: &str, value: &Value) -> Result<(), String> {
        let schema = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        self.validate_all(&schema, value)
            .map_err(|e| format!("{name}:\n{e}"))
    }

    /// Rules this project keeps in its description, beyond what [`check`]
    /// needs: every `$ref` resolves; schemas use only schema keywords (a
    /// comma in an unquoted flow-style description makes a stray key); every
    /// object schema but a bare `allOf`/`oneOf`/`anyOf` wrapper says
    /// `additionalProperties: true`; one with `properties` lists `required`
    /// (all of them declared) and gives each property a `type`. One line per
    /// breach, with where it is.
    ///
    /// [`check`]: Spec::check
    pub fn lint(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.lint_refs(&self.doc, "", &mut out);
        if let Some(schemas) = self
            .doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, s) in schemas {
                self.lint_schema(
                    s,
                    &format!("/components/schemas/{}", escape(name)),
                    &mut out,
                );
            }
        }
        self.lint_inline(&self.doc, "", &mut out);
        out
    }

    // ------------------------------------------------------------ lookup

    fn paths(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    }

    /// The response object documented for `status`.
    fn response(&self, method: &str, template: &str, status: u16) -> Result<&Value, String> {
        let item = self
            .doc
            .get("paths")
            .and_then(|p| p.get(template))
            .ok_or_else(|| format!("path `{template}` is not in the description"))?;
        let item = self.resolve(item)?;
        let lower = method.to_ascii_lowercase();
        let Some(op) = item.get(lower.as_str()) else {
            if status == 405 {
                if let Some(r) = self.doc.pointer("/components/responses/MethodNotAllowed") {
                    return self.resolve(r);
                }
            }
            let documented: Vec<String> = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_ascii_uppercase())
                .collect();
            return Err(format!(
                "{} is not documented for {template} (documented: {}); only 405 may answer it",
                method.to_ascii_uppercase(),
                documented.join(", ")
            ));
        };
        let responses = op
            .get("responses")
            .and_then(Value::as_object)
            .ok_or_else(|| "the operation has no `responses` object".to_string())?;
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let found = responses
            .get(&exact)
            .or_else(|| responses.get(&range))
            .or_else(|| responses.get(&range.to_ascii_lowercase()))
            .or_else(|| responses.get("default"));
        match found {
            Some(r) => self.resolve(r),
            None => Err(format!(
                "status {status} is not documented (documented: {})",
                responses.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Follow `$ref`s until a value without one.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..MAX_REF_HOPS {
            let Some(r) = v.get("$ref") else { return Ok(v) };
            let r = r
                .as_str()
                .ok_or_else(|| format!("$ref is not a string: {}", show(r)))?;
            v = self.target(r)?;
        }
        Err(format!("more than {MAX_REF_HOPS} $ref hops: a $ref cycle?"))
    }

    fn target(&self, r: &str) -> Result<&Value, String> {
        let pointer = r.strip_prefix('#').ok_or_else(|| {
            format!("bad $ref `{r}`: only local references (`#/...`) are supported")
        })?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("bad $ref `{r}`: no such target"))
    }

    // ------------------------------------------------------------ bodies

    fn check_body(
        &self,
        response: &Value,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let content = response
            .get("content")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty());
        let Some(content) = content else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "(root): the description documents no body, got {} bytes",
                    body.len()
                ))
            };
        };
        let documented = || content.keys().cloned().collect::<Vec<_>>().join(", ");
        let ct = content_type
            .ok_or_else(|| format!("(root): no Content-Type (documented: {})", documented()))?;
        let essence = media_essence(ct);
        let media = find_media(content, &essence).ok_or_else(|| {
            format!(
                "(root): content type `{ct}` is not documented (documented: {})",
                documented()
            )
        })?;
        if is_json(&essence) {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| format!("(root): body is not JSON ({e}): {}", preview(body)))?;
            if let Some(schema) = media.get("schema") {
                self.validate_all(schema, &value)?;
            }
        } else if essence.starts_with("text/") && std::str::from_utf8(body).is_err() {
            return Err(format!("(root): `{ct}` body is not UTF-8"));
        }
        Ok(())
    }

    /// Validates `value` against the OpenAPI `schema` with the
    /// `jsonschema` crate; one line per mismatch, `pointer: reason`.
    fn validate_all(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let mut root = json_schema(schema);
        let Some(obj) = root.as_object_mut() else {
            return Err(format!(
                "(root): the schema is not an object: {}",
                show(schema)
            ));
        };
        obj.insert(
            "components".into(),
            serde_json::json!({ "schemas": self.schemas }),
        );
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .map_err(|e| format!("(root): the schema does not compile: {e}"))?;
        let mut errs: Vec<String> = validator.iter_errors(value).map(|e| describe(&e)).collect();
        if errs.is_empty() {
            return Ok(());
        }
        let more = errs.len().saturating_sub(MAX_ERRORS);
        errs.truncate(MAX_ERRORS);
        let mut text = errs.join("\n");
        if more > 0 {
            let _ = write!(text, "\n... and {more} more");
        }
        Err(text)
    }

    // ------------------------------------------------------------ lint

    fn lint_refs(&self, v: &Value, ptr: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref") {
                    match r.as_str() {
                        Some(r) => {
                            if let Err(e) = self.target(r) {
                                out.push(format!("{}: {e}", at(ptr)));
                            }
                        }
                        None => out.push(format!("{}: $ref is not a string", at(ptr))),
                    }
                }
                for (k, sub) in map {
                    self.lint_refs(sub, &format!("{ptr}/{}", escape(k)), out);
                }
            }
            Value::Array(items) => {
                for (i, sub) in items.iter().enumerate() {
                    self.lint_refs(sub, &format!("{ptr}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// Lint the schemas written inline under `schema:` keys (parameters,
    /// media types).
    fn lint_inline(&self, v: &Value, ptr: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, sub) in map {
                    let p = format!("{ptr}/{}", escape(k));
                    if k == "schema" {
                        self.lint_schema(sub, &p, out);
                    } else if !(ptr == "/components" && k == "schemas") {
                        self.lint_inline(sub, &p, out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, sub) in items.iter().enumerate() {
                    self.lint_inline(sub, &format!("{ptr}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    fn lint_schema(&self, s: &Value, ptr: &str, out: &mut Vec<String>) {
        let Some(map) = s.as_object() else {
            out.push(format!("{ptr}: a schema must be an object"));
            return;
        };
        if map.contains_key("$ref") {
            return;
        }
        for key in map.keys() {
            if !SCHEMA_KEYWORDS.split_whitespace().any(|k| k == key) && !key.starts_with("x-") {
                out.push(format!("{ptr}: `{key}` is not a schema keyword"));
            }
        }
        let typ = map.get("type").and_then(Value::as_str);
        // A wrapper (`{type: object, nullable: true, allOf: [$ref]}`) leaves
        // that to the schema it wraps.
        let wrapper = !map.contains_key("properties")
            && ["allOf", "oneOf", "anyOf"]
                .iter()
                .any(|k| map.contains_key(*k));
        if typ == Some("object")
            && !wrapper
            && map.get("additionalProperties") != Some(&Value::Bool(true))
        {
            out.push(format!(
                "{ptr}: object schema without `additionalProperties: true`"
            ));
        }
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            match map.get("required").and_then(Value::as_array) {
                None => out.push(format!("{ptr}: has `properties` but no `required` list")),
                Some(req) => {
                    for name in req {
                        if !name.as_str().is_some_and(|n| props.contains_key(n)) {
                            out.push(format!(
                                "{ptr}: required {} is not among its properties",
                                show(name)
                            ));
                        }
                    }
                }
            }
            for (name, sub) in props {
                let p = format!("{ptr}/properties/{}", escape(name));
                if sub.get("type").is_none() {
                    out.push(format!("{p}: property without `type`"));
                }
                self.lint_schema(sub, &p, out);
            }
        }
        if let Some(items) = map.get("items") {
            self.lint_schema(items, &format!("{ptr}/items"), out);
        }
        for kw in ["allOf", "oneOf", "anyOf"] {
            for (i, sub) in map
                .get(kw)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.lint_schema(sub, &format!("{ptr}/{kw}/{i}"), out);
            }
        }
    }
}

// ---------------------------------------------------------------- helpers

/// A JSON pointer as shown in messages.
fn at(ptr: &str) -> &str {
    if ptr.is_empty() {
        "(root)"
    } else {
        ptr
    }
}

/// Escape one JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// The media type object for `essence`: an exact match first, then `type/*`,
/// then `*/*`.
fn find_media<'a>(content: &'a Map<String, Value>, essence: &str) -> Option<&'a Value> {
    let major = essence.split('/').next().unwrap_or("");
    let by = |want: &str| {
        content
            .iter()
            .find(|(k, _)| media_essence(k) == want)
            .map(|(_, v)| v)
    };
    by(essence)
        .or_else(|| by(&format!("{major}/*")))
        .or_else(|| by("*/*"))
}

/// An OpenAPI 3.0 schema as JSON Schema 2020-12: every `nullable: true`
/// schema becomes `{if: {type: null}, else: <it, without nullable>}`.
fn json_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, sub)| (k.clone(), json_schema(sub)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true)) {
                let mut wrap = Map::new();
                wrap.insert("if".into(), serde_json::json!({ "type": "null" }));
                wrap.insert("else".into(), Value::Object(std::mem::take(&mut out)));
                out = wrap;
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// One mismatch the crate found, with the alternatives' own mismatches for
/// `oneOf` / `anyOf`.
fn describe(e: &ValidationError<'_>) -> String {
    let mut s = format!("{}: {e}", at(e.instance_path().as_str()));
    if let ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } =
        e.kind()
    {
        for (i, branch) in context.iter().enumerate() {
            let why: Vec<String> = branch.iter().map(describe).collect();
            let _ = write!(s, " | #{i}: {}", why.join("; "));
        }
    }
    s
}

/// A value as compact JSON, cut at 80 characters.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The start of a body, for messages.
fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(80)]);
    format!("{s:?}{}", if body.len() > 80 { "..." } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"
openapi: 3.0.3
info: {title: t, version: '1'}
paths:
  /things/{id}:
    get:
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Thing'}
        '404': {$ref: '#/components/responses/NotFound'}
        5XX:
          description: server
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Error'}
    delete:
      responses:
        '204': {description: gone}
        default:
          description: anything else
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Error'}
  /either:
    get:
      responses:
        '200':
          description: a thing or an error
          content:
            application/json:
              schema:
                oneOf:
                  - $ref: '#/components/schemas/Thing'
                  - $ref: '#/components/schemas/Error'
  /text:
    post:
      responses:
        '200':
          description: text
          content:
            text/plain: {schema: {type: string}}
  /broken:
    get:
      responses:
        '200':
          description: dangling ref
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Nope'}
components:
  responses:
    NotFound:
      description: missing
      content:
        application/json:
          schema: {$ref: '#/components/schemas/Error'}
    MethodNotAllowed:
      description: wrong method
      content:
        application/json:
          schema: {$ref: '#/components/schemas/Error'}
  schemas:
    Error:
      type: object
      additionalProperties: true
      required: [error]
      properties:
        error: {type: string}
        line: {type: integer}
    Thing:
      type: object
      additionalProperties: true
      required: [id, kind, size, owner, parts, parent]
      properties:
        id: {type: string}
        kind: {type: string, enum: [a, b]}
        size: {type: integer}
        ratio: {type: number}
        owner: {type: string, nullable: true}
        parts:
          type: array
          items:
            type: object
            additionalProperties: true
            required: [num]
            properties:
              num: {type: integer}
        parent:
          type: object
          nullable: true
          allOf:
            - $ref: '#/components/schemas/Error'
"##;

    const GOOD: &str = r#"{"id":"x","kind":"a","size":3,"ratio":0.5,"owner":"bob",
        "parts":[{"num":1},{"num":2.0}],"parent":{"error":"e"},"extra":true}"#;

    fn spec() -> Spec {
        match Spec::parse(SPEC) {
            Ok(s) => s,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    fn get_thing(body: &str) -> Result<(), String> {
        spec().check(
            "GET",
            "/things/{id}",
            200,
            Some("application/json"),
            body.as_bytes(),
        )
    }

    fn err_of(r: Result<(), String>) -> String {
        match r {
            Ok(()) => panic!("expected a mismatch, the check passed"),
            Err(e) => e,
        }
    }

    /// GOOD with one property replaced (or removed when `with` is None).
    fn variant(key: &str, with: Option<Value>) -> String {
        let mut v: Value = serde_json::from_str(GOOD).expect("GOOD is JSON");
        let obj = v.as_object_mut().expect("GOOD is an object");
        match with {
            Some(x) => obj.insert(key.into(), x),
            None => obj.remove(key),
        };
        v.to_string()
    }

    #[test]
    fn good_body_passes() {
        get_thing(GOOD).unwrap();
        spec()
            .check(
                "get",
                "/things/{id}",
                200,
                Some("Application/JSON; charset=utf-8"),
                GOOD.as_bytes(),
            )
            .unwrap();
    }

    #[test]
    fn missing_required_field() {
        let e = err_of(get_thing(&variant("size", None)));
        assert!(
            e.contains(r#"(root): "size" is a required property"#),
            "{e}"
        );
        let e = err_of(get_thing(&variant(
            "parts",
            Some(serde_json::json!([{"m": 1}])),
        )));
        assert!(
            e.contains(r#"/parts/0: "num" is a required property"#),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_pointer() {
        let e = err_of(get_thing(&variant(
            "parts",
            Some(serde_json::json!([{"num": 1}, {"num": "2"}])),
        )));
        assert!(
            e.contains(r#"/parts/1/num: "2" is not of type "integer""#),
            "{e}"
        );
        let e = err_of(get_thing(&variant("size", Some(serde_json::json!(2.5)))));
        assert!(e.contains(r#"/size: 2.5 is not of type "integer""#), "{e}");
        let e = err_of(get_thing(&variant("kind", Some(serde_json::json!("c")))));
        assert!(e.contains(r#"/kind: "c" is not one of "a" or "b""#), "{e}");
        let e = err_of(get_thing(&variant(
            "parent",
            Some(serde_json::json!({"error": 1})),
        )));
        assert!(
            e.contains(r#"/parent/error: 1 is not of type "string""#),
            "{e}"
        );
        let e = err_of(get_thing("[]"));
        assert!(e.contains(r#"(root): [] is not of type "object""#), "{e}");
    }

    #[test]
    fn undocumented_status_method_and_content_type() {
        let s = spec();
        let e = err_of(s.check(
            "GET",
            "/things/{id}",
            401,
            Some("application/json"),
            b"{\"error\":\"x\"}",
        ));
        assert!(e.contains("status 401 is not documented"), "{e}");
        // A range and a default answer for the codes they cover.
        s.check(
            "GET",
            "/things/{id}",
            503,
            Some("application/json"),
            b"{\"error\":\"x\"}",
        )
        .unwrap();
        s.check(
            "DELETE",
            "/things/{id}",
            418,
            Some("application/json"),
            b"{\"error\":\"x\"}",
        )
        .unwrap();
        // A status without content has no body.
        s.check("DELETE", "/things/{id}", 204, None, b"").unwrap();
        assert!(err_of(s.check("DELETE", "/things/{id}", 204, None, b"x"))
            .contains("documents no body"));
        // Other methods: 405 only.
        let e = err_of(s.check(
            "PUT",
            "/things/{id}",
            200,
            Some("application/json"),
            GOOD.as_bytes(),
        ));
        assert!(
            e.contains("PUT is not documented for /things/{id} (documented: GET, DELETE)"),
            "{e}"
        );
        s.check(
            "PUT",
            "/things/{id}",
            405,
            Some("application/json"),
            b"{\"error\":\"no\"}",
        )
        .unwrap();
        assert!(err_of(s.check("GET", "/nowhere", 200, None, b"")).contains("`/nowhere` is not in"));
        // Content types.
        let e = err_of(s.check(
            "GET",
            "/things/{id}",
            200,
            Some("text/html"),
            GOOD.as_bytes(),
        ));
        assert!(
            e.contains("content type `text/html` is not documented (documented: application/json)"),
            "{e}"
        );
        assert!(
            err_of(s.check("GET", "/things/{id}", 200, None, GOOD.as_bytes()))
                .contains("no Content-Type")
        );
        assert!(err_of(get_thing("{nope")).contains("body is not JSON"));
        s.check(
            "POST",
            "/text",
            200,
            Some("text/plain; version=0.0.4"),
            b"# metrics\n",
        )
        .unwrap();
        assert!(
            err_of(s.check("POST", "/text", 200, Some("text/plain"), b"\xff"))
                .contains("not UTF-8")
        );
    }

    #[test]
    fn bad_ref_is_reported() {
        let s = spec();
        let e = err_of(s.check("GET", "/broken", 200, Some("application/json"), b"{}"));
        assert!(
            e.contains("(root): the schema does not compile: Pointer '/components/schemas/Nope' does not exist"),
            "{e}"
        );
        let lint = s.lint();
        assert!(
            lint.iter().any(|l| l.contains(
                "/paths/~1broken/get/responses/200/content/application~1json/schema: bad $ref"
            )),
            "{lint:?}"
        );
    }

    #[test]
    fn nullable_field_given_null() {
        get_thing(&variant("owner", Some(Value::Null))).unwrap();
        get_thing(&variant("parent", Some(Value::Null))).unwrap();
        // Not nullable: null is a type error.
        let e = err_of(get_thing(&variant("id", Some(Value::Null))));
        assert!(e.contains(r#"/id: null is not of type "string""#), "{e}");
    }

    #[test]
    fn one_of_needs_a_match() {
        let s = spec();
        s.check(
            "GET",
            "/either",
            200,
            Some("application/json"),
            GOOD.as_bytes(),
        )
        .unwrap();
        s.check(
            "GET",
            "/either",
            200,
            Some("application/json"),
            b"{\"error\":\"e\"}",
        )
        .unwrap();
        let e = err_of(s.check(
            "GET",
            "/either",
            200,
            Some("application/json"),
            b"{\"id\":1}",
        ));
        assert!(e.contains("(root): {\"id\":1} is not valid under any of the schemas listed in the 'oneOf' keyword"), "{e}");
        assert!(
            e.contains(r#"| #1: (root): "error" is a required property"#),
            "{e}"
        );
    }

    #[test]
    fn operations_and_lint() {
        let s = spec();
        let ops: Vec<String> = s
            .operations()
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        assert_eq!(
            ops,
            [
                "GET /broken",
                "GET /either",
                "POST /text",
                "GET /things/{id}",
                "DELETE /things/{id}"
            ]
        );
        let lint = s.lint();
        assert_eq!(lint.len(), 1, "only the dangling $ref: {lint:?}");
        let typo = SPEC.replace(
            "ratio: {type: number}",
            "ratio: {type: number, description: a, b}",
        );
        let lint = Spec::parse(&typo).map(|s| s.lint()).unwrap_or_default();
        assert_eq!(lint.len(), 2, "{lint:?}");
        assert_eq!(
            lint[1],
            "/components/schemas/Thing/properties/ratio: `b` is not a schema keyword"
        );
        assert!(Spec::parse("openapi: 2.0\npaths: {}").is_err());
        assert!(Spec::parse("openapi: 3.0.3\n").is_err());
        assert!(Spec::parse("openapi: [").is_err());
    }

    #[test]
    fn check_value_by_name() {
        let s = spec();
        s.check_value("Error", &serde_json::json!({"error": "x", "line": 3}))
            .unwrap();
        let e = err_of(s.check_value("Error", &serde_json::json!({"error": "x", "line": "3"})));
        assert!(e.contains(r#"/line: "3" is not of type "integer""#), "{e}");
        assert!(err_of(s.check_value("Missing", &Value::Null)).contains("does not exist"));
    }
}
