//! The answers operations share, added to the document in one place from what each
//! operation takes, and the problem body every error answer carries.
//!
//! | what the operation has | answers it can also give |
//! |---|---|
//! | anything | 500 |
//! | an API key (`security`): the management API | 401 (no valid key), 503 (the store is unreachable), 400 (an unknown query parameter) |
//! | a path parameter | 404 (nothing of that id in the caller's account) |
//! | query parameters | 400 (unknown, repeated, wrong type, out of range) |
//! | a request body | 413 (over the route's limit), 415 (another content type) |
//! | a JSON request body | 400 (not JSON, wrong shape, invalid values) |
//!
//! Each handler's annotation lists its successes and its own reasons (409, 429, …) with a
//! description; every answer of 400 or more is then given the `application/problem+json`
//! content with the `Problem` schema, and its headers: `WWW-Authenticate` on 401,
//! `Retry-After` on 429 and 503.

use utoipa::Modify;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Header, OpenApi, Ref, RefOr, Response};

pub(super) struct SharedAnswers;

/// The content type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                add_shared(op);
                for (status, answer) in op.responses.responses.iter_mut() {
                    if let RefOr::T(answer) = answer {
                        complete(status, answer);
                    }
                }
            }
        }
    }
}

fn add_shared(op: &mut Operation) {
    let params = op.parameters.iter().flatten().filter_map(|p| match p {
        RefOr::T(p) => Some(&p.parameter_in),
        RefOr::Ref(_) => None,
    });
    let (mut path, mut query) = (false, false);
    for at in params {
        path |= matches!(at, ParameterIn::Path);
        query |= matches!(at, ParameterIn::Query);
    }
    let body_types: Vec<String> = match &op.request_body {
        Some(RefOr::T(b)) => b.content.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut shared = vec!["500"];
    if op.security.is_some() {
        // Every operation of the management API refuses a query parameter it does not define.
        shared.extend(["401", "503", "400"]);
    }
    if path {
        shared.push("404");
    }
    if (query || body_types.iter().any(|t| t == "application/json")) && !shared.contains(&"400") {
        shared.push("400");
    }
    if !body_types.is_empty() {
        shared.extend(["413", "415"]);
    }
    for status in shared {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(Response::new("")));
    }
}

/// An error answer's problem body, headers and (when the handler gave none) description.
fn complete(status: &str, answer: &mut Response) {
    let Ok(code) = status.parse::<u16>() else { return };
    if code < 400 {
        return;
    }
    if answer.description.is_empty() {
        answer.description = default_description(code).to_owned();
    }
    if answer.content.is_empty() {
        answer.content.insert(PROBLEM_JSON.into(), RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))));
    }
    let integer = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let header = match code {
        401 => Some(("WWW-Authenticate", Header::new(string()), "`Bearer realm=\"herald\"`")),
        429 | 503 => Some(("Retry-After", Header::new(integer()), "seconds to wait before trying again")),
        _ => None,
    };
    if let Some((name, mut header, description)) = header {
        header.description = Some(description.into());
        answer.headers.insert(name.into(), RefOr::T(header));
    }
}

fn default_description(code: u16) -> &'static str {
    match code {
        400 => {
            "invalid request: a field or query parameter that is unknown, repeated, missing, of the wrong type or \
             out of range, or a body that is not JSON; `errors` names each field; nothing was changed"
        }
        401 => "no valid API key: send `Authorization: Bearer hk_…`",
        404 => "no such resource in the caller's account (another account's resources look the same)",
        409 => "the resource's state does not allow this now",
        413 => {
            "the body is over the route's limit: 256 KiB for events, the message size limit \
             (HERALD_SMTP_MAX_MESSAGE_SIZE, 10 MB by default) for messages, 64 KiB elsewhere"
        }
        415 => "the body has another content type than the one documented",
        429 => "rate limited: nothing was done; try again after `Retry-After` seconds",
        503 => "the store is unavailable: nothing was changed; try again after `Retry-After` seconds",
        _ => "an unexpected error: nothing the caller can change; reported in the server's log",
    }
}
