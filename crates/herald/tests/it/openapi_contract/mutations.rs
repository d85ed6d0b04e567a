//! Requests derived from the document: for a JSON body or the query parameters of an
//! operation, the invalid variants of a valid example (a field missing, of the wrong type,
//! out of range, over-long, not matching its pattern, unknown) that the server must refuse
//! with a 400 naming the field, and the variants at the edge of every range and length
//! (multi-byte characters included) that it must accept.

use super::schema_check::Schemas;
use serde_json::{Value, json};

/// How one request differs from the operation's valid example.
#[derive(Clone, Debug)]
pub enum Change {
    /// Set (or add) the body field at this path.
    Set(Vec<String>, Value),
    /// Remove the body field at this path.
    Remove(Vec<String>),
    /// Set (or add) a query parameter.
    Query(String, String),
}

/// What the server must answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// A 2xx.
    Accepted,
    /// A 400 whose `errors` name this field (or a path under it).
    Refused(String),
}

#[derive(Clone, Debug)]
pub struct Case {
    pub what: String,
    pub change: Change,
    pub expect: Expect,
}

impl Change {
    pub fn apply(&self, body: &mut Value, query: &mut Vec<(String, String)>) {
        match self {
            Change::Set(path, v) => *slot(body, path) = v.clone(),
            Change::Remove(path) => {
                let (last, parent) = path.split_last().unwrap();
                slot(body, parent).as_object_mut().unwrap().remove(last);
            }
            Change::Query(k, v) => {
                query.retain(|(name, _)| name != k);
                query.push((k.clone(), v.clone()));
            }
        }
    }
}

fn slot<'a>(body: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(body, |v, k| {
        if !v.is_object() {
            *v = json!({});
        }
        v.as_object_mut().unwrap().entry(k.clone()).or_insert(Value::Null)
    })
}

/// The cases of a JSON body whose schema is `schema`.
pub fn body_cases(s: &Schemas, schema: &Value) -> Vec<Case> {
    let mut out = Vec::new();
    object_cases(s, object_branch(s, schema), &[], &mut out);
    out
}

/// The object schema of a body that may also be `null`.
fn object_branch<'a>(s: &'a Schemas, schema: &'a Value) -> &'a Value {
    let schema = s.resolve(schema);
    match schema.get("oneOf").and_then(Value::as_array) {
        Some(branches) => s.resolve(branches.iter().find(|b| b["type"] != "null").expect("a non-null branch")),
        None => schema,
    }
}

fn object_cases(s: &Schemas, schema: &Value, at: &[String], out: &mut Vec<Case>) {
    let field = |name: &str| [at, &[name.to_owned()]].concat();
    let dotted = |path: &[String]| path.join(".");
    if schema["additionalProperties"] == false {
        let path = field("unknown_field");
        out.push(Case {
            what: format!("unknown field {}", dotted(&path)),
            change: Change::Set(path.clone(), json!(1)),
            expect: Expect::Refused(dotted(&path)),
        });
    }
    for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let path = field(name);
        out.push(Case {
            what: format!("missing {}", dotted(&path)),
            change: Change::Remove(path.clone()),
            expect: Expect::Refused(dotted(&path)),
        });
    }
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        let path = field(name);
        let refuse = |what: String, v: Value| Case {
            what: format!("{} {what}", dotted(&path)),
            change: Change::Set(path.clone(), v),
            expect: Expect::Refused(dotted(&path)),
        };
        let accept = |what: String, v: Value| Case {
            what: format!("{} {what}", dotted(&path)),
            change: Change::Set(path.clone(), v),
            expect: Expect::Accepted,
        };
        let (rule, types) = value_schema(s, prop);
        out.push(refuse("of the wrong type".into(), wrong_type(&types)));
        for (what, v) in bounds(s, rule) {
            out.push(refuse(what, v));
        }
        for (what, v) in edges(s, rule) {
            out.push(accept(what, v));
        }
        if types.contains(&"object") && rule.get("properties").is_some() {
            object_cases(s, rule, &path, out);
        }
    }
}

/// The schema a value must match once a `null` alternative is set aside, and its types
/// (`null` included when allowed).
fn value_schema<'a>(s: &'a Schemas, prop: &'a Value) -> (&'a Value, Vec<&'a str>) {
    let prop = s.resolve(prop);
    let (rule, nullable) = match prop.get("oneOf").and_then(Value::as_array) {
        Some(branches) => (
            s.resolve(branches.iter().find(|b| b["type"] != "null").unwrap()),
            branches.iter().any(|b| b["type"] == "null"),
        ),
        None => (prop, false),
    };
    let mut types: Vec<&str> = match &rule["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if nullable {
        types.push("null");
    }
    (rule, types)
}

fn wrong_type(types: &[&str]) -> Value {
    // A number field would take an integer too.
    let takes = |t: &str| types.contains(&t) || (t == "integer" && types.contains(&"number"));
    let candidates = [("integer", json!(12345)), ("string", json!("wrong type")), ("boolean", json!(true))];
    candidates.into_iter().find(|(t, _)| !takes(t)).expect("a type the field does not take").1
}

