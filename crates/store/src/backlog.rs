//! `herald bench --backlog`: how the stores spread a seeded backlog over webhooks and accounts.

use herald_domain::{AccountId, WebhookId};

/// What `herald bench --backlog` seeds: `rows` pending deliveries over `webhooks` webhooks
/// (the dead one and copies of it) owned by `accounts` accounts (its own and new ones).
#[derive(Clone, Copy, Debug)]
pub struct Backlog {
    pub rows: u64,
    pub webhooks: u64,
    pub accounts: u64,
}

/// The webhooks a backlog is spread over, each with its account: `webhook` (of `account`)
/// first, then `webhooks - 1` new webhook ids (copies of it), dealt round-robin over
/// `account` and `accounts - 1` new account ids. Returns those webhooks and the accounts
/// (`account` first; the rest are to be created).
pub fn spread(webhook: &WebhookId, account: &str, shape: &Backlog) -> (Vec<(String, String)>, Vec<String>) {
    let mut owners = vec![account.to_owned()];
    owners.extend((1..shape.accounts.max(1)).map(|_| AccountId::generate().to_string()));
    let mut hooks = vec![(webhook.to_string(), account.to_owned())];
    hooks.extend(
        (1..shape.webhooks.max(1))
            .map(|i| (WebhookId::generate().to_string(), owners[(i % owners.len() as u64) as usize].clone())),
    );
    (hooks, owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_dealt_over_every_account() {
        let wh = WebhookId::generate();
        let (hooks, owners) = spread(&wh, "acc_a", &Backlog { rows: 0, webhooks: 10, accounts: 3 });
        assert_eq!(hooks.len(), 10);
        assert_eq!(owners.len(), 3);
        assert_eq!(hooks[0], (wh.to_string(), "acc_a".to_owned()));
        for owner in &owners {
            assert!(hooks.iter().filter(|(_, a)| a == owner).count() >= 3, "{owner}");
        }
        assert_eq!(
            spread(&wh, "acc_a", &Backlog { rows: 0, webhooks: 0, accounts: 0 }),
            (vec![(wh.to_string(), "acc_a".to_owned())], vec!["acc_a".to_owned()])
        );
    }
}
