//! The producer's partition choice equals the Java client's: keys are hashed by Kafka's own
//! `org.apache.kafka.common.utils.Utils.murmur2`, run from the same jars the broker runs from.

use std::io::Write;
use std::process::{Command, Stdio};

use imbridge_kafka::Producer;
use imbridge_kafka::partitioner::partition_for_key;
use imbridge_kafka::producer::Outgoing;

fn java_partitions(keys: &[String], partitions: i32) -> Vec<i32> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Murmur2Partition.java");
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(imbridge_testkit::kafka_classpath())
        .arg(src)
        .arg(partitions.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java 17 on PATH");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for k in keys {
            writeln!(stdin, "{k}").expect("write key");
        }
    }
    let out = child.wait_with_output().expect("java ran");
    assert!(out.status.success(), "java failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8").lines().map(|l| l.trim().parse().expect("partition number")).collect()
}

fn keys() -> Vec<String> {
    let mut k: Vec<String> = (0..24).map(|i| format!("c2c:user{i}:user{}", i * 7 + 3)).collect();
    k.extend((0..8).map(|i| format!("group:team-{i}")));
    // Lengths 1..4 exercise every tail case of murmur2; non-ASCII exercises byte (not char) hashing.
    k.extend(["a", "ab", "abc", "abcd", "group:Équipe-✓", "c2c:Zed:alice", "user:龍"].map(String::from));
    k
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_partitions_like_the_java_client() {
    imbridge_testkit::require_kafka!();
    let keys = keys();
    assert!(keys.len() >= 20);
    for partitions in [7, 12] {
        let topic = crate::common::topic("murmur", partitions).await;
        let java = java_partitions(&keys, partitions);
        assert_eq!(java.len(), keys.len());
        let producer = Producer::new(&crate::common::kafka()).expect("producer");
        for (key, want) in keys.iter().zip(&java) {
            let d = producer
                .send(&topic, Outgoing { key: key.as_bytes(), payload: b"x", headers: &[] })
                .await
                .expect("delivered");
            assert_eq!(
                d.partition, *want,
                "key {key:?} with {partitions} partitions: librdkafka chose {}, Java {want}",
                d.partition
            );
            assert_eq!(partition_for_key(key.as_bytes(), partitions), *want, "our murmur2 for {key:?}");
        }
    }
}
