//! The body of every subscriber delivery, built once at publish time and stored as bytes.

use crate::ids::EventId;
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// Envelope bytes: `{"id","type","schema_version":"1","created_at","data"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope(Vec<u8>);

impl Envelope {
    /// Builds the envelope; `data` is embedded verbatim (it is already valid JSON).
    pub fn build(id: &EventId, event_type: &str, created_at: OffsetDateTime, data: &RawValue) -> Self {
        let esc = |s: &str| serde_json::to_string(s).expect("strings always serialise");
        let mut out = String::with_capacity(128 + data.get().len());
        out.push_str("{\"id\":");
        out.push_str(&esc(id.as_str()));
        out.push_str(",\"type\":");
        out.push_str(&esc(event_type));
        out.push_str(",\"schema_version\":\"1\",\"created_at\":");
        out.push_str(&esc(&crate::rfc3339(created_at)));
        out.push_str(",\"data\":");
        out.push_str(data.get());
        out.push('}');
        Self(out.into_bytes())
    }

    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_valid_json_with_data_verbatim() {
        let id = EventId::generate();
        let data = RawValue::from_string(r#"{"b":1,  "a":"x"}"#.into()).unwrap();
        let at = time::macros::datetime!(2023-11-14 22:13:20.5 UTC);
        let env = Envelope::build(&id, "email.sent", at, &data);
        let text = std::str::from_utf8(env.as_bytes()).unwrap();
        assert!(text.ends_with(r#""data":{"b":1,  "a":"x"}}"#), "{text}");
        let v: serde_json::Value = serde_json::from_slice(env.as_bytes()).unwrap();
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["schema_version"], "1");
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.500Z");
    }
}
