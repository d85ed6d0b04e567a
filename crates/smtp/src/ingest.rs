//! Ingest: the listener's view of the application layer — recipients are agents, and a message is
//! accepted only once the application has committed it (`250` after the commit; a store
//! failure is `451`, a message that does not parse `554`).

use crate::{Envelope, Inbound, InboundError, RecipientCheck};
use herald_app::{AppError, Herald};
use herald_store::Ingested;

/// [`Inbound`] over the application layer.
pub struct AppInbound {
    pub app: Herald,
}

#[async_trait::async_trait]
impl Inbound for AppInbound {
    async fn check_recipient(&self, address: &str) -> Result<RecipientCheck, InboundError> {
        match self.app.recipient(address).await {
            Ok(Some(_)) => Ok(RecipientCheck::Accepted),
            Ok(None) => Ok(RecipientCheck::Unknown),
            Err(e) => Err(temporary(e)),
        }
    }

    async fn accept_message(&self, envelope: &Envelope, raw: Vec<u8>) -> Result<String, InboundError> {
        let mut recipients = Vec::with_capacity(envelope.recipients.len());
        for address in &envelope.recipients {
            // An agent deleted since RCPT no longer receives it; the others still do.
            if let Some(r) = self.app.recipient(address).await.map_err(temporary)? {
                recipients.push(r);
            }
        }
        if recipients.is_empty() {
            return Err(InboundError::Rejected("no recipient of this message is hosted here any more".into()));
        }
        let client = herald_mail::SmtpClient {
            ip: envelope.client_ip,
            helo: envelope.helo.clone(),
            mail_from: envelope.mail_from.clone(),
        };
        match self.app.accept_mail(&raw, Some(&client), &recipients).await {
            Ok(done) => {
                let ids: Vec<String> = done
                    .iter()
                    .filter_map(|d| match d {
                        Ingested::Stored { message, .. } | Ingested::Duplicate { message } => Some(message.to_string()),
                        Ingested::AgentGone => None,
                    })
                    .collect();
                if ids.is_empty() {
                    return Err(InboundError::Rejected("no recipient of this message is hosted here any more".into()));
                }
                Ok(ids.join(","))
            }
            Err(AppError::Invalid(errs)) => {
                Err(InboundError::Rejected(errs.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; ")))
            }
            Err(e) => Err(temporary(e)),
        }
    }
}

fn temporary(e: AppError) -> InboundError {
    tracing::error!(error = %e, "inbound mail could not be stored; answered 451");
    InboundError::Temporary
}
