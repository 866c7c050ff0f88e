//! Several `skyport` replicas on one PostgreSQL database and one shared data dir, as a
//! production install runs them (the data dir stands for the hosts' shared view of local
//! brokers). Everything is torn down on drop, brokers included.

use std::process::Child;

use crate::{postgres, process, spawn_skyport, Api, ADMIN_TOKEN};

/// One replica of a [`Cluster`].
pub struct Replica {
    pub api: Api,
    pub base_url: String,
    child: Option<Child>,
}

impl Replica {
    /// Whether the process still runs (not killed by the test).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Replicas sharing a database and a data dir.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub data_dir: tempfile::TempDir,
    database: Option<postgres::TestDatabase>,
}

impl Cluster {
    /// Starts `n` replicas on a fresh PostgreSQL database, each with `extra_args` and
    /// its own `--replica-id` (`replica-<i>`).
    pub fn start(n: usize, extra_args: &[&str]) -> Self {
        Self::start_with_env(n, extra_args, &[])
    }

    /// Like [`Cluster::start`], with extra environment variables.
    pub fn start_with_env(n: usize, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let data_dir = tempfile::Builder::new()
            .prefix("skyport-cluster-")
            .tempdir()
            .expect("temp data dir");
        let database = postgres::TestDatabase::create();
        let replicas = (0..n)
            .map(|i| {
                let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
                args.extend(["--replica-id".into(), format!("replica-{i}")]);
                let (child, url) =
                    spawn_skyport("127.0.0.1:0", data_dir.path(), &database.url, &args, &env);
                Replica {
                    api: Api::new(&url, ADMIN_TOKEN),
                    base_url: url,
                    child: Some(child),
                }
            })
            .collect();
        Self {
            replicas,
            data_dir,
            database: Some(database),
        }
    }

    /// SIGKILLs replica `i`, as a crash would; its brokers keep running.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until exactly one live replica leads and every live one is ready and names
    /// it (from `/api/v1/readyz`); returns its index (bounded: panics after 60 s).
    pub async fn agreed_leader(&self) -> usize {
        let mut last = Vec::new();
        for _ in 0..600 {
            let mut seen = Vec::new();
            for (i, replica) in self.replicas.iter().enumerate() {
                if replica.is_up() {
                    seen.push((i, replica.api.get("/readyz").await.body));
                }
            }
            let leaders: Vec<usize> = seen
                .iter()
                .filter(|(_, r)| r["is_leader"] == true)
                .map(|(i, _)| *i)
                .collect();
            if let [leader] = leaders[..] {
                let name = format!("replica-{leader}");
                if seen
                    .iter()
                    .all(|(_, r)| r["leader"] == name.as_str() && r["status"] == "ready")
                {
                    return leader;
                }
            }
            last = seen;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no single leader emerged: {last:?}");
    }

    /// Every live `skyport-broker` process of the shared data dir, with the deployment
    /// id its command line names.
    pub fn brokers(&self) -> Vec<(u32, String)> {
        process::brokers_under(self.data_dir.path())
            .into_iter()
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let text = String::from_utf8_lossy(&cmdline).into_owned();
                let id = text
                    .split("/deployments/")
                    .nth(1)?
                    .split('/')
                    .next()?
                    .to_owned();
                Some((pid, id))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
        for pid in process::brokers_under(self.data_dir.path()) {
            process::kill_and_wait(pid);
        }
        drop(self.database.take());
    }
}
