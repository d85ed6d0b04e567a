//! A validator for the part of JSON Schema (2020-12, as OpenAPI 3.1 uses it) that Herald's
//! document uses: `$ref` into `components`, `type` (one or a list), `enum`, `oneOf`,
//! `anyOf`, `required`, `properties`, `additionalProperties`, `items`, `minItems`/`maxItems`,
//! `minLength`/`maxLength` (in characters), `pattern`, `minimum`/`maximum` and the formats
//! `date-time` and `uri`. A keyword it does not know fails the check, so the document cannot
//! grow past what the test understands without the test saying so.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// Keywords that say nothing about validity.
const ANNOTATIONS: &[&str] = &["description", "example", "examples", "default", "title", "deprecated", "readOnly"];

pub struct Schemas<'d> {
    doc: &'d Value,
    patterns: Mutex<HashMap<String, regex::Regex>>,
}

impl<'d> Schemas<'d> {
    pub fn new(doc: &'d Value) -> Self {
        Self { doc, patterns: Mutex::default() }
    }

    /// `schema` with its `$ref` followed (siblings of a `$ref` are annotations here).
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unsupported $ref {r}"));
                let target = &self.doc["components"]["schemas"][name];
                assert!(!target.is_null(), "dangling $ref {r}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Whether `pattern` matches `s` (ECMA-262 patterns of the subset Rust's regex shares).
    pub fn matches(&self, pattern: &str, s: &str) -> bool {
        let mut cache = self.patterns.lock().unwrap();
        let re = cache
            .entry(pattern.to_owned())
            .or_insert_with(|| regex::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}")));
        re.is_match(s)
    }

    /// Every way `value` breaks `schema`, each as `path: why`. With `closed`, an object
    /// schema that lists `properties` also refuses a property it does not list (answers may
    /// gain fields, but this server's answers must all be documented).
    pub fn errors(&self, schema: &Value, value: &Value, closed: bool) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, closed, "$", &mut out);
        out
    }

    fn check(&self, schema: &Value, v: &Value, closed: bool, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            return out.push(format!("{at}: schema {schema} is not an object"));
        };
        for (k, rule) in keywords {
            let mut fail = |why: String| out.push(format!("{at}: {why}"));
            match k.as_str() {
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => vec![],
                    };
                    if !types.iter().any(|t| is_type(v, t)) {
                        fail(format!("{v} is not of type {rule}"));
                    }
                }
                "enum" => {
                    if !rule.as_array().unwrap().contains(v) {
                        fail(format!("{v} is not one of {rule}"));
                    }
                }
                "oneOf" | "anyOf" => {
                    let passing =
                        rule.as_array().unwrap().iter().filter(|s| self.errors_at(s, v, closed, at).is_empty()).count();
                    let ok = if k == "oneOf" { passing == 1 } else { passing >= 1 };
                    if !ok {
                        fail(format!("{v} matches {passing} branches of {k}"));
                    }
                }
                "required" => {
                    for name in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if v.is_object() && v.get(name).is_none() {
                            fail(format!("required {name:?} is missing"));
                        }
                    }
                }
                "properties" => {
                    let Some(obj) = v.as_object() else { continue };
                    for (name, value) in obj {
                        match rule.get(name) {
                            Some(s) => self.check(s, value, closed, &format!("{at}.{name}"), out),
                            None if closed && !keywords.contains_key("additionalProperties") => {
                                out.push(format!("{at}: undocumented property {name:?}"))
                            }
                            None => {}
                        }
                    }
                }
                "additionalProperties" => {
                    let listed = keywords.get("properties");
                    for name in v.as_object().into_iter().flat_map(|o| o.keys()) {
                        if listed.and_then(|p| p.get(name)).is_none() && *rule == Value::Bool(false) {
                            fail(format!("property {name:?} is not allowed"));
                        }
                    }
                }
                "items" => {
                    for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                        self.check(rule, item, closed, &format!("{at}[{i}]"), out);
                    }
                }
                "minItems" | "maxItems" => {
                    if let Some(n) = v.as_array().map(Vec::len) {
                        bound(k, n as f64, rule, &mut fail);
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(n) = v.as_str().map(|s| s.chars().count()) {
                        bound(k, n as f64, rule, &mut fail);
                    }
                }
                "minimum" | "maximum" => {
                    if let Some(n) = v.as_f64() {
                        bound(k, n, rule, &mut fail);
                    }
                }
                "pattern" => {
                    if let Some(s) = v.as_str()
                        && !self.matches(rule.as_str().unwrap(), s)
                    {
                        fail(format!("{s:?} does not match {rule}"));
                    }
                }
                "format" => {
                    if let Some(s) = v.as_str()
                        && !format_ok(rule.as_str().unwrap(), s)
                    {
                        fail(format!("{s:?} is not a {rule}"));
                    }
                }
                k if ANNOTATIONS.contains(&k) => {}
                other => fail(format!("keyword {other:?} is not understood by this test's validator")),
            }
        }
    }

    fn errors_at(&self, schema: &Value, v: &Value, closed: bool, at: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, v, closed, at, &mut out);
        out
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn bound(keyword: &str, n: f64, rule: &Value, fail: &mut impl FnMut(String)) {
    let limit = rule.as_f64().unwrap();
    let ok = if keyword.starts_with("min") { n >= limit } else { n <= limit };
    if !ok {
        fail(format!("{n} breaks {keyword} {limit}"));
    }
}

/// The formats the document uses; formats it does not use fail.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok(),
        "uri" => url::Url::parse(s).is_ok(),
        "int32" | "int64" => true,
        _ => false,
    }
}
