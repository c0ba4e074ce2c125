//! A RabbitMQ virtual host per test, deleted again even when the test panics.

use std::io::Write;
use std::sync::Once;

use super::unique_name;

/// A RabbitMQ virtual host of its own for one test, so that its queue and the connections it
/// closes are nobody else's; deleted (with its queues) when dropped, also when the test panics.
pub struct TestBroker {
    /// `BROKER_URL` for the test's processes.
    pub url: String,
    vhost: String,
}

impl TestBroker {
    /// `None` (and a note) when `SIMBA_TEST_AMQP_URL` is not set.
    pub fn create() -> Option<TestBroker> {
        const VAR: &str = "SIMBA_TEST_AMQP_URL";
        let Some(base) = std::env::var(VAR).ok().filter(|v| !v.is_empty()) else {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: RabbitMQ tests skipped: {VAR} is not set (.ci/run sets it)"
                );
            });
            return None;
        };
        let vhost = unique_name();
        rabbitmqctl(&["add_vhost", &vhost]).unwrap_or_else(|e| panic!("{e}"));
        // Held from here, so that a failure below deletes the vhost again.
        let mut broker = TestBroker {
            url: String::new(),
            vhost,
        };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &broker.vhost,
            "guest",
            ".*",
            ".*",
            ".*",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let mut url = url::Url::parse(&base).expect("a valid SIMBA_TEST_AMQP_URL");
        url.set_path(&format!("/{}", broker.vhost));
        broker.url = url.to_string();
        Some(broker)
    }

    /// What an operator's `rabbitmqctl close_all_connections` does, to this test's clients.
    pub fn close_all_connections(&self) {
        rabbitmqctl(&[
            "close_all_connections",
            "--vhost",
            &self.vhost,
            "closed by a Simba test",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl(&["delete_vhost", &self.vhost]) {
            // As for a test database: no second panic while the test's own unwinds.
            if std::thread::panicking() {
                let _ = writeln!(std::io::stderr(), "vhost {} left behind: {e}", self.vhost);
            } else {
                panic!("{e}");
            }
        }
    }
}

fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .map_err(|e| {
            format!("rabbitmqctl does not run (RabbitMQ tests need it beside the broker): {e}")
        })?;
    if !output.status.success() {
        return Err(format!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}
