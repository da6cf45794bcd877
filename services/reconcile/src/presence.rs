//! Which side is right about something one side has and the other lacks: a group member, or a group.
//!
//! "Present on one side only" has two histories: it was added on that side and the addition never reached the
//! other, or it was removed on the other side and the removal never reached this one. The evidence that tells
//! them apart is the time each side's last change happened and who made it:
//!
//! - **on IM only**: IM gives the time it began (a member's `JoinTime`, a group's `CreateTime`, seconds); legacy
//!   keeps the time it last removed it (a former member's `left_at`, a group's `dismissed_at`, ms). A legacy
//!   removal in a later second than IM's addition is the latest change: remove it on IM. None, or an earlier
//!   one: IM's addition is the latest: add it on legacy. The same second: unknown, reported only.
//! - **on legacy only**: IM keeps nothing of what it removed, so legacy's record of who made it decides. Made
//!   by imbridge (`origin: im`), it was copied from IM, so IM had it and removed it since, and the removal's
//!   callback was lost (IM never re-sends one): remove it on legacy. Made by legacy's own users, IM lacking it
//!   means the addition never reached IM (or IM removed it with that callback lost too, which nothing on either
//!   side can show): add it on IM. The rule errs toward keeping: a member re-added or a group re-created is
//!   visible and can be undone; a wrong removal loses data.

use imbridge_core::TimestampMs;
use imbridge_legacy::Origin;

/// What to do about something present on one side only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// IM is right: create it on legacy.
    AddToLegacy,
    /// Legacy is right (it removed it later): remove it on IM.
    RemoveFromIm,
    /// Legacy is right: create it on IM.
    AddToIm,
    /// IM is right (it removed it, the callback was lost): remove it on legacy.
    RemoveFromLegacy,
    /// The evidence does not decide; the reason.
    Unknown(&'static str),
}

pub const SAME_SECOND: &str = "legacy removed it in the second IM added it: which came last is unknown";
pub const NO_IM_TIME: &str = "IM gives no time it was added, to compare with legacy's removal";

/// Present on IM only, added there at `im_added_s` (Unix s); legacy's last removal of it, if it keeps one.
pub fn im_only(im_added_s: Option<i64>, legacy_removed: Option<TimestampMs>) -> Verdict {
    let Some(removed) = legacy_removed else { return Verdict::AddToLegacy };
    let Some(added) = im_added_s else { return Verdict::Unknown(NO_IM_TIME) };
    let removed_s = removed.0.div_euclid(1000);
    match removed_s.cmp(&added) {
        std::cmp::Ordering::Greater => Verdict::RemoveFromIm,
        std::cmp::Ordering::Less => Verdict::AddToLegacy,
        std::cmp::Ordering::Equal => Verdict::Unknown(SAME_SECOND),
    }
}

/// Present on legacy only; who made it there.
pub fn legacy_only(origin: Option<Origin>) -> Verdict {
    match origin {
        Some(Origin::Im) => Verdict::RemoveFromLegacy,
        Some(Origin::Legacy) | None => Verdict::AddToIm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_im_only_the_later_change_wins() {
        assert_eq!(im_only(Some(100), None), Verdict::AddToLegacy, "legacy never had it");
        assert_eq!(im_only(None, None), Verdict::AddToLegacy);
        assert_eq!(im_only(Some(100), Some(TimestampMs(99_999))), Verdict::AddToLegacy, "left, then re-joined on IM");
        assert_eq!(im_only(Some(100), Some(TimestampMs(101_000))), Verdict::RemoveFromIm, "left on legacy later");
        assert_eq!(im_only(Some(100), Some(TimestampMs(100_500))), Verdict::Unknown(SAME_SECOND));
        assert_eq!(im_only(None, Some(TimestampMs(1))), Verdict::Unknown(NO_IM_TIME));
    }

    #[test]
    fn on_legacy_only_who_made_it_decides() {
        assert_eq!(legacy_only(Some(Origin::Im)), Verdict::RemoveFromLegacy, "a copy of IM's, removed on IM since");
        assert_eq!(legacy_only(None), Verdict::AddToIm, "legacy's own, never reached IM");
        assert_eq!(legacy_only(Some(Origin::Legacy)), Verdict::AddToIm);
    }
}
