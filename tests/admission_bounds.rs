//! Bounded durations at admission, in a real kube-apiserver with our CRDs: a resyncInterval
//! the operator cannot use (zero, longer than 366 days, or beyond what Go's duration holds) is
//! refused naming spec.resyncInterval; ordinary ones are accepted. The operator's own parser
//! gives the same verdicts.

mod support;

use imageset_operator::api::{ImageSetConfiguration, parse_duration};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::cluster;

fn isc(name: &str, interval: &str) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1",
        "kind": "ImageSetConfiguration",
        "metadata": {"name": name},
        "spec": {
            "destination": "docker://mirror.example.com:5000/ocp",
            "mirror": {"additionalImages": [{"name": "quay.io/a/b:1"}]},
            "resyncInterval": interval,
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn resync_interval_is_bounded_at_admission() {
    let client = cluster::shared().client().await;
    cluster::ensure_namespace(&client, "bounds").await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client, "bounds");

    for (i, good) in ["6h", "1h30m", "90s", "500ms", "1.5h", "1ns", "8784h", "8783h59m59.999999999s"].iter().enumerate()
    {
        let created = api
            .create(&PostParams::default(), &isc(&format!("good-{i}"), good))
            .await
            .unwrap_or_else(|e| panic!("resyncInterval {good:?} refused: {e}"));
        assert_eq!(created.spec.resync_interval.as_deref(), Some(*good));
        assert!(parse_duration(good).is_ok(), "the operator refuses {good:?}, which admission accepts");
    }

    // (value, what the refusal must say besides the field). The operator refuses all but the
    // last too: the length limit only keeps CEL's cost estimate small.
    let long = "1h".repeat(17);
    let bad = [
        // The reported defect: beyond Go's int64 nanoseconds, so CEL's duration() fails.
        ("99999999999999999999h", "8784h"),
        ("2562048h", "8784h"),
        ("9223372036854775808ns", "8784h"),
        // Representable, but outside the bound.
        ("8784h1ns", "8784h"),
        ("9000h", "8784h"),
        ("0s", "8784h"),
        ("0h0m0.0s", "8784h"),
        // The pattern and the length limit.
        ("6x", "should match"),
        ("6", "should match"),
        (long.as_str(), "32"),
    ];
    for (i, (value, detail)) in bad.into_iter().enumerate() {
        let err = api
            .create(&PostParams::default(), &isc(&format!("bad-{i}"), value))
            .await
            .expect_err(&format!("accepted resyncInterval {value:?}"));
        let kube::Error::Api(status) = err else { panic!("unexpected error for {value:?}: {err}") };
        assert_eq!(status.code, 422, "{value:?}: {}", status.message);
        assert!(
            status.message.contains("spec.resyncInterval") && status.message.contains(detail),
            "{value:?}: expected spec.resyncInterval and {detail:?} in {:?}",
            status.message
        );
        if detail == "should match" {
            assert!(!status.message.contains("evaluating rule"), "{value:?}: two errors for one: {}", status.message);
        }
        if value != long {
            assert!(parse_duration(value).is_err(), "the operator accepts {value:?}, which admission refuses");
        }
    }
    api.delete_collection(&DeleteParams::default(), &Default::default()).await.unwrap();
}