/// Values just past each of the schema's limits.
fn bounds(s: &Schemas, rule: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Some(min) = rule["minimum"].as_i64() {
        out.push((format!("below its minimum {min}"), json!(min - 1)));
    }
    if let Some(max) = rule["maximum"].as_i64() {
        out.push((format!("above its maximum {max}"), json!(max + 1)));
    }
    if let Some(max) = rule["maxLength"].as_u64() {
        out.push((format!("longer than {max}"), json!("a".repeat(max as usize + 1))));
    }
    if let Some(min) = rule["minLength"].as_u64().filter(|m| *m > 0) {
        out.push((format!("shorter than {min}"), json!("a".repeat(min as usize - 1))));
    }
    if let Some(p) = rule["pattern"].as_str() {
        let bad =
            ["Not Valid!", "a\u{1}b", "x"].into_iter().find(|c| !s.matches(p, c)).expect("a value off the pattern");
        out.push((format!("not matching {p}"), json!(bad)));
    }
    if rule["format"] == "date-time" {
        out.push(("not a date-time".into(), json!("yesterday")));
    }
    if is(rule, "array") {
        if let Some(max) = rule["maxItems"].as_u64() {
            let items: Vec<String> = (0..=max).map(|i| format!("v{i}")).collect();
            out.push((format!("with more than {max} items"), json!(items)));
        }
        if rule["minItems"].as_u64() == Some(1) {
            out.push(("empty".into(), json!([])));
        }
        let (item, _) = value_schema(s, &rule["items"]);
        if let Some(max) = item["maxLength"].as_u64() {
            out.push((format!("with an item longer than {max}"), json!(["a".repeat(max as usize + 1)])));
        }
    }
    out
}

/// Values at each of the schema's limits that nothing else constrains: the server must take
/// them. Strings are written in a two-byte character, so a limit counted in bytes shows.
fn edges(s: &Schemas, rule: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let (Some(min), Some(max)) = (rule["minimum"].as_i64(), rule["maximum"].as_i64()) {
        out.push((format!("at its minimum {min}"), json!(min)));
        out.push((format!("at its maximum {max}"), json!(max)));
    }
    if let Some(max) = free_text_limit(s, rule) {
        out.push((format!("of {max} two-byte characters"), json!("é".repeat(max))));
    }
    if is(rule, "array") {
        let (item, _) = value_schema(s, &rule["items"]);
        if let Some(max) = free_text_limit(s, item) {
            out.push((format!("with an item of {max} two-byte characters"), json!(["é".repeat(max)])));
        }
        if let (Some(n), Some(_)) = (rule["maxItems"].as_u64(), free_text_limit(s, item)) {
            let items: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
            out.push((format!("with {n} items"), json!(items)));
        }
    }
    out
}

/// The `maxLength` of a string that has no other rule than "no control characters".
fn free_text_limit(s: &Schemas, rule: &Value) -> Option<usize> {
    let pattern_ok = rule["pattern"].as_str().is_none_or(|p| s.matches(p, &"é".repeat(3)) && !s.matches(p, "\u{1}"));
    let free = is(rule, "string") && rule.get("format").is_none() && pattern_ok;
    rule["maxLength"].as_u64().filter(|_| free).map(|m| m as usize)
}

/// Whether `rule` takes values of type `t` (its `type` is `t` or a list holding it).
fn is(rule: &Value, t: &str) -> bool {
    match &rule["type"] {
        Value::String(one) => one == t,
        Value::Array(all) => all.iter().any(|x| x == t),
        _ => false,
    }
}

/// The cases of an operation's query parameters (`params` as in the document).
pub fn query_cases(s: &Schemas, params: &[Value]) -> Vec<Case> {
    let mut out = vec![Case {
        what: "unknown query parameter".into(),
        change: Change::Query("unknown_param".into(), "1".into()),
        expect: Expect::Refused("unknown_param".into()),
    }];
    for p in params.iter().filter(|p| p["in"] == "query") {
        let name = p["name"].as_str().unwrap().to_owned();
        let (rule, types) = value_schema(s, &p["schema"]);
        let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        let refuse = |what: String, v: String| Case {
            what: format!("?{name} {what}"),
            change: Change::Query(name.clone(), v),
            expect: Expect::Refused(name.clone()),
        };
        if types.contains(&"integer") || types.contains(&"boolean") {
            out.push(refuse("of the wrong type".into(), "wrong".into()));
        }
        if let Some(values) = rule["enum"].as_array() {
            assert!(!values.contains(&json!("wrong")));
            out.push(refuse("not one of its values".into(), "wrong".into()));
        }
        for (what, v) in bounds(s, rule) {
            out.push(refuse(what, text(&v)));
        }
        for (what, v) in edges(s, rule) {
            out.push(Case {
                what: format!("?{name} {what}"),
                change: Change::Query(name.clone(), text(&v)),
                expect: Expect::Accepted,
            });
        }
    }
    out
}
