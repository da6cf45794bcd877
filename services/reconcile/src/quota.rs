//! Reconciliation's own, lowest-priority share of IM's per-app quotas.
//!
//! `[im] reconcile_quota_share` of each read API's quota belongs to reconcile; every other part paces those
//! APIs at the rest (`ImConfig::rate_for`), so however hard reconcile works it cannot push live sync into
//! 60007. A scaled reconcile group divides its share by partitions, like to-im: an instance paces each API at
//! `reconcile share × its assigned partitions / all partitions`, recomputed on every assignment change.

use imbridge_im::{ImClient, ImConfig, RECONCILE_APIS, RateSetting};
use tracing::info;

/// Paces `im` at `fraction` (0..=1) of reconcile's share of every API it calls.
pub fn apply(im: &ImClient, config: &ImConfig, fraction: f64) {
    // Never zero: a rate of 0 means "unlimited" to the client; an instance owning nothing makes no calls anyway.
    let fraction = fraction.clamp(f64::EPSILON, 1.0);
    for api in RECONCILE_APIS {
        if let Some(rate) = config.reconcile_rate_for(api).per_sec() {
            im.set_rate(api, RateSetting::PerSec(rate * fraction));
        }
    }
    info!(fraction, share = config.reconcile_quota_share, "reconcile im quota share set");
}

#[cfg(test)]
mod tests {
    use imbridge_im::Api;

    use super::*;

    #[test]
    fn an_instance_takes_its_part_of_reconciles_share() {
        let mut config = ImConfig { sdkappid: 1, secret_key: "k".into(), ..ImConfig::default() };
        config.rate_limits.insert(Api::GetGroupInfo, RateSetting::PerSec(100.0));
        let im = ImClient::new(&config, &prometheus::Registry::new()).expect("client");
        apply(&im, &config, 0.5);
        let rate = im.rate(Api::GetGroupInfo).per_sec().expect("limited");
        assert!((rate - 5.0).abs() < 1e-9, "{rate}");
        // APIs reconcile never calls keep the live rate.
        assert_eq!(im.rate(Api::SendMsg).per_sec(), Some(200.0));
    }
}
