//! A throwaway two-node RabbitMQ cluster (Debian's `rabbitmq-server`, `rabbitmq_mqtt`
//! plugin) on loopback for the bridge tests: runs `tests/support/rabbitmq-cluster.sh up`,
//! reads its `NAME=value` lines, and stops it (SIGTERM, then wait: the script stops both
//! nodes and its private epmd and removes its directory) when dropped. One cluster costs
//! about 15-20 s to start and 1-2 s to stop, so a test binary starts one and runs its
//! scenarios against it in sequence.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the cluster may take to come up: ~20 s on an idle 2-core machine, but two
/// minutes were seen under load, and the script retries a failed attempt once.
const START_TIMEOUT: Duration = Duration::from_secs(480);

/// The running cluster.
pub struct RabbitCluster {
    child: Option<Child>,
    vars: HashMap<String, String>,
}

impl RabbitCluster {
    /// Starts the cluster; panics (with the script's log) if it does not come up.
    pub fn start() -> RabbitCluster {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/rabbitmq-cluster.sh");
        assert!(
            std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(),
            "rabbitmq-server is not installed (test.sh installs it: apt-get install rabbitmq-server)"
        );
        let mut child = Command::new("bash")
            .arg(&script)
            .arg("up")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash runs rabbitmq-cluster.sh");
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        let mut cluster = RabbitCluster {
            child: Some(child),
            vars: HashMap::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        // The script prints every variable at once, RMQ_NODE_CMD last.
        while !cluster.vars.contains_key("RMQ_NODE_CMD") {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((name, value)) = line.split_once('=') {
                        cluster.vars.insert(name.to_owned(), value.to_owned());
                    }
                }
                Err(_) => panic!("the RabbitMQ cluster did not come up (its log is above)"),
            }
        }
        cluster
    }

    fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("rabbitmq-cluster.sh printed no {name}"))
    }

    /// The MQTT port of node `a` or `b`.
    pub fn mqtt_port(&self, node: char) -> u16 {
        let name = format!("RMQ_{}_MQTT_PORT", node.to_ascii_uppercase());
        self.var(&name).parse().unwrap()
    }

    /// The MQTT address (`127.0.0.1:port`) of node `a` or `b`.
    pub fn mqtt_addr(&self, node: char) -> String {
        format!("127.0.0.1:{}", self.mqtt_port(node))
    }

    /// The directory holding the nodes' logs (`a/log`, `b/log`).
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.var("RMQ_CLUSTER_DIR"))
    }

    /// Stops node `a` or `b` gracefully (returns once it is gone). Starting node A again
    /// while B runs takes ~100 s (Raft leader of the MQTT plugin), so tests stop A last.
    pub fn stop_node(&self, node: char) {
        let status = Command::new(self.var("RMQ_NODE_CMD"))
            .arg("stop")
            .arg(node.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "rmq-node stop {node} failed");
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}
