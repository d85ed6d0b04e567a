//! A submitted HTML form: urlencoded pairs, a key possibly repeated (checkboxes), and the
//! field errors shown next to its inputs.

use super::PortalError;
use axum::extract::{FromRequest, Request};
use herald_app::FieldError;

/// The pairs of an `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
pub(crate) struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// The first value of `name`, trimmed and possibly empty; `None` only when the form
    /// does not carry the field (an emptied input is a change, an absent one is not).
    pub fn given(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
    }

    /// Every value of `name` (repeated keys), blanks dropped.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_owned()).collect()
    }

    /// A comma-separated list: values trimmed, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    pub fn csrf(&self) -> Option<&str> {
        self.get("csrf")
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = PortalError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PortalError::BadForm("expected a submitted form (application/x-www-form-urlencoded)".into()));
        }
        let body =
            axum::body::Bytes::from_request(req, state).await.map_err(|e| PortalError::BadForm(e.body_text()))?;
        // Browsers send UTF-8 (the pages say so); anything else is refused, not guessed at.
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let garbled = |v: &String| v.contains(char::REPLACEMENT_CHARACTER);
        if std::str::from_utf8(&body).is_err() || pairs.iter().any(|(k, v)| garbled(k) || garbled(v)) {
            return Err(PortalError::BadForm("the form is not valid UTF-8".into()));
        }
        Ok(Self(pairs))
    }
}

/// Field errors by input name (the API's `filters.labels` is the form's `labels`).
#[derive(Clone, Debug, Default)]
pub(crate) struct FormErrors(Vec<FieldError>);

impl FormErrors {
    pub fn new(errs: Vec<FieldError>) -> Self {
        Self(
            errs.into_iter()
                .map(|e| FieldError { field: e.field.trim_start_matches("filters.").to_owned(), message: e.message })
                .collect(),
        )
    }

    /// The message for one input, if it has one.
    pub fn get(&self, field: &str) -> Option<String> {
        let msgs: Vec<&str> = self.0.iter().filter(|e| e.field == field).map(|e| e.message.as_str()).collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every error, for the summary at the top of the form.
    pub fn all(&self) -> &[FieldError] {
        &self.0
    }
}
