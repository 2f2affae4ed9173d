//! The text of `mqgate certs list`: the inventory as a table, expiring certificates marked.

use std::fmt::Write;

use time::OffsetDateTime;

use crate::ca::CaInfo;
use crate::inventory::{Inventory, EXPIRY_WARNING_DAYS};

/// Renders the inventory at `now`: one row per certificate (serial, subject, profile,
/// not-after, status, days left). Valid certificates expiring within 30 days get a `!`
/// in the first column and a closing summary line.
pub fn render_list(ca: &CaInfo, inv: &Inventory, now: OffsetDateTime) -> String {
    let mut out = String::new();
    let ca_days = (ca.not_after - now).whole_days();
    let _ = writeln!(
        out,
        "CA {:?}: not after {} ({ca_days} days left)",
        ca.subject,
        ca.not_after.date()
    );
    if inv.certs.is_empty() {
        out.push_str("no certificates issued yet\n");
        return out;
    }
    let _ = writeln!(
        out,
        "  {:<40}  {:<24}  {:<6}  {:<10}  {:<7}  {:>9}",
        "SERIAL", "SUBJECT", "KIND", "NOT-AFTER", "STATUS", "DAYS-LEFT"
    );
    let mut expiring = 0;
    for r in &inv.certs {
        let soon = r.expiring_soon(now);
        expiring += usize::from(soon);
        let _ = writeln!(
            out,
            "{} {:<40}  {:<24}  {:<6}  {:<10}  {:<7}  {:>9}",
            if soon { "!" } else { " " },
            r.serial,
            r.subject,
            r.profile.to_string(),
            r.not_after.date().to_string(),
            r.status(now).to_string(),
            r.days_left(now).max(0)
        );
    }
    if expiring > 0 {
        let _ = writeln!(
            out,
            "! {expiring} certificate(s) expire within {EXPIRY_WARNING_DAYS} days: `mqgate certs renew ID`"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Record;
    use crate::profile::Profile;
    use time::macros::datetime;
    use time::Duration;

    #[test]
    fn expiring_rows_are_marked_and_counted() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let rec = |serial: &str, subject: &str, days: i64| Record {
            serial: serial.into(),
            subject: subject.into(),
            profile: Profile::Device,
            sans: vec![],
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(days),
            file: String::new(),
            revoked_at: None,
            revocation_reason: None,
        };
        let inv = Inventory {
            crl_number: 0,
            certs: vec![rec("AA", "soon", 10), rec("BB", "later", 200)],
        };
        let ca = CaInfo {
            subject: "Test CA".into(),
            not_after: now + Duration::days(1000),
            cert: "ca.pem".into(),
            key: "ca.key".into(),
        };
        let text = render_list(&ca, &inv, now);
        let soon = text.lines().find(|l| l.contains("soon")).unwrap();
        let later = text.lines().find(|l| l.contains("later")).unwrap();
        assert!(soon.starts_with('!'), "{text}");
        assert!(soon.contains("valid") && soon.trim_end().ends_with("10"));
        assert!(later.starts_with(' '));
        assert!(text.contains("1 certificate(s) expire within 30 days"));
    }
}
