//! The worked signature example in `docs/legacy-contract.md` is checked against the code, straight from the
//! document, so the published example can never go stale.

use imbridge_legacy::signature::{sign, verify_parts};

#[test]
fn worked_example_in_the_doc_verifies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/legacy-contract.md");
    let doc = std::fs::read_to_string(path).expect("docs/legacy-contract.md");
    let section = doc.split("### Worked example").nth(1).expect("worked example section");
    let secret = section.split('`').nth(1).expect("secret in backticks");
    let ts_line = section.lines().find(|l| l.starts_with("X-Imbridge-Timestamp: ")).expect("timestamp header");
    let sig_line = section.lines().find(|l| l.starts_with("X-Imbridge-Signature: ")).expect("signature header");
    let body = section.lines().find(|l| l.starts_with("{\"events\"")).expect("body line");
    let ts = ts_line.trim_start_matches("X-Imbridge-Timestamp: ");
    let sig = sig_line.trim_start_matches("X-Imbridge-Signature: ");

    assert_eq!(secret, "whsec_example_1");
    assert_eq!(sign(secret, ts.parse().expect("secs"), body.as_bytes()), sig);
    assert_eq!(verify_parts(&[secret], Some(ts), Some(sig), body.as_bytes(), ts.parse().expect("secs"), 300), Ok(()));
    // The OpenSSL line in the doc signs the same message and prints the same digest.
    assert!(section.contains(&format!("printf '%s' '{ts}.{body}'")), "openssl command signs the example body");
    assert!(section.contains(&format!("= {}", sig.trim_start_matches("v1="))), "openssl output matches");
}
