//! Receivers of what the control plane sends out, started by a test on 127.0.0.1:0: an
//! HTTP server recording webhook calls, and an SMTP server recording mails (RFC 5321's
//! plain dialogue: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One webhook call: its headers (lower-case names) and raw body.
#[derive(Clone, Debug)]
pub struct WebhookCall {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }
}

/// An HTTP server that answers 200 to every `POST` and records it.
pub struct WebhookReceiver {
    pub url: String,
    calls: Arc<Mutex<Vec<WebhookCall>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let app = axum::Router::new().route(
            "/hooks/skyport",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let recorded = recorded.clone();
                    async move {
                        let headers = headers
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_owned(),
                                    v.to_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect();
                        recorded.lock().unwrap().push(WebhookCall {
                            headers,
                            body: body.to_vec(),
                        });
                        "ok"
                    }
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hooks/skyport"),
            calls,
            task,
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<WebhookCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits (bounded: 120 s) until some call satisfies `pred`; returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&WebhookCall) -> bool) -> WebhookCall {
        for _ in 0..1200 {
            if let Some(call) = self.calls().into_iter().find(|c| pred(c)) {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen: Vec<String> = self
            .calls()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.body).into_owned())
            .collect();
        panic!("no webhook call {what}; received: {seen:#?}");
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One mail as the SMTP server received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message (headers and body) as sent, dot-unstuffed, CRLF line ends.
    pub data: String,
}

/// An SMTP server that accepts every mail and records it.
pub struct SmtpReceiver {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let recorded = mails.clone();
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                sessions.spawn(async move {
                    let _ = session(stream, recorded).await;
                });
            }
        });
        Self { addr, mails, task }
    }

    /// `smtp://` URL of the server, for `--smtp-url`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// Waits (bounded: 120 s) until some mail satisfies `pred`; returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Mail) -> bool) -> Mail {
        for _ in 0..1200 {
            if let Some(mail) = self.mails().into_iter().find(|m| pred(m)) {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail {what}; received: {:#?}", self.mails());
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address inside `MAIL FROM:<…>` or `RCPT TO:<…>` (parameters after it ignored).
fn path_of(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}

async fn session(
    stream: tokio::net::TcpStream,
    recorded: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 skyport-test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-skyport-test\r\n250 8BITMIME\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "MAIL" => {
                from = path_of(&command[4..]);
                to.clear();
                b"250 ok\r\n"
            }
            "RCPT" => {
                to.push(path_of(&command[4..]));
                b"250 ok\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 ok\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(text));
                    data.push_str("\r\n");
                }
                recorded.lock().unwrap().push(Mail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}
