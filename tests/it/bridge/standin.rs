//! A small stand-in LRS speaking the xAPI statements API (POST, and GET by id, on /xAPI/statements) with injectable faults, over HTTP or HTTPS.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One POST as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Post {
    pub ids: Vec<String>,
    pub status: u16,
}

/// What the stand-in holds and how it misbehaves.
#[derive(Default)]
pub struct State {
    /// Stored statements by id (the LRS's view).
    pub stored: BTreeMap<String, Value>,
    pub posts: Vec<Post>,
    /// Answer the next N POSTs with `fail_status` (500 by default) without storing anything.
    pub fail_next: usize,
    pub fail_status: u16,
    /// Sleep this long before answering the next `slow_next` POSTs.
    pub slow_next: usize,
    pub delay: Duration,
    /// Sleep this long before answering every POST.
    pub every_delay: Duration,
    /// Refuse (400) any batch holding a statement with one of these resultaatkey values.
    pub refuse_keys: BTreeSet<String>,
    /// Expected `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// Every POST saw the version header.
    pub missing_version_header: usize,
    /// Answer 409 for any id already held, also for the same content (as some LRSs do).
    pub conflict_on_resend: bool,
    /// Send this `Retry-After` value with injected faults.
    pub retry_after: Option<String>,
    /// Or send `Retry-After` as the HTTP-date this long after the answer.
    pub retry_after_date_in: Option<Duration>,
    /// When each POST arrived, in order.
    pub post_times: Vec<std::time::Instant>,
    /// GET requests by id (`statementId=…` or `voidedStatementId=…`).
    pub gets: Vec<String>,
    /// Answer GETs with 403, as an LRS does for write-only credentials.
    pub write_only: bool,
}

pub struct StandIn {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    /// Speaks HTTPS with this configuration (server certificate) when set.
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

const RESULTAATKEY: &str = "https://gateway.test.example/xapi/extension/resultaatkey";

/// A new, well-behaved state (faults off).
pub fn fresh_state() -> Arc<Mutex<State>> {
    Arc::new(Mutex::new(State {
        fail_status: 500,
        ..State::default()
    }))
}

/// A loopback port bound but not listening: a connection to it is refused, as to an LRS
/// that is down, and no other process can take it until the stand-in starts on it.
pub struct Reserved {
    socket: socket2::Socket,
    pub port: u16,
}

/// Reserves a port on 127.0.0.1 (bound to port 0, so the kernel picks a free one).
pub fn reserve() -> Reserved {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any_port.into()).expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .expect("bound address")
        .as_socket()
        .expect("an IP address")
        .port();
    Reserved { socket, port }
}

impl StandIn {
    pub fn start() -> StandIn {
        StandIn::start_with(bind_any(), fresh_state(), None)
    }

    /// Starts on a reserved port (to come up where a gateway already expects it) with a given state.
    pub fn start_reserved(reserved: Reserved, state: Arc<Mutex<State>>) -> StandIn {
        reserved.socket.listen(128).expect("listen");
        StandIn::start_with(reserved.socket.into(), state, None)
    }

    /// Starts speaking HTTPS with `tls` (its server certificate decides whom the gateway trusts).
    pub fn start_tls(tls: Arc<rustls::ServerConfig>) -> StandIn {
        StandIn::start_with(bind_any(), fresh_state(), Some(tls))
    }

