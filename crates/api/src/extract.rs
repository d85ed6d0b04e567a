//! Extractors that turn every malformed request into a clear problem (never axum's text).
//!
//! One rule for what a request may carry: a JSON body needs `Content-Type: application/json`
//! (415 otherwise); a field or query parameter the operation does not define is refused
//! (400), like a value of the wrong type, and the problem's `errors[].field` names it
//! (`events[0]`, `filters.labels`, `limit`). Unknown headers are ignored.

use crate::problem::{ApiError, FieldError};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use serde::de::DeserializeOwned;

/// JSON body with problem+json rejections.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::Unsupported("expected Content-Type: application/json".into()));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_object(&bytes, false)?;
        parse_json(&bytes).map(Json)
    }
}

/// An optional JSON body: empty (or `null`) → `None`; otherwise parsed like [`Json`].
pub struct MaybeJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        if !json {
            return Err(ApiError::Unsupported("a body must be JSON: Content-Type: application/json".into()));
        }
        parse_object(&bytes, true)?;
        parse_json::<Option<T>>(&bytes).map(MaybeJson)
    }
}

/// `application/json`, or any `application/*+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body that could not be read: over the route's limit (413) or broken on the wire.
pub(crate) fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("request body is too large".into())
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Every body is a JSON object (or, where the body is optional, `null`): any other JSON
/// value is a validation error on `body` (serde would take an array for a struct).
fn parse_object(bytes: &[u8], null_allowed: bool) -> Result<(), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let allowed = first == Some(&b'{') || (null_allowed && first == Some(&b'n'));
    if allowed || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Ok(()); // an object, or not JSON at all: the parse says which
    }
    let what = if null_allowed { "must be a JSON object or null" } else { "must be a JSON object" };
    Err(ApiError::field("body", what))
}

/// Parses a whole JSON document: not JSON → 400 `bad-request`; JSON of the wrong shape
/// (a wrong type, a missing or unknown field) → 400 `validation` naming the field.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            ApiError::Validation(vec![shape_error(&path, &inner.to_string())])
        } else {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// The field a serde data error is about, and the error without its position: the path,
/// or for a missing or unknown field, the path to it.
fn shape_error(path: &str, message: &str) -> FieldError {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (p, Some(name)) if !(p == name || p.ends_with(&format!(".{name}"))) => format!("{p}.{name}"),
        (p, _) => p.to_owned(),
    };
    FieldError { field, message: message.to_owned() }
}

/// Query string with problem+json rejections; a parameter that is unknown, given twice or
/// of the wrong type is named in the problem's `errors[].field`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(q) => Ok(Query(q.0)),
            Err(e) => {
                Err(ApiError::Validation(vec![query_error::<T>(parts.uri.query().unwrap_or(""), &e.body_text())]))
            }
        }
    }
}

/// Which parameter of `query` is wrong: the first one given twice, or the first one that is
/// refused on its own.
fn query_error<T: DeserializeOwned>(query: &str, whole: &str) -> FieldError {
    // No operation has this many parameters: name the first one past it, without looking
    // at each of thousands (each is deserialised alone below).
    const MOST: usize = 32;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .take(MOST + 1)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some((name, _)) = pairs.get(MOST) {
        return FieldError { field: name.clone(), message: format!("more than {MOST} query parameters") };
    }
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return FieldError { field: name.clone(), message: "is given more than once".into() };
        }
    }
    for (name, value) in &pairs {
        let alone = url::form_urlencoded::Serializer::new(String::new()).append_pair(name, value).finish();
        let Ok(uri) = format!("/?{alone}").parse::<Uri>() else { continue };
        if let Err(e) = axum::extract::Query::<T>::try_from_uri(&uri) {
            let text = without_axum_prefix(&e.body_text());
            let message = text.strip_prefix(&format!("{name}: ")).unwrap_or(&text).to_owned();
            return FieldError { field: name.clone(), message };
        }
    }
    FieldError { field: "query".into(), message: without_axum_prefix(whole) }
}

fn without_axum_prefix(text: &str) -> String {
    text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text).to_owned()
}

/// For an operation that takes no query parameters: any parameter is unknown (400).
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        match url::form_urlencoded::parse(query.as_bytes()).next() {
            None => Ok(NoQuery),
            Some((name, _)) => Err(ApiError::field(&name, "unknown query parameter: this operation takes none")),
        }
    }
}

/// One path segment as a string. A segment that does not decode (invalid UTF-8 in its
/// percent-encoding) names nothing here: 404.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state).await.map(|p| PathId(p.0)).map_err(
            |e: PathRejection| match e {
                PathRejection::FailedToDeserializePathParams(_) => ApiError::NotFound("resource"),
                _ => ApiError::Internal,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_error_names_the_field_it_is_about() {
        let named = |p: &str, m: &str| shape_error(p, m).field;
        assert_eq!(named(".", "unknown field `surprise`, expected `url` at line 1 column 12"), "surprise");
        assert_eq!(named(".", "missing field `url` at line 1 column 2"), "url");
        assert_eq!(named("filters", "unknown field `label`, expected one of `labels`"), "filters.label");
        assert_eq!(named("events[0]", "invalid type: integer `5`, expected a string"), "events[0]");
        assert_eq!(named(".", "invalid type: sequence, expected struct WebhookIn"), "body");
        assert_eq!(shape_error(".", "missing field `url` at line 1 column 2").message, "missing field `url`");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
        cursor: Option<String>,
    }

    #[test]
    fn a_query_error_names_the_parameter() {
        let blame = |q: &str| query_error::<Page>(q, "whole").field;
        assert_eq!(blame("limit=5&limt=3"), "limt");
        assert_eq!(blame("cursor=a&limit=x"), "limit");
        assert_eq!(blame("limit=1&limit=2"), "limit");
        assert_eq!(blame("limit=99999999999"), "limit");
        let message = query_error::<Page>("limt=3", "whole").message;
        assert!(message.starts_with("unknown field `limt`"), "{message}");
    }

    #[test]
    fn a_body_is_an_object() {
        assert!(parse_object(b" {\"a\":1}", false).is_ok());
        assert!(parse_object(b"{not json", false).is_ok(), "left to the parse: 400 bad-request");
        assert!(matches!(parse_object(b"[1]", false), Err(ApiError::Validation(_))));
        assert!(matches!(parse_object(b"null", false), Err(ApiError::Validation(_))));
        assert!(parse_object(b"null", true).is_ok());
        assert!(matches!(parse_object(b"5", true), Err(ApiError::Validation(_))));
    }
}
