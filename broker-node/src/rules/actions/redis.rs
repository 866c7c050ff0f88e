//! `data_to_redis`: a command template per output, a batch pipelined in one
//! MULTI/EXEC so it is applied whole or not at all.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{param, Failure};
use crate::rules::resource::Resource;
use crate::rules::template::Template;

pub struct Redis {
    pub resource: Arc<Resource>,
    /// The command's words, each a template (so a value with spaces stays one argument).
    args: Vec<Template>,
}

impl Redis {
    pub fn prepare(params: &Map<String, Value>, resource: Arc<Resource>) -> Result<Self, String> {
        let cmd = param(params, "cmd", "")?;
        let args = cmd
            .split_whitespace()
            .map(|w| Template::parse(w).map_err(|e| format!("cmd: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if args.is_empty() {
            return Err("missing cmd".to_owned());
        }
        Ok(Self { resource, args })
    }

    pub async fn deliver(&self, batch: &[Map<String, Value>]) -> Result<(), Failure> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for output in batch {
            let mut words = self.args.iter().map(|t| t.render(output));
            let Some(name) = words.next() else {
                continue;
            };
            let cmd = pipe.cmd(&name);
            for word in words {
                cmd.arg(word);
            }
            cmd.ignore();
        }
        let mut conn = self.resource.redis().await.map_err(Failure::retry)?;
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => Ok(()),
            Err(e)
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_connection_refusal() =>
            {
                Err(Failure::retry(self.resource.redis_failed(e)))
            }
            Err(e) => Err(Failure::refused(format!("Redis: {e}"))),
        }
    }
}
