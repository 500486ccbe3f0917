//! Without Docker the suite must fail loudly, never pass or skip quietly.
//!
//! This file is its own test binary (its own process), so pointing `DOCKER_HOST` nowhere
//! here does not disturb the other suites.

use pgshard_tests::{Cluster, HarnessError};

#[tokio::test]
async fn without_docker_starting_a_cluster_fails_saying_docker_is_needed() {
    std::env::set_var("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let error = Cluster::start(1, 0)
        .await
        .expect_err("a cluster started without Docker");
    assert!(
        matches!(error, HarnessError::DockerUnavailable { .. }),
        "unexpected error: {error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("need Docker"),
        "unclear message: {message}"
    );
    assert!(
        message.contains("/nonexistent/docker.sock"),
        "message names no host: {message}"
    );
}