    fn start_with(
        listener: TcpListener,
        state: Arc<Mutex<State>>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> StandIn {
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, tls) = (state.clone(), stop.clone(), tls.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (state, tls) = (state.clone(), tls.clone());
                            std::thread::spawn(move || {
                                let _ = serve(stream, tls, &state);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        StandIn {
            port,
            state,
            tls,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/xAPI/statements", self.port)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Stops listening (connections are refused afterwards).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn stored_ids(&self) -> BTreeSet<String> {
        self.with(|state| state.stored.keys().cloned().collect())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection: over TLS when `tls` is set (a failed handshake ends it), else plain.
fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(tls) = tls else {
        return handle(stream, state);
    };
    let connection = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, stream);
    handle(&mut stream, state)?;
    stream.conn.send_close_notify();
    stream.flush()
}

fn respond(stream: &mut impl Write, status: u16, body: &str) -> std::io::Result<()> {
    respond_with(stream, status, body, "")
}

fn respond_with(
    stream: &mut impl Write,
    status: u16,
    body: &str,
    extra_headers: &str,
) -> std::io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Experience-API-Version: 1.0.3\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes())
}

/// GET /xAPI/statements?statementId=…: the held statement as an LRS returns it, with
/// `stored`, `authority` and `version` added and the timestamp rewritten in UTC.
fn answer_get(stream: &mut impl Write, query: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut state = state.lock().unwrap();
    state.gets.push(query.to_string());
    let id = query
        .strip_prefix("statementId=")
        .or_else(|| query.strip_prefix("voidedStatementId="));
    let held = id.and_then(|id| state.stored.get(id)).cloned();
    let write_only = state.write_only;
    drop(state);
    if write_only {
        return respond(
            stream,
            403,
            r#"{"message":"these credentials may only write"}"#,
        );
    }
    match (id, held) {
        (Some(_), Some(mut statement)) if query.starts_with("statementId=") => {
            statement["stored"] = Value::String("2026-12-02T06:00:00.000Z".into());
            statement["version"] = Value::String("1.0.0".into());
            statement["authority"] =
                serde_json::json!({"objectType": "Agent", "mbox": "mailto:standin@lrs.example"});
            if let Some(timestamp) = statement["timestamp"]
                .as_str()
                .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            {
                statement["timestamp"] = Value::String(
                    timestamp
                        .with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                );
            }
            respond(stream, 200, &statement.to_string())
        }
        (Some(_), _) => respond(stream, 404, r#"{"message":"no such statement"}"#),
        (None, _) => respond(stream, 400, r#"{"message":"only statementId queries"}"#),
    }
}

/// One HTTP request as read: the request line, headers (lowercase names) and body.
struct Request {
    line: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        line,
        headers,
        body,
    })
}

fn handle(stream: impl Read + Write, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let Request {
        line: request_line,
        headers,
        body,
    } = read_request(&mut reader)?;
    // The request is read; answers go out on the same stream (BufReader buffers only reads).
    let stream = reader.get_mut();
    if let Some(query) = request_line
        .strip_prefix("GET /xAPI/statements?")
        .and_then(|rest| rest.split_once(' '))
        .map(|(query, _)| query.to_string())
    {
        return answer_get(stream, &query, state);
    }
    if !request_line.starts_with("POST /xAPI/statements ") {
        return respond(stream, 404, "{}");
    }
    let (delay, fail, authorization) = {
        let mut state = state.lock().unwrap();
        let mut delay = state.every_delay;
        if state.slow_next > 0 {
            state.slow_next -= 1;
            delay += state.delay;
        }
        let fail = if state.fail_next > 0 {
            state.fail_next -= 1;
            Some(state.fail_status)
        } else {
            None
        };
        if !headers.contains_key("x-experience-api-version") {
            state.missing_version_header += 1;
        }
        state.post_times.push(std::time::Instant::now());
        (delay, fail, state.authorization.clone())
    };
    std::thread::sleep(delay);
    let statements: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(single @ Value::Object(_)) => vec![single],
        _ => return respond(stream, 400, r#"{"message":"not JSON"}"#),
    };
    let ids: Vec<String> = statements
        .iter()
        .map(|s| s["id"].as_str().unwrap_or("").to_string())
        .collect();
    let mut state = state.lock().unwrap();
    let answer = |state: &mut State, status: u16, body: String| {
        state.posts.push(Post {
            ids: ids.clone(),
            status,
        });
        (status, body)
    };
    let (status, text) = if let Some(status) = fail {
        answer(&mut state, status, r#"{"message":"injected fault"}"#.into())
    } else if authorization.is_some() && headers.get("authorization") != authorization.as_ref() {
        answer(&mut state, 401, r#"{"message":"unauthorised"}"#.into())
    } else if !headers.contains_key("x-experience-api-version") {
        answer(
            &mut state,
            400,
            r#"{"message":"X-Experience-API-Version header missing"}"#.into(),
        )
    } else if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
        answer(
            &mut state,
            400,
            r#"{"message":"duplicate ids in batch"}"#.into(),
        )
    } else if let Some(key) = statements
        .iter()
        .filter_map(|s| s["context"]["extensions"][RESULTAATKEY].as_str())
        .find(|key| state.refuse_keys.contains(*key))
    {
        let message = format!(r#"{{"message":"statement for {key} refused by the stand-in"}}"#);
        answer(&mut state, 400, message)
    } else if statements.iter().any(|s| {
        state
            .stored
            .get(s["id"].as_str().unwrap_or(""))
            .is_some_and(|held| held != s || state.conflict_on_resend)
    }) {
        answer(
            &mut state,
            409,
            r#"{"message":"a different statement holds this id"}"#.into(),
        )
    } else {
        for statement in &statements {
            state.stored.insert(
                statement["id"].as_str().unwrap_or("").to_string(),
                statement.clone(),
            );
        }
        answer(&mut state, 200, serde_json::to_string(&ids).unwrap())
    };
    let retry_after = match (fail, &state.retry_after, state.retry_after_date_in) {
        (Some(_), Some(value), _) => format!("Retry-After: {value}\r\n"),
        (Some(_), None, Some(delay)) => format!(
            "Retry-After: {}\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now() + delay)
        ),
        _ => String::new(),
    };
    drop(state);
    respond_with(stream, status, &text, &retry_after)
}
