//! Inbound mail as the rest of Herald sees it: the fields parsed from a message and the
//! results of authenticating it. Produced by `herald-mail`, stored with the message,
//! shown by the API and turned into the seed's `X-E2A-Auth-*` headers.

use serde::{Deserialize, Serialize};

/// The fields of one inbound message that Herald keeps and shows (RFC 5322 headers decoded,
/// RFC 2047 words included). Addresses are bare `local@domain`, as written by the sender.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedMail {
    /// `Message-ID` without the angle brackets.
    pub message_id: Option<String>,
    /// The first address of `From` (empty when there is none).
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// `Reply-To` (a list; empty when absent — never filled from `From`).
    pub reply_to: Vec<String>,
    pub subject: String,
    /// `In-Reply-To` message ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// `References` message ids, without angle brackets, oldest first.
    pub references: Vec<String>,
    /// The `X-E2A-Conversation-Id` header, if present.
    pub conversation_header: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// One attachment as listed by the API: never its content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// What authenticating a message found. Results are the RFC 8601 words (`pass`, `fail`,
/// `softfail`, `neutral`, `none`, `temperror`, `permerror`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResults {
    /// SPF of the envelope sender (or of the HELO name when the sender is empty); `none`
    /// when there is no client IP (a message injected through the API).
    pub spf: String,
    /// Every DKIM signature, in the order of the message.
    pub dkim: Vec<DkimResult>,
    /// DMARC with identifier alignment against the header `From` domain.
    pub dmarc: String,
    /// True only when DMARC passes (an aligned SPF or DKIM pass).
    pub verified: bool,
}

impl AuthResults {
    /// Nothing could be checked.
    pub fn none() -> Self {
        Self { spf: "none".into(), dkim: Vec::new(), dmarc: "none".into(), verified: false }
    }

    /// The DKIM word the seed's one-line summary uses: `pass` when any signature passed,
    /// else the first signature's result, else `none`.
    pub fn dkim_summary(&self) -> &str {
        if self.dkim.iter().any(|d| d.result == "pass") {
            "pass"
        } else {
            self.dkim.first().map_or("none", |d| d.result.as_str())
        }
    }
}

/// The result of one DKIM signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimResult {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    pub result: String,
}
