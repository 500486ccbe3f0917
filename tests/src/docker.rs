//! The Docker Engine the test clusters run on.

use std::time::Duration;

use testcontainers::bollard::models::NetworkDisconnectRequest;
use testcontainers::bollard::models::{EndpointSettings, NetworkConnectRequest};
use testcontainers::bollard::query_parameters::{KillContainerOptions, RestartContainerOptions};
use testcontainers::bollard::{self, Docker as Bollard};

use crate::error::{HarnessError, Result};

/// Repository and tag of the PostgreSQL node image built by `docker/build-images.sh`.
pub const NODE_IMAGE: (&str, &str) = ("pgshard/postgres", "15");

/// The port PostgreSQL listens on inside a node container.
pub const POSTGRES_PORT: u16 = 5432;

/// Label put on every container the harness starts, so leftovers of a killed test run can be
/// found and removed (`docker rm -f $(docker ps -aq --filter label=org.pgshard.test)`).
pub const TEST_LABEL: &str = "org.pgshard.test";

/// How long the daemon may take to answer the first request.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on the Docker Engine, for what testcontainers does not do itself: SIGKILL,
/// restart, network (dis)connection and reading a container's current published port.
///
/// It shares testcontainers' connection settings (`DOCKER_HOST` and friends). Docker Engine
/// 20.10 speaks API 1.41 while bollard 0.20 defaults to 1.52; bollard's request paths carry no
/// version prefix, so the daemon answers at its own version and no negotiation is needed.
#[derive(Clone)]
pub struct Docker {
    client: Bollard,
}

impl Docker {
    /// Connects and checks that the daemon answers and the node image exists.
    ///
    /// Both failures are turned into errors that say how to fix them, because they are what a
    /// developer meets on a fresh machine.
    pub async fn connect() -> Result<Docker> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let client = testcontainers::core::client::docker_client_instance()
            .await
            .map_err(|source| HarnessError::DockerUnavailable {
                host: host.clone(),
                source: Box::new(source),
            })?;
        match tokio::time::timeout(PING_TIMEOUT, client.version()).await {
            Ok(Ok(_version)) => {}
            Ok(Err(source)) => {
                return Err(HarnessError::DockerUnavailable {
                    host,
                    source: Box::new(source),
                })
            }
            Err(elapsed) => {
                return Err(HarnessError::DockerUnavailable {
                    host,
                    source: Box::new(elapsed),
                })
            }
        }
        let docker = Docker { client };
        let image = format!("{}:{}", NODE_IMAGE.0, NODE_IMAGE.1);
        match docker.require_image(&image).await {
            Err(HarnessError::ImageMissing { .. }) => build_images(&image).await?,
            other => other?,
        }
        Ok(docker)
    }

    /// Fails with [`HarnessError::ImageMissing`] when `image` is not in the local store:
    /// testcontainers would otherwise try to pull it from a registry.
    pub async fn require_image(&self, image: &str) -> Result<()> {
        match self.client.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(HarnessError::ImageMissing {
                image: image.to_string(),
            }),
            Err(source) => Err(docker_error(format!("inspect image {image}"), source)),
        }
    }

    /// The host port that `127.0.0.1` forwards to the container's PostgreSQL port right now.
    ///
    /// Docker may pick a new port each time a container starts, so this is asked again after
    /// every start rather than remembered.
    pub async fn published_port(&self, container: &str) -> Result<u16> {
        let info = self
            .client
            .inspect_container(container, None)
            .await
            .map_err(|source| docker_error(format!("inspect container {container}"), source))?;
        let key = format!("{POSTGRES_PORT}/tcp");
        info.network_settings
            .and_then(|settings| settings.ports)
            .and_then(|mut ports| ports.remove(&key).flatten())
            .into_iter()
            .flatten()
            .filter(|binding| binding.host_ip.as_deref() == Some("127.0.0.1"))
            .find_map(|binding| binding.host_port?.parse().ok())
            .ok_or_else(|| HarnessError::NoPublishedPort {
                container: container.to_string(),
            })
    }

    /// Whether the container's main process is running (a paused container counts as running).
    pub async fn is_running(&self, container: &str) -> Result<bool> {
        let info = self
            .client
            .inspect_container(container, None)
            .await
            .map_err(|source| docker_error(format!("inspect container {container}"), source))?;
        Ok(info.state.and_then(|state| state.running).unwrap_or(false))
    }

    /// Sends SIGKILL to the container: the node dies without shutting down.
    pub async fn kill(&self, container: &str) -> Result<()> {
        let options = KillContainerOptions {
            signal: "KILL".to_string(),
        };
        self.client
            .kill_container(container, Some(options))
            .await
            .map_err(|source| docker_error(format!("kill container {container}"), source))
    }

    /// Stops (fast shutdown, SIGKILL after `grace`) and starts the container again.
    pub async fn restart(&self, container: &str, grace: Duration) -> Result<()> {
        let options = RestartContainerOptions {
            signal: None,
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
        };
        self.client
            .restart_container(container, Some(options))
            .await
            .map_err(|source| docker_error(format!("restart container {container}"), source))
    }

    /// Cuts the container off `network`: its peers can no longer reach it, nor it them.
    pub async fn disconnect(&self, network: &str, container: &str) -> Result<()> {
        let request = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        self.client
            .disconnect_network(network, request)
            .await
            .map_err(|source| {
                docker_error(format!("disconnect {container} from {network}"), source)
            })
    }

    /// Connects the container to `network` again, under its container name.
    pub async fn connect_to(&self, network: &str, container: &str) -> Result<()> {
        let request = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings::default()),
        };
        self.client
            .connect_network(network, request)
            .await
            .map_err(|source| docker_error(format!("connect {container} to {network}"), source))
    }

    /// The last lines the container wrote to stdout and stderr, for error reports.
    pub async fn log_tail(&self, container: &str, lines: usize) -> String {
        use futures::StreamExt;
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.client.logs(container, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text
    }
}

fn docker_error(action: String, source: bollard::errors::Error) -> HarnessError {
    HarnessError::Docker { action, source }
}

/// Builds the local images with `docker/build-images.sh`, once per test process, under a
/// lock so that test processes running at once build them once. Its progress goes to the
/// terminal; a failure says how to see why.
async fn build_images(image: &str) -> Result<()> {
    static BUILT: tokio::sync::OnceCell<std::result::Result<(), String>> =
        tokio::sync::OnceCell::const_new();
    let outcome = BUILT
        .get_or_init(|| async {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            let script = root.join("docker/build-images.sh");
            eprintln!(
                "tests: {image} is missing; building the images (bash docker/build-images.sh)"
            );
            let status = tokio::process::Command::new("flock")
                .arg(std::env::temp_dir().join("pgshard-build-images.lock"))
                .arg("bash")
                .arg(&script)
                .status()
                .await;
            match status {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!("it exited with {status}")),
                Err(e) => Err(format!("it could not start: {e}")),
            }
        })
        .await;
    outcome.clone().map_err(|detail| HarnessError::ImageBuild {
        image: image.to_string(),
        detail,
    })
}
