//! Topic settings: an existing topic whose settings differ from what imbridge asks for is reported (each key,
//! what it has, what is wanted), never altered and never refused.

use imbridge_kafka::admin::{Admin, ConfigDrift, TopicSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_an_existing_topic_lacks_are_reported_not_changed() {
    imbridge_testkit::require_kafka!();
    let admin = Admin::new(&crate::common::kafka()).expect("admin");
    let name = imbridge_testkit::unique("drift");
    // Created the way an older imbridge created the applied ledger.
    let old = TopicSpec::new(&name, 2).with_config("cleanup.policy", "compact");
    admin.ensure_topics(std::slice::from_ref(&old)).await.expect("create");
    assert_eq!(admin.config_drift(std::slice::from_ref(&old)).await.expect("describe"), vec![], "as created");

    let now = TopicSpec::new(&name, 2)
        .with_config("cleanup.policy", "delete,compact")
        .with_config("retention.ms", "777600000");
    admin.ensure_topics(std::slice::from_ref(&now)).await.expect("an existing topic is still accepted");
    let drift = admin.config_drift(std::slice::from_ref(&now)).await.expect("describe");
    assert_eq!(
        drift,
        vec![
            ConfigDrift {
                topic: name.clone(),
                key: "cleanup.policy".into(),
                wanted: "delete,compact".into(),
                actual: Some("compact".into())
            },
            ConfigDrift {
                topic: name.clone(),
                key: "retention.ms".into(),
                wanted: "777600000".into(),
                actual: Some("604800000".into())
            },
        ]
    );
    assert!(drift[0].to_string().contains("--add-config cleanup.policy=[delete,compact]"), "{}", drift[0]);
    // Nothing was altered.
    assert_eq!(admin.config_drift(std::slice::from_ref(&old)).await.expect("describe"), vec![]);

    // List values compare in any order.
    let reordered = TopicSpec::new(&name, 2).with_config("cleanup.policy", " compact ");
    assert_eq!(admin.config_drift(std::slice::from_ref(&reordered)).await.expect("describe"), vec![]);
}
