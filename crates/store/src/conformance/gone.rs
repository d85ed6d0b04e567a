//! A receiver answering 410 disables its webhook once: the batch that did it says so, and a
//! webhook disabled before (by hand, or by an earlier 410) keeps its reason.

use super::{LEASE, account, answered, publish, t0, webhook};
use crate::{Store, WebhookPatch};
use herald_domain::{DisabledReason, Verdict};

pub async fn a_410_disables_its_webhook_once_and_keeps_an_earlier_reason(store: &dyn Store) {
    let a = account(store, "a").await;
    let gone = webhook(store, &a, 100).await;
    let manual = webhook(store, &a, 100).await;
    for _ in 0..2 {
        publish(store, &a, t0()).await;
    }
    let claimed = store.claim_due(t0(), LEASE, 100).await.unwrap();
    let of = |w| claimed.iter().filter(move |c| &c.webhook_id == w).collect::<Vec<_>>();
    let (to_gone, to_manual) = (of(&gone), of(&manual));
    let g = Verdict::Failed { gone: true };

    let first = store.record_batch(&[answered(to_gone[0], 410, 1, t0(), &g)], t0()).await.unwrap();
    assert_eq!((first.applied, first.disabled_gone), (vec![true], vec![gone.clone()]));
    let second = store.record_batch(&[answered(to_gone[1], 410, 1, t0(), &g)], t0()).await.unwrap();
    assert_eq!((second.applied, second.disabled_gone), (vec![true], vec![]), "disabled already");

    let off = WebhookPatch { enabled: Some(false), ..Default::default() };
    store.update_webhook(&a, &manual, off, t0()).await.unwrap().unwrap();
    let late = store.record_batch(&[answered(to_manual[0], 410, 1, t0(), &g)], t0()).await.unwrap();
    assert!(late.disabled_gone.is_empty());
    let w = store.get_webhook(&a, &manual).await.unwrap().unwrap();
    assert_eq!(w.disabled_reason, Some(DisabledReason::Manual), "a 410 does not overwrite the reason");
    let w = store.get_webhook(&a, &gone).await.unwrap().unwrap();
    assert_eq!((w.enabled, w.disabled_reason), (false, Some(DisabledReason::Gone)));
}
