//! The harness's error type.

use std::time::Duration;

use testcontainers::bollard;

/// Everything that can go wrong while building or driving a test cluster.
///
/// The variants a developer is most likely to meet first (no Docker, no image) carry the fix
/// in their message, so a failing test says what to do rather than just what broke.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The Docker daemon did not answer: these tests need a running Docker Engine.
    #[error(
        "pgshard's integration tests need Docker, but the Docker daemon at {host} cannot be \
         reached ({source}). Start Docker Engine (or point DOCKER_HOST at it) and run the tests \
         again."
    )]
    DockerUnavailable {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The node image is not in the local image store, and no registry can provide it.
    #[error(
        "the Docker image {image} is not built on this machine: run `bash docker/build-images.sh` \
         and run the tests again"
    )]
    ImageMissing { image: String },

    /// The node image was missing and building it failed.
    #[error(
        "the Docker image {image} is not built on this machine and `bash docker/build-images.sh` \
         failed ({detail}); run it by hand to see why (its first run needs root and debootstrap)"
    )]
    ImageBuild { image: String, detail: String },

    /// A Docker API call failed.
    #[error("docker: {action}: {source}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// testcontainers could not create, start or inspect a container.
    #[error("container {container}: {source}")]
    Container {
        container: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },

    /// A container has no port published for PostgreSQL (it is stopped, or cut off its network).
    #[error("container {container} publishes no port for 5432/tcp (is it running and connected?)")]
    NoPublishedPort { container: String },

    /// A node did not start, or did not come back, in time; its last log lines say why.
    #[error("node {node} is not ready: {reason}\n--- last log lines of its container ---\n{logs}")]
    NotReady {
        node: String,
        reason: String,
        logs: String,
    },

    /// A SQL connection or statement failed.
    #[error("node {node}: {source}")]
    Sql {
        node: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A socket operation of the harness itself (the relay) failed.
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    /// The proxy under test could not be configured or started.
    #[error("proxy: {action}: {reason}")]
    Proxy { action: String, reason: String },

    /// Something the harness waits for did not happen in time.
    #[error("timed out after {waited:?} waiting for {what}{}", describe_last_error(.last_error))]
    Timeout {
        what: String,
        waited: Duration,
        last_error: Option<String>,
    },
}

fn describe_last_error(error: &Option<String>) -> String {
    match error {
        Some(error) => format!(" (last attempt: {error})"),
        None => String::new(),
    }
}

/// The harness's result type.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
